import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConnectorTelemetry } from '../../platform/connector-telemetry.ts';
import { ConnectorError } from '../../platform/errors.ts';
import { createResilience, SystemCallError, type ResiliencePolicy } from '../../platform/resilience.ts';
import type { Database } from '../../platform/sqlite.ts';
import { createEmbeddedSupportConnector } from '../../subgraphs/support/src/connectors/embedded/index.ts';
import { EMBEDDED_FIELD_IDS } from '../../subgraphs/support/src/connectors/embedded/tables.ts';
import type {
  CaseFilterInput,
  CaseRecord,
  EntitlementRecord,
  EntitlementUpdate,
  InstalledBaseUpdate,
  InstalledProductRecord,
  SupportConnector,
} from '../../subgraphs/support/src/connectors/types.ts';
import { createZendeskConnector, idempotencyTag, type ZendeskAuth } from '../../subgraphs/support/src/connectors/zendesk.ts';
import { seededDatabases } from '../helpers/stack.ts';
import { loadZendeskData, startZendeskServer, type LoggedRequest, type ZendeskServer } from '../vendors/zendesk/server.ts';
import { countingTelemetry, TEST_POLICY } from '../helpers/connector-tests.ts';

/**
 * The Zendesk adapter over real HTTP against a local server speaking Zendesk's wire format,
 * seeded from the same desk as the embedded adapter: both adapters must return the same
 * records, and the Zendesk one must batch, page, retry and fail the way the resilience layer
 * expects.
 */

const CREDENTIALS = { email: 'integration@concord.example', apiToken: 'token-123', bearerToken: 'oauth-456' };
const TOKEN_AUTH: ZendeskAuth = { kind: 'token', email: CREDENTIALS.email, apiToken: CREDENTIALS.apiToken };

function zendeskConnector(
  server: ZendeskServer,
  overrides: { policy?: Partial<ResiliencePolicy>; auth?: ZendeskAuth; telemetry?: ConnectorTelemetry } = {},
) {
  const resilience = createResilience('support', { ...TEST_POLICY, ...overrides.policy });
  const connector = createZendeskConnector({
    baseUrl: server.url,
    auth: overrides.auth ?? TOKEN_AUTH,
    fieldIds: EMBEDDED_FIELD_IDS,
    telemetry: overrides.telemetry ?? countingTelemetry(),
    resilience,
  });
  return { connector, resilience };
}

/** Requests made while `fn` runs. */
async function requestsDuring(server: ZendeskServer, fn: () => Promise<unknown>): Promise<LoggedRequest[]> {
  const start = server.requests.length;
  await fn();
  return server.requests.slice(start);
}

const byId = (records: readonly { id: string }[]) => [...records].sort((a, b) => Number(a.id) - Number(b.id));
const ticketIds = (db: Database, sql: string, ...params: unknown[]) =>
  (db.prepare(sql).all(...params) as { id: number }[]).map((row) => String(row.id));
const column = (db: Database, sql: string) => (db.prepare(sql).all() as { value: string }[]).map((row) => row.value);

