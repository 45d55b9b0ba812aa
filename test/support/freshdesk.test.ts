import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConnectorTelemetry } from '../../platform/connector-telemetry.ts';
import { ConnectorError } from '../../platform/errors.ts';
import { createResilience, SystemCallError, type ResiliencePolicy } from '../../platform/resilience.ts';
import type { Database } from '../../platform/sqlite.ts';
import { createEmbeddedSupportConnector } from '../../subgraphs/support/src/connectors/embedded/index.ts';
import {
  createFreshdeskConnector,
  freshdeskIdempotencyTag,
  type FreshdeskConnectorOptions,
} from '../../subgraphs/support/src/connectors/freshdesk.ts';
import type {
  CaseFilterInput,
  CaseRecord,
  EntitlementRecord,
  EntitlementUpdate,
  InstalledBaseUpdate,
  InstalledProductRecord,
  SupportTier,
} from '../../subgraphs/support/src/connectors/types.ts';
import { seededDatabases } from '../helpers/stack.ts';
import {
  loadFreshdeskData,
  slaPolicyIdsOf,
  startFreshdeskServer,
  type FreshdeskServer,
  FRESHDESK_SCHEMA_IDS,
  type LoggedRequest,
} from '../vendors/freshdesk/server.ts';
import { countingTelemetry, TEST_POLICY } from '../helpers/connector-tests.ts';

/**
 * The Freshdesk adapter over real HTTP against a local server speaking Freshdesk's wire format,
 * seeded from the same desk as the embedded adapter: both adapters must return the same
 * records, and the Freshdesk one must page, batch, retry and fail the way the resilience layer
 * expects.
 */

const API_KEY = 'fd-key-123';

function freshdeskConnector(
  server: FreshdeskServer,
  db: Database,
  overrides: { policy?: Partial<ResiliencePolicy>; telemetry?: ConnectorTelemetry } & Partial<
    Omit<FreshdeskConnectorOptions, 'telemetry' | 'resilience'>
  > = {},
) {
  const { policy, telemetry, ...options } = overrides;
  const resilience = createResilience('support', { ...TEST_POLICY, ...policy });
  const connector = createFreshdeskConnector({
    baseUrl: server.url,
    apiKey: API_KEY,
    // The test account's custom statuses and SLA policies (see the server's header comment).
    customStatuses: { 6: 'NEW', 7: 'ON_HOLD' },
    slaPolicyIds: slaPolicyIdsOf(db) as Partial<Record<SupportTier, number>>,
    telemetry: telemetry ?? countingTelemetry(),
    resilience,
    ...options,
  });
  return { connector, resilience };
}

/** Requests made while `fn` runs. */
async function requestsDuring(server: FreshdeskServer, fn: () => Promise<unknown>): Promise<LoggedRequest[]> {
  const start = server.requests.length;
  await fn();
  return server.requests.slice(start);
}

const byId = (records: readonly { id: string }[]) => [...records].sort((a, b) => Number(a.id) - Number(b.id));
const ticketIds = (db: Database, sql: string, ...params: unknown[]) =>
  (db.prepare(sql).all(...params) as { id: number }[]).map((row) => String(row.id));
const column = (db: Database, sql: string) => (db.prepare(sql).all() as { value: string }[]).map((row) => row.value);
const noTelemetry: ConnectorTelemetry = { system: 'support', call: async (_operation, _detail, fn) => fn() };

const sampleCustomer = (db: Database) =>
  column(
    db,
    `SELECT o.external_id AS value FROM organizations o ORDER BY (SELECT COUNT(*) FROM tickets t WHERE t.organization_id = o.id) DESC LIMIT 1`,
  )[0]!;
const sampleAssignee = (db: Database) =>
  column(
    db,
    'SELECT CAST(assignee_id AS TEXT) AS value FROM tickets WHERE assignee_id IS NOT NULL GROUP BY assignee_id ORDER BY COUNT(*) DESC LIMIT 1',
  )[0]!;

