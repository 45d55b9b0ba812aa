import { readFileSync } from 'node:fs';
import { startGateway } from '../../gateway/src/index.ts';
import type { RunningService } from '../../platform/http-server.ts';
import { createLogger } from '../../platform/logger.ts';
import { openDatabase, type Database } from '../../platform/sqlite.ts';
import { startCrm } from '../../subgraphs/crm/src/index.ts';
import { startErp } from '../../subgraphs/erp/src/index.ts';
import { startSupport } from '../../subgraphs/support/src/index.ts';
import { seedDatabases, type SeedOptions } from '../../tools/seed/index.ts';

/** The date the test data is seeded around, and the services' clock. */
export const AS_OF = '2026-11-01';
export const clock = () => new Date(`${AS_OF}T12:00:00Z`);

export const SUPERGRAPH_PATH = new URL('../../schema/supergraph.graphql', import.meta.url).pathname;

export interface Databases {
  crm: Database;
  erp: Database;
  support: Database;
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
  crm: RunningService;
  erp: RunningService;
  support: RunningService;
  gateway: RunningService;
  /** POSTs an operation to the gateway. */
  query<T = Record<string, unknown>>(
    query: string,
    variables?: Record<string, unknown>,
    headers?: Record<string, string>,
  ): Promise<GraphQLResult<T>>;
  stop(): Promise<void>;
}

/** The three subgraphs and the gateway on free ports, over seeded in-memory systems. */
export async function startStack(options: { dbs?: Databases; logLines?: string[] } = {}): Promise<Stack> {
  const dbs = options.dbs ?? seededDatabases();
  // With logLines, every service logs at info into that array (one JSON line each); otherwise silent.
  const lines = options.logLines;
  const silent = (name: string) =>
    lines ? createLogger(name, 'info', { write: (line: string) => void lines.push(line) }) : createLogger(name, 'silent');
  const base = { host: '127.0.0.1', port: 0, logLevel: 'silent' as const };
  const subgraph = { ...base, connector: { kind: 'embedded' as const, database: ':memory:', databaseVariable: 'DATA_DIR' } };
  const crm = await startCrm(subgraph, { database: dbs.crm, clock, logger: silent('crm') });
  const erp = await startErp(subgraph, { database: dbs.erp, clock, logger: silent('erp') });
  const support = await startSupport(subgraph, { database: dbs.support, clock, logger: silent('support') });
  const gateway = await startGateway(
    {
      ...base,
      supergraphPath: SUPERGRAPH_PATH,
      supergraphUrl: null,
      supergraphWatch: false,
      supergraphPollIntervalMs: 2_000,
      subgraphUrls: { crm: crm.url, erp: erp.url, support: support.url },
      subgraphTimeoutMs: 5_000,
    },
    { logger: silent('gateway') },
  );
  return {
    dbs,
    crm,
    erp,
    support,
    gateway,
    query: (query, variables, headers) => postGraphQL(gateway.url, query, variables, headers),
    async stop() {
      await gateway.stop();
      await Promise.all([crm.stop(), erp.stop(), support.stop()]);
    },
  };
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
