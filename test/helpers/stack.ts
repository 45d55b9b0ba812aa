import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadGatewayConfig, type GatewayConfig } from '../../gateway/src/config.ts';
import { startGateway } from '../../gateway/src/gateway.ts';
import type { EntityCache } from '../../gateway/src/cache/entity-cache.ts';
import type { Identity, Role } from '../../platform/identity.ts';
import { generateDevKeys, type DevKeys } from '../../platform/keys.ts';
import { loadSubgraphConfig } from '../../platform/subgraph-config.ts';
import { signDevToken } from '../../platform/dev-token.ts';
import type { RunningService } from '../../platform/http-server.ts';
import { createLogger } from '../../platform/logger.ts';
import { openDatabase, type Database } from '../../platform/sqlite.ts';
import type { SubgraphOptions } from '../../platform/subgraph.ts';
import type { CrmConnector } from '../../subgraphs/crm/src/connectors/types.ts';
import type { SupportConnector } from '../../subgraphs/support/src/connectors/types.ts';
import { loadCrmConfig } from '../../subgraphs/crm/src/config.ts';
import { startCrm } from '../../subgraphs/crm/src/index.ts';
import { loadErpConfig } from '../../subgraphs/erp/src/config.ts';
import { startErp, type ErpOptions, type ErpService } from '../../subgraphs/erp/src/index.ts';
import { loadSupportConfig } from '../../subgraphs/support/src/config.ts';
import { startSupport } from '../../subgraphs/support/src/index.ts';
import { seedDatabases, type SeedOptions } from '../../tools/seed/index.ts';
import { loadProcessesConfig } from '../../processes/src/config.ts';
import { startProcesses, type ProcessesOptions, type ProcessesService } from '../../processes/src/index.ts';
import { sqliteExecutor } from '../../platform/workflow/sql.ts';
import type { EventBroker } from '../../platform/events/broker.ts';
import { embeddedBroker } from '../../platform/events/embedded-broker.ts';
import type { EventsConfig } from '../../platform/events/config.ts';
import type { CanonicalEvent } from '../../platform/events/cloudevent.ts';
import { sourceEvent } from '../../platform/events/source.ts';
import { EMBEDDED_FIELD_IDS } from '../../subgraphs/support/src/connectors/embedded/tables.ts';

/** What the desk's feed publishes when a case's subject changed (subgraphs/support), for tests that publish it themselves. */
export function caseSubjectChanged(caseId: string, version = Date.now()): CanonicalEvent {
  return sourceEvent(
    {
      type: 'concord.case.updated',
      subject: `case/${caseId}`,
      data: { caseId, customerId: null, status: 'OPEN', priority: 'NORMAL', changes: ['subject'], updatedAt: new Date().toISOString() },
    },
    { source: 'concord/test', version },
  );
}

/** A broker of one service's own, in memory: a service a test starts alone publishes nowhere else. */
export const PRIVATE_EVENTS: EventsConfig = { kind: 'embedded', file: ':memory:', retentionMs: 3_600_000 };

/** The date the test data is seeded around, and the services' clock. */
export const AS_OF = '2026-11-01';
export const clock = () => new Date(`${AS_OF}T12:00:00Z`);

/** The gateway's deadline for one subgraph call in a test stack. */
export const STACK_SUBGRAPH_TIMEOUT_MS = 5_000;

export const SUPERGRAPH_PATH = new URL('../../schema/supergraph.graphql', import.meta.url).pathname;

export interface Databases {
  crm: Database;
  erp: Database;
  support: Database;
}

/**
 * An open case (with an order and a serial number) about a unit under warranty on `asOf`
 * (default AS_OF), whose serial number is not in `used` (it is added): a return the ERP accepts.
 */