describe('Freshdesk adapter returns what the embedded adapter returns over the same desk', () => {
  const db = seededDatabases().support;
  const embedded = createEmbeddedSupportConnector(db, noTelemetry);
  let server: FreshdeskServer;
  let freshdesk: ReturnType<typeof freshdeskConnector>['connector'];

  beforeAll(async () => {
    server = await startFreshdeskServer({ data: loadFreshdeskData(db), apiKey: API_KEY });
    freshdesk = freshdeskConnector(server, db).connector;
  });
  afterAll(async () => {
    await server?.close();
  });

  const customers = () => column(db, 'SELECT external_id AS value FROM organizations ORDER BY id');

  it('casesByIds: the same cases, unknown and malformed ids left out', async () => {
    const ids = [...ticketIds(db, 'SELECT id FROM tickets WHERE id % 7 = 0'), '99999', 'abc', '0'];
    const [mine, theirs] = await Promise.all([freshdesk.casesByIds(ids), embedded.casesByIds(ids)]);
    expect(mine.length).toBeGreaterThan(100);
    expect(byId(mine)).toEqual(byId(theirs));
  });

  it('searchCases: the same pages, cursors and hasNextPage for each filter', async () => {
    const filters: CaseFilterInput[] = [
      {},
      { statuses: ['OPEN', 'PENDING'] },
      { statuses: ['NEW', 'ON_HOLD'] },
      { priorities: ['HIGH', 'URGENT'] },
      { customerId: sampleCustomer(db) },
      { customerId: sampleCustomer(db), statuses: ['CLOSED'], priorities: ['NORMAL'] },
      { assigneeId: sampleAssignee(db), statuses: ['CLOSED'] },
      { customerId: 'C99999' },
      { assigneeId: 'nobody' },
    ];
    for (const filter of filters) {
      let afterId: string | undefined;
      for (let page = 0; page < 4; page += 1) {
        const query = { filter, limit: 9, afterId };
        const [mine, theirs] = await Promise.all([freshdesk.searchCases(query), embedded.searchCases(query)]);
        expect(mine, JSON.stringify(query)).toEqual(theirs);
        if (!theirs.hasNextPage) break;
        afterId = theirs.records.at(-1)!.id;
      }
    }
  });

  it('searchCases: walks the whole desk and a customer to their last pages', async () => {
    for (const filter of [{ customerId: sampleCustomer(db) }, { statuses: ['CLOSED'] as const }]) {
      const seen: string[] = [];
      let afterId: string | undefined;
      for (;;) {
        const page = await freshdesk.searchCases({ filter, limit: 25, afterId });
        seen.push(...page.records.map((record) => record.id));
        if (!page.hasNextPage) break;
        afterId = page.records.at(-1)!.id;
      }
      const all = await embedded.searchCases({ filter, limit: 1000 });
      expect(seen).toEqual(all.records.map((record) => record.id));
      expect(seen.length).toBeGreaterThan(50);
    }
  });

  it('countCases: the same counts', async () => {
    const filters: CaseFilterInput[] = [
      {},
      { statuses: ['NEW', 'OPEN', 'PENDING', 'ON_HOLD'] },
      { priorities: ['LOW'] },
      { customerId: sampleCustomer(db), statuses: ['CLOSED'] },
      { assigneeId: sampleAssignee(db) },
      { customerId: 'C99999' },
    ];
    for (const filter of filters)
      expect(await freshdesk.countCases(filter), JSON.stringify(filter)).toBe(await embedded.countCases(filter));
  });

  it('casesByCustomerIds: the newest `limit` per customer, with and without statuses', async () => {
    const ids = [...customers().filter((_, i) => i % 3 === 0), 'C99999'];
    for (const query of [{ limit: 3 }, { limit: 5, statuses: ['OPEN', 'NEW', 'PENDING'] as const }, { limit: 100 }]) {
      const [mine, theirs] = await Promise.all([freshdesk.casesByCustomerIds(ids, query), embedded.casesByCustomerIds(ids, query)]);
      expect(mine.length).toBeGreaterThan(0);
      expect(mine, JSON.stringify(query)).toEqual(theirs);
    }
  });

  it('openCaseCounts: the same counts for every customer, none for unknown ones', async () => {
    const ids = [...customers(), 'C99999'];
    const [mine, theirs] = await Promise.all([freshdesk.openCaseCounts(ids), embedded.openCaseCounts(ids)]);
    expect(mine).toEqual(theirs);
    expect(mine.has('C99999')).toBe(false);
  });

  it('casesByContactIds: the newest `limit` per contact', async () => {
    const contacts = [...column(db, 'SELECT external_id AS value FROM users WHERE external_id IS NOT NULL AND id % 4 = 0'), '003unknown'];
    const [mine, theirs] = await Promise.all([freshdesk.casesByContactIds(contacts, 2), embedded.casesByContactIds(contacts, 2)]);
    expect(mine.length).toBeGreaterThan(10);
    expect(mine).toEqual(theirs);
  });

  it('casesByOrderNumbers and casesBySerialNumbers: exact matches only, across several searches', async () => {
    const orders = column(db, `SELECT DISTINCT value FROM ticket_custom_fields WHERE field_id = 360000000101 ORDER BY value`);
    const serials = column(db, `SELECT DISTINCT value FROM ticket_custom_fields WHERE field_id = 360000000102 ORDER BY value`);
    // A different case and a prefix: the desk's search matches the first loosely.
    const loose = [orders[1]!.toLowerCase(), orders[0]!.slice(0, -1), 'SO-999999'];
    const requests = await requestsDuring(server, async () => {
      const numbers = [...orders, ...loose];
      expect(await freshdesk.casesByOrderNumbers(numbers)).toEqual(await embedded.casesByOrderNumbers(numbers));
    });
    const searches = requests.filter((request) => request.path === '/api/v2/search/tickets');
    expect(searches.length).toBeGreaterThan(5);
    for (const search of searches) {
      expect(search.status).toBe(200);
      expect(search.query.query!.length).toBeLessThanOrEqual(514);
      expect(search.query.query).toMatch(/^"\(?cf_order_number:'.*'\)?"$/);
    }
    expect(await freshdesk.casesBySerialNumbers([...serials.slice(0, 60), 'NOPE'])).toEqual(
      await embedded.casesBySerialNumbers([...serials.slice(0, 60), 'NOPE']),
    );
  });

  it('commentsByCaseIds: the same comments with their authors, notes internal', async () => {
    const ids = [...ticketIds(db, 'SELECT id FROM tickets WHERE id % 37 = 1'), '99999'];
    const [mine, theirs] = await Promise.all([freshdesk.commentsByCaseIds(ids), embedded.commentsByCaseIds(ids)]);
    expect(mine.length).toBeGreaterThan(40);
    expect(mine.some((comment) => !comment.public)).toBe(true);
    expect(mine).toEqual(theirs);
  });

  it('caseGraphsByIds: cases with comments, assignees and open-case counts', async () => {
    const ids = [...ticketIds(db, 'SELECT id FROM tickets WHERE assignee_id IS NOT NULL AND id % 41 = 3'), '99999'];
    const parts = { comments: true, assignee: true, openCaseCount: true };
    const [mine, theirs] = await Promise.all([freshdesk.caseGraphsByIds(ids, parts), embedded.caseGraphsByIds(ids, parts)]);
    expect(mine.cases.length).toBeGreaterThan(10);
    expect(byId(mine.cases)).toEqual(byId(theirs.cases));
    expect(mine.comments).toEqual(theirs.comments);
    expect(byId(mine.agents)).toEqual(byId(theirs.agents));
    expect(mine.openCaseCounts).toEqual(theirs.openCaseCounts);
  });

  it('agentsByIds: agents only, contacts and unknown ids left out', async () => {
    const ids = [...column(db, 'SELECT CAST(id AS TEXT) AS value FROM users WHERE id % 5 = 0'), '42', 'x'];
    const [mine, theirs] = await Promise.all([freshdesk.agentsByIds(ids), embedded.agentsByIds(ids)]);
    expect(mine.length).toBeGreaterThan(0);
    expect(byId(mine)).toEqual(byId(theirs));
  });

  it('slaPoliciesByTiers: the policy configured for each tier, targets from seconds', async () => {
    const byTier = <T extends { tier: string }>(records: T[]) => [...records].sort((a, b) => a.tier.localeCompare(b.tier));
    expect(byTier(await freshdesk.slaPoliciesByTiers(['BASIC', 'STANDARD', 'PREMIUM']))).toEqual(
      byTier(await embedded.slaPoliciesByTiers(['BASIC', 'STANDARD', 'PREMIUM'])),
    );
    expect(await freshdesk.slaPoliciesByTiers(['PREMIUM'])).toEqual(await embedded.slaPoliciesByTiers(['PREMIUM']));
    expect(await freshdesk.slaPoliciesByTiers([])).toEqual([]);
  });

  it('ping answers, and the rate limit headers become the API budget', async () => {
    const { connector } = freshdeskConnector(server, db);
    expect(connector.apiBudget()).toBeNull();
    await expect(connector.ping()).resolves.toBeUndefined();
    expect(connector.apiBudget()).toMatchObject({ limit: 700 });
    expect(connector.apiBudget()!.remaining).toBeLessThan(700);
  });
});

