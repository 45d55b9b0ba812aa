import { describe, expect, it } from 'vitest';
import { plainReason } from '../../gateway/src/console/public/plain-words.js';

/** The exception queue's reasons in plain words (gateway/src/console/public/plain-words.js). */
describe('plainReason', () => {
  it('names the CRM when it did not answer, with the attempts, from what the engine recorded', () => {
    expect(
      plainReason({
        currentStep: 'crm-activity',
        attempts: 6,
        parkedReason: 'crm-activity failed 6 times: logCustomerActivity: SYSTEM_UNAVAILABLE The crm system did not answer',
        lastError: 'logCustomerActivity: SYSTEM_UNAVAILABLE The crm system did not answer',
      }),
    ).toEqual({ text: 'The CRM did not answer (6 attempts).', system: 'the CRM', kind: 'unavailable' });
  });

  it('keeps a low-level cause worth knowing, and names the system by the step when the error does not', () => {
    expect(
      plainReason({ currentStep: 'crm-activity', attempts: 4, parkedReason: 'crm-activity failed 4 times: crm: connection refused' }).text,
    ).toBe('The CRM did not answer (4 attempts): connection refused.');
    expect(plainReason({ currentStep: 'desk-case-note', attempts: 3, lastError: 'addNote: TIMEOUT upstream' }).text).toBe(
      'The support desk did not answer in time (3 attempts).',
    );
  });

  it("says what a system refused, or rejected as not valid, in the system's own words", () => {
    expect(
      plainReason({
        currentStep: 'erp-sales-order',
        attempts: 1,
        parkedReason: 'erp-sales-order was refused: createSalesOrder: REFUSED_BY_SYSTEM The customer is blocked for sales',
      }),
    ).toEqual({ text: 'The ERP refused the change (1 attempt): The customer is blocked for sales.', system: 'the ERP', kind: 'refused' });
    expect(
      plainReason({
        currentStep: 'crm-write-back',
        attempts: 1,
        lastError: 'updateOpportunity: BAD_USER_INPUT Argument "stage" is not a stage of the CRM',
        parkedReason: 'crm-write-back was refused: updateOpportunity: BAD_USER_INPUT Argument "stage" is not a stage of the CRM',
      }).text,
    ).toBe('The CRM rejected the data it was sent as not valid (1 attempt): Argument "stage" is not a stage of the CRM.');
  });

  it('tells an undo that failed, credentials refused, and an unknown failure apart', () => {
    expect(
      plainReason({
        currentStep: 'erp-return-order',
        attempts: 2,
        parkedReason: 'erp-return-order could not be undone: cancel: order shipped',
      }).kind,
    ).toBe('undo-failed');
    expect(plainReason({ currentStep: 'erp-x', attempts: 6, parkedReason: 'erp-x failed 6 times: call: FORBIDDEN Not allowed' }).text).toBe(
      "The ERP did not accept Concord's credentials (6 attempts).",
    );
    expect(plainReason({ currentStep: 'confirm', attempts: 2, parkedReason: 'confirm failed 2 times: something odd' })).toEqual({
      text: 'The step confirm failed (2 attempts): something odd.',
      system: null,
      kind: 'failed',
    });
  });
});