describe('Zendesk adapter returns what the embedded adapter returns over the same desk', () => {
  const dbs = seededDatabases();
  const db = dbs.support;
  const embedded = createEmbeddedSupportConnector(db, { system: 'support', call: async (_operation, _detail, fn) => fn() });
  let server: ZendeskServer;
  let zendesk: SupportConnector;

  beforeAll(async () => {
    server = await startZendeskServer({ data: loadZendeskData(db), credentials: CREDENTIALS });
    zendesk = zendeskConnector(server).connector;
  });
  afterAll(async () => {
    await server?.close();
  });

  const customers = () => column(db, 'SELECT external_id AS value FROM organizations ORDER BY id');
  const sampleCustomer = () =>
    column(
      db,
      `SELECT o.external_id AS value FROM organizations o ORDER BY (SELECT COUNT(*) FROM tickets t WHERE t.organization_id = o.id) DESC LIMIT 1`,
    )[0]!;
  const sampleAssignee = () =>
    column(
      db,
      'SELECT CAST(assignee_id AS TEXT) AS value FROM tickets WHERE assignee_id IS NOT NULL GROUP BY assignee_id ORDER BY COUNT(*) DESC LIMIT 1',
    )[0]!;

  it('casesByIds: the same cases, unknown and malformed ids left out', async () => {
    const ids = [...ticketIds(db, 'SELECT id FROM tickets WHERE id % 7 = 0'), '99999', 'abc', '0'];
    const [mine, theirs] = await Promise.all([zendesk.casesByIds(ids), embedded.casesByIds(ids)]);
    expect(mine.length).toBeGreaterThan(100);
    expect(byId(mine)).toEqual(byId(theirs));
  });

  it('searchCases: the same pages, cursors and hasNextPage for each filter', async () => {
    const filters: CaseFilterInput[] = [
      {},
      { statuses: ['OPEN', 'PENDING'] },
      { priorities: ['HIGH', 'URGENT'] },
      { customerId: sampleCustomer() },
      { assigneeId: sampleAssignee(), statuses: ['CLOSED'] },
      { customerId: 'C99999' },
      { assigneeId: 'nobody' },
    ];
    for (const filter of filters) {
      let afterId: string | undefined;
      for (let page = 0; page < 4; page += 1) {
        const query = { filter, limit: 9, afterId };
        const [mine, theirs] = await Promise.all([zendesk.searchCases(query), embedded.searchCases(query)]);
        expect(mine, JSON.stringify(query)).toEqual(theirs);
        if (!theirs.hasNextPage) break;
        afterId = theirs.records.at(-1)!.id;
      }
    }
  });

  it('searchCases: walks a customer to its last page', async () => {
    const filter = { customerId: sampleCustomer() };
    const seen: string[] = [];
    let afterId: string | undefined;
    for (;;) {
      const page = await zendesk.searchCases({ filter, limit: 25, afterId });
      seen.push(...page.records.map((record) => record.id));
      if (!page.hasNextPage) break;
      afterId = page.records.at(-1)!.id;
    }
    const all = await embedded.searchCases({ filter, limit: 1000 });
    expect(seen).toEqual(all.records.map((record) => record.id));
    expect(seen.length).toBeGreaterThan(50);
  });

  it('countCases: the same counts', async () => {
    const filters: CaseFilterInput[] = [
      {},
      { statuses: ['NEW', 'OPEN', 'PENDING', 'ON_HOLD'] },
      { priorities: ['LOW'] },
      { customerId: sampleCustomer(), statuses: ['CLOSED'] },
      { assigneeId: sampleAssignee() },
      { customerId: 'C99999' },
    ];
    for (const filter of filters) expect(await zendesk.countCases(filter), JSON.stringify(filter)).toBe(await embedded.countCases(filter));
  });

  it('casesByCustomerIds: the newest `limit` per customer, with and without statuses', async () => {
    const ids = [...customers().filter((_, i) => i % 3 === 0), 'C99999'];
    for (const query of [{ limit: 3 }, { limit: 5, statuses: ['OPEN', 'NEW', 'PENDING'] as const }, { limit: 100 }]) {
      const [mine, theirs] = await Promise.all([zendesk.casesByCustomerIds(ids, query), embedded.casesByCustomerIds(ids, query)]);
      expect(mine.length).toBeGreaterThan(0);
      expect(mine, JSON.stringify(query)).toEqual(theirs);
    }
  });

  it('openCaseCounts: the same counts for every customer, none for unknown ones', async () => {
    const ids = [...customers(), 'C99999'];
    const [mine, theirs] = await Promise.all([zendesk.openCaseCounts(ids), embedded.openCaseCounts(ids)]);
    expect(mine).toEqual(theirs);
    expect(mine.has('C99999')).toBe(false);
  });

  it('casesByContactIds: the newest `limit` per contact', async () => {
    const contacts = [...column(db, 'SELECT external_id AS value FROM users WHERE external_id IS NOT NULL AND id % 4 = 0'), '003unknown'];
    const [mine, theirs] = await Promise.all([zendesk.casesByContactIds(contacts, 2), embedded.casesByContactIds(contacts, 2)]);
    expect(mine.length).toBeGreaterThan(10);
    expect(mine).toEqual(theirs);
  });

  it('casesByOrderNumbers and casesBySerialNumbers: exact matches only, across several searches and export pages', async () => {
    const orders = column(
      db,
      `SELECT DISTINCT value FROM ticket_custom_fields WHERE field_id = ${EMBEDDED_FIELD_IDS.orderNumber} ORDER BY value`,
    );
    const serials = column(
      db,
      `SELECT DISTINCT value FROM ticket_custom_fields WHERE field_id = ${EMBEDDED_FIELD_IDS.serialNumber} ORDER BY value`,
    );
    // A prefix of real numbers and a different case: the desk's search matches both loosely.
    const loose = [orders[0]!.slice(0, -1), orders[1]!.toLowerCase(), 'SO-999999'];
    const orderRequests = await requestsDuring(server, async () => {
      const numbers = [...orders, ...loose];
      expect(await zendesk.casesByOrderNumbers(numbers)).toEqual(await embedded.casesByOrderNumbers(numbers));
    });
    const exports = orderRequests.filter((request) => request.path === '/api/v2/search/export.json');
    expect(exports.length).toBeGreaterThan(Math.ceil((orders.length + loose.length) / 50));
    expect(await zendesk.casesBySerialNumbers([...serials.slice(0, 60), 'NOPE'])).toEqual(
      await embedded.casesBySerialNumbers([...serials.slice(0, 60), 'NOPE']),
    );
  });

  it('commentsByCaseIds: the same comments with their authors', async () => {
    const ids = [...ticketIds(db, 'SELECT id FROM tickets WHERE id % 37 = 1'), '99999'];
    const [mine, theirs] = await Promise.all([zendesk.commentsByCaseIds(ids), embedded.commentsByCaseIds(ids)]);
    expect(mine.length).toBeGreaterThan(40);
    expect(mine).toEqual(theirs);
  });

  it('caseGraphsByIds: cases with comments, assignees and open-case counts, the assignees sideloaded with the tickets', async () => {
    const ids = [...ticketIds(db, 'SELECT id FROM tickets WHERE assignee_id IS NOT NULL AND id % 41 = 3'), '99999'];
    const parts = { comments: true, assignee: true, openCaseCount: true };
    let mine!: Awaited<ReturnType<typeof zendesk.caseGraphsByIds>>;
    const requests = await requestsDuring(server, async () => {
      mine = await zendesk.caseGraphsByIds(ids, parts);
    });
    const theirs = await embedded.caseGraphsByIds(ids, parts);
    expect(mine.cases.length).toBeGreaterThan(10);
    expect(byId(mine.cases)).toEqual(byId(theirs.cases));
    expect(mine.comments).toEqual(theirs.comments);
    expect(byId(mine.agents)).toEqual(byId(theirs.agents));
    expect(mine.agents.length).toBeGreaterThan(0);
    expect(mine.openCaseCounts).toEqual(theirs.openCaseCounts);
    expect(requests.some((request) => request.path.startsWith('/api/v2/users'))).toBe(false);
  });

  it('agentsByIds: agents only, end users and unknown ids left out', async () => {
    const ids = [...column(db, 'SELECT CAST(id AS TEXT) AS value FROM users WHERE id % 5 = 0'), '42', 'x'];
    const [mine, theirs] = await Promise.all([zendesk.agentsByIds(ids), embedded.agentsByIds(ids)]);
    expect(mine.length).toBeGreaterThan(0);
    expect(byId(mine)).toEqual(byId(theirs));
  });

  it('slaPoliciesByTiers: the policy of each tier from the policies filter conditions', async () => {
    const byTier = <T extends { tier: string }>(records: T[]) => [...records].sort((a, b) => a.tier.localeCompare(b.tier));
    expect(byTier(await zendesk.slaPoliciesByTiers(['BASIC', 'STANDARD', 'PREMIUM']))).toEqual(
      byTier(await embedded.slaPoliciesByTiers(['BASIC', 'STANDARD', 'PREMIUM'])),
    );
    expect(await zendesk.slaPoliciesByTiers(['PREMIUM'])).toEqual(await embedded.slaPoliciesByTiers(['PREMIUM']));
  });

  it('ping answers with either kind of credential', async () => {
    await expect(zendesk.ping()).resolves.toBeUndefined();
    const bearer = zendeskConnector(server, { auth: { kind: 'bearer', token: CREDENTIALS.bearerToken } }).connector;
    await expect(bearer.ping()).resolves.toBeUndefined();
  });
});

