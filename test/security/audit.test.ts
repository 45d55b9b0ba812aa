import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../helpers/stack.ts';
import { ownRecords, type OwnRecords } from './fixtures.ts';

/** Reads of sensitive fields leave a structured audit event: who, role, what, which record, outcome. */
describe('audit log', () => {
  let stack: Stack;
  let records: OwnRecords;
  const lines: string[] = [];
  beforeAll(async () => {
    stack = await startStack({ logLines: lines });
    records = ownRecords(stack.dbs);
  });
  afterAll(async () => {
    await stack?.stop();
  });

  const auditEvents = () => lines.map((line) => JSON.parse(line)).filter((entry) => entry.audit === true);

  it('records who read a credit limit, and who was refused one', async () => {
    lines.length = 0;
    const query = `{ customer(id: "${records.customerId}") { billing { creditLimit { amount } } } }`;
    const headers = { 'x-correlation-id': 'audit-1' };
    await stack.query(
      query,
      {},
      { ...headers, authorization: await stack.bearer({ subject: 'fiona@example.com', roles: ['finance'], customerId: null }) },
    );
    await stack.query(
      query,
      {},
      {
        'x-correlation-id': 'audit-2',
        authorization: await stack.bearer({ subject: 'alex@example.com', roles: ['support_agent'], customerId: null }),
      },
    );
    const events = auditEvents().filter((event) => event.what === 'BillingProfile.creditLimit');
    expect(events).toEqual([
      expect.objectContaining({
        who: 'fiona@example.com',
        roles: ['finance'],
        records: [records.customerId],
        outcome: 'allowed',
        correlationId: 'audit-1',
      }),
      expect.objectContaining({
        who: 'alex@example.com',
        roles: ['support_agent'],
        records: [records.customerId],
        outcome: 'denied',
        correlationId: 'audit-2',
      }),
    ]);
  });

  it("records a portal customer's reads of its invoice amounts, one event per field with every record", async () => {
    lines.length = 0;
    await stack.queryAs(
      { role: 'portal_customer', customer: records.customerId },
      `{ invoice(number: "${records.invoiceNumber}") { amount { amount } balance { amount } } }`,
    );
    // A portal customer may run registered operations only; this one is refused before any read.
    expect(auditEvents()).toEqual([]);
    await stack.queryAs('sales_rep', `{ customer(id: "${records.customerId}") { invoices(first: 5) { amount { amount } } } }`);
    const [event] = auditEvents();
    expect(event).toMatchObject({ event: 'sensitive_read', what: 'Invoice.amount', outcome: 'allowed', roles: ['sales_rep'] });
    expect(event.records.length).toBeGreaterThan(0);
  });

  it('records personal data read from contacts', async () => {
    lines.length = 0;
    await stack.queryAs('support_agent', `{ customer(id: "${records.customerId}") { contacts { email phone } } }`);
    expect(
      auditEvents()
        .map((event) => event.what)
        .sort(),
    ).toEqual(['Contact.email', 'Contact.phone']);
  });
});
