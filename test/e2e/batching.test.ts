import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callsBetween, connectorCalls, operation, NO_CACHE, startStack, type Stack } from '../helpers/stack.ts';

/**
 * Every __resolveReference and list edge goes through a per-request DataLoader, so the agent's
 * queue costs the same connector calls for 10 cases as for 100, read from each subgraph's
 * /metrics as an operator would.
 */
describe('batching', () => {
  let stack: Stack;
  const logLines: string[] = [];
  beforeAll(async () => {
    stack = await startStack({ logLines, gateway: NO_CACHE });
  });
  afterAll(async () => {
    await stack?.stop();
  });

  async function callsFor(first: number): Promise<{ calls: Record<string, number>; cases: number }> {
    const services = [stack.crm, stack.erp, stack.support];
    const before = await Promise.all(services.map(connectorCalls));
    const { body } = await stack.query<{ cases: { nodes: unknown[] } }>(operation('agent-console', 'CaseQueue'), {
      first,
      filter: { status: ['NEW', 'OPEN', 'PENDING', 'ON_HOLD', 'SOLVED', 'CLOSED'] },
    });
    expect(body.errors).toBeUndefined();
    const after = await Promise.all(services.map(connectorCalls));
    const calls = Object.assign({}, ...services.map((_service, i) => callsBetween(before[i]!, after[i]!)));
    return { calls, cases: body.data!.cases.nodes.length };
  }

  it('makes the same connector calls for CaseQueue with 10 cases as with 100', async () => {
    const ten = await callsFor(10);
    const hundred = await callsFor(100);
    expect(ten.cases).toBe(10);
    expect(hundred.cases).toBe(100);
    expect(hundred.calls).toEqual(ten.calls);
    // At most one call per entity type per subgraph request: every system is asked, none twice
    // for the same thing.
    for (const system of ['crm', 'erp', 'support']) {
      expect(Object.keys(ten.calls).some((key) => key.startsWith(`${system}/`))).toBe(true);
    }
    for (const count of Object.values(ten.calls)) expect(count).toBe(1);
  });

  it('logs every connector call with the correlation id of the request that made it', async () => {
    logLines.length = 0;
    await stack.query(operation('agent-console', 'CaseQueue'), { first: 5 }, { 'x-correlation-id': 'queue-check-1' });
    const calls = logLines.map((line) => JSON.parse(line)).filter((entry) => entry.msg === 'connector call');
    expect(new Set(calls.map((entry) => entry.service))).toEqual(new Set(['crm', 'erp', 'support']));
    expect(calls.every((entry) => entry.correlationId === 'queue-check-1')).toBe(true);
  });
});
