import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentTelemetry as silentTelemetryOf, type ConnectorTelemetry } from '../../platform/connector-telemetry.ts';
import { ConnectorError } from '../../platform/errors.ts';
import { createResilience, SystemCallError, type ResiliencePolicy } from '../../platform/resilience.ts';
import type { Database } from '../../platform/sqlite.ts';
import { createEmbeddedSupportConnector } from '../../subgraphs/support/src/connectors/embedded/index.ts';
import { EMBEDDED_FIELD_IDS } from '../../subgraphs/support/src/connectors/embedded/tables.ts';
import {
  createServiceNowConnector,
  nextLink,
  updateKeyDigest,
  type ServiceNowAuth,
} from '../../subgraphs/support/src/connectors/servicenow.ts';
import type {
  AgentRecord,
  CaseFilterInput,
  CaseRecord,
  CommentRecord,
  EntitlementRecord,
  EntitlementUpdate,
  InstalledBaseUpdate,
  InstalledProductRecord,
  SupportConnector,
} from '../../subgraphs/support/src/connectors/types.ts';
import { seededDatabases } from '../helpers/stack.ts';
import {
  incidentNumber,
  loadServiceNowData,
  startServiceNowServer,
  sysIdOf,
  type LoggedRequest,
  type ServiceNowServer,
} from '../vendors/servicenow/server.ts';
import { countingTelemetry, TEST_POLICY } from '../helpers/connector-tests.ts';

/**
 * The ServiceNow adapter over real HTTP against a local server speaking the Table API's wire
 * format, seeded from the same desk as the embedded adapter: both adapters must return the same
 * records, and the ServiceNow one must batch, page, retry and fail the way the resilience layer
 * expects.
 *
 * The ids the instance mints itself differ from the embedded desk's: a case is known by its
 * incident number, an agent and a comment by their sys_ids. The embedded adapter's records are
 * compared with those ids translated (the seed derives each sys_id from the embedded id).
 */

const CREDENTIALS = { user: 'concord.integration', password: 'secret-123', bearerTokens: ['oauth-456'] };
const BASIC_AUTH: ServiceNowAuth = { kind: 'basic', user: CREDENTIALS.user, password: CREDENTIALS.password };

function serviceNowConnector(
  server: ServiceNowServer,
  overrides: { policy?: Partial<ResiliencePolicy>; auth?: ServiceNowAuth; telemetry?: ConnectorTelemetry } = {},
) {
  const resilience = createResilience('support', { ...TEST_POLICY, ...overrides.policy });
  const connector = createServiceNowConnector({
    baseUrl: server.url,
    auth: overrides.auth ?? BASIC_AUTH,
    telemetry: overrides.telemetry ?? countingTelemetry(),
    resilience,
  });
  return { connector, resilience };
}

async function requestsDuring(server: ServiceNowServer, fn: () => Promise<unknown>): Promise<LoggedRequest[]> {
  const start = server.requests.length;
  await fn();
  return server.requests.slice(start);
}

const startServer = (db: Database, extra: { maxLimit?: number } = {}) =>
  startServiceNowServer({ data: loadServiceNowData(db), credentials: CREDENTIALS, ...extra });

/** A case's id at the graph: the digits of its incident number (INC0000123 is case 123). */
const caseIdOf = (id: number | string) => String(Number(id));

/** The embedded desk's records with the ids the instance knows them by. */
const asIncident = (record: CaseRecord): CaseRecord => ({
  ...record,
  id: caseIdOf(record.id),
  assigneeId: record.assigneeId === null ? null : sysIdOf('sys_user', record.assigneeId),
});
const asIncidents = (records: readonly CaseRecord[]) => records.map(asIncident);
const asJournal = (comment: CommentRecord): CommentRecord => ({
  ...comment,
  id: sysIdOf('sys_journal_field', comment.id),
  caseId: caseIdOf(comment.caseId),
});
const asUser = (agent: AgentRecord): AgentRecord => ({ ...agent, id: sysIdOf('sys_user', agent.id) });
const binary = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
const byId = <T extends { id: string }>(records: readonly T[]) => [...records].sort((a, b) => binary(a.id, b.id));
/** Comments by case, time, then id: the order the adapter answers in. */
const inOrder = (comments: readonly CommentRecord[]) =>
  [...comments].sort((a, b) => binary(a.caseId, b.caseId) || binary(a.createdAt, b.createdAt) || binary(a.id, b.id));

const ticketIds = (db: Database, sql: string, ...params: unknown[]) =>
  (db.prepare(sql).all(...params) as { id: number }[]).map((row) => String(row.id));
const column = (db: Database, sql: string) => (db.prepare(sql).all() as { value: string }[]).map((row) => row.value);
const silentTelemetry = silentTelemetryOf('support');