describe('Freshdesk adapter: batching and paging', () => {
  const db = seededDatabases().support;
  const embedded = createEmbeddedSupportConnector(db, noTelemetry);
  let server: FreshdeskServer;
  beforeAll(async () => {
    server = await startFreshdeskServer({ data: loadFreshdeskData(db), apiKey: API_KEY });
  });
  afterAll(async () => {
    await server?.close();
  });
  const reset = () => {
    server.pageCeiling = 300;
    server.searchPageCeiling = 10;
  };

  it('reads one ticket per distinct id, companies and contacts once per connector, counting each request once', async () => {
    const telemetry = countingTelemetry();
    const { connector } = freshdeskConnector(server, db, { telemetry });
    const ids = [...Array.from({ length: 120 }, (_, i) => String(i + 1)), '5', '5', '7'];
    let found = 0;
    const requests = await requestsDuring(server, async () => {
      found = (await connector.casesByIds(ids)).length;
    });
    const tickets = requests.filter((request) => /^\/api\/v2\/tickets\/\d+$/.test(request.path));
    expect(found).toBe(120);
    expect(tickets).toHaveLength(120);
    const companies = requests.filter((request) => request.path.startsWith('/api/v2/companies/'));
    const contacts = requests.filter((request) => request.path.startsWith('/api/v2/contacts/'));
    expect(new Set(companies.map((request) => request.path)).size).toBe(companies.length);
    expect(new Set(contacts.map((request) => request.path)).size).toBe(contacts.length);
    expect(telemetry.calls).toHaveLength(requests.length);
    expect(new Set(telemetry.calls)).toEqual(new Set(['casesByIds']));

    // The directory is kept: the same cases again cost the tickets only.
    const again = await requestsDuring(server, () => connector.casesByIds(ids.slice(0, 10)));
    expect(again.map((request) => request.path).every((path) => path.startsWith('/api/v2/tickets/'))).toBe(true);
    expect(again).toHaveLength(10);
  });

  it('searches with a quoted query, 30 results a page, the cursor bounding the created day', async () => {
    const { connector } = freshdeskConnector(server, db);
    const filter: CaseFilterInput = { statuses: ['CLOSED'], priorities: ['LOW', 'NORMAL'] };
    const first = await requestsDuring(server, () => connector.searchCases({ filter, limit: 50 }));
    const searches = first.filter((request) => request.path === '/api/v2/search/tickets');
    expect(searches.map((request) => request.query)).toEqual([
      { query: '"status:5 AND (priority:1 OR priority:2)"', page: '1' },
      { query: '"status:5 AND (priority:1 OR priority:2)"', page: '2' },
    ]);
    const cursor = ticketIds(db, "SELECT id FROM tickets WHERE status = 'closed' ORDER BY id DESC LIMIT 1 OFFSET 100")[0]!;
    const day = (db.prepare('SELECT substr(created_at, 1, 10) AS day FROM tickets WHERE id = ?').get(Number(cursor)) as { day: string })
      .day;
    const next = await requestsDuring(server, () => connector.searchCases({ filter, limit: 10, afterId: cursor }));
    expect(next[0]!.path).toBe(`/api/v2/tickets/${cursor}`);
    expect(next.find((request) => request.path === '/api/v2/search/tickets')!.query.query).toBe(
      `"status:5 AND (priority:1 OR priority:2) AND created_at:<'${day}'"`,
    );
  });

  it('walks a customer past the page ceiling in updated_since windows', async () => {
    reset();
    server.pageCeiling = 3;
    const customerId = sampleCustomer(db);
    const { connector } = freshdeskConnector(server, db, { pageSize: 5, pageCeiling: 3 });
    const filter: CaseFilterInput = { customerId };
    let count = 0;
    const requests = await requestsDuring(server, async () => {
      count = await connector.countCases(filter);
    });
    expect(count).toBe(await embedded.countCases(filter));
    expect(count).toBeGreaterThan(15);
    const lists = requests.filter((request) => request.path === '/api/v2/tickets');
    expect(lists.every((request) => Number(request.query.page ?? '1') <= 3 && request.query.per_page === '5')).toBe(true);
    expect(lists.every((request) => request.query.order_by === 'updated_at' && request.query.order_type === 'asc')).toBe(true);
    const windows = [...new Set(lists.map((request) => request.query.updated_since))];
    expect(windows.length).toBeGreaterThanOrEqual(Math.ceil(count / 15));
    expect(windows[0]).toBe('1970-01-01T00:00:00Z');

    // Newest first past the ceiling: the same pages as the embedded desk.
    let afterId: string | undefined;
    const seen: string[] = [];
    for (;;) {
      const page = await connector.searchCases({ filter, limit: 20, afterId });
      seen.push(...page.records.map((record) => record.id));
      if (!page.hasNextPage) break;
      afterId = page.records.at(-1)!.id;
    }
    expect(seen).toEqual((await embedded.searchCases({ filter, limit: 1000 })).records.map((record) => record.id));
    reset();
  });

  it('walks a search past its last page in created_at windows', async () => {
    reset();
    server.searchPageCeiling = 2;
    const { connector } = freshdeskConnector(server, db, { searchPageCeiling: 2 });
    const customers = column(db, 'SELECT external_id AS value FROM organizations ORDER BY id');
    let counts = new Map<string, number>();
    const requests = await requestsDuring(server, async () => {
      counts = await connector.openCaseCounts(customers);
    });
    expect(counts).toEqual(await embedded.openCaseCounts(customers));
    const total = [...counts.values()].reduce((sum, n) => sum + n, 0);
    expect(total).toBeGreaterThan(60);
    const searches = requests.filter((request) => request.path === '/api/v2/search/tickets');
    expect(searches.every((request) => Number(request.query.page) <= 2)).toBe(true);
    expect(searches.filter((request) => request.query.query!.includes('created_at:<')).length).toBeGreaterThan(0);
    reset();
  });

  it('follows conversation pages past 100 conversations', async () => {
    const ticketId = 5;
    const conversations = server.data.conversations.get(ticketId)!;
    const before = conversations.length;
    const last = conversations.at(-1)!;
    for (let i = 1; i <= 230; i += 1) {
      conversations.push({
        ...last,
        id: 900_000_000 + i,
        body_text: `Follow-up ${i}`,
        created_at: `2026-10-31T00:${String(Math.floor(i / 60)).padStart(2, '0')}:${String(i % 60).padStart(2, '0')}Z`,
      });
    }
    const { connector } = freshdeskConnector(server, db);
    let read = 0;
    const requests = await requestsDuring(server, async () => {
      read = (await connector.commentsByCaseIds([String(ticketId)])).length;
    });
    expect(read).toBe(before + 230);
    const pages = requests.filter((request) => request.path === `/api/v2/tickets/${ticketId}/conversations`);
    expect(pages).toHaveLength(Math.ceil((before + 230) / 100));
    expect(pages.every((request) => request.query.per_page === '100')).toBe(true);
    expect(pages.slice(1).map((request) => request.query.page)).toEqual(pages.slice(1).map((_, i) => String(i + 2)));
  });

  it('refuses a next link to another origin', async () => {
    // The server's links name 127.0.0.1: followed from localhost, they would send the key elsewhere.
    const { connector } = freshdeskConnector(server, db, { baseUrl: server.url.replace('127.0.0.1', 'localhost'), pageSize: 5 });
    await expect(connector.countCases({ customerId: sampleCustomer(db) })).rejects.toThrow(/refusing to follow a next link/);
  });
});

