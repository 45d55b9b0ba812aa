import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { graphqlRequestsServed, NO_CACHE, operation, startStack, type Stack } from '../helpers/stack.ts';

/**
 * Without any cache, identical subgraph fetches in flight at once (a burst of agents opening the
 * same case) go to the subgraph once; callers with another scope (a portal customer, who sees no
 * internal notes) never get an answer fetched for someone else.
 */
describe('identical fetches in flight, without a cache', () => {
  let stack: Stack;
  const CASE_CONTEXT = operation('agent-console', 'CaseContext');
  let caseId = '';
  let customerId = '';
  beforeAll(async () => {
    // The desk answers after 150 ms, so fetches begun together are in flight together.
    stack = await startStack({ gateway: NO_CACHE, supportEnv: { SUPPORT_LATENCY_MS: '150' } });
    const row = stack.dbs.support
      .prepare(
        `SELECT t.id, o.external_id AS customerId FROM tickets t JOIN organizations o ON o.id = t.organization_id
         WHERE EXISTS (SELECT 1 FROM ticket_comments c WHERE c.ticket_id = t.id AND c.public = 0)
           AND EXISTS (SELECT 1 FROM ticket_comments c WHERE c.ticket_id = t.id AND c.public = 1)
         ORDER BY t.id DESC LIMIT 1`,
      )
      .get() as { id: number; customerId: string };
    caseId = String(row.id);
    customerId = row.customerId;
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('sends a burst of identical CaseContexts to the desk once per fetch, every agent getting the full answer', async () => {
    const alone = await stack.query(CASE_CONTEXT, { id: caseId });
    expect(alone.body.errors).toBeUndefined();
    const servedBefore = await graphqlRequestsServed(stack.support.url);
    const answers = await Promise.all(Array.from({ length: 8 }, () => stack.query(CASE_CONTEXT, { id: caseId })));
    const served = (await graphqlRequestsServed(stack.support.url)) - servedBefore;
    for (const answer of answers) expect(answer.body).toEqual(alone.body);
    // CaseContext asks the desk twice (the case, then the contract's SLA): 16 fetches unshared.
    expect(served).toBeLessThanOrEqual(8);
  });

  it('never hands one scope the answer fetched for another', async () => {
    const portal = { role: 'portal_customer' as const, customer: customerId };
    // The portal's registered CaseDetail, asked by agents and by the case's customer at once.
    const query = operation('portal', 'CaseDetail');
    const [agents, customers] = await Promise.all([
      Promise.all(Array.from({ length: 4 }, () => stack.query<{ case: { comments: { public: boolean }[] } }>(query, { id: caseId }))),
      Promise.all(
        Array.from({ length: 4 }, () => stack.queryAs<{ case: { comments: { public: boolean }[] } }>(portal, query, { id: caseId })),
      ),
    ]);
    for (const answer of agents) expect(answer.body.data!.case.comments.some((comment) => !comment.public)).toBe(true);
    for (const answer of customers) {
      expect(answer.body.errors).toBeUndefined();
      expect(answer.body.data!.case.comments.length).toBeGreaterThan(0);
      expect(answer.body.data!.case.comments.every((comment) => comment.public)).toBe(true);
    }
  });
});
