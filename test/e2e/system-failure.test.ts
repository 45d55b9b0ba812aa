import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NO_CACHE, startStack, type Stack } from '../helpers/stack.ts';

/** The CRM subgraph is up but the CRM behind it fails: only the CRM's fields are lost. */
describe('when a system behind a running subgraph fails', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ gateway: NO_CACHE });
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('reports SYSTEM_UNAVAILABLE for the CRM, keeps the other fields, and shows no internals', async () => {
    const query = '{ cases(first: 5) { nodes { id subject customer { id name openBalance { amount } } } } }';
    const healthy = await stack.query<{ cases: any }>(query);
    expect(healthy.body.errors).toBeUndefined();

    stack.dbs.crm.close();
    const { body, text } = await stack.query<{ cases: any }>(query);
    const nodes = body.data!.cases.nodes;
    expect(nodes).toHaveLength(5);
    for (const node of nodes) {
      expect(node.subject).toEqual(expect.any(String));
      expect(node.customer.name).toBeNull();
      const billing = stack.dbs.erp.prepare('SELECT balanceDue FROM customers WHERE number = ?').get(node.customer.id) as {
        balanceDue: number;
      };
      expect(node.customer.openBalance.amount).toBe(billing.balanceDue.toFixed(2));
    }
    expect(body.errors?.length).toBeGreaterThan(0);
    for (const error of body.errors ?? []) {
      expect(error.extensions).toMatchObject({ code: 'SYSTEM_UNAVAILABLE', serviceName: 'crm' });
    }
    expect(text).not.toMatch(/database|sqlite|connection is not open|stacktrace/i);
    const ready = await fetch(stack.crm.url.replace(/\/graphql$/, '/ready'));
    expect(ready.status).toBe(503);
  });
});