describe('Freshdesk adapter: failures and retries', () => {
  const db = seededDatabases().support;
  let server: FreshdeskServer;
  beforeAll(async () => {
    server = await startFreshdeskServer({ data: loadFreshdeskData(db), apiKey: API_KEY });
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
    const { connector } = freshdeskConnector(server, db);
    server.failNext(1, { kind: 'rate-limit', retryAfterSeconds: 1 });
    const started = performance.now();
    let found: CaseRecord[] = [];
    const requests = await requestsDuring(server, async () => {
      found = await connector.casesByIds(['1']);
    });
    expect(found).toHaveLength(1);
    expect(requests.slice(0, 2).map((request) => request.status)).toEqual([429, 200]);
    expect(performance.now() - started).toBeGreaterThanOrEqual(950);
  });

  it('retries 5xx answers and dropped connections, counting every request once', async () => {
    reset();
    const telemetry = countingTelemetry();
    const { connector } = freshdeskConnector(server, db, { telemetry });
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
    const { connector } = freshdeskConnector(server, db, { policy: { retries: 2 } });
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
    const { connector } = freshdeskConnector(server, db, { policy: { timeoutMs: 50, retries: 1 } });
    const requests = await requestsDuring(server, async () => {
      await expect(connector.casesByIds(['1'])).rejects.toThrow(/timed out/);
    });
    expect(requests).toHaveLength(2);
    reset();
  });

  it('does not retry a refused API key, and reports the desk as unavailable', async () => {
    reset();
    const { connector } = freshdeskConnector(server, db, { apiKey: 'wrong' });
    const requests = await requestsDuring(server, async () => {
      const error = await connector.casesByIds(['1']).catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(ConnectorError);
      const cause = (error as ConnectorError).cause as SystemCallError;
      expect(cause.details).toMatchObject({ retryable: false, status: 401 });
      expect(cause.message).toMatch(/You have to be logged in to perform this action/);
      await expect(connector.ping()).rejects.toBeInstanceOf(ConnectorError);
    });
    expect(requests.map((request) => request.status)).toEqual([401, 401]);
  });

  it('does not retry a request the desk finds invalid (400 Validation failed)', async () => {
    reset();
    // An account whose "on hold" status the desk does not have: the update is refused.
    const { connector } = freshdeskConnector(server, db, { customStatuses: { 6: 'NEW', 9: 'ON_HOLD' } });
    const caseId = ticketIds(db, "SELECT id FROM tickets WHERE status = 'open' ORDER BY id LIMIT 1")[0]!;
    const requests = await requestsDuring(server, async () => {
      const error = await connector.applyCaseUpdate({ key: 'hold-1', caseId, status: 'ON_HOLD' }).catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(SystemCallError);
      expect((error as SystemCallError).details).toMatchObject({ retryable: false, status: 400 });
      expect((error as SystemCallError).message).toMatch(/Validation failed: status/);
    });
    expect(requests.map((request) => `${request.method} ${request.status}`)).toEqual(['GET 200', 'PUT 400']);
  });

  it('opens the circuit after repeated failures and then fails fast without calling the desk', async () => {
    reset();
    const { connector, resilience } = freshdeskConnector(server, db, { policy: { retries: 0, breakerThreshold: 3 } });
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
    const { connector } = freshdeskConnector(server, db);
    expect(await connector.commentsByCaseIds(['99999'])).toEqual([]);
    expect(await connector.applyCaseUpdate({ key: 'k-unknown', caseId: '99999', status: 'OPEN' })).toBeNull();
    expect(await connector.searchCases({ filter: {}, limit: 5, afterId: '99999' })).toEqual({ records: [], hasNextPage: false });
  });
});

