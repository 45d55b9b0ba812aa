import { afterEach, describe, expect, it } from 'vitest';
import { createBudgetGate, currentPriority, inBackground, priorityFrom } from '../../platform/api-budget.ts';
import { ConnectorError } from '../../platform/errors.ts';
import { createMetrics } from '../../platform/metrics.ts';
import { createResilience, type ResiliencePolicy } from '../../platform/resilience.ts';
import { runInScope } from '../../platform/request-context.ts';
import { EMBEDDED_FIELD_IDS } from '../../subgraphs/support/src/connectors/embedded/tables.ts';
import { createZendeskConnector } from '../../subgraphs/support/src/connectors/zendesk.ts';
import { countingTelemetry, TEST_POLICY } from '../helpers/connector-tests.ts';
import { seededDatabases } from '../helpers/stack.ts';
import { loadZendeskData, startZendeskServer, type ZendeskServer } from '../vendors/zendesk/server.ts';

/**
 * A vendor's API budget near its limit: agents' queries are answered, background work waits
 * for the next window instead of spending what is left, and the vendor never says 429.
 */

describe('priority', () => {
  it('is interactive unless the work runs in the background or the request asked for it', () => {
    expect(currentPriority()).toBe('interactive');
    expect(inBackground(() => currentPriority())).toBe('background');
    expect(runInScope({ correlationId: 'c', priority: priorityFrom('background') }, () => currentPriority())).toBe('background');
    // No caller raises its own priority: anything but `background` is the default.
    expect(priorityFrom('interactive')).toBe('interactive');
    expect(priorityFrom('urgent')).toBe('interactive');
    expect(priorityFrom(undefined)).toBe('interactive');
  });
});