describe('ServiceNow adapter returns what the embedded adapter returns over the same desk', () => {
  const db = seededDatabases().support;
  const embedded = createEmbeddedSupportConnector(db, silentTelemetry);
  let server: ServiceNowServer;
  let servicenow: SupportConnector;

  beforeAll(async () => {
    server = await startServer(db);
    servicenow = serviceNowConnector(server).connector;
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
    const ids = ticketIds(db, 'SELECT id FROM tickets WHERE id % 7 = 0');
    const [mine, theirs] = await Promise.all([
      servicenow.casesByIds([...ids.map(caseIdOf), caseIdOf(99999), 'abc', 'INC12', '0']),
      embedded.casesByIds(ids),
    ]);
    expect(mine.length).toBeGreaterThan(100);
    expect(byId(mine)).toEqual(byId(asIncidents(theirs)));
  });

  it('searchCases: the same pages, cursors and hasNextPage for each filter', async () => {
    const assignee = sampleAssignee();
    const filters: [CaseFilterInput, CaseFilterInput][] = [
      [{}, {}],
      [{ statuses: ['OPEN', 'PENDING'] }, { statuses: ['OPEN', 'PENDING'] }],
      [{ statuses: ['ON_HOLD'] }, { statuses: ['ON_HOLD'] }],
      [{ statuses: ['PENDING', 'ON_HOLD', 'NEW'] }, { statuses: ['PENDING', 'ON_HOLD', 'NEW'] }],
      [{ priorities: ['HIGH', 'URGENT'] }, { priorities: ['HIGH', 'URGENT'] }],
      [{ customerId: sampleCustomer() }, { customerId: sampleCustomer() }],
      [
        { assigneeId: sysIdOf('sys_user', assignee), statuses: ['CLOSED'] },
        { assigneeId: assignee, statuses: ['CLOSED'] },
      ],
      [{ customerId: 'C99999' }, { customerId: 'C99999' }],
      [{ assigneeId: 'nobody' }, { assigneeId: 'nobody' }],
    ];
    for (const [mineFilter, theirFilter] of filters) {
      let afterId: string | undefined;
      for (let page = 0; page < 4; page += 1) {
        const [mine, theirs] = await Promise.all([
          servicenow.searchCases({ filter: mineFilter, limit: 9, afterId: afterId && caseIdOf(afterId) }),
          embedded.searchCases({ filter: theirFilter, limit: 9, afterId }),
        ]);
        expect(mine, JSON.stringify({ theirFilter, afterId })).toEqual({ ...theirs, records: asIncidents(theirs.records) });
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
      const page = await servicenow.searchCases({ filter, limit: 25, afterId });
      seen.push(...page.records.map((record) => record.id));
      if (!page.hasNextPage) break;
      afterId = page.records.at(-1)!.id;
    }
    const all = await embedded.searchCases({ filter, limit: 1000 });
    expect(seen).toEqual(all.records.map((record) => caseIdOf(record.id)));
    expect(seen.length).toBeGreaterThan(50);
  });

  it('countCases: the same counts', async () => {
    const assignee = sampleAssignee();
    const filters: [CaseFilterInput, CaseFilterInput][] = [
      [{}, {}],
      [{ statuses: ['NEW', 'OPEN', 'PENDING', 'ON_HOLD'] }, { statuses: ['NEW', 'OPEN', 'PENDING', 'ON_HOLD'] }],
      [{ statuses: ['PENDING'] }, { statuses: ['PENDING'] }],
      [{ priorities: ['LOW'] }, { priorities: ['LOW'] }],
      [
        { customerId: sampleCustomer(), statuses: ['CLOSED'] },
        { customerId: sampleCustomer(), statuses: ['CLOSED'] },
      ],
      [{ assigneeId: sysIdOf('sys_user', assignee) }, { assigneeId: assignee }],
      [{ customerId: 'C99999' }, { customerId: 'C99999' }],
    ];
    for (const [mine, theirs] of filters) {
      expect(await servicenow.countCases(mine), JSON.stringify(theirs)).toBe(await embedded.countCases(theirs));
    }
  });

  it('casesByCustomerIds: the newest `limit` per customer, with and without statuses', async () => {
    const ids = [...customers().filter((_, i) => i % 3 === 0), 'C99999'];
    for (const query of [{ limit: 3 }, { limit: 5, statuses: ['OPEN', 'NEW', 'PENDING'] as const }, { limit: 100 }]) {
      const [mine, theirs] = await Promise.all([servicenow.casesByCustomerIds(ids, query), embedded.casesByCustomerIds(ids, query)]);
      expect(mine.length).toBeGreaterThan(0);
      expect(mine, JSON.stringify(query)).toEqual(asIncidents(theirs));
    }
  });

  it('openCaseCounts: the same counts for every customer, none for unknown ones', async () => {
    const ids = [...customers(), 'C99999'];
    const [mine, theirs] = await Promise.all([servicenow.openCaseCounts(ids), embedded.openCaseCounts(ids)]);
    expect(mine).toEqual(theirs);
    expect(mine.has('C99999')).toBe(false);
  });

  it('casesByContactIds: the newest `limit` per contact', async () => {
    const contacts = [...column(db, 'SELECT external_id AS value FROM users WHERE external_id IS NOT NULL AND id % 4 = 0'), '003unknown'];
    const [mine, theirs] = await Promise.all([servicenow.casesByContactIds(contacts, 2), embedded.casesByContactIds(contacts, 2)]);
    expect(mine.length).toBeGreaterThan(10);
    expect(mine).toEqual(asIncidents(theirs));
  });

  it('casesByOrderNumbers and casesBySerialNumbers: exact matches only, across several IN-list queries', async () => {
    const orders = column(
      db,
      `SELECT DISTINCT value FROM ticket_custom_fields WHERE field_id = ${EMBEDDED_FIELD_IDS.orderNumber} ORDER BY value`,
    );
    const serials = column(
      db,
      `SELECT DISTINCT value FROM ticket_custom_fields WHERE field_id = ${EMBEDDED_FIELD_IDS.serialNumber} ORDER BY value`,
    );
    // A different case matches in the instance's queries (they ignore case); a prefix does not.
    const loose = [orders[0]!.slice(0, -1), orders[1]!.toLowerCase(), 'SO-999999', 'SO-1,SO-2'];
    const numbers = [...orders, ...loose];
    const requests = await requestsDuring(server, async () => {
      expect(await servicenow.casesByOrderNumbers(numbers)).toEqual(asIncidents(await embedded.casesByOrderNumbers(numbers)));
    });
    expect(requests.length).toBeGreaterThanOrEqual(Math.ceil(orders.length / 100));
    for (const request of requests) {
      expect(request.path).toBe('/api/now/table/incident');
      expect(request.query.sysparm_query).toMatch(/^u_order_numberIN[^^]+\^ORDERBYDESCnumber$/);
      expect(request.query.sysparm_query!.split('^')[0]!.split(',').length).toBeLessThanOrEqual(100);
    }
    const someSerials = [...serials.slice(0, 60), 'NOPE'];
    expect(await servicenow.casesBySerialNumbers(someSerials)).toEqual(asIncidents(await embedded.casesBySerialNumbers(someSerials)));
  });

  it('commentsByCaseIds: the same comments with their authors, work notes internal and comments public', async () => {
    const ids = ticketIds(db, 'SELECT id FROM tickets WHERE id % 37 = 1');
    const [mine, theirs] = await Promise.all([
      servicenow.commentsByCaseIds([...ids.map(caseIdOf), caseIdOf(99999)]),
      embedded.commentsByCaseIds(ids),
    ]);
    expect(mine.length).toBeGreaterThan(40);
    expect(mine).toEqual(inOrder(theirs.map(asJournal)));
    expect(mine.some((comment) => !comment.public)).toBe(true);
  });

  it('agentsByIds: agents only, end users and unknown ids left out', async () => {
    const ids = column(db, 'SELECT CAST(id AS TEXT) AS value FROM users WHERE id % 5 = 0');
    const [mine, theirs] = await Promise.all([
      servicenow.agentsByIds([...ids.map((id) => sysIdOf('sys_user', id)), sysIdOf('sys_user', 42), 'x']),
      embedded.agentsByIds(ids),
    ]);
    expect(mine.length).toBeGreaterThan(0);
    expect(byId(mine)).toEqual(byId(theirs.map(asUser)));
  });

  it('ping answers with either kind of credential', async () => {
    await expect(servicenow.ping()).resolves.toBeUndefined();
    const bearer = serviceNowConnector(server, { auth: { kind: 'oauth', accessToken: CREDENTIALS.bearerTokens[0]! } }).connector;
    await expect(bearer.ping()).resolves.toBeUndefined();
  });

  it('slaPoliciesByTiers: the policy of each tier from the SLA definitions and their start conditions', async () => {
    const byTier = <T extends { tier: string }>(records: T[]) => [...records].sort((a, b) => a.tier.localeCompare(b.tier));
    expect(byTier(await servicenow.slaPoliciesByTiers(['BASIC', 'STANDARD', 'PREMIUM']))).toEqual(
      byTier(await embedded.slaPoliciesByTiers(['BASIC', 'STANDARD', 'PREMIUM'])),
    );
    expect(await servicenow.slaPoliciesByTiers(['PREMIUM'])).toEqual(await embedded.slaPoliciesByTiers(['PREMIUM']));
    const requests = await requestsDuring(server, async () => {
      expect(await servicenow.slaPoliciesByTiers([])).toEqual([]);
    });
    expect(requests).toEqual([]);
  });
});

describe('ServiceNow adapter: batching and paging', () => {
  const db = seededDatabases().support;
  const embedded = createEmbeddedSupportConnector(db, silentTelemetry);
  let server: ServiceNowServer;
  beforeAll(async () => {
    server = await startServer(db);
  });
  afterAll(async () => {
    await server?.close();
  });

  it('reads cases in IN-list batches of at most 100 numbers, counting each request once', async () => {
    const counted = new Map<number, { requests: LoggedRequest[]; telemetry: number; found: number }>();
    for (const n of [10, 100, 250]) {
      const telemetry = countingTelemetry();
      const { connector } = serviceNowConnector(server, { telemetry });
      const ids = Array.from({ length: n }, (_, i) => caseIdOf(i + 1));
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
        expect(request.path).toBe('/api/now/table/incident');
        expect(request.query.sysparm_query).toMatch(/^numberIN[A-Z0-9,]+\^ORDERBYDESCnumber$/);
        expect(request.query.sysparm_query!.slice('numberIN'.length).split('^')[0]!.split(',').length).toBeLessThanOrEqual(100);
        expect(request.query.sysparm_fields).toContain('company.u_customer_number');
        expect(request.query.sysparm_fields).toContain('caller_id.u_crm_contact_id');
      }
    }
  });

  it('asks for one page more than the limit, ordered by number, and continues below the cursor', async () => {
    const { connector } = serviceNowConnector(server);
    const filter: CaseFilterInput = { statuses: ['CLOSED'] };
    const first = await requestsDuring(server, () => connector.searchCases({ filter, limit: 100 }));
    expect(first).toHaveLength(1);
    expect(first[0]!.query).toMatchObject({
      sysparm_query: 'stateIN7,8^ORDERBYDESCnumber',
      sysparm_limit: '101',
    });
    expect(first[0]!.query.sysparm_offset).toBeUndefined();
    const next = await requestsDuring(server, () => connector.searchCases({ filter, limit: 50, afterId: caseIdOf(700) }));
    expect(next.map((request) => request.query.sysparm_query)).toEqual(['stateIN7,8^number<INC0000700^ORDERBYDESCnumber']);
  });

  it('follows the Link header when the instance caps sysparm_limit, to the same records', async () => {
    server.maxLimit = 40;
    try {
      const { connector } = serviceNowConnector(server);
      const requests = await requestsDuring(server, async () => {
        const [mine, theirs] = await Promise.all([
          connector.searchCases({ filter: {}, limit: 100 }),
          embedded.searchCases({ filter: {}, limit: 100 }),
        ]);
        expect(mine).toEqual({ ...theirs, records: asIncidents(theirs.records) });
      });
      expect(requests.map((request) => [request.query.sysparm_limit, request.query.sysparm_offset])).toEqual([
        ['101', undefined],
        ['40', '40'],
        ['40', '80'],
      ]);
      // Every page of every listing ordered the same way.
      expect(new Set(requests.map((request) => request.query.sysparm_query))).toEqual(new Set(['ORDERBYDESCnumber']));

      const ids = ticketIds(db, 'SELECT id FROM tickets WHERE id % 5 = 0');
      const comments = await requestsDuring(server, async () => {
        const [mine, theirs] = await Promise.all([connector.commentsByCaseIds(ids.map(caseIdOf)), embedded.commentsByCaseIds(ids)]);
        expect(mine.length).toBeGreaterThan(200);
        expect(mine).toEqual(inOrder(theirs.map(asJournal)));
      });
      const journal = comments.filter((request) => request.path === '/api/now/table/sys_journal_field');
      expect(journal.length).toBeGreaterThan(4);
      for (const request of journal) expect(request.query.sysparm_query).toMatch(/\^ORDERBYsys_created_on\^ORDERBYsys_id$/);

      const counts = await connector.openCaseCounts(column(db, 'SELECT external_id AS value FROM organizations'));
      expect(counts).toEqual(await embedded.openCaseCounts(column(db, 'SELECT external_id AS value FROM organizations')));
    } finally {
      server.maxLimit = 10_000;
    }
  });

  it('answers the Link header and X-Total-Count in the Table API format', async () => {
    const response = await fetch(`${server.url}/api/now/table/incident?sysparm_limit=5&sysparm_offset=10&sysparm_fields=number`, {
      headers: { authorization: `Bearer ${CREDENTIALS.bearerTokens[0]}` },
    });
    const body = (await response.json()) as { result: { number: string }[] };
    expect(body.result).toHaveLength(5);
    expect(response.headers.get('x-total-count')).toBe('800');
    const link = response.headers.get('link')!;
    for (const rel of ['first', 'prev', 'next', 'last']) expect(link).toContain(`rel="${rel}"`);
    expect(new URL(nextLink(link)!).searchParams.get('sysparm_offset')).toBe('15');
    expect(response.headers.get('x-ratelimit-limit')).toBeTruthy();
    expect(response.headers.get('x-ratelimit-reset')).toMatch(/^\d+$/);
  });

  it('answers reference fields, display values and errors in the Table API shapes', async () => {
    const get = (query: string, authorization = `Bearer ${CREDENTIALS.bearerTokens[0]}`) =>
      fetch(
        `${server.url}/api/now/table/incident?sysparm_query=number=${incidentNumber(1)}&sysparm_fields=number,state,company,company.u_customer_number&${query}`,
        {
          headers: { authorization },
        },
      );
    const company = sysIdOf('core_company', 360000100009);
    const plain = ((await (await get('')).json()) as { result: Record<string, unknown>[] }).result[0]!;
    expect(plain).toEqual({
      number: 'INC0000001',
      state: '7',
      company: { link: `${server.url}/api/now/table/core_company/${company}`, value: company },
      'company.u_customer_number': 'C10009',
    });
    const display = (
      (await (await get('sysparm_display_value=true&sysparm_exclude_reference_link=true')).json()) as { result: Record<string, unknown>[] }
    ).result[0]!;
    expect(display).toMatchObject({ state: 'Closed', company: expect.any(String) });
    const all = ((await (await get('sysparm_display_value=all')).json()) as { result: Record<string, unknown>[] }).result[0]!;
    expect(all.state).toEqual({ display_value: 'Closed', value: '7' });
    expect(all.company).toMatchObject({ value: company, link: expect.stringContaining(company) });

    const refused = await get('', 'Basic bm9ib2R5Om5vdGhpbmc=');
    expect(refused.status).toBe(401);
    expect(await refused.json()).toEqual({
      error: { message: 'User Not Authenticated', detail: 'Required to provide Auth information' },
      status: 'failure',
    });
  });

  it('reports the rate limit rule as the API budget', async () => {
    const { connector } = serviceNowConnector(server);
    await connector.casesByIds([caseIdOf(1)]);
    expect(connector.apiBudget()).toEqual({ limit: 5_000, remaining: server.rateLimitRemaining });
  });
});