describe('Freshdesk adapter: applyCaseUpdate', () => {
  const db = seededDatabases().support;
  const embedded = createEmbeddedSupportConnector(db, noTelemetry);
  let server: FreshdeskServer;
  beforeAll(async () => {
    server = await startFreshdeskServer({ data: loadFreshdeskData(db), apiKey: API_KEY });
  });
  afterAll(async () => {
    await server?.close();
  });
  const openTickets = () => ticketIds(db, "SELECT id FROM tickets WHERE status IN ('open', 'pending') ORDER BY id");
  const writes = (requests: LoggedRequest[]) => requests.filter((request) => request.method !== 'GET');
  const shape = (requests: LoggedRequest[]) =>
    requests
      .filter((request) => !request.path.startsWith('/api/v2/companies/') && !request.path.startsWith('/api/v2/contacts/'))
      .map((request) => `${request.method} ${request.path.replace(/\/\d+(?=\/|$)/g, '/:id')} ${request.status}`);

  it('changes the case as the embedded adapter does, once per key, the note private', async () => {
    const caseId = openTickets()[0]!;
    const { connector } = freshdeskConnector(server, db);
    const update = {
      key: 'RMA-1001:case-update',
      caseId,
      internalNote: 'Return authorized: RMA-1001\nRefund <50%> & more',
      status: 'SOLVED' as const,
    };
    const before = server.data.conversations.get(Number(caseId))!.length;
    let first: CaseRecord | null = null;
    let second: CaseRecord | null = null;
    const requests = await requestsDuring(server, async () => {
      first = await connector.applyCaseUpdate(update);
      second = await connector.applyCaseUpdate(update);
    });
    const theirs = await embedded.applyCaseUpdate(update);
    expect({ ...first!, updatedAt: '' }).toEqual({ ...theirs!, updatedAt: '' });
    expect(second).toEqual(first);
    expect(shape(requests)).toEqual([
      'GET /api/v2/tickets/:id 200',
      'GET /api/v2/tickets/:id/conversations 200',
      'POST /api/v2/tickets/:id/notes 201',
      'PUT /api/v2/tickets/:id 200',
      'GET /api/v2/tickets/:id 200',
    ]);
    expect(writes(requests)).toHaveLength(2);

    const ticket = server.data.tickets.get(Number(caseId))!;
    expect(ticket.status).toBe(4);
    expect(ticket.tags.filter((tag) => tag === freshdeskIdempotencyTag(update.key))).toHaveLength(1);
    const conversations = server.data.conversations.get(Number(caseId))!;
    expect(conversations).toHaveLength(before + 1);
    expect(conversations.at(-1)).toMatchObject({ body_text: update.internalNote, private: true, user_id: server.apiAgent.id });
    // Read back, the note is an internal comment.
    const comments = await connector.commentsByCaseIds([caseId]);
    expect(comments.at(-1)).toMatchObject({ body: update.internalNote, public: false, authorName: 'Concord Integration' });
  });

  it('does not add the note twice when its answer was lost and the call is retried', async () => {
    const caseId = openTickets()[1]!;
    const { connector } = freshdeskConnector(server, db);
    const before = server.data.conversations.get(Number(caseId))!.length;
    server.failNext(1, { kind: 'reset-after-handling' }, (request) => request.method === 'POST');
    const requests = await requestsDuring(server, async () => {
      const record = await connector.applyCaseUpdate({ key: 'lost-note', caseId, internalNote: 'Once only', status: 'PENDING' });
      expect(record?.status).toBe('PENDING');
    });
    expect(writes(requests).map((request) => `${request.method} ${request.status}`)).toEqual(['POST 0', 'PUT 200']);
    expect(server.data.conversations.get(Number(caseId))).toHaveLength(before + 1);
  });

  it('does not apply an update twice when the PUT answer was lost and the call is retried', async () => {
    const caseId = openTickets()[2]!;
    const { connector } = freshdeskConnector(server, db);
    const before = server.data.conversations.get(Number(caseId))!.length;
    server.failNext(1, { kind: 'reset-after-handling' }, (request) => request.method === 'PUT');
    const requests = await requestsDuring(server, async () => {
      const record = await connector.applyCaseUpdate({ key: 'lost-put', caseId, internalNote: 'Put once', status: 'ON_HOLD' });
      expect(record?.status).toBe('ON_HOLD');
      expect(record?.tags.some((tag) => tag.startsWith('concord_'))).toBe(false);
    });
    expect(writes(requests).map((request) => `${request.method} ${request.status}`)).toEqual(['POST 201', 'PUT 0']);
    expect(server.data.conversations.get(Number(caseId))).toHaveLength(before + 1);
    expect(server.data.tickets.get(Number(caseId))!.status).toBe(7);
  });

  it('retries a 429 on the write cycle after its Retry-After, keeping the other tags', async () => {
    const caseId = openTickets()[3]!;
    const { connector } = freshdeskConnector(server, db);
    const tagsBefore = [...server.data.tickets.get(Number(caseId))!.tags];
    server.failNext(1, { kind: 'rate-limit', retryAfterSeconds: 0 }, (request) => request.method === 'PUT');
    const record = await connector.applyCaseUpdate({ key: 'rate-limited', caseId, status: 'CLOSED' });
    expect(record?.status).toBe('CLOSED');
    expect(record?.tags).toEqual(tagsBefore);
    expect(server.data.tickets.get(Number(caseId))!.tags).toEqual([...tagsBefore, freshdeskIdempotencyTag('rate-limited')]);
  });

  it('turns any key into one tag, distinct keys into distinct tags', () => {
    expect(freshdeskIdempotencyTag('rma-1001_case-update')).toBe('concord_rma-1001_case-update');
    const tags = ['RMA-1001:case-update', 'rma-1001:case-update', 'rma-1001 case-update', 'x'.repeat(64)].map(freshdeskIdempotencyTag);
    expect(new Set(tags).size).toBe(tags.length);
    for (const tag of tags) expect(tag).toMatch(/^concord_[a-z0-9_-]+$/);
  });
});