export function returnableCase(
  dbs: Pick<Databases, 'support' | 'erp'>,
  options: { used?: Set<string>; asOf?: string } = {},
): { caseId: string; serialNumber: string } {
  const rows = dbs.support
    .prepare(
      `SELECT t.id AS caseId, fs.value AS serialNumber FROM tickets t
       JOIN organizations o ON o.id = t.organization_id
       JOIN ticket_custom_fields fo ON fo.ticket_id = t.id AND fo.field_id = ?
       JOIN ticket_custom_fields fs ON fs.ticket_id = t.id AND fs.field_id = ?
       WHERE t.status IN ('new', 'open', 'pending', 'hold') ORDER BY t.id`,
    )
    .all(EMBEDDED_FIELD_IDS.orderNumber, EMBEDDED_FIELD_IDS.serialNumber) as { caseId: number; serialNumber: string }[];
  const warranty = dbs.erp.prepare('SELECT warrantyEndDate FROM serialNumbers WHERE serialNumber = ?');
  for (const row of rows) {
    if (options.used?.has(row.serialNumber)) continue;
    const unit = warranty.get(row.serialNumber) as { warrantyEndDate: string } | undefined;
    if (!unit || unit.warrantyEndDate < (options.asOf ?? AS_OF)) continue;
    options.used?.add(row.serialNumber);
    return { caseId: String(row.caseId), serialNumber: row.serialNumber };
  }
  throw new Error('no open case about a unit under warranty left');
}

/** Three in-memory systems seeded with a small, deterministic world. */
export function seededDatabases(options: Partial<SeedOptions> = {}): Databases {
  const dbs = { crm: openDatabase(':memory:'), erp: openDatabase(':memory:'), support: openDatabase(':memory:') };
  seedDatabases(dbs, { customers: 40, orders: 400, cases: 800, seed: 7, asOf: AS_OF, ...options });
  return dbs;
}

export interface GraphQLResult<T = Record<string, unknown>> {
  status: number;
  headers: Headers;
  body: { data?: T | null; errors?: { message: string; path?: (string | number)[]; extensions?: Record<string, unknown> }[] };
  text: string;
}

export interface Stack {
  dbs: Databases;
  keys: DevKeys;
  crm: RunningService;
  erp: ErpService;
  support: RunningService;
  processes: ProcessesService;
  gateway: Awaited<ReturnType<typeof startGateway>>;
  /** The broker every service of the stack publishes to and the gateway consumes from. */
  broker: EventBroker;
  /** POSTs an operation to the gateway as a support agent (headers may replace the token). */
  query<T = Record<string, unknown>>(
    query: string,
    variables?: Record<string, unknown>,
    headers?: Record<string, string>,
  ): Promise<GraphQLResult<T>>;
  /** POSTs an operation to the gateway as the given identity. */
  queryAs<T = Record<string, unknown>>(who: Who, query: string, variables?: Record<string, unknown>): Promise<GraphQLResult<T>>;
  /** An Authorization header value the gateway accepts for `who`. */
  bearer(who: Who): Promise<string>;
  stop(): Promise<void>;
}

/** The gateway without its cache: every field is fetched from its system (tests that count or break those calls). */
export const NO_CACHE: Partial<GatewayConfig> = {
  cache: { ...loadGatewayConfig({}).cache, store: 'none' },
};

/** The gateway's configuration with its defaults, for tests to adjust. */
export function gatewayConfig(overrides: Partial<GatewayConfig> = {}): GatewayConfig {
  // The test identities that speak as Concord's own services may hold the integration role.
  const defaults = loadGatewayConfig({ AUTH_SERVICE_SUBJECTS: 'concord-processes,integration@test.example,test' });
  return {
    ...defaults,
    host: '127.0.0.1',
    port: 0,
    logLevel: 'silent',
    supergraphPath: SUPERGRAPH_PATH,
    events: PRIVATE_EVENTS,
    ...overrides,
  };
}