describe('ServiceNow adapter: the rate limit rule', () => {
  it('waits for the window to reset when the rule is exhausted, as the 429 says', async () => {
    const db = seededDatabases().support;
    const server = await startServiceNowServer({
      data: loadServiceNowData(db),
      credentials: CREDENTIALS,
      rateLimit: { limit: 3, windowMs: 2_000 },
    });
    try {
      const { connector } = serviceNowConnector(server, { policy: { timeoutMs: 5_000 } });
      const requests = await requestsDuring(server, async () => {
        for (let i = 1; i <= 4; i += 1) expect(await connector.casesByIds([caseIdOf(i)])).toHaveLength(1);
      });
      expect(requests.map((request) => request.status)).toEqual([200, 200, 200, 429, 200]);
      expect(connector.apiBudget()).toEqual({ limit: 3, remaining: 2 });
    } finally {
      await server.close();
    }
  });
});

describe('ServiceNow adapter: failures and retries', () => {
  const db = seededDatabases().support;
  let server: ServiceNowServer;
  beforeAll(async () => {
    server = await startServer(db);
  });
  afterAll(async () => {
    await server?.close();
  });
  const reset = () => {
    server.clearFaults();
    server.latencyMs = 0;
  };

  it('retries a 429 after the Retry-After the instance asked for, then succeeds', async () => {
    reset();
    const { connector } = serviceNowConnector(server);
    server.failNext(1, { kind: 'rate-limit', retryAfterSeconds: 1 });
    const started = performance.now();
    let found: CaseRecord[] = [];
    const requests = await requestsDuring(server, async () => {
      found = await connector.casesByIds([caseIdOf(1), caseIdOf(2)]);
    });
    expect(found).toHaveLength(2);
    expect(requests.map((request) => request.status)).toEqual([429, 200]);
    expect(performance.now() - started).toBeGreaterThanOrEqual(950);
  });

  it('retries 5xx answers and dropped connections, counting every request once', async () => {
    reset();
    const telemetry = countingTelemetry();
    const { connector } = serviceNowConnector(server, { telemetry });
    server.failNext(1, { kind: 'server-error', status: 500 });
    server.failNext(1, { kind: 'server-error', status: 503 });
    server.failNext(1, { kind: 'reset' });
    const requests = await requestsDuring(server, async () => {
      expect(await connector.agentsByIds([sysIdOf('sys_user', 360000200001)])).toHaveLength(1);
    });
    expect(requests.map((request) => request.status)).toEqual([500, 503, 0, 200]);
    expect(telemetry.calls).toEqual(['agentsByIds', 'agentsByIds', 'agentsByIds', 'agentsByIds']);
  });

  it('gives up after the configured retries with a ConnectorError', async () => {
    reset();
    const { connector } = serviceNowConnector(server, { policy: { retries: 2 } });
    server.failNext(10, { kind: 'server-error', status: 502 });
    const requests = await requestsDuring(server, async () => {
      await expect(connector.casesByIds([caseIdOf(1)])).rejects.toBeInstanceOf(ConnectorError);
    });
    expect(requests).toHaveLength(3);
    reset();
  });

  it('times out a slow instance and retries', async () => {
    reset();
    server.latencyMs = 300;
    const { connector } = serviceNowConnector(server, { policy: { timeoutMs: 50, retries: 1 } });
    const requests = await requestsDuring(server, async () => {
      await expect(connector.casesByIds([caseIdOf(1)])).rejects.toThrow(/timed out/);
    });
    expect(requests).toHaveLength(2);
    reset();
  });

  it('does not retry a refused basic credential, and reports it as the desk being unavailable', async () => {
    reset();
    const { connector } = serviceNowConnector(server, { auth: { kind: 'basic', user: CREDENTIALS.user, password: 'wrong' } });
    const requests = await requestsDuring(server, async () => {
      const error = await connector.casesByIds([caseIdOf(1)]).catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(ConnectorError);
      const cause = (error as ConnectorError).cause as SystemCallError;
      expect(cause.details).toMatchObject({ retryable: false, status: 401 });
      expect(cause.message).toMatch(/User Not Authenticated: Required to provide Auth information/);
      await expect(connector.ping()).rejects.toBeInstanceOf(ConnectorError);
    });
    expect(requests.map((request) => request.status)).toEqual([401, 401]);
  });

  it('renews a refused OAuth token once and sends the request again', async () => {
    reset();
    server.bearerTokens.add('renewed-789');
    let renewals = 0;
    const { connector } = serviceNowConnector(server, {
      auth: {
        kind: 'oauth',
        accessToken: 'expired-000',
        renew: async () => {
          renewals += 1;
          return 'renewed-789';
        },
      },
    });
    const requests = await requestsDuring(server, async () => {
      expect(await connector.casesByIds([caseIdOf(3)])).toHaveLength(1);
      expect(await connector.casesByIds([caseIdOf(4)])).toHaveLength(1);
    });
    expect(requests.map((request) => request.status)).toEqual([401, 200, 200]);
    expect(renewals).toBe(1);

    // A renewal the instance refuses too is the answer: no loop, no retry.
    const { connector: refused } = serviceNowConnector(server, {
      auth: { kind: 'oauth', accessToken: 'expired-000', renew: async () => 'revoked-111' },
    });
    const again = await requestsDuring(server, async () => {
      const error = await refused.casesByIds([caseIdOf(3)]).catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(ConnectorError);
      expect(((error as ConnectorError).cause as SystemCallError).details).toMatchObject({ retryable: false, status: 401 });
    });
    expect(again.map((request) => request.status)).toEqual([401, 401]);
  });

  it('opens the circuit after repeated failures and then fails fast without calling the instance', async () => {
    reset();
    const { connector, resilience } = serviceNowConnector(server, { policy: { retries: 0, breakerThreshold: 3 } });
    server.failNext(100, { kind: 'server-error', status: 503 });
    for (let i = 0; i < 3; i += 1) await expect(connector.casesByIds([caseIdOf(1)])).rejects.toBeInstanceOf(ConnectorError);
    expect(resilience.state()).toBe('open');
    const requests = await requestsDuring(server, async () => {
      const started = performance.now();
      await expect(connector.casesByIds([caseIdOf(1)])).rejects.toThrow(/circuit is open/);
      await expect(connector.ping()).rejects.toThrow(/circuit is open/);
      expect(performance.now() - started).toBeLessThan(50);
    });
    expect(requests).toHaveLength(0);
    reset();
  });

  it('answers "not found" for unknown cases rather than failing', async () => {
    reset();
    const { connector } = serviceNowConnector(server);
    expect(await connector.commentsByCaseIds([caseIdOf(99999)])).toEqual([]);
    expect(await connector.applyCaseUpdate({ key: 'k-unknown', caseId: caseIdOf(99999), status: 'OPEN' })).toBeNull();
    expect(await connector.applyCaseUpdate({ key: 'k-malformed', caseId: 'INC0000012', status: 'OPEN' })).toBeNull();
    expect(await connector.searchCases({ filter: {}, limit: 5, afterId: 'nope' })).toEqual({ records: [], hasNextPage: false });
  });
});