const binary = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
const nonGetWrites = (requests: LoggedRequest[]) =>
  requests.filter((request) => request.method !== 'GET').map((request) => `${request.method} ${request.status}`);

describe('Freshdesk adapter: installed base (custom object installed_product)', () => {
  const db = seededDatabases().support;
  const embedded = createEmbeddedSupportConnector(db, noTelemetry);
  let server: FreshdeskServer;
  let freshdesk: ReturnType<typeof freshdeskConnector>['connector'];
  beforeAll(async () => {
    server = await startFreshdeskServer({ data: loadFreshdeskData(db), apiKey: API_KEY });
    freshdesk = freshdeskConnector(server, db).connector;
  });
  afterAll(async () => {
    await server?.close();
  });

  const customers = () => column(db, 'SELECT external_id AS value FROM organizations WHERE external_id IS NOT NULL ORDER BY id');
  const organizationIdOf = (customerId: string) =>
    (db.prepare('SELECT id FROM organizations WHERE external_id = ?').get(customerId) as { id: number }).id;
  const deskRecordsOf = (orderNumber: string) =>
    server.data.records.get(FRESHDESK_SCHEMA_IDS.installed_product)!.filter((record) => record.data.order_number === orderNumber);
  const comparable = (records: InstalledProductRecord[] | null) =>
    records && records.map(({ recordedAt: _recordedAt, ...rest }) => rest).sort((a, b) => binary(a.id, b.id));

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
        const mine = await freshdesk.recordInstalledBase(order);
        expect(comparable(mine), order.orderNumber).toEqual(comparable(await embedded.recordInstalledBase(order)));
        expect(mine).toHaveLength(order.items.length);
      }
    });
    expect(nonGetWrites(requests)).toEqual(['POST 200', 'POST 200', 'POST 200', 'POST 200']);
    // The schema is looked up by name once.
    expect(requests.filter((request) => request.path === '/api/v2/custom_objects/schemas')).toHaveLength(1);
    const valve = deskRecordsOf('SO-IB-1001').find((record) => record.data.external_id === 'SO-IB-1001:VALVE-10')!;
    expect(valve.data).toEqual({
      external_id: 'SO-IB-1001:VALVE-10',
      product_name: 'VALVE-10',
      company: organizationIdOf(first),
      order_number: 'SO-IB-1001',
      sku: 'VALVE-10',
      quantity: 10,
      warranty_months: null,
    });

    // Recorded again with one product changed and one left out: the order's products as they are now.
    const again: InstalledBaseUpdate = {
      ...orders[0]!,
      items: [{ sku: 'PUMP-200', name: 'Circulation pump, rev. B', quantity: 3, warrantyMonths: 24 }],
    };
    const changed = await requestsDuring(server, async () => {
      const mine = await freshdesk.recordInstalledBase(again);
      expect(comparable(mine)).toEqual(comparable(await embedded.recordInstalledBase(again)));
    });
    expect(nonGetWrites(changed)).toEqual(['PUT 200']);

    const ids = [first, second, 'C99999'];
    const [base, theirs] = await Promise.all([freshdesk.installedBaseByCustomerIds(ids), embedded.installedBaseByCustomerIds(ids)]);
    expect(base).toHaveLength(4);
    expect(comparable(base)).toEqual(comparable(theirs));
    expect(base.filter((product) => product.customerId === second).map((product) => product.id)).toEqual(['SO-IB-2001:PUMP-200']);
  });

  it('records an order twice as once, also when the answer to a create is lost and the upsert retried', async () => {
    const customerId = customers()[2]!;
    const order: InstalledBaseUpdate = {
      customerId,
      orderNumber: 'SO-IB-3001',
      items: [
        { sku: 'HX-1', name: 'Heat exchanger', quantity: 1, warrantyMonths: 60 },
        { sku: 'SEAL-KIT', name: 'Seal kit', quantity: 4, warrantyMonths: null },
      ],
    };
    server.failNext(1, { kind: 'reset-after-handling' }, (request) => request.method === 'POST');
    const first = await requestsDuring(server, async () => {
      expect(comparable(await freshdesk.recordInstalledBase(order))).toEqual(comparable(await embedded.recordInstalledBase(order)));
    });
    // The lost create is found by the retry's read, which holds the data already: nothing more is written.
    expect(nonGetWrites(first).sort()).toEqual(['POST 0', 'POST 200']);
    expect(deskRecordsOf('SO-IB-3001')).toHaveLength(2);
    const second = await requestsDuring(server, async () => {
      expect(comparable(await freshdesk.recordInstalledBase(order))).toEqual(comparable(await embedded.recordInstalledBase(order)));
    });
    expect(nonGetWrites(second)).toEqual([]);
    expect(deskRecordsOf('SO-IB-3001')).toHaveLength(2);
  });

  it('reads again and writes with the new version when another writer changed the record', async () => {
    const customerId = customers()[3]!;
    const order: InstalledBaseUpdate = {
      customerId,
      orderNumber: 'SO-IB-5001',
      items: [{ sku: 'PUMP-200', name: 'Circulation pump', quantity: 1, warrantyMonths: 24 }],
    };
    await freshdesk.recordInstalledBase(order);
    const [record] = deskRecordsOf('SO-IB-5001');
    // Another writer's change, between this adapter's read and its write: the first PUT names a stale version.
    let changed = false;
    server.failNext(1, { kind: 'reset' }, (request) => {
      if (request.method === 'PUT' && !changed) {
        changed = true;
        record!.version += 1;
      }
      return false;
    });
    const bumped = { ...order, items: [{ ...order.items[0]!, quantity: 5 }] };
    const requests = await requestsDuring(server, async () => {
      expect(comparable(await freshdesk.recordInstalledBase(bumped))).toEqual(comparable(await embedded.recordInstalledBase(bumped)));
    });
    expect(nonGetWrites(requests)).toEqual(['PUT 409', 'PUT 200']);
    expect(record!.data.quantity).toBe(5);
    server.clearFaults();
  });

  it('answers null for a customer no company has, and writes nothing', async () => {
    const order: InstalledBaseUpdate = {
      customerId: 'C99999',
      orderNumber: 'SO-IB-4001',
      items: [{ sku: 'PUMP-200', name: 'Circulation pump', quantity: 1, warrantyMonths: 24 }],
    };
    const requests = await requestsDuring(server, async () => {
      expect(await freshdesk.recordInstalledBase(order)).toBeNull();
      expect(await freshdesk.installedBaseByCustomerIds(['C99999'])).toEqual([]);
    });
    expect(await embedded.recordInstalledBase(order)).toBeNull();
    expect(requests.map((request) => `${request.method} ${request.path}`)).toEqual([
      'GET /api/v2/search/companies',
      'GET /api/v2/search/companies',
    ]);
  });

  it('follows the records pages and reads the installed base the embedded desk already held', async () => {
    const held = seededDatabases().support;
    const heldEmbedded = createEmbeddedSupportConnector(held, noTelemetry);
    const customerId = customers()[4]!;
    await heldEmbedded.recordInstalledBase({
      customerId,
      orderNumber: 'SO-IB-6001',
      items: Array.from({ length: 7 }, (_, i) => ({
        sku: `PART-${i}`,
        name: i % 2 ? null : `Part ${i}`,
        quantity: i + 1,
        warrantyMonths: i,
      })),
    });
    const heldServer = await startFreshdeskServer({ data: loadFreshdeskData(held), apiKey: API_KEY });
    try {
      const { connector } = freshdeskConnector(heldServer, held, { pageSize: 3 });
      let mine: InstalledProductRecord[] = [];
      const requests = await requestsDuring(heldServer, async () => {
        mine = await connector.installedBaseByCustomerIds([customerId]);
      });
      expect(mine).toEqual(await heldEmbedded.installedBaseByCustomerIds([customerId]));
      const pages = requests.filter((request) => request.path.endsWith('/records'));
      expect(pages).toHaveLength(3);
      expect(pages.every((request) => request.query.page_size === '3')).toBe(true);
    } finally {
      await heldServer.close();
    }
  });
});