/** The three subgraphs, the process service and the gateway on free ports, over seeded in-memory systems. */
export async function startStack(
  options: {
    dbs?: Databases;
    /** Keys in place of new ones (a gateway in another process reads them from its DATA_DIR). */
    keys?: DevKeys;
    logLines?: string[];
    gateway?: Partial<GatewayConfig>;
    erp?: Partial<ErpOptions>;
    erpEnv?: NodeJS.ProcessEnv;
    /** Environments for the CRM's and the desk's configuration (their vendor connectors, say). */
    crmEnv?: NodeJS.ProcessEnv;
    supportEnv?: NodeJS.ProcessEnv;
    crm?: Partial<SubgraphOptions<Database, CrmConnector>>;
    support?: Partial<SubgraphOptions<Database, SupportConnector>>;
    /** The process service's options (its store, extra workflow types) and environment. */
    processes?: Partial<ProcessesOptions>;
    processesEnv?: NodeJS.ProcessEnv;
    /** The broker the services share, in place of a new embedded one in memory (kept open at stop). */
    broker?: EventBroker;
  } = {},
): Promise<Stack> {
  const broker = options.broker ?? embeddedBroker({ file: ':memory:', logger: createLogger('broker', 'silent'), pollMs: 20 });
  const dbs = options.dbs ?? seededDatabases();
  const keys = options.keys ?? (await generateDevKeys());
  const bearer = async (who: Who) => `Bearer ${await tokenFor(keys, who)}`;
  // With logLines, every service logs at info into that array (one JSON line each); otherwise silent.
  const lines = options.logLines;
  const silent = (name: string) =>
    lines ? createLogger(name, 'info', { write: (line: string) => void lines.push(line) }) : createLogger(name, 'silent');
  const subgraph = (prefix: string) => ({
    ...loadSubgraphConfig({ prefix, defaultPort: 0, databaseFile: ':memory:' }, {}),
    host: '127.0.0.1',
    logLevel: 'silent' as const,
    events: PRIVATE_EVENTS,
  });
  const common = { clock, internalPublicKey: keys.internal.publicKey, broker };
  // The process service calls the gateway, which starts last: it reads the URL at each call.
  let gatewayUrl = '';
  const crm = await startCrm(
    { ...loadCrmConfig(options.crmEnv ?? {}), ...subgraph('CRM') },
    { ...common, database: dbs.crm, logger: silent('crm'), ...options.crm },
  );
  const erp = await startErp(
    { ...loadErpConfig(options.erpEnv ?? {}), ...subgraph('ERP') },
    {
      ...common,
      database: dbs.erp,
      logger: silent('erp'),
      ...options.erp,
    },
  );
  const support = await startSupport(
    { ...loadSupportConfig(options.supportEnv ?? {}), ...subgraph('SUPPORT') },
    {
      ...common,
      database: dbs.support,
      logger: silent('support'),
      ...options.support,
    },
  );
  const processes = await startProcesses(
    // The process service sizes its waits from the gateway's deadline (SUBGRAPH_TIMEOUT_MS), as when they share an environment.
    {
      ...loadProcessesConfig({
        WORKFLOW_POLL_MS: '100',
        SUBGRAPH_TIMEOUT_MS: String(options.gateway?.subgraphTimeoutMs ?? STACK_SUBGRAPH_TIMEOUT_MS),
        ...options.processesEnv,
      }),
      ...subgraph('PROCESSES'),
    },
    {
      ...common,
      logger: silent('processes'),
      sql: sqliteExecutor(openDatabase(':memory:')),
      gatewayUrl: () => gatewayUrl,
      serviceToken: () => tokenFor(keys, { subject: 'concord-processes', roles: ['integration'], customerId: null }),
      ...options.processes,
    },
  );
  const gateway = await startGateway(
    gatewayConfig({
      subgraphUrls: { crm: crm.url, erp: erp.url, support: support.url, processes: processes.url },
      subgraphTimeoutMs: STACK_SUBGRAPH_TIMEOUT_MS,
      ...options.gateway,
    }),
    {
      logger: silent('gateway'),
      keys: {
        issuerPublicKey: keys.issuer.publicKey,
        issuerPrivateKey: keys.issuer.privateKey,
        internalPrivateKey: keys.internal.privateKey,
      },
      broker,
    },
  );
  gatewayUrl = gateway.url.replace('localhost', '127.0.0.1');
  return {
    dbs,
    keys,
    crm,
    erp,
    support,
    processes,
    gateway,
    broker,
    query: async (query, variables, headers) =>
      postGraphQL(gateway.url, query, variables, { authorization: await bearer('support_agent'), ...headers }),
    queryAs: async (who, query, variables) => postGraphQL(gateway.url, query, variables, { authorization: await bearer(who) }),
    bearer,
    async stop() {
      await gateway.stop();
      await Promise.all([crm.stop(), erp.stop(), support.stop(), processes.stop()]);
      if (!options.broker) await broker.close();
    },
  };
}

/** Who a test speaks as: a role (portal_customer needs its customer), or a whole identity. */
export type Who = Role | { role: Role; customer?: string } | Identity;

function claimsOf(who: Who): { roles: Role[]; customer?: string | undefined; subject: string } {
  if (typeof who === 'string') return { roles: [who], subject: `${who}@test.example` };
  if ('role' in who) return { roles: [who.role], customer: who.customer, subject: `${who.role}@test.example` };
  return { roles: [...who.roles], customer: who.customerId ?? undefined, subject: who.subject };
}