describe('ServiceNow adapter: applyCaseUpdate', () => {
  const db = seededDatabases().support;
  const embedded = createEmbeddedSupportConnector(db, silentTelemetry);
  let server: ServiceNowServer;
  beforeAll(async () => {
    server = await startServer(db);
  });
  afterAll(async () => {
    await server?.close();
  });
  const openTickets = () => ticketIds(db, "SELECT id FROM tickets WHERE status IN ('open', 'pending') ORDER BY id");
  const incidentOf = (ticketId: string) => server.data.tables.get('incident')!.get(sysIdOf('incident', ticketId))!;
  const journalOf = (ticketId: string) =>
    server.records('sys_journal_field').filter((entry) => entry.element_id === sysIdOf('incident', ticketId));
  const summary = (requests: LoggedRequest[]) => requests.map((request) => `${request.method} ${request.status}`);

  it('changes the case as the embedded adapter does, once per key, the note as a work note', async () => {
    const caseId = openTickets()[0]!;
    const { connector } = serviceNowConnector(server);
    const update = { key: 'RMA-1001:case-update', internalNote: 'Return authorized: RMA-1001', status: 'SOLVED' as const };
    const journalBefore = journalOf(caseId).length;
    let first: CaseRecord | null = null;
    let second: CaseRecord | null = null;
    const requests = await requestsDuring(server, async () => {
      first = await connector.applyCaseUpdate({ ...update, caseId: caseIdOf(caseId) });
      second = await connector.applyCaseUpdate({ ...update, caseId: caseIdOf(caseId) });
    });
    const theirs = await embedded.applyCaseUpdate({ ...update, caseId });
    expect({ ...first!, updatedAt: '' }).toEqual({ ...asIncident(theirs!), updatedAt: '' });
    expect(second).toEqual(first);
    expect(summary(requests)).toEqual(['GET 200', 'PATCH 200', 'GET 200']);
    expect(requests[1]!.body).toMatchObject({ state: '6', work_notes: update.internalNote, close_code: 'Solution provided' });

    const incident = incidentOf(caseId);
    expect(incident).toMatchObject({ state: '6', active: 'false' });
    expect(incident.u_update_keys!.split('\n')).toEqual([updateKeyDigest(update.key)]);
    const journal = journalOf(caseId);
    expect(journal).toHaveLength(journalBefore + 1);
    expect(journal.at(-1)).toMatchObject({
      element: 'work_notes',
      name: 'incident',
      value: update.internalNote,
      sys_created_by: CREDENTIALS.user,
    });
    // Read back as an internal comment by the integration user.
    const comments = await connector.commentsByCaseIds([caseIdOf(caseId)]);
    expect(comments.find((comment) => comment.body === update.internalNote)).toMatchObject({
      public: false,
      authorName: 'Concord Integration',
    });
  });

  it('puts a case on hold awaiting the caller (PENDING) or for another reason (ON_HOLD)', async () => {
    const [pending, onHold] = [openTickets()[3]!, openTickets()[4]!];
    const { connector } = serviceNowConnector(server);
    expect(await connector.applyCaseUpdate({ key: 'pending-1', caseId: caseIdOf(pending), status: 'PENDING' })).toMatchObject({
      status: 'PENDING',
    });
    expect(await connector.applyCaseUpdate({ key: 'hold-1', caseId: caseIdOf(onHold), status: 'ON_HOLD' })).toMatchObject({
      status: 'ON_HOLD',
    });
    expect(incidentOf(pending)).toMatchObject({ state: '3', hold_reason: '1' });
    expect(incidentOf(onHold)).toMatchObject({ state: '3', hold_reason: '4' });
    expect(await connector.applyCaseUpdate({ key: 'reopen-1', caseId: caseIdOf(onHold), status: 'OPEN' })).toMatchObject({
      status: 'OPEN',
    });
    expect(incidentOf(onHold)).toMatchObject({ state: '2', hold_reason: '' });
  });

  it('does not apply an update twice when its answer was lost and the call is retried', async () => {
    const caseId = openTickets()[1]!;
    const { connector } = serviceNowConnector(server);
    const journalBefore = journalOf(caseId).length;
    server.failNext(1, { kind: 'reset-after-handling' }, (request) => request.method === 'PATCH');
    const requests = await requestsDuring(server, async () => {
      const record = await connector.applyCaseUpdate({
        key: 'lost-answer',
        caseId: caseIdOf(caseId),
        internalNote: 'Once only',
        status: 'PENDING',
      });
      expect(record?.status).toBe('PENDING');
    });
    expect(summary(requests)).toEqual(['GET 200', 'PATCH 0', 'GET 200']);
    expect(journalOf(caseId)).toHaveLength(journalBefore + 1);
  });

  it('applies one key once when two deliveries race', async () => {
    const caseId = openTickets()[2]!;
    const { connector } = serviceNowConnector(server);
    const journalBefore = journalOf(caseId).length;
    const update = { key: 'raced-key', caseId: caseIdOf(caseId), internalNote: 'Raced note' };
    const requests = await requestsDuring(server, async () => {
      const [a, b] = await Promise.all([connector.applyCaseUpdate(update), connector.applyCaseUpdate(update)]);
      expect(a).toEqual(b);
    });
    expect(journalOf(caseId)).toHaveLength(journalBefore + 1);
    expect(requests.filter((request) => request.method === 'PATCH')).toHaveLength(1);
  });

  it('keeps other keys applied before, and applies a new key', async () => {
    const caseId = openTickets()[5]!;
    const { connector } = serviceNowConnector(server);
    await connector.applyCaseUpdate({ key: 'first-key', caseId: caseIdOf(caseId), internalNote: 'One' });
    await connector.applyCaseUpdate({ key: 'second-key', caseId: caseIdOf(caseId), internalNote: 'Two' });
    await connector.applyCaseUpdate({ key: 'first-key', caseId: caseIdOf(caseId), internalNote: 'One' });
    expect(incidentOf(caseId).u_update_keys!.split('\n')).toEqual([updateKeyDigest('first-key'), updateKeyDigest('second-key')]);
    expect(journalOf(caseId).filter((entry) => entry.value === 'One')).toHaveLength(1);
  });

  it('refuses to change a closed case (403, its ACL) without retrying, as unprocessable rather than refused credentials', async () => {
    const caseId = ticketIds(db, "SELECT id FROM tickets WHERE status = 'closed' ORDER BY id LIMIT 1")[0]!;
    const { connector } = serviceNowConnector(server);
    const requests = await requestsDuring(server, async () => {
      const error = await connector
        .applyCaseUpdate({ key: 'closed-1', caseId: caseIdOf(caseId), status: 'OPEN' })
        .catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(SystemCallError);
      expect((error as SystemCallError).details).toMatchObject({ retryable: false, status: 422 });
      expect((error as SystemCallError).message).toMatch(/answered 403 \(Operation Failed: ACL Exception/);
    });
    expect(summary(requests)).toEqual(['GET 200', 'PATCH 403']);
  });

  it('retries a 503 on the write and a 429 on the read', async () => {
    const caseId = openTickets()[6]!;
    const { connector } = serviceNowConnector(server);
    server.failNext(1, { kind: 'rate-limit', retryAfterSeconds: 0 }, (request) => request.method === 'GET');
    server.failNext(1, { kind: 'server-error', status: 503 }, (request) => request.method === 'PATCH');
    const requests = await requestsDuring(server, async () => {
      expect(await connector.applyCaseUpdate({ key: 'retried', caseId: caseIdOf(caseId), internalNote: 'Retried note' })).not.toBeNull();
    });
    expect(summary(requests)).toEqual(['GET 429', 'GET 200', 'PATCH 503', 'GET 200', 'PATCH 200']);
    expect(journalOf(caseId).filter((entry) => entry.value === 'Retried note')).toHaveLength(1);
  });
});

describe('ServiceNow adapter: installed base (u_installed_product)', () => {
  const db = seededDatabases().support;
  const embedded = createEmbeddedSupportConnector(db, silentTelemetry);
  let server: ServiceNowServer;
  let servicenow: SupportConnector;
  beforeAll(async () => {
    server = await startServer(db);
    servicenow = serviceNowConnector(server).connector;
  });
  afterAll(async () => {
    await server?.close();
  });

  const customers = () => column(db, 'SELECT external_id AS value FROM organizations WHERE external_id IS NOT NULL ORDER BY id');
  const organizationIdOf = (customerId: string) =>
    (db.prepare('SELECT id FROM organizations WHERE external_id = ?').get(customerId) as { id: number }).id;
  const deskRecordsOf = (orderNumber: string) =>
    server.records('u_installed_product').filter((record) => record.u_order_number === orderNumber);
  /** The records without the time each desk stamped them with, in a fixed order. */
  const comparable = (records: InstalledProductRecord[] | null) =>
    records && records.map(({ recordedAt: _recordedAt, ...rest }) => rest).sort((a, b) => binary(a.id, b.id));
  const writes = (requests: LoggedRequest[]) =>
    requests.filter((request) => request.method !== 'GET').map((request) => `${request.method} ${request.status}`);

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
        const mine = await servicenow.recordInstalledBase(order);
        expect(comparable(mine), order.orderNumber).toEqual(comparable(await embedded.recordInstalledBase(order)));
        expect(mine).toHaveLength(order.items.length);
      }
    });
    expect(writes(requests)).toEqual(['POST 201', 'POST 201', 'POST 201', 'POST 201']);
    const valve = deskRecordsOf('SO-IB-1001').find((record) => record.u_external_id === 'SO-IB-1001:VALVE-10')!;
    expect(valve).toMatchObject({
      u_name: 'VALVE-10',
      u_sku: 'VALVE-10',
      u_quantity: '10',
      u_warranty_months: '',
      u_company: sysIdOf('core_company', organizationIdOf(first)),
    });

    // Recorded again with one product changed and one left out: the order's products as they are now.
    const again: InstalledBaseUpdate = {
      ...orders[0]!,
      items: [{ sku: 'PUMP-200', name: 'Circulation pump, rev. B', quantity: 3, warrantyMonths: 24 }],
    };
    const changed = await requestsDuring(server, async () => {
      const mine = await servicenow.recordInstalledBase(again);
      expect(comparable(mine)).toEqual(comparable(await embedded.recordInstalledBase(again)));
    });
    expect(writes(changed)).toEqual(['PATCH 200']);

    const ids = [first, second, 'C99999'];
    const [base, theirs] = await Promise.all([servicenow.installedBaseByCustomerIds(ids), embedded.installedBaseByCustomerIds(ids)]);
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
      expect(comparable(await servicenow.recordInstalledBase(order))).toEqual(comparable(await embedded.recordInstalledBase(order)));
    });
    // The lost create is found by the retry's read and updated, not created again.
    expect(writes(first).sort()).toEqual(['PATCH 200', 'POST 0', 'POST 201']);
    expect(deskRecordsOf('SO-IB-3001')).toHaveLength(2);
    const second = await requestsDuring(server, async () => {
      expect(comparable(await servicenow.recordInstalledBase(order))).toEqual(comparable(await embedded.recordInstalledBase(order)));
    });
    expect(writes(second)).toEqual(['PATCH 200', 'PATCH 200']);
    expect(deskRecordsOf('SO-IB-3001')).toHaveLength(2);
  });

  it('answers null for a customer no company has, and writes nothing', async () => {
    const order: InstalledBaseUpdate = {
      customerId: 'C99999',
      orderNumber: 'SO-IB-4001',
      items: [{ sku: 'PUMP-200', name: 'Circulation pump', quantity: 1, warrantyMonths: 24 }],
    };
    const requests = await requestsDuring(server, async () => {
      expect(await servicenow.recordInstalledBase(order)).toBeNull();
      expect(await servicenow.installedBaseByCustomerIds(['C99999'])).toEqual([]);
    });
    expect(await embedded.recordInstalledBase(order)).toBeNull();
    expect(requests.map((request) => `${request.method} ${request.path}`)).toEqual([
      'GET /api/now/table/core_company',
      'GET /api/now/table/core_company',
    ]);
  });

  it('reads the installed base the embedded desk already held when the server started', async () => {
    const held = seededDatabases().support;
    const heldEmbedded = createEmbeddedSupportConnector(held, silentTelemetry);
    const customerId = customers()[4]!;
    await heldEmbedded.recordInstalledBase({
      customerId,
      orderNumber: 'SO-IB-6001',
      items: [
        { sku: 'PUMP-200', name: 'Circulation pump', quantity: 1, warrantyMonths: 24 },
        { sku: 'VALVE-10', name: null, quantity: 2, warrantyMonths: null },
      ],
    });
    const heldServer = await startServer(held);
    try {
      const { connector } = serviceNowConnector(heldServer);
      // The instance keeps whole seconds.
      const seconds = (records: InstalledProductRecord[]) =>
        records.map((record) => ({ ...record, recordedAt: record.recordedAt.slice(0, 19) }));
      expect(seconds(await connector.installedBaseByCustomerIds([customerId]))).toEqual(
        seconds(await heldEmbedded.installedBaseByCustomerIds([customerId])),
      );
    } finally {
      await heldServer.close();
    }
  });
});

