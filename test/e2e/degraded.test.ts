import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { operation, startStack, type Stack } from '../helpers/stack.ts';

/** A system that is down costs its own fields, not the whole answer, and leaks nothing. */
describe('when one subgraph is down', () => {
  let stack: Stack;
  let caseId: string;
  beforeAll(async () => {
    stack = await startStack();
    const row = stack.dbs.support
      .prepare(`SELECT ticket_id FROM ticket_custom_fields WHERE field_id = 360000000102 ORDER BY ticket_id LIMIT 1`)
      .get() as { ticket_id: number };
    caseId = String(row.ticket_id);
    await stack.erp.stop();
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('answers CaseContext with the desk and CRM fields and an error naming the ERP', async () => {
    const { status, body, text } = await stack.query<{ case: any }>(operation('agent-console', 'CaseContext'), { id: caseId });
    expect(status).toBe(200);
    const found = body.data!.case;
    expect(found.id).toBe(caseId);
    expect(found.subject).toEqual(expect.any(String));
    expect(found.customer.name).toEqual(expect.any(String));
    expect(found.customer.openBalance).toBeNull();
    expect(found.order.status).toBeNull();
    expect(found.asset.warranty).toBeNull();
    const systems = new Set(body.errors?.map((error) => error.extensions?.serviceName));
    expect(systems).toEqual(new Set(['erp']));
    expect(body.errors?.every((error) => error.extensions?.code === 'SYSTEM_UNAVAILABLE')).toBe(true);
    expect(body.errors?.[0]?.message).toMatch(/erp/);
    // Nothing internal: no subgraph URL, port, socket error or stack.
    expect(text).not.toMatch(/127\.0\.0\.1|localhost|ECONNREFUSED|fetch failed|stacktrace|\bat .*\.ts:\d+/);
  });

  it('still answers queries that need only the systems that are up', async () => {
    const { body } = await stack.query<{ cases: any }>('{ cases(first: 3) { nodes { id customer { name } } } }');
    expect(body.errors).toBeUndefined();
    expect(body.data!.cases.nodes).toHaveLength(3);
  });
});