describe('Freshdesk adapter: entitlements (custom object entitlement and the company tier)', () => {
  const db = seededDatabases().support;
  const embedded = createEmbeddedSupportConnector(db, noTelemetry);
  let server: FreshdeskServer;
  let freshdesk: ReturnType<typeof freshdeskConnector>['connector'];
  beforeAll(async () => {
    server = await startFreshdeskServer({ data: loadFreshdeskData(db), apiKey: API_KEY });
    // The schemas by id: no look-up.
    freshdesk = freshdeskConnector(server, db, {
      customObjects: { installedBase: FRESHDESK_SCHEMA_IDS.installed_product, entitlements: FRESHDESK_SCHEMA_IDS.entitlement },
    }).connector;
  });
  afterAll(async () => {
    await server?.close();
  });

  const customers = () => column(db, 'SELECT external_id AS value FROM organizations WHERE external_id IS NOT NULL ORDER BY id');
  const unentitled = column(
    db,
    `SELECT o.external_id AS value FROM organizations o WHERE o.external_id IS NOT NULL AND NOT EXISTS (
       SELECT 1 FROM custom_object_records r WHERE r.custom_object_key = 'entitlement' AND r.organization_id = o.id
     ) ORDER BY o.id`,
  );
  const companyOf = (customerId: string) =>
    [...server.data.companies.values()].find((company) => company.custom_fields.customer_number === customerId)!;
  const embeddedTier = (customerId: string) => {
    const tags = JSON.parse(
      (db.prepare('SELECT tags FROM organizations WHERE external_id = ?').get(customerId) as { tags: string }).tags,
    ) as string[];
    return (['PREMIUM', 'STANDARD', 'BASIC'] as const).find((tier) => tags.includes(`tier_${tier.toLowerCase()}`)) ?? null;
  };
  const comparable = (records: EntitlementRecord[] | null) => records && records.map(({ updatedAt: _updatedAt, ...rest }) => rest);
  const entitlementRecords = () => server.data.records.get(FRESHDESK_SCHEMA_IDS.entitlement)!;

  async function setBoth(update: EntitlementUpdate): Promise<EntitlementRecord[] | null> {
    const mine = await freshdesk.setEntitlement(update);
    const theirs = await embedded.setEntitlement(update);
    expect(comparable(mine), JSON.stringify(update)).toEqual(comparable(theirs));
    expect(companyOf(update.customerId).custom_fields.support_tier, JSON.stringify(update)).toBe(embeddedTier(update.customerId));
    return mine;
  }

  it('setEntitlement and entitlementsByCustomerIds: the same records and tier as the embedded adapter', async () => {
    const [customerId, other] = unentitled as [string, string];
    const standard: EntitlementUpdate = { customerId, subscriptionId: 'SUB-1001', tier: 'STANDARD', active: true, until: '2027-06-30' };
    const premium: EntitlementUpdate = { customerId, subscriptionId: 'SUB-1002', tier: 'PREMIUM', active: true, until: null };
    await setBoth(standard);
    expect(companyOf(customerId).custom_fields.support_tier).toBe('STANDARD');
    const both = await setBoth(premium);
    expect(both!.map((entitlement) => entitlement.subscriptionId)).toEqual(['SUB-1001', 'SUB-1002']);
    expect(companyOf(customerId).custom_fields.support_tier).toBe('PREMIUM');
    await setBoth({ ...premium, active: false });
    expect(companyOf(customerId).custom_fields.support_tier).toBe('STANDARD');
    expect(entitlementRecords().find((record) => record.data.subscription_id === 'SUB-1001')!.data).toEqual({
      subscription_id: 'SUB-1001',
      title: 'tier_standard SUB-1001',
      company: companyOf(customerId).id,
      tier: 'STANDARD',
      active: true,
      until: '2027-06-30',
    });

    await setBoth({ customerId: other, subscriptionId: 'SUB-2001', tier: 'BASIC', active: true, until: '2026-12-31' });
    const ids = [other, customerId, 'C99999'];
    const [mine, theirs] = await Promise.all([freshdesk.entitlementsByCustomerIds(ids), embedded.entitlementsByCustomerIds(ids)]);
    expect(mine).toHaveLength(3);
    expect(comparable(mine)).toEqual(comparable(theirs));
    const all = [...customers(), 'C99999'];
    expect(comparable(await freshdesk.entitlementsByCustomerIds(all))).toEqual(comparable(await embedded.entitlementsByCustomerIds(all)));
  });

  it('writes nothing when the same state is set again', async () => {
    const customerId = unentitled[2]!;
    const update: EntitlementUpdate = { customerId, subscriptionId: 'SUB-3001', tier: 'PREMIUM', active: true, until: '2028-01-31' };
    const first = await setBoth(update);
    let second: EntitlementRecord[] | null = null;
    const requests = await requestsDuring(server, async () => {
      second = await freshdesk.setEntitlement(update);
    });
    expect(second).toEqual(first);
    expect(requests.map((request) => `${request.method} ${request.path}`)).toEqual([
      'GET /api/v2/search/companies',
      `GET /api/v2/custom_objects/schemas/${FRESHDESK_SCHEMA_IDS.entitlement}/records`,
    ]);
  });

  it('answers null for a customer no company has, and writes nothing', async () => {
    const update: EntitlementUpdate = { customerId: 'C99999', subscriptionId: 'SUB-9001', tier: 'PREMIUM', active: true, until: null };
    const before = entitlementRecords().length;
    expect(await freshdesk.setEntitlement(update)).toBeNull();
    expect(await freshdesk.entitlementsByCustomerIds(['C99999'])).toEqual([]);
    expect(await embedded.setEntitlement(update)).toBeNull();
    expect(entitlementRecords()).toHaveLength(before);
  });

  it('reads the entitlements the embedded desk already held when the server started', async () => {
    const held = seededDatabases().support;
    const heldEmbedded = createEmbeddedSupportConnector(held, noTelemetry);
    const customerId = customers()[4]!;
    await heldEmbedded.setEntitlement({ customerId, subscriptionId: 'SUB-6001', tier: 'STANDARD', active: true, until: '2027-03-31' });
    await heldEmbedded.setEntitlement({ customerId, subscriptionId: 'SUB-6002', tier: 'PREMIUM', active: false, until: null });
    const heldServer = await startFreshdeskServer({ data: loadFreshdeskData(held), apiKey: API_KEY });
    try {
      const { connector } = freshdeskConnector(heldServer, held);
      // Freshdesk keeps milliseconds since the epoch: the same instant, written as ISO.
      const instants = (records: EntitlementRecord[]) => records.map((record) => ({ ...record, updatedAt: Date.parse(record.updatedAt) }));
      expect(instants(await connector.entitlementsByCustomerIds([customerId]))).toEqual(
        instants(await heldEmbedded.entitlementsByCustomerIds([customerId])),
      );
    } finally {
      await heldServer.close();
    }
  });

  it('retries a 429, a 503 and a create whose answer was lost, counting every request once', async () => {
    server.clearFaults();
    const customerId = unentitled[5]!;
    server.failNext(1, { kind: 'rate-limit', retryAfterSeconds: 0 }, (request) => request.method === 'GET');
    server.failNext(1, { kind: 'reset-after-handling' }, (request) => request.method === 'POST');
    server.failNext(
      1,
      { kind: 'server-error', status: 503 },
      (request) => request.path.startsWith('/api/v2/companies/') && request.method === 'PUT',
    );
    const telemetry = countingTelemetry();
    const { connector } = freshdeskConnector(server, db, { telemetry });
    const update: EntitlementUpdate = { customerId, subscriptionId: 'SUB-5001', tier: 'PREMIUM', active: true, until: null };
    let recorded: EntitlementRecord[] | null = null;
    const requests = await requestsDuring(server, async () => {
      recorded = await connector.setEntitlement(update);
    });
    expect(comparable(recorded)).toEqual(comparable(await embedded.setEntitlement(update)));
    expect(companyOf(customerId).custom_fields.support_tier).toBe('PREMIUM');
    expect(entitlementRecords().filter((record) => record.data.subscription_id === 'SUB-5001')).toHaveLength(1);
    expect(nonGetWrites(requests)).toEqual(['POST 0', 'PUT 503', 'PUT 200']);
    expect(requests[0]!.status).toBe(429);
    expect(telemetry.calls).toHaveLength(requests.length);
    expect(new Set(telemetry.calls)).toEqual(new Set(['setEntitlement']));
  });
});