describe('Zendesk adapter: batching and paging', () => {
  let server: ZendeskServer;
  const db = seededDatabases().support;
  beforeAll(async () => {
    server = await startZendeskServer({ data: loadZendeskData(db), credentials: CREDENTIALS });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('reads cases in show_many batches of at most 100 ids, counting each request once', async () => {
    const counted = new Map<number, { requests: LoggedRequest[]; telemetry: number; found: number }>();
    for (const n of [10, 100, 250]) {
      const telemetry = countingTelemetry();
      const { connector } = zendeskConnector(server, { telemetry });
      const ids = Array.from({ length: n }, (_, i) => String(i + 1));
      let found = 0;
      const requests = await requestsDuring(server, async () => {
        found = (await connector.casesByIds(ids)).length;
      });
      counted.set(n, { requests, telemetry: telemetry.calls.length, found });
    }
    expect([10, 100, 250].map((n) => counted.get(n)!.requests.length)).toEqual([1, 1, 3]);
    expect([10, 100, 250].map((n) => counted.get(n)!.found)).toEqual([10, 100, 250]);
    for (const { requests, telemetry } of counted.values()) {
      expect(telemetry).toBe(requests.length);
      for (const request of requests) {
        expect(request.path).toBe('/api/v2/tickets/show_many.json');
        expect(request.query.ids!.split(',').length).toBeLessThanOrEqual(100);
        expect(request.query.include).toBe('users,organizations');
      }
    }
  });

  it('makes one search per page of cases, plus one read of the cursor ticket and one show_many', async () => {
    const { connector } = zendeskConnector(server);
    const filter: CaseFilterInput = { statuses: ['CLOSED'] };
    const first = await requestsDuring(server, () => connector.searchCases({ filter, limit: 100 }));
    expect(first.map((request) => request.path)).toEqual(['/api/v2/search.json', '/api/v2/tickets/show_many.json']);
    expect(first[0]!.query).toMatchObject({
      query: 'type:ticket status:closed',
      sort_by: 'created_at',
      sort_order: 'desc',
      per_page: '100',
    });
    const next = await requestsDuring(server, () => connector.searchCases({ filter, limit: 50, afterId: '700' }));
    expect(next.map((request) => request.path)).toEqual([
      '/api/v2/tickets/700.json',
      '/api/v2/search.json',
      '/api/v2/tickets/show_many.json',
    ]);
    // A full page after a cursor needs 101 results (the cursor's own ticket is among them): two searches.
    const full = await requestsDuring(server, () => connector.searchCases({ filter, limit: 100, afterId: '700' }));
    expect(full.filter((request) => request.path === '/api/v2/search.json')).toHaveLength(2);
  });

  it('follows comment cursors past 100 comments', async () => {
    const ticketId = 5;
    const comments = server.data.comments.get(ticketId)!;
    const before = comments.length;
    const last = comments.at(-1)!;
    for (let i = 1; i <= 230; i += 1) {
      comments.push({
        ...last,
        id: 900_000_000 + i,
        body: `Follow-up ${i}`,
        created_at: `2026-10-31T00:${String(Math.floor(i / 60)).padStart(2, '0')}:${String(i % 60).padStart(2, '0')}Z`,
      });
    }
    const { connector } = zendeskConnector(server);
    let read = 0;
    const requests = await requestsDuring(server, async () => {
      read = (await connector.commentsByCaseIds([String(ticketId)])).length;
    });
    expect(read).toBe(before + 230);
    expect(requests).toHaveLength(Math.ceil((before + 230) / 100));
    expect(requests.every((request) => request.query['page[size]'] === '100')).toBe(true);
    expect(requests.slice(1).every((request) => request.query['page[after]'])).toBe(true);
  });
});

describe('Zendesk adapter: failures and retries', () => {
  let server: ZendeskServer;
  const db = seededDatabases().support;
  beforeAll(async () => {
    server = await startZendeskServer({ data: loadZendeskData(db), credentials: CREDENTIALS });
  });
  afterAll(async () => {
    await server?.close();
  });
  const reset = () => {
    server.clearFaults();
    server.latencyMs = 0;
  };

  it('retries a 429 after the Retry-After the desk asked for, then succeeds', async () => {
    reset();
    const { connector } = zendeskConnector(server);
    server.failNext(1, { kind: 'rate-limit', retryAfterSeconds: 1 });
    const started = performance.now();
    let found: CaseRecord[] = [];
    const requests = await requestsDuring(server, async () => {
      found = await connector.casesByIds(['1', '2']);
    });
    expect(found).toHaveLength(2);
    expect(requests.map((request) => request.status)).toEqual([429, 200]);
    expect(performance.now() - started).toBeGreaterThanOrEqual(950);
  });

  it('retries 5xx answers and dropped connections, counting every request once', async () => {
    reset();
    const telemetry = countingTelemetry();
    const { connector } = zendeskConnector(server, { telemetry });
    server.failNext(1, { kind: 'server-error', status: 500 });
    server.failNext(1, { kind: 'server-error', status: 503 });
    server.failNext(1, { kind: 'reset' });
    const requests = await requestsDuring(server, async () => {
      expect(await connector.agentsByIds(['360000200001'])).toHaveLength(1);
    });
    expect(requests.map((request) => request.status)).toEqual([500, 503, 0, 200]);
    expect(telemetry.calls).toEqual(['agentsByIds', 'agentsByIds', 'agentsByIds', 'agentsByIds']);
  });

  it('gives up after the configured retries with a ConnectorError', async () => {
    reset();
    const { connector } = zendeskConnector(server, { policy: { retries: 2 } });
    server.failNext(10, { kind: 'server-error', status: 502 });
    const requests = await requestsDuring(server, async () => {
      await expect(connector.casesByIds(['1'])).rejects.toBeInstanceOf(ConnectorError);
    });
    expect(requests).toHaveLength(3);
    reset();
  });

  it('times out a slow desk and retries', async () => {
    reset();
    server.latencyMs = 300;
    const { connector } = zendeskConnector(server, { policy: { timeoutMs: 50, retries: 1 } });
    const requests = await requestsDuring(server, async () => {
      await expect(connector.casesByIds(['1'])).rejects.toThrow(/timed out/);
    });
    expect(requests).toHaveLength(2);
    reset();
  });

  it('does not retry a refused credential, and reports it as the desk being unavailable', async () => {
    reset();
    const { connector } = zendeskConnector(server, { auth: { kind: 'token', email: CREDENTIALS.email, apiToken: 'wrong' } });
    const requests = await requestsDuring(server, async () => {
      const error = await connector.casesByIds(['1']).catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(ConnectorError);
      const cause = (error as ConnectorError).cause as SystemCallError;
      expect(cause.details).toMatchObject({ retryable: false, status: 401 });
      expect(cause.message).toMatch(/Couldn't authenticate you/);
      await expect(connector.ping()).rejects.toBeInstanceOf(ConnectorError);
    });
    expect(requests.map((request) => request.status)).toEqual([401, 401]);
  });

  it('opens the circuit after repeated failures and then fails fast without calling the desk', async () => {
    reset();
    const { connector, resilience } = zendeskConnector(server, { policy: { retries: 0, breakerThreshold: 3 } });
    server.failNext(100, { kind: 'server-error', status: 503 });
    for (let i = 0; i < 3; i += 1) await expect(connector.casesByIds(['1'])).rejects.toBeInstanceOf(ConnectorError);
    expect(resilience.state()).toBe('open');
    const requests = await requestsDuring(server, async () => {
      const started = performance.now();
      await expect(connector.casesByIds(['1'])).rejects.toThrow(/circuit is open/);
      await expect(connector.ping()).rejects.toThrow(/circuit is open/);
      expect(performance.now() - started).toBeLessThan(50);
    });
    expect(requests).toHaveLength(0);
    reset();
  });

  it('answers "not found" for unknown cases rather than failing', async () => {
    reset();
    const { connector } = zendeskConnector(server);
    expect(await connector.commentsByCaseIds(['99999'])).toEqual([]);
    expect(await connector.applyCaseUpdate({ key: 'k-unknown', caseId: '99999', status: 'OPEN' })).toBeNull();
    expect(await connector.searchCases({ filter: {}, limit: 5, afterId: '99999' })).toEqual({ records: [], hasNextPage: false });
  });
});

describe('Zendesk adapter: applyCaseUpdate', () => {
  const dbs = seededDatabases();
  const db = dbs.support;
  const embedded = createEmbeddedSupportConnector(db, { system: 'support', call: async (_operation, _detail, fn) => fn() });
  let server: ZendeskServer;
  beforeAll(async () => {
    server = await startZendeskServer({ data: loadZendeskData(db), credentials: CREDENTIALS });
  });
  afterAll(async () => {
    await server?.close();
  });
  const openTickets = () => ticketIds(db, "SELECT id FROM tickets WHERE status IN ('open', 'pending') ORDER BY id");
  const puts = (requests: LoggedRequest[]) => requests.filter((request) => request.method === 'PUT');

  it('changes the case as the embedded adapter does, once per key', async () => {
    const caseId = openTickets()[0]!;
    const { connector } = zendeskConnector(server);
    const update = { key: 'RMA-1001:case-update', caseId, internalNote: 'Return authorized: RMA-1001', status: 'SOLVED' as const };
    const commentsBefore = server.data.comments.get(Number(caseId))!.length;
    let first: CaseRecord | null = null;
    let second: CaseRecord | null = null;
    const requests = await requestsDuring(server, async () => {
      first = await connector.applyCaseUpdate(update);
      second = await connector.applyCaseUpdate(update);
    });
    const theirs = await embedded.applyCaseUpdate(update);
    expect({ ...first!, updatedAt: '' }).toEqual({ ...theirs!, updatedAt: '' });
    expect(second).toEqual(first);
    expect(puts(requests)).toHaveLength(1);
    expect(requests.map((request) => `${request.method} ${request.status}`)).toEqual(['GET 200', 'PUT 200', 'GET 200']);

    const ticket = server.data.tickets.get(Number(caseId))!;
    expect(ticket.status).toBe('solved');
    expect(ticket.tags.filter((tag) => tag === idempotencyTag(update.key))).toHaveLength(1);
    const comments = server.data.comments.get(Number(caseId))!;
    expect(comments).toHaveLength(commentsBefore + 1);
    expect(comments.at(-1)).toMatchObject({ body: update.internalNote, public: false });
  });

  it('does not apply an update twice when its answer was lost and the call is retried', async () => {
    const caseId = openTickets()[1]!;
    const { connector } = zendeskConnector(server);
    const commentsBefore = server.data.comments.get(Number(caseId))!.length;
    server.failNext(1, { kind: 'reset-after-handling' }, (request) => request.method === 'PUT');
    const requests = await requestsDuring(server, async () => {
      const record = await connector.applyCaseUpdate({ key: 'lost-answer', caseId, internalNote: 'Once only', status: 'PENDING' });
      expect(record?.status).toBe('PENDING');
    });
    expect(requests.map((request) => `${request.method} ${request.status}`)).toEqual(['GET 200', 'PUT 0', 'GET 200']);
    expect(server.data.comments.get(Number(caseId))).toHaveLength(commentsBefore + 1);
  });

  it('applies one key once when two deliveries race (safe_update)', async () => {
    const caseId = openTickets()[2]!;
    const { connector } = zendeskConnector(server);
    const commentsBefore = server.data.comments.get(Number(caseId))!.length;
    const update = { key: 'raced-key', caseId, internalNote: 'Raced note' };
    const requests = await requestsDuring(server, async () => {
      const [a, b] = await Promise.all([connector.applyCaseUpdate(update), connector.applyCaseUpdate(update)]);
      expect(a).toEqual(b);
    });
    expect(server.data.comments.get(Number(caseId))).toHaveLength(commentsBefore + 1);
    expect(
      puts(requests)
        .map((request) => request.status)
        .sort(),
    ).toEqual([200, 409]);
  });

  it('refuses to change a closed case (422) without retrying', async () => {
    const caseId = ticketIds(db, "SELECT id FROM tickets WHERE status = 'closed' ORDER BY id LIMIT 1")[0]!;
    const { connector } = zendeskConnector(server);
    const requests = await requestsDuring(server, async () => {
      const error = await connector.applyCaseUpdate({ key: 'closed-1', caseId, status: 'OPEN' }).catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(SystemCallError);
      expect((error as SystemCallError).details).toMatchObject({ retryable: false, status: 422 });
    });
    expect(requests.map((request) => `${request.method} ${request.status}`)).toEqual(['GET 200', 'PUT 422']);
  });

  it('turns any key into one tag Zendesk keeps as it is, distinct keys into distinct tags', () => {
    expect(idempotencyTag('rma-1001_case-update')).toBe('concord_rma-1001_case-update');
    const tags = ['RMA-1001:case-update', 'rma-1001:case-update', 'rma-1001 case-update', 'x'.repeat(64)].map(idempotencyTag);
    expect(new Set(tags).size).toBe(tags.length);
    for (const tag of tags) expect(tag).toMatch(/^concord_[a-z0-9_-]+$/);
  });
});

describe('Zendesk adapter: installed base (custom object records)', () => {
  const db = seededDatabases().support;
  const embedded = createEmbeddedSupportConnector(db, { system: 'support', call: async (_operation, _detail, fn) => fn() });
  let server: ZendeskServer;
  let zendesk: SupportConnector;
  beforeAll(async () => {
    server = await startZendeskServer({ data: loadZendeskData(db), credentials: CREDENTIALS });
    zendesk = zendeskConnector(server).connector;
  });
  afterAll(async () => {
    await server?.close();
  });

  const RECORDS_PATH = '/api/v2/custom_objects/installed_product/records';
  const customers = () => column(db, 'SELECT external_id AS value FROM organizations WHERE external_id IS NOT NULL ORDER BY id');
  const organizationIdOf = (customerId: string) =>
    (db.prepare('SELECT id FROM organizations WHERE external_id = ?').get(customerId) as { id: number }).id;
  /** The desk's records of an order, as the server holds them. */
  const deskRecordsOf = (orderNumber: string) =>
    [...server.data.customObjectRecords.values()].filter(
      (record) => record.custom_object_key === 'installed_product' && record.custom_object_fields.order_number === orderNumber,
    );
  const embeddedRowsOf = (orderNumber: string) =>
    (db.prepare("SELECT COUNT(*) AS n FROM custom_object_records WHERE external_id LIKE ? || ':%'").get(orderNumber) as { n: number }).n;
  /** The records without the time each desk stamped them with, in a fixed order. */
  const comparable = (records: InstalledProductRecord[] | null) =>
    records && records.map(({ recordedAt: _recordedAt, ...rest }) => rest).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  /** Newest first, records of one moment by external id. */
  const expectNewestFirst = (records: InstalledProductRecord[]) => {
    for (let i = 1; i < records.length; i += 1) {
      const [previous, current] = [records[i - 1]!, records[i]!];
      const order = Date.parse(previous.recordedAt) - Date.parse(current.recordedAt);
      expect(order > 0 || (order === 0 && previous.id < current.id), `${previous.id} before ${current.id}`).toBe(true);
    }
  };

  it('recordInstalledBase and installedBaseByCustomerIds: the same records as the embedded adapter', async () => {
    const [first, second] = customers() as [string, string];
    const orders: InstalledBaseUpdate[] = [
      {
        customerId: first,
        orderNumber: 'SO-IB-1001',
        items: [
          { sku: 'PUMP-200', name: 'Circulation pump', quantity: 2, warrantyMonths: 24 },
          { sku: 'VALVE-10', name: null, quantity: 10, warrantyMonths: null },
        ],
      },
      { customerId: first, orderNumber: 'SO-IB-1002', items: [{ sku: 'CTRL-5', name: 'Controller', quantity: 1, warrantyMonths: 12 }] },
      {
        customerId: second,
        orderNumber: 'SO-IB-2001',
        items: [{ sku: 'PUMP-200', name: 'Circulation pump', quantity: 1, warrantyMonths: 36 }],
      },
    ];
    const requests = await requestsDuring(server, async () => {
      for (const order of orders) {
        const mine = await zendesk.recordInstalledBase(order);
        expect(comparable(mine), order.orderNumber).toEqual(comparable(await embedded.recordInstalledBase(order)));
        expect(mine).toHaveLength(order.items.length);
        expectNewestFirst(mine!);
      }
    });
    const upserts = requests.filter((request) => request.method === 'PATCH');
    expect(upserts).toHaveLength(4);
    for (const request of upserts) expect(request).toMatchObject({ path: RECORDS_PATH, status: 200 });
    expect(upserts.map((request) => request.query.external_id).sort()).toEqual([
      'SO-IB-1001:PUMP-200',
      'SO-IB-1001:VALVE-10',
      'SO-IB-1002:CTRL-5',
      'SO-IB-2001:PUMP-200',
    ]);
    for (const search of requests.filter((request) => request.method === 'POST')) {
      expect(search).toMatchObject({ path: `${RECORDS_PATH}/search`, query: { sort: '-created_at', 'page[size]': '100' } });
    }

    // Each record is linked to the customer's organization by its id, in the lookup field.
    const valve = deskRecordsOf('SO-IB-1001').find((record) => record.external_id === 'SO-IB-1001:VALVE-10')!;
    expect(valve).toMatchObject({
      name: 'VALVE-10',
      custom_object_fields: { sku: 'VALVE-10', quantity: 10, warranty_months: null, organization: String(organizationIdOf(first)) },
    });

    // Recorded again with one product changed and one left out: the order's products as they are now.
    const again: InstalledBaseUpdate = {
      ...orders[0]!,
      items: [{ sku: 'PUMP-200', name: 'Circulation pump, rev. B', quantity: 3, warrantyMonths: 24 }],
    };
    const mine = await zendesk.recordInstalledBase(again);
    expect(comparable(mine)).toEqual(comparable(await embedded.recordInstalledBase(again)));
    expect(mine!.map((product) => product.id).sort()).toEqual(['SO-IB-1001:PUMP-200', 'SO-IB-1001:VALVE-10']);

    const ids = [first, second, 'C99999'];
    const [base, theirs] = await Promise.all([zendesk.installedBaseByCustomerIds(ids), embedded.installedBaseByCustomerIds(ids)]);
    expect(base).toHaveLength(4);
    expect(comparable(base)).toEqual(comparable(theirs));
    expectNewestFirst(base);
    expect(base.filter((product) => product.customerId === second).map((product) => product.id)).toEqual(['SO-IB-2001:PUMP-200']);
  });

  it('records an order twice as once: one record per product, also when an answer is lost and the upsert retried', async () => {
    const customerId = customers()[2]!;
    const order: InstalledBaseUpdate = {
      customerId,
      orderNumber: 'SO-IB-3001',
      items: [
        { sku: 'HX-1', name: 'Heat exchanger', quantity: 1, warrantyMonths: 60 },
        { sku: 'SEAL-KIT', name: 'Seal kit', quantity: 4, warrantyMonths: null },
        { sku: 'SENSOR-T', name: 'Temperature sensor', quantity: 2, warrantyMonths: 12 },
      ],
    };
    const first = await zendesk.recordInstalledBase(order);
    let second: InstalledProductRecord[] | null = null;
    const requests = await requestsDuring(server, async () => {
      second = await zendesk.recordInstalledBase(order);
    });
    expect(second).toEqual(first);
    expect(requests.filter((request) => request.method === 'PATCH').map((request) => request.status)).toEqual([200, 200, 200]);
    const external = (records: { external_id: string | null }[]) => records.map((record) => record.external_id).sort();
    expect(external(deskRecordsOf('SO-IB-3001'))).toEqual(['SO-IB-3001:HX-1', 'SO-IB-3001:SEAL-KIT', 'SO-IB-3001:SENSOR-T']);

    // The desk applies an upsert, the answer never arrives, the adapter sends it again.
    server.failNext(1, { kind: 'reset-after-handling' }, (request) => request.method === 'PATCH');
    const retried = await requestsDuring(server, async () => {
      expect(comparable(await zendesk.recordInstalledBase(order))).toEqual(comparable(first));
    });
    expect(retried.filter((request) => request.method === 'PATCH').map((request) => request.status)).toEqual([0, 200, 200, 200]);
    expect(deskRecordsOf('SO-IB-3001')).toHaveLength(3);

    await embedded.recordInstalledBase(order);
    await embedded.recordInstalledBase(order);
    expect(embeddedRowsOf('SO-IB-3001')).toBe(3);
  });

  it('answers null for a customer no organization has, and writes nothing', async () => {
    const order: InstalledBaseUpdate = {
      customerId: 'C99999',
      orderNumber: 'SO-IB-4001',
      items: [{ sku: 'PUMP-200', name: 'Circulation pump', quantity: 1, warrantyMonths: 24 }],
    };
    const before = server.data.customObjectRecords.size;
    const requests = await requestsDuring(server, async () => {
      expect(await zendesk.recordInstalledBase(order)).toBeNull();
      expect(await zendesk.installedBaseByCustomerIds(['C99999'])).toEqual([]);
    });
    expect(await embedded.recordInstalledBase(order)).toBeNull();
    expect(server.data.customObjectRecords.size).toBe(before);
    expect(embeddedRowsOf('SO-IB-4001')).toBe(0);
    expect(requests.map((request) => `${request.method} ${request.path}`)).toEqual([
      'GET /api/v2/organizations/show_many.json',
      'GET /api/v2/organizations/show_many.json',
    ]);
  });

  it('reads the installed base the embedded desk already held when the server started', async () => {
    const held = seededDatabases().support;
    const heldEmbedded = createEmbeddedSupportConnector(held, { system: 'support', call: async (_operation, _detail, fn) => fn() });
    const customerId = customers()[4]!;
    await heldEmbedded.recordInstalledBase({
      customerId,
      orderNumber: 'SO-IB-6001',
      items: [
        { sku: 'PUMP-200', name: 'Circulation pump', quantity: 1, warrantyMonths: 24 },
        { sku: 'VALVE-10', name: null, quantity: 2, warrantyMonths: null },
      ],
    });
    const heldServer = await startZendeskServer({ data: loadZendeskData(held), credentials: CREDENTIALS });
    try {
      const { connector } = zendeskConnector(heldServer);
      // The same desk: the same records, their times included.
      expect(await connector.installedBaseByCustomerIds([customerId])).toEqual(await heldEmbedded.installedBaseByCustomerIds([customerId]));
    } finally {
      await heldServer.close();
    }
  });

  it('retries a 429 after its Retry-After and a 503, on upserts and searches alike', async () => {
    server.clearFaults();
    const customerId = customers()[3]!;
    const order: InstalledBaseUpdate = {
      customerId,
      orderNumber: 'SO-IB-5001',
      items: [
        { sku: 'PUMP-200', name: 'Circulation pump', quantity: 1, warrantyMonths: 24 },
        { sku: 'VALVE-10', name: 'Valve', quantity: 6, warrantyMonths: 12 },
      ],
    };
    server.failNext(1, { kind: 'rate-limit', retryAfterSeconds: 1 }, (request) => request.method === 'PATCH');
    server.failNext(1, { kind: 'server-error', status: 503 }, (request) => request.method === 'POST');
    const telemetry = countingTelemetry();
    const { connector } = zendeskConnector(server, { telemetry });
    const started = performance.now();
    let recorded: InstalledProductRecord[] | null = null;
    const requests = await requestsDuring(server, async () => {
      recorded = await connector.recordInstalledBase(order);
    });
    expect(performance.now() - started).toBeGreaterThanOrEqual(950);
    expect(comparable(recorded)).toEqual(comparable(await embedded.recordInstalledBase(order)));
    const statuses = (method: string) =>
      requests
        .filter((request) => request.method === method)
        .map((request) => request.status)
        .sort();
    expect(statuses('PATCH')).toEqual([200, 200, 429]);
    expect(statuses('POST')).toEqual([200, 503]);
    expect(telemetry.calls).toHaveLength(requests.length);
    expect(deskRecordsOf('SO-IB-5001')).toHaveLength(2);

    server.failNext(1, { kind: 'server-error', status: 503 }, (request) => request.method === 'POST');
    server.failNext(1, { kind: 'rate-limit', retryAfterSeconds: 0 }, (request) => request.method === 'POST');
    const reads = await requestsDuring(server, async () => {
      const base = await connector.installedBaseByCustomerIds([customerId]);
      expect(comparable(base)).toEqual(comparable(await embedded.installedBaseByCustomerIds([customerId])));
    });
    expect(reads.filter((request) => request.method === 'POST').map((request) => request.status)).toEqual([503, 429, 200]);
  });
});

describe('Zendesk adapter: entitlements (custom object records and organization tags)', () => {
  const db = seededDatabases().support;
  const embedded = createEmbeddedSupportConnector(db, { system: 'support', call: async (_operation, _detail, fn) => fn() });
  let server: ZendeskServer;
  let zendesk: SupportConnector;
  beforeAll(async () => {
    server = await startZendeskServer({ data: loadZendeskData(db), credentials: CREDENTIALS });
    zendesk = zendeskConnector(server).connector;
  });
  afterAll(async () => {
    await server?.close();
  });

  const RECORDS_PATH = '/api/v2/custom_objects/entitlement/records';
  const customers = () => column(db, 'SELECT external_id AS value FROM organizations WHERE external_id IS NOT NULL ORDER BY id');
  /** Customers the seeded desk holds no entitlement of (read before any test writes one). */
  const unentitled = column(
    db,
    `SELECT o.external_id AS value FROM organizations o WHERE o.external_id IS NOT NULL AND NOT EXISTS (
       SELECT 1 FROM custom_object_records r WHERE r.custom_object_key = 'entitlement' AND r.organization_id = o.id
     ) ORDER BY o.id`,
  );
  const organizationIdOf = (customerId: string) =>
    (db.prepare('SELECT id FROM organizations WHERE external_id = ?').get(customerId) as { id: number }).id;
  const tagsPathOf = (customerId: string) => `/api/v2/organizations/${organizationIdOf(customerId)}/tags.json`;
  const deskOrganization = (customerId: string) => server.data.organizations.get(organizationIdOf(customerId))!;
  /** The organization's tags in each desk, in a fixed order (the desks may list them in another). */
  const deskTags = (customerId: string) => [...deskOrganization(customerId).tags].sort();
  const embeddedTags = (customerId: string) =>
    (
      JSON.parse((db.prepare('SELECT tags FROM organizations WHERE external_id = ?').get(customerId) as { tags: string }).tags) as string[]
    ).sort();
  const tierTags = (tags: string[]) => tags.filter((tag) => tag.startsWith('tier_'));
  /** Both desks start from these tags. */
  const giveTags = (customerId: string, tags: string[]) => {
    deskOrganization(customerId).tags = [...tags];
    db.prepare('UPDATE organizations SET tags = ? WHERE external_id = ?').run(JSON.stringify(tags), customerId);
  };
  /** The records without the time each desk stamped them with. */
  const comparable = (records: EntitlementRecord[] | null) => records && records.map(({ updatedAt: _updatedAt, ...rest }) => rest);
  const tagWrites = (requests: LoggedRequest[], customerId: string) =>
    requests.filter((request) => request.path === tagsPathOf(customerId)).map((request) => `${request.method} ${request.status}`);

  /** Sets the state through both adapters: the same records and the same organization tags. */
  async function setBoth(update: EntitlementUpdate): Promise<EntitlementRecord[] | null> {
    const mine = await zendesk.setEntitlement(update);
    const theirs = await embedded.setEntitlement(update);
    expect(comparable(mine), JSON.stringify(update)).toEqual(comparable(theirs));
    expect(deskTags(update.customerId), JSON.stringify(update)).toEqual(embeddedTags(update.customerId));
    return mine;
  }

  it('setEntitlement and entitlementsByCustomerIds: the same records and organization tags as the embedded adapter', async () => {
    const [customerId, other] = unentitled as [string, string];
    giveTags(customerId, ['tier_basic', 'segment_enterprise']);
    const standard: EntitlementUpdate = { customerId, subscriptionId: 'SUB-1001', tier: 'STANDARD', active: true, until: '2027-06-30' };
    const premium: EntitlementUpdate = { customerId, subscriptionId: 'SUB-1002', tier: 'PREMIUM', active: true, until: null };
    const requests = await requestsDuring(server, async () => {
      expect(comparable(await setBoth(standard))).toEqual([
        { subscriptionId: 'SUB-1001', customerId, tier: 'STANDARD', active: true, until: '2027-06-30' },
      ]);
      expect(tierTags(deskTags(customerId))).toEqual(['tier_standard']);
      const both = await setBoth(premium);
      expect(both!.map((entitlement) => entitlement.subscriptionId)).toEqual(['SUB-1001', 'SUB-1002']);
      expect(tierTags(deskTags(customerId))).toEqual(['tier_premium']);
      // The premium subscription suspended: the standard one is the highest active tier again.
      const suspended = await setBoth({ ...premium, active: false });
      expect(suspended!.find((entitlement) => entitlement.subscriptionId === 'SUB-1002')).toMatchObject({ active: false });
      expect(tierTags(deskTags(customerId))).toEqual(['tier_standard']);
    });
    const upserts = requests.filter((request) => request.method === 'PATCH');
    for (const request of upserts) expect(request).toMatchObject({ path: RECORDS_PATH, status: 200 });
    expect(upserts.map((request) => request.query.external_id)).toEqual(['SUB-1001', 'SUB-1002', 'SUB-1002']);
    for (const search of requests.filter((request) => request.method === 'POST')) {
      expect(search).toMatchObject({ path: `${RECORDS_PATH}/search`, query: { 'page[size]': '100' } });
    }
    // Each change of tier adds the new tag, then removes the old one.
    expect(tagWrites(requests, customerId)).toEqual(['PUT 200', 'DELETE 200', 'PUT 200', 'DELETE 200', 'PUT 200', 'DELETE 200']);
    // No organization update: the tags are written through the Tags API only.
    expect(requests.filter((request) => request.method === 'PUT' && request.path !== tagsPathOf(customerId))).toEqual([]);

    // The record is linked to the customer's organization by its id, in the lookup field.
    const record = [...server.data.customObjectRecords.values()].find(
      (candidate) => candidate.custom_object_key === 'entitlement' && candidate.external_id === 'SUB-1001',
    )!;
    expect(record).toMatchObject({
      name: 'tier_standard SUB-1001',
      custom_object_fields: { tier: 'STANDARD', active: true, until: '2027-06-30', organization: String(organizationIdOf(customerId)) },
    });

    await setBoth({ customerId: other, subscriptionId: 'SUB-2001', tier: 'BASIC', active: true, until: '2026-12-31' });
    const ids = [other, customerId, 'C99999'];
    const [mine, theirs] = await Promise.all([zendesk.entitlementsByCustomerIds(ids), embedded.entitlementsByCustomerIds(ids)]);
    expect(mine).toHaveLength(3);
    expect(comparable(mine)).toEqual(comparable(theirs));
    // Every customer, the entitlements the seeded desk held among them, in the same order.
    const all = [...customers(), 'C99999'];
    const [everyone, theirsAll] = await Promise.all([zendesk.entitlementsByCustomerIds(all), embedded.entitlementsByCustomerIds(all)]);
    expect(comparable(everyone)).toEqual(comparable(theirsAll));
  });

  it('writes nothing when the same state is set again', async () => {
    const customerId = unentitled[2]!;
    const update: EntitlementUpdate = { customerId, subscriptionId: 'SUB-3001', tier: 'PREMIUM', active: true, until: '2028-01-31' };
    const first = await setBoth(update);
    const theirsFirst = await embedded.entitlementsByCustomerIds([customerId]);
    const organization = deskOrganization(customerId);
    const [tagsBefore, stampBefore] = [[...organization.tags], organization.updated_at];
    let second: EntitlementRecord[] | null = null;
    const requests = await requestsDuring(server, async () => {
      second = await zendesk.setEntitlement(update);
    });
    // The record as it was, its time included: it was not written again, nor were the tags.
    expect(second).toEqual(first);
    expect(requests.map((request) => `${request.method} ${request.path}`)).toEqual([
      'GET /api/v2/organizations/show_many.json',
      `POST ${RECORDS_PATH}/search`,
    ]);
    expect([organization.tags, organization.updated_at]).toEqual([tagsBefore, stampBefore]);
    expect(await embedded.setEntitlement(update)).toEqual(theirsFirst);
  });

  it('answers null for a customer no organization has, and writes nothing', async () => {
    const update: EntitlementUpdate = { customerId: 'C99999', subscriptionId: 'SUB-9001', tier: 'PREMIUM', active: true, until: null };
    const before = server.data.customObjectRecords.size;
    const requests = await requestsDuring(server, async () => {
      expect(await zendesk.setEntitlement(update)).toBeNull();
      expect(await zendesk.entitlementsByCustomerIds(['C99999'])).toEqual([]);
    });
    expect(await embedded.setEntitlement(update)).toBeNull();
    expect(server.data.customObjectRecords.size).toBe(before);
    expect(requests.map((request) => `${request.method} ${request.path}`)).toEqual([
      'GET /api/v2/organizations/show_many.json',
      'GET /api/v2/organizations/show_many.json',
    ]);
  });

  it("keeps the organization's other tags, removing only tier tags", async () => {
    const customerId = unentitled[3]!;
    giveTags(customerId, ['key_account', 'tier_basic', 'region_emea', 'tier_standard']);
    await setBoth({ customerId, subscriptionId: 'SUB-4001', tier: 'PREMIUM', active: true, until: null });
    expect(deskTags(customerId)).toEqual(['key_account', 'region_emea', 'tier_premium']);
    // Suspended, the subscription entitles to no tier: the tier tag goes, the others stay.
    const requests = await requestsDuring(server, async () => {
      await setBoth({ customerId, subscriptionId: 'SUB-4001', tier: 'PREMIUM', active: false, until: null });
    });
    expect(deskTags(customerId)).toEqual(['key_account', 'region_emea']);
    expect(tagWrites(requests, customerId)).toEqual(['DELETE 200']);
  });

  it('reads the entitlements the embedded desk already held when the server started', async () => {
    const held = seededDatabases().support;
    const heldEmbedded = createEmbeddedSupportConnector(held, { system: 'support', call: async (_operation, _detail, fn) => fn() });
    const customerId = customers()[4]!;
    await heldEmbedded.setEntitlement({ customerId, subscriptionId: 'SUB-6001', tier: 'STANDARD', active: true, until: '2027-03-31' });
    await heldEmbedded.setEntitlement({ customerId, subscriptionId: 'SUB-6002', tier: 'PREMIUM', active: false, until: null });
    const heldServer = await startZendeskServer({ data: loadZendeskData(held), credentials: CREDENTIALS });
    try {
      const { connector } = zendeskConnector(heldServer);
      // The same desk: the same records, their times included.
      expect(await connector.entitlementsByCustomerIds([customerId])).toEqual(await heldEmbedded.entitlementsByCustomerIds([customerId]));
    } finally {
      await heldServer.close();
    }
  });

  it('retries a 429 and a 503, and a tag change whose answer was lost, counting every request once', async () => {
    server.clearFaults();
    const customerId = unentitled[5]!;
    giveTags(customerId, ['tier_standard', 'segment_mid_market']);
    server.failNext(1, { kind: 'rate-limit', retryAfterSeconds: 0 }, (request) => request.method === 'PATCH');
    server.failNext(1, { kind: 'server-error', status: 503 }, (request) => request.method === 'PUT');
    server.failNext(1, { kind: 'reset-after-handling' }, (request) => request.method === 'DELETE');
    const telemetry = countingTelemetry();
    const { connector } = zendeskConnector(server, { telemetry });
    const update: EntitlementUpdate = { customerId, subscriptionId: 'SUB-5001', tier: 'PREMIUM', active: true, until: null };
    let recorded: EntitlementRecord[] | null = null;
    const requests = await requestsDuring(server, async () => {
      recorded = await connector.setEntitlement(update);
    });
    expect(comparable(recorded)).toEqual(comparable(await embedded.setEntitlement(update)));
    expect(deskTags(customerId)).toEqual(embeddedTags(customerId));
    expect(deskTags(customerId)).toEqual(['segment_mid_market', 'tier_premium']);
    const statuses = (method: string) => requests.filter((request) => request.method === method).map((request) => request.status);
    expect(statuses('PATCH')).toEqual([429, 200]);
    expect(statuses('PUT')).toEqual([503, 200]);
    expect(statuses('DELETE')).toEqual([0, 200]);
    expect(telemetry.calls).toHaveLength(requests.length);
    expect(new Set(telemetry.calls)).toEqual(new Set(['setEntitlement']));
  });
});