describe('ServiceNow adapter: entitlements (u_entitlement and the company tier)', () => {
  const db = seededDatabases().support;
  const embedded = createEmbeddedSupportConnector(db, silentTelemetry);
  let server: ServiceNowServer;
  let servicenow: SupportConnector;
  beforeAll(async () => {
    server = await startServer(db);
    servicenow = serviceNowConnector(server).connector;
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
  const companyOf = (customerId: string) => server.records('core_company').find((company) => company.u_customer_number === customerId)!;
  /** The embedded organization's tier, from its tier tag (the highest, as the instance keeps one). */
  const embeddedTier = (customerId: string) => {
    const tags = JSON.parse(
      (db.prepare('SELECT tags FROM organizations WHERE external_id = ?').get(customerId) as { tags: string }).tags,
    ) as string[];
    return (['PREMIUM', 'STANDARD', 'BASIC'] as const).find((tier) => tags.includes(`tier_${tier.toLowerCase()}`)) ?? '';
  };
  const comparable = (records: EntitlementRecord[] | null) => records && records.map(({ updatedAt: _updatedAt, ...rest }) => rest);

  async function setBoth(update: EntitlementUpdate): Promise<EntitlementRecord[] | null> {
    const mine = await servicenow.setEntitlement(update);
    const theirs = await embedded.setEntitlement(update);
    expect(comparable(mine), JSON.stringify(update)).toEqual(comparable(theirs));
    expect(companyOf(update.customerId).u_support_tier, JSON.stringify(update)).toBe(embeddedTier(update.customerId));
    return mine;
  }

  it('setEntitlement and entitlementsByCustomerIds: the same records and tier as the embedded adapter', async () => {
    const [customerId, other] = unentitled as [string, string];
    const standard: EntitlementUpdate = { customerId, subscriptionId: 'SUB-1001', tier: 'STANDARD', active: true, until: '2027-06-30' };
    const premium: EntitlementUpdate = { customerId, subscriptionId: 'SUB-1002', tier: 'PREMIUM', active: true, until: null };
    await setBoth(standard);
    expect(companyOf(customerId).u_support_tier).toBe('STANDARD');
    const both = await setBoth(premium);
    expect(both!.map((entitlement) => entitlement.subscriptionId)).toEqual(['SUB-1001', 'SUB-1002']);
    expect(companyOf(customerId).u_support_tier).toBe('PREMIUM');
    await setBoth({ ...premium, active: false });
    expect(companyOf(customerId).u_support_tier).toBe('STANDARD');
    expect(server.records('u_entitlement').find((record) => record.u_subscription_id === 'SUB-1001')).toMatchObject({
      u_name: 'tier_standard SUB-1001',
      u_tier: 'STANDARD',
      u_active: 'true',
      u_until: '2027-06-30',
      u_company: companyOf(customerId).sys_id,
    });

    await setBoth({ customerId: other, subscriptionId: 'SUB-2001', tier: 'BASIC', active: true, until: '2026-12-31' });
    const ids = [other, customerId, 'C99999'];
    const [mine, theirs] = await Promise.all([servicenow.entitlementsByCustomerIds(ids), embedded.entitlementsByCustomerIds(ids)]);
    expect(mine).toHaveLength(3);
    expect(comparable(mine)).toEqual(comparable(theirs));
    const all = [...customers(), 'C99999'];
    expect(comparable(await servicenow.entitlementsByCustomerIds(all))).toEqual(comparable(await embedded.entitlementsByCustomerIds(all)));
  });

  it('writes nothing when the same state is set again', async () => {
    const customerId = unentitled[2]!;
    const update: EntitlementUpdate = { customerId, subscriptionId: 'SUB-3001', tier: 'PREMIUM', active: true, until: '2028-01-31' };
    const first = await setBoth(update);
    let second: EntitlementRecord[] | null = null;
    const requests = await requestsDuring(server, async () => {
      second = await servicenow.setEntitlement(update);
    });
    expect(second).toEqual(first);
    expect(requests.map((request) => `${request.method} ${request.path}`)).toEqual([
      'GET /api/now/table/core_company',
      'GET /api/now/table/u_entitlement',
    ]);
  });

  it('answers null for a customer no company has, and writes nothing', async () => {
    const update: EntitlementUpdate = { customerId: 'C99999', subscriptionId: 'SUB-9001', tier: 'PREMIUM', active: true, until: null };
    const before = server.records('u_entitlement').length;
    expect(await servicenow.setEntitlement(update)).toBeNull();
    expect(await servicenow.entitlementsByCustomerIds(['C99999'])).toEqual([]);
    expect(await embedded.setEntitlement(update)).toBeNull();
    expect(server.records('u_entitlement')).toHaveLength(before);
  });

  it('reads the entitlements the embedded desk already held when the server started', async () => {
    const held = seededDatabases().support;
    const heldEmbedded = createEmbeddedSupportConnector(held, silentTelemetry);
    const customerId = customers()[4]!;
    await heldEmbedded.setEntitlement({ customerId, subscriptionId: 'SUB-6001', tier: 'STANDARD', active: true, until: '2027-03-31' });
    await heldEmbedded.setEntitlement({ customerId, subscriptionId: 'SUB-6002', tier: 'PREMIUM', active: false, until: null });
    const heldServer = await startServer(held);
    try {
      const { connector } = serviceNowConnector(heldServer);
      const seconds = (records: EntitlementRecord[]) => records.map((record) => ({ ...record, updatedAt: record.updatedAt.slice(0, 19) }));
      expect(seconds(await connector.entitlementsByCustomerIds([customerId]))).toEqual(
        seconds(await heldEmbedded.entitlementsByCustomerIds([customerId])),
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
      (request) => request.path.startsWith('/api/now/table/core_company/') && request.method === 'PATCH',
    );
    const telemetry = countingTelemetry();
    const { connector } = serviceNowConnector(server, { telemetry });
    const update: EntitlementUpdate = { customerId, subscriptionId: 'SUB-5001', tier: 'PREMIUM', active: true, until: null };
    let recorded: EntitlementRecord[] | null = null;
    const requests = await requestsDuring(server, async () => {
      recorded = await connector.setEntitlement(update);
    });
    expect(comparable(recorded)).toEqual(comparable(await embedded.setEntitlement(update)));
    expect(companyOf(customerId).u_support_tier).toBe('PREMIUM');
    expect(server.records('u_entitlement').filter((record) => record.u_subscription_id === 'SUB-5001')).toHaveLength(1);
    expect(requests.filter((request) => request.method !== 'GET').map((request) => `${request.method} ${request.status}`)).toEqual([
      'POST 0',
      'PATCH 200',
      'PATCH 503',
      'PATCH 200',
    ]);
    expect(requests[0]!.status).toBe(429);
    expect(telemetry.calls).toHaveLength(requests.length);
    expect(new Set(telemetry.calls)).toEqual(new Set(['setEntitlement']));
  });
});