describe('the budget gate', () => {
  const policy = { reserve: 0.2, maxWaitMs: 5_000, maxWaiting: 4 };

  it('lets background work through while more than the reserve is left, and holds it at the reserve until an answer says more is left', async () => {
    const gate = createBudgetGate('support', policy);
    gate.report({ limit: 100, remaining: 22 });
    // 22 left, 20 kept: two background calls go, the third waits.
    await inBackground(() => gate.admit('a'));
    await inBackground(() => gate.admit('b'));
    let third = false;
    const waiting = inBackground(() => gate.admit('c')).then(() => (third = true));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(third).toBe(false);
    expect(gate.snapshot()).toMatchObject({ limit: 100, floor: 20, waiting: 1 });
    // Interactive work is never held.
    await gate.admit('interactive');
    // A new window: the vendor reports its limit again.
    gate.report({ limit: 100, remaining: 100 });
    await waiting;
    expect(third).toBe(true);
    expect(gate.snapshot().waiting).toBe(0);
  });

  it('reads a budget given as calls used (Salesforce) as well as calls left', async () => {
    const gate = createBudgetGate('crm', policy);
    gate.report({ limit: 1000, used: 990 });
    expect(gate.snapshot()).toMatchObject({ remaining: 10, floor: 200 });
  });

  it('gives background work up after its longest wait, and at once when too many wait already, counting each', async () => {
    let shedCount = 0;
    const gate = createBudgetGate('erp', { ...policy, maxWaitMs: 100 }, { onShed: () => (shedCount += 1) });
    gate.report({ limit: 100, remaining: 5 });
    const held = [1, 2, 3, 4].map((n) => inBackground(() => gate.admit(`held ${n}`)).catch((error: unknown) => error));
    const fifth = await inBackground(() => gate.admit('fifth')).catch((error: unknown) => error);
    expect(fifth).toBeInstanceOf(ConnectorError);
    expect((fifth as Error).message).toMatch(/held back.*reserve for interactive work \(4 calls already waiting\)/);
    const timedOut = await Promise.all(held);
    // The probe let one through to read the budget again (1 s) only if the wait was that long: it was not.
    for (const error of timedOut) expect((error as Error).message).toMatch(/waited 0 s for the erp's API budget/);
    expect(shedCount).toBe(5);
    expect(gate.snapshot()).toMatchObject({ waiting: 0, shed: 5 });
  });

  it('lets one waiting call through about every second when nothing is heard, so its answer can tell the new budget', async () => {
    const gate = createBudgetGate('support', policy);
    gate.report({ limit: 100, remaining: 10 });
    const started = Date.now();
    await inBackground(() => gate.admit('probe'));
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
  });

  it('is open before the vendor has said anything of its budget', async () => {
    const gate = createBudgetGate('erp', policy);
    await inBackground(() => gate.admit('unknown budget'));
    expect(gate.snapshot()).toMatchObject({ limit: null, remaining: null, waiting: 0 });
  });
});

describe('Zendesk near its rate limit', () => {
  const dbs = seededDatabases();
  const CREDENTIALS = { email: 'integration@concord.example', apiToken: 'token-123' };
  const ticketIds = (dbs.support.prepare('SELECT id FROM tickets ORDER BY id LIMIT 60').all() as { id: number }[]).map((row) =>
    String(row.id),
  );
  let server: ZendeskServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  async function nearTheLimit(policy: Partial<ResiliencePolicy>) {
    const windowMs = 3_000;
    server = await startZendeskServer({
      data: loadZendeskData(dbs.support),
      credentials: CREDENTIALS,
      rateLimit: { limit: 100, windowMs },
    });
    const windowStarted = Date.now();
    const metrics = createMetrics('support');
    const resilience = createResilience('support', { ...TEST_POLICY, ...policy }, { metrics });
    const connector = createZendeskConnector({
      baseUrl: server.url,
      auth: { kind: 'token', email: CREDENTIALS.email, apiToken: CREDENTIALS.apiToken },
      fieldIds: EMBEDDED_FIELD_IDS,
      telemetry: countingTelemetry(),
      resilience,
    });
    // Another integration on the same account has spent most of this minute's allowance.
    server.spendRateLimit(70);
    // An agent's query: Concord learns the budget from its answer (29 of 100 left).
    await connector.casesByIds([ticketIds[0]!]);
    const sent = server.requests.length;

    // A backlog of background work (40 workflow reads) and, meanwhile, 12 agents' queries.
    const background = ticketIds.slice(1, 41).map((id) =>
      inBackground(() => connector.casesByIds([id])).then(
        () => ({ ok: true, at: Date.now() }),
        (error: unknown) => ({ ok: false, at: Date.now(), error }),
      ),
    );
    await new Promise((resolve) => setTimeout(resolve, 100));
    const waitingMetric = await metrics.registry.getSingleMetricAsString('concord_vendor_api_background_waiting');
    const interactive = await Promise.all(
      ticketIds.slice(41, 53).map(async (id) => {
        const started = Date.now();
        try {
          const cases = await connector.casesByIds([id]);
          return { found: cases.length, ms: Date.now() - started, at: Date.now(), error: null };
        } catch (error) {
          return { found: 0, ms: Date.now() - started, at: Date.now(), error };
        }
      }),
    );
    const backgroundDone = await Promise.all(background);
    return { interactive, backgroundDone, windowEnds: windowStarted + windowMs, sent, waitingMetric, server, resilience, metrics };
  }

  it('answers agents at once while background work waits for the next window, and the vendor never says 429', async () => {
    const run = await nearTheLimit({ apiReserve: 0.2, backgroundWaitMs: 10_000 });
    // Every agent's query answered, found, quickly and inside the nearly spent window.
    for (const answer of run.interactive) {
      expect(answer.error).toBeNull();
      expect(answer.found).toBe(1);
      expect(answer.at).toBeLessThan(run.windowEnds);
    }
    expect(Math.max(...run.interactive.map((answer) => answer.ms))).toBeLessThan(1_000);
    // Background work waited (the metric said so) and all of it was done, most of it in the next window.
    expect(run.waitingMetric).toMatch(/concord_vendor_api_background_waiting\{system="support",service="support"\} ([1-9]\d*)/);
    expect(run.backgroundDone.every((done) => done.ok)).toBe(true);
    const afterReset = run.backgroundDone.filter((done) => done.at >= run.windowEnds).length;
    expect(afterReset).toBeGreaterThanOrEqual(25);
    // Nothing was refused: the reserve kept the account under its limit.
    expect(run.server.requests.filter((request) => request.status === 429)).toEqual([]);
    expect(run.resilience.budget.snapshot().shed).toBe(0);
  }, 20_000);

  it("without a reserve, background work spends what is left and agents meet the vendor's 429", async () => {
    const run = await nearTheLimit({ apiReserve: 0, backgroundWaitMs: 10_000, retries: 0 });
    expect(run.server.requests.filter((request) => request.status === 429).length).toBeGreaterThan(0);
    const refused = run.interactive.filter((answer) => answer.error !== null);
    expect(refused.length).toBeGreaterThan(0);
    expect(String((refused[0]!.error as Error).message)).toMatch(/429|rate/i);
  }, 30_000);
});
