import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  businessCentralChanges,
  changeHooks,
  salesforceChanges,
  zendeskChanges,
  type Invalidation,
} from '../../gateway/src/cache/change-hooks.ts';
import { createLogger } from '../../platform/logger.ts';

const SECRET = 'salesforce-relay-secret-for-tests';

describe('change notices', () => {
  it('names the case of a Zendesk ticket event, from its detail, its subject or a trigger body', () => {
    expect(zendeskChanges({ type: 'zen:event-type:ticket.status_changed', detail: { id: '35436' } })).toEqual([
      { type: 'Case', ids: ['35436'] },
    ]);
    expect(zendeskChanges({ type: 'zen:event-type:ticket.comment_added', subject: 'zen:ticket:12' })).toEqual([
      { type: 'Case', ids: ['12'] },
    ]);
    expect(zendeskChanges({ ticket_id: 77 })).toEqual([{ type: 'Case', ids: ['77'] }]);
    expect(zendeskChanges({ type: 'zen:event-type:organization.created' })).toEqual([{ type: 'Customer' }]);
    expect(zendeskChanges({ type: 'zen:event-type:something.else' })).toEqual([]);
  });

  it('maps Business Central entity sets, standard and extension, to the types they feed', () => {
    const resource = (set: string) => `api/v2.0/companies(1)/${set}(2)`;
    expect(businessCentralChanges([{ resource: resource('salesInvoices') }, { resource: resource('items') }])).toEqual([
      { type: 'Invoice' },
      { type: 'Customer' },
      { type: 'Product' },
    ]);
    expect(businessCentralChanges([{ resource: 'api/contoso/support/v1.0/companies(1)/serialNumbers' }])).toEqual([{ type: 'Asset' }]);
    expect(businessCentralChanges([{ resource: resource('unknownThings') }])).toEqual([]);
  });

  it('drops Salesforce contacts one by one (their Id is their key) and accounts by type', () => {
    expect(
      salesforceChanges([
        { ChangeEventHeader: { entityName: 'Contact', changeType: 'UPDATE', recordIds: ['003000000000001AAA'] } },
        { ChangeEventHeader: { entityName: 'Account', changeType: 'UPDATE', recordIds: ['001000000000001AAA'] } },
      ]),
    ).toEqual([{ type: 'Contact', ids: ['003000000000001AAA'] }, { type: 'Customer' }]);
  });

  it('applies a signed Salesforce relay notice, and refuses an unsigned or tampered one', async () => {
    const applied: Invalidation[][] = [];
    let storeAnswers = true;
    const hooks = changeHooks(
      { zendeskSecret: null, businessCentralClientState: null, salesforceSecret: SECRET },
      async (changes) => {
        applied.push(changes);
        return storeAnswers;
      },
      createLogger('test', 'silent'),
    );
    expect([...hooks.keys()]).toEqual(['/hooks/salesforce']);
    const hook = hooks.get('/hooks/salesforce')!;
    const body = Buffer.from(JSON.stringify({ ChangeEventHeader: { entityName: 'Contact', recordIds: ['003000000000001AAA'] } }));
    const timestamp = new Date().toISOString();
    const signature = createHmac('sha256', SECRET).update(timestamp).update(body).digest('base64');
    const search = new URLSearchParams();

    expect((await hook({ headers: {}, search, body })).status).toBe(401);
    const tampered = Buffer.from(body.toString().replace('0001AAA', '0002AAA'));
    expect(
      (await hook({ headers: { 'x-concord-signature': signature, 'x-concord-signature-timestamp': timestamp }, search, body: tampered }))
        .status,
    ).toBe(401);
    expect(applied).toEqual([]);

    const answer = await hook({ headers: { 'x-concord-signature': signature, 'x-concord-signature-timestamp': timestamp }, search, body });
    expect(answer.status).toBe(202);
    expect(applied).toEqual([[{ type: 'Contact', ids: ['003000000000001AAA'] }]]);

    // A cache store that could not be told: not acknowledged, so that the system sends it again,
    // and the notice sent again is applied (it was not remembered as seen).
    storeAnswers = false;
    const later = new Date(Date.now() + 1_000).toISOString();
    const resent = {
      'x-concord-signature': createHmac('sha256', SECRET).update(later).update(body).digest('base64'),
      'x-concord-signature-timestamp': later,
    };
    expect((await hook({ headers: resent, search, body })).status).toBe(503);
    storeAnswers = true;
    expect((await hook({ headers: resent, search, body })).status).toBe(202);
  });

  it('serves no endpoint for a system whose secret is not configured', () => {
    const hooks = changeHooks(
      { zendeskSecret: null, businessCentralClientState: null, salesforceSecret: null },
      async () => true,
      createLogger('test', 'silent'),
    );
    expect(hooks.size).toBe(0);
  });
});