/** A client token signed by a stack's dev issuer. */
export function tokenFor(keys: DevKeys, who: Who, ttlSeconds = 300): Promise<string> {
  return signDevToken(keys.issuer.privateKey, { ...claimsOf(who), ttlSeconds });
}

export async function postGraphQL<T>(
  url: string,
  query: string,
  variables: Record<string, unknown> = {},
  headers: Record<string, string> = {},
): Promise<GraphQLResult<T>> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ query, variables }),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: JSON.parse(text) as GraphQLResult<T>['body'], text };
}

/** A registered client operation's document. */
export function operation(client: string, name: string): string {
  return readFileSync(new URL(`../../schema/operations/${client}/${name}.graphql`, import.meta.url), 'utf8');
}

/** How many calls the services made to their systems while `run` ran (connector calls, summed). */
export async function vendorCallsDuring(services: readonly RunningService[], run: () => Promise<unknown>): Promise<number> {
  const before = await Promise.all(services.map(connectorCalls));
  await run();
  const after = await Promise.all(services.map(connectorCalls));
  return services.reduce((sum, _service, i) => sum + Object.values(callsBetween(before[i]!, after[i]!)).reduce((a, b) => a + b, 0), 0);
}

/** GraphQL requests a service has served, read from its /metrics (all workers' for a gateway with several). */
export async function graphqlRequestsServed(serviceUrl: string): Promise<number> {
  const text = await fetch(serviceUrl.replace(/\/graphql$/, '/metrics')).then((response) => response.text());
  return text
    .split('\n')
    .filter((line) => line.startsWith('concord_http_request_duration_seconds_count') && line.includes('route="graphql"'))
    .reduce((sum, line) => sum + Number(line.split(' ').at(-1)), 0);
}

/** Sum of concord_connector_calls_total per "system/operation" read from a service's /metrics. */
export async function connectorCalls(service: RunningService): Promise<Map<string, number>> {
  const text = await fetch(service.url.replace(/\/graphql$/, '/metrics')).then((response) => response.text());
  const calls = new Map<string, number>();
  for (const line of text.split('\n')) {
    const match = /^concord_connector_calls_total\{([^}]*)\} (\d+(?:\.\d+)?)$/.exec(line);
    if (!match?.[1] || !match[2]) continue;
    const labels = Object.fromEntries([...match[1].matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    const key = `${labels.system}/${labels.operation}`;
    calls.set(key, (calls.get(key) ?? 0) + Number(match[2]));
  }
  return calls;
}

/** Calls made between two readings, per system/operation (zero entries left out). */
export function callsBetween(before: Map<string, number>, after: Map<string, number>): Record<string, number> {
  const delta: Record<string, number> = {};
  for (const [key, value] of after) {
    const diff = value - (before.get(key) ?? 0);
    if (diff > 0) delta[key] = diff;
  }
  return delta;
}

/** A gateway over any supergraph (written to a temporary file), with its own dev keys. */
export async function startGatewayOver(
  supergraphSdl: string,
  overrides: Partial<GatewayConfig> = {},
  logger = createLogger('gateway', 'silent'),
): Promise<{
  gateway: RunningService;
  keys: DevKeys;
  /** POSTs as a support agent; headers may add to or replace the token. */
  post<T>(query: string, variables?: Record<string, unknown>, headers?: Record<string, string>): Promise<GraphQLResult<T>>;
  stop(): Promise<void>;
}> {
  const dir = mkdtempSync(join(tmpdir(), 'concord-gateway-'));
  const path = join(dir, 'supergraph.graphql');
  writeFileSync(path, supergraphSdl);
  const keys = await generateDevKeys();
  const gateway = await startGateway(gatewayConfig({ supergraphPath: path, ...overrides }), {
    logger,
    keys: { issuerPublicKey: keys.issuer.publicKey, internalPrivateKey: keys.internal.privateKey },
  });
  return {
    gateway,
    keys,
    post: async (query, variables, headers) =>
      postGraphQL(gateway.url, query, variables, { authorization: `Bearer ${await tokenFor(keys, 'support_agent')}`, ...headers }),
    async stop() {
      await gateway.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
