import { GATEWAY_NODE_FLAGS } from '../../gateway/src/node-flags.ts';
import { existsSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { isDeepStrictEqual, parseArgs } from 'node:util';
import { SignJWT } from 'jose';
import * as prettier from 'prettier';
import { INTERNAL_ISSUER } from '../../platform/internal-token.ts';
import { ensureDevKeys, INTERNAL_ALGORITHM, type DevKeys } from '../../platform/keys.ts';
import { ensureSeeded } from '../seed/index.ts';
import { signDevToken } from '../../platform/dev-token.ts';
import { buildForBench, type Build } from './build.ts';
import { measure, type LoadSpec, type Subgraph } from './load.ts';
import { MixState, mixGenerator, queueVariants, shuffled, WRITE_QUERY, type QueueVariant } from './mix.ts';
import { buildQueryPlan, formatPlanSteps, planLimit, sequentialSteps, type Latencies } from './plan-limit.ts';
import {
  failureReason,
  freePort,
  killAllServicesNow,
  ServiceStartError,
  startService,
  stopAllServices,
  waitUntil,
  type Service,
} from './processes.ts';
import {
  APOLLO,
  CONCORD,
  CONCORD_ENTITIES,
  CONCORD_NO_CACHE,
  formatConsole,
  formatMarkdown,
  HIVE,
  HIVE_RUST,
  replaceGenerated,
  type BenchReport,
} from './report.ts';

/**
 * `npm run bench`: Concord's gateway against the gateways a team would otherwise deploy
 * (@apollo/gateway, Hive Gateway, and Hive Gateway with the Rust query planner, each with its
 * defaults), over the same subgraphs, the same seeded data and the same load, one gateway at a
 * time, each in its own process so its CPU and memory are its own.
 *
 * 1. The realistic profile (the headline): the agent console's mix over thousands of cases,
 *    with writes and the change notices they cause, in interleaved rounds (A B C … A B C …).
 * 2. The repeated-query measurement: one CaseQueue, and CaseContext over 20 cases.
 * 3. The latency phase: CaseContext with latency added to every system call, against the least
 *    its query plan allows.
 *
 * Writes docs/benchmarks.md.
 */

const HELP = `Usage: npm run bench -- [--duration 15] [--warmup 4] [--rounds 3] [--cases 5000] [--seed 1]
                        [--repeat-duration 6] [--connections 16] [--workers 1]
                        [--latency crm=80,erp=120,support=60] [--only concord,apollo-gateway]
                        [--out docs/benchmarks.md] [--no-write]

Seeds a temporary data folder (the default demo world), compiles the services (the repository's
production build, tsc -p tsconfig.build.json; the peers' entry files transpiled to plain ES
modules), starts the three subgraphs as processes with node, then each gateway in turn on the
same subgraphs and supergraph, every gateway with NODE_ENV=production:

  concord            the compiled gateway/src/index.ts, CACHE_STORE=memory, GATEWAY_WORKERS=--workers
  concord-entities   the same with CACHE_WHOLE_ANSWERS=false (entity cache only)
  concord-no-cache   the same with CACHE_STORE=none
  apollo-gateway     @apollo/gateway defaults under Apollo Server (tools/bench/peers/apollo-gateway.ts, compiled)
  hive-gateway       the hive-gateway CLI with its defaults (tools/bench/peers/hive-gateway.config.ts, compiled)
  hive-gateway-rust  the same with the Rust query planner, @graphql-hive/router-runtime
                     (tools/bench/peers/hive-gateway-rust.config.ts, compiled)

Realistic profile: 70% CaseContext over --cases distinct cases (Zipf, s = 1), 28% CaseQueue over
its views (status, priority and assignee filters, page sizes 10 to 100, next pages), 2% writes
(an internal note on a case, whose change notice the support subgraph publishes), --rounds
rounds, each gateway once per round in the same order; --warmup s unmeasured, --duration s
measured per window. Answers of a fixed sample (cases never written, every queue view) are
checked against the first gateway's before a gateway's first window. Then the repeated-query
measurement (--repeat-duration s per operation), then, with --latency, the latency phase.

  --duration N         measured seconds per realistic window (default 15)
  --warmup N           unmeasured seconds before each realistic window (default 4; other phases at most 2)
  --rounds N           realistic rounds (default 3, at least 1)
  --cases N            distinct cases CaseContext draws from (default 5000)
  --seed N             seed of the realistic mix (default 1)
  --repeat-duration N  measured seconds per repeated-query and latency measurement (default 6)
  --connections N      concurrent connections (default 16; the latency phase uses half)
  --workers N          Concord's GATEWAY_WORKERS (default 1)
  --latency LIST       per-system latency of the latency phase, e.g. crm=80,erp=120,support=60; "off" skips it
  --only LIST          gateways to run, of: concord, concord-entities, concord-no-cache, apollo-gateway, hive-gateway,
                       hive-gateway-rust
  --out FILE           where to write the report (default docs/benchmarks.md)
  --no-write           print only
  --help               this text`;

const root = fileURLToPath(new URL('../..', import.meta.url));
const SYSTEMS = ['crm', 'erp', 'support'] as const;
type System = (typeof SYSTEMS)[number];
const operation = (name: string) => readFileSync(join(root, 'schema/operations/agent-console', `${name}.graphql`), 'utf8');
const CASE_QUEUE = operation('CaseQueue');
const CASE_CONTEXT = operation('CaseContext');
const AGENT_SUBJECT = 'bench@concord.example';
/** Concord's own processes' identity (AUTH_SERVICE_SUBJECTS' default): the one that may write case notes. */
const SERVICE_SUBJECT = 'concord-processes';
/** The repeated-query CaseContext rotates over this many open cases that have an order and an asset. */
const CASE_COUNT = 20;
/** Cases of the realistic mix whose CaseContext is checked across gateways (never written). */
const CHECK_CASES = 30;
/** At most this many benchmark notes on one case over a run. */
const NOTES_PER_CASE = 25;
const DEFAULT_LATENCY = 'crm=80,erp=120,support=60';

export interface BenchOptions {
  duration: number;
  connections: number;
  warmup: number;
  rounds: number;
  cases: number;
  seed: number;
  repeatDuration: number;
  workers: number;
  /** null: no latency phase. */
  latency: Record<System, number> | null;
  only: readonly GatewayId[];
  out: string;
  write: boolean;
  help: boolean;
}

const GATEWAY_IDS = ['concord', 'concord-entities', 'concord-no-cache', 'apollo-gateway', 'hive-gateway', 'hive-gateway-rust'] as const;
type GatewayId = (typeof GATEWAY_IDS)[number];

/** The command line, validated; throws a RangeError naming the option at fault. */
export function parseBenchOptions(argv: readonly string[]): BenchOptions {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      duration: { type: 'string', default: '15' },
      connections: { type: 'string', default: '16' },
      warmup: { type: 'string', default: '4' },
      rounds: { type: 'string', default: '3' },
      cases: { type: 'string', default: '5000' },
      seed: { type: 'string', default: '1' },
      'repeat-duration': { type: 'string', default: '6' },
      workers: { type: 'string', default: '1' },
      latency: { type: 'string', default: DEFAULT_LATENCY },
      only: { type: 'string', default: GATEWAY_IDS.join(',') },
      out: { type: 'string', default: 'docs/benchmarks.md' },
      'no-write': { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  const whole = (name: string, value: string, min: number, max: number) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max)
      throw new RangeError(`--${name} must be a whole number from ${min} to ${max} (got ${value})`);
    return n;
  };
  const only = values.only
    .split(',')
    .map((id) => id.trim())
    .filter(Boolean);
  const unknown = only.filter((id) => !(GATEWAY_IDS as readonly string[]).includes(id));
  if (unknown.length || only.length === 0) {
    throw new RangeError(`--only takes a comma list of ${GATEWAY_IDS.join(', ')} (got ${values.only})`);
  }
  return {
    duration: whole('duration', values.duration, 1, 3600),
    connections: whole('connections', values.connections, 1, 1000),
    warmup: whole('warmup', values.warmup, 0, 600),
    rounds: whole('rounds', values.rounds, 1, 100),
    cases: whole('cases', values.cases, 100, 20_000),
    seed: whole('seed', values.seed, 0, 2 ** 31 - 1),
    repeatDuration: whole('repeat-duration', values['repeat-duration'], 1, 3600),
    workers: whole('workers', values.workers, 1, 64),
    latency: parseLatency(values.latency),
    // Always in the same order, so the first (the reference) is Concord whenever it runs.
    only: GATEWAY_IDS.filter((id) => only.includes(id)),
    out: values.out,
    write: !values['no-write'],
    help: values.help,
  };
}

/** "crm=80,erp=120,support=60" (systems left out: 0), or "off". */
export function parseLatency(text: string): Record<System, number> | null {
  if (text.trim() === 'off') return null;
  const latency: Record<System, number> = { crm: 0, erp: 0, support: 0 };
  for (const part of text
    .split(',')
    .map((item) => item.trim())
    .filter(Boolean)) {
    const match = /^([a-z]+)=(\d+)$/.exec(part);
    if (!match || !(SYSTEMS as readonly string[]).includes(match[1]!) || Number(match[2]) > 60_000) {
      throw new RangeError(`--latency takes system=ms pairs of ${SYSTEMS.join(', ')} (0 to 60000 ms), or off (got ${text})`);
    }
    latency[match[1] as System] = Number(match[2]);
  }
  return latency;
}

/** A gateway under test: how to start it, and which token its clients send. */
interface Gateway {
  id: GatewayId;
  label: string;
  /** How it runs, for the report. */
  how: string;
  args(port: number): string[];
  env(port: number): Record<string, string>;
  /** Concord verifies a client token; peers forward the one token they get (see internalToken). */
  token: 'client' | 'internal';
  /** Its Prometheus counters, where it has them (Concord: cache lookups by tier, change notices). */
  metricsUrl(port: number): string | undefined;
}

interface Setup {
  dataDir: string;
  supergraphPath: string;
  ports: Record<System, number>;
  keys: DevKeys;
  /** Reads (the agent) and writes (Concord's integration identity), as each kind of gateway takes them. */
  tokens: { client: string; internal: string; clientWriter: string; internalWriter: string };
  options: BenchOptions;
  build: Build;
}

/** Only what a service needs from the shell, so a developer's own settings never leak into a run. */
function baseEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of ['PATH', 'HOME', 'TMPDIR', 'LANG', 'TZ']) {
    const value = process.env[name];
    if (value !== undefined) env[name] = value;
  }
  return env;
}

/** Every gateway process runs as in production as far as Node and its libraries go. */
const PRODUCTION = { NODE_ENV: 'production' };

function gateways(setup: Setup): Gateway[] {
  const { build } = setup;
  const concordEntry = build.entry('gateway/src/index.ts');
  const concord = (id: GatewayId, label: string, cache: string, wholeAnswers = true): Gateway => ({
    id,
    label,
    how:
      `node ${GATEWAY_NODE_FLAGS.join(' ')} dist/gateway/src/index.js (tsc -p tsconfig.build.json), NODE_ENV=production, ` +
      `CACHE_STORE=${cache}${wholeAnswers ? '' : ', CACHE_WHOLE_ANSWERS=false'}, GATEWAY_WORKERS=${setup.options.workers}`,
    token: 'client',
    args: () => [...GATEWAY_NODE_FLAGS, concordEntry],
    env: (port) => ({
      ...baseEnv(),
      ...PRODUCTION,
      GATEWAY_PORT: String(port),
      HOST: '127.0.0.1',
      DATA_DIR: setup.dataDir,
      SUPERGRAPH_PATH: setup.supergraphPath,
      ...Object.fromEntries(SYSTEMS.map((system) => [`SUBGRAPH_${system.toUpperCase()}_URL`, subgraphUrl(setup, system)])),
      LOG_LEVEL: 'warn',
      GATEWAY_WORKERS: String(setup.options.workers),
      CACHE_STORE: cache,
      CACHE_WHOLE_ANSWERS: String(wholeAnswers),
    }),
    metricsUrl: (port) => `http://127.0.0.1:${port}/metrics`,
  });
  // The real entry point, not the .bin shim, so the process measured is the gateway itself.
  const hiveBin = realpathSync(join(root, 'node_modules/.bin/hive-gateway'));
  const hive = (id: GatewayId, label: string, config: string, how: string): Gateway => ({
    id,
    label,
    how,
    token: 'internal',
    args: (port) => [
      hiveBin,
      'supergraph',
      setup.supergraphPath,
      '--port',
      String(port),
      '--host',
      '127.0.0.1',
      '--config-path',
      build.peer(config),
    ],
    env: () => ({ ...baseEnv(), ...PRODUCTION }),
    metricsUrl: () => undefined,
  });
  const all: Gateway[] = [
    concord('concord', CONCORD, 'memory'),
    concord('concord-entities', CONCORD_ENTITIES, 'memory', false),
    concord('concord-no-cache', CONCORD_NO_CACHE, 'none'),
    {
      id: 'apollo-gateway',
      label: APOLLO,
      how: 'node tools/bench/peers/apollo-gateway.ts transpiled to .mjs, NODE_ENV=production, one process',
      token: 'internal',
      args: () => [build.peer('apollo-gateway')],
      env: (port) => ({ ...baseEnv(), ...PRODUCTION, PORT: String(port), SUPERGRAPH: setup.supergraphPath }),
      metricsUrl: () => undefined,
    },
    hive(
      'hive-gateway',
      HIVE,
      'hive-gateway.config',
      'node …/@graphql-hive/gateway/dist/bin.js supergraph, config transpiled to .mjs, NODE_ENV=production, its default of one process (--fork 1)',
    ),
    hive(
      'hive-gateway-rust',
      HIVE_RUST,
      'hive-gateway-rust.config',
      'the same with unifiedGraphHandler from @graphql-hive/router-runtime (Rust query planner)',
    ),
  ];
  return all.filter((gateway) => setup.options.only.includes(gateway.id));
}

const subgraphUrl = (setup: Setup, system: System) => `http://127.0.0.1:${setup.ports[system]}/graphql`;

/**
 * The one token peers get: they cannot sign Concord's per-subgraph internal tokens, so their
 * clients send one with the internal token's shape (gateway issuer, the caller's roles) valid
 * for all three subgraphs, and the peers forward it.
 */
function internalToken(keys: DevKeys, ttlSeconds: number, roles: string[], subject: string): Promise<string> {
  return new SignJWT({ roles, customer: null, cid: 'bench' })
    .setProtectedHeader({ alg: INTERNAL_ALGORITHM, typ: 'JWT' })
    .setIssuer(INTERNAL_ISSUER)
    .setAudience([...SYSTEMS])
    .setSubject(subject)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + ttlSeconds)
    .sign(keys.internal.privateKey);
}

/** Starts the three compiled subgraphs on the setup's ports, with latency or without, and waits until each is ready. */
async function startSubgraphs(
  setup: Setup,
  latency: Record<System, number> | null,
): Promise<{ services: Service[]; subgraphs: Subgraph[] }> {
  const services = SYSTEMS.map((system) => {
    const prefix = system.toUpperCase();
    return startService(
      system,
      [setup.build.entry(`subgraphs/${system}/src/index.ts`)],
      {
        ...baseEnv(),
        DATA_DIR: setup.dataDir,
        [`${prefix}_PORT`]: String(setup.ports[system]),
        HOST: '127.0.0.1',
        LOG_LEVEL: 'warn',
        // The ERP's return process needs nothing more in development: it writes beside the data.
        ...(system === 'erp' ? { PROCESS_DATABASE: join(setup.dataDir, 'processes.sqlite') } : {}),
        ...(latency ? { [`${prefix}_LATENCY_MS`]: String(latency[system]) } : {}),
      },
      root,
    );
  });
  await Promise.all(
    services.map((service, i) => waitUntil(service, async () => (await fetch(`http://127.0.0.1:${setup.ports[SYSTEMS[i]!]}/ready`)).ok)),
  );
  return {
    services,
    subgraphs: services.map((service, i) => ({ pid: service.pid, metricsUrl: `http://127.0.0.1:${setup.ports[SYSTEMS[i]!]}/metrics` })),
  };
}

interface GraphQLAnswer {
  status: number;
  data?: unknown;
  errors?: { message?: string }[];
}

async function post(url: string, headers: Record<string, string>, body: string): Promise<GraphQLAnswer> {
  const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
  const text = await response.text();
  try {
    return { status: response.status, ...(JSON.parse(text) as object) };
  } catch {
    return { status: response.status, errors: [{ message: text.slice(0, 200) }] };
  }
}

const queueBody = (first: number) => JSON.stringify({ query: CASE_QUEUE, operationName: 'CaseQueue', variables: { first } });
const queueViewBody = (view: QueueVariant) => JSON.stringify({ query: CASE_QUEUE, operationName: 'CaseQueue', variables: view.variables });
const contextBody = (id: string) => JSON.stringify({ query: CASE_CONTEXT, operationName: 'CaseContext', variables: { id } });

/**
 * What every gateway must answer, recorded through the first gateway that runs, before any
 * write: the repeated-query operations, and the realistic mix's sample. Writes only add notes
 * to cases outside the sample, and a note changes no field of CaseQueue, so these answers stay
 * the truth for the whole run.
 */
interface Reference {
  gateway: string;
  /** The UTC day the answers were recorded: fields counted from today (days remaining) move at midnight. */
  day: number;
  /** The repeated-query measurement's CaseContext cases. */
  caseIds: string[];
  queue: unknown;
  contexts: Map<string, unknown>;
  /** The realistic mix: its cases hottest first, its queue views, and the checked answers. */
  mix: {
    caseIds: string[];
    reserved: Set<string>;
    queues: QueueVariant[];
    checkCases: string[];
    queueAnswers: Map<string, unknown>;
  };
}

function answerOrThrow(what: string, answer: GraphQLAnswer): unknown {
  if (answer.status !== 200 || answer.errors?.length || answer.data === undefined) {
    throw new Error(`${what} answered HTTP ${answer.status}${answer.errors?.length ? `: ${answer.errors[0]?.message}` : ''}`);
  }
  return answer.data;
}

interface CasePage {
  cases: { pageInfo: { hasNextPage: boolean; endCursor: string | null }; nodes: { id: string; assignee: { id: string } | null }[] };
}

/** The mix's cases (real ids, all statuses, in an order fixed by the seed), its queue views with real cursors. */
async function collectMix(
  url: string,
  headers: Record<string, string>,
  options: BenchOptions,
  repeated: readonly string[],
): Promise<Omit<Reference['mix'], 'queueAnswers'>> {
  const ids: string[] = [];
  const assigneeCounts = new Map<string, number>();
  let after: string | null = null;
  while (ids.length < options.cases) {
    const page = answerOrThrow(
      'listing cases',
      await post(
        url,
        headers,
        JSON.stringify({
          query:
            'query Cases($after: String) { cases(first: 100, after: $after, filter: { status: [NEW, OPEN, PENDING, ON_HOLD, SOLVED, CLOSED] }) { pageInfo { hasNextPage endCursor } nodes { id assignee { id } } } }',
          variables: { after },
        }),
      ),
    ) as CasePage;
    for (const node of page.cases.nodes) {
      ids.push(node.id);
      if (node.assignee) assigneeCounts.set(node.assignee.id, (assigneeCounts.get(node.assignee.id) ?? 0) + 1);
    }
    if (!page.cases.pageInfo.hasNextPage || !page.cases.pageInfo.endCursor) break;
    after = page.cases.pageInfo.endCursor;
  }
  if (ids.length < 100) throw new Error(`only ${ids.length} cases in the seeded data`);
  const caseIds = shuffled(ids.slice(0, options.cases), options.seed);
  // Spread over the ranking, hot to cold, but never the very hottest: those take the writes.
  const step = Math.max(1, Math.floor(caseIds.length / CHECK_CASES));
  const checkCases = Array.from(
    { length: Math.min(CHECK_CASES, caseIds.length) },
    (_, i) => caseIds[Math.min(caseIds.length - 1, 2 + i * step)]!,
  );
  const reserved = new Set([...checkCases, ...repeated]);
  const assignees = [...assigneeCounts.entries()]
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .slice(0, 4)
    .map(([id]) => id);
  // Next pages of the views agents page through, from the real first pages' end cursors.
  const cursors: { name: string; first: number; after: string }[] = [];
  for (const [first, pages] of [
    [25, 3],
    [50, 2],
    [100, 2],
  ] as const) {
    let cursor: string | null = null;
    for (let page = 2; page <= pages; page++) {
      const answer = answerOrThrow(
        'a first page of the queue',
        await post(
          url,
          headers,
          JSON.stringify({ query: CASE_QUEUE, operationName: 'CaseQueue', variables: { first, ...(cursor ? { after: cursor } : {}) } }),
        ),
      ) as CasePage;
      cursor = answer.cases.pageInfo.endCursor;
      if (!answer.cases.pageInfo.hasNextPage || !cursor) break;
      cursors.push({ name: `new+open/${first} page ${page}`, first, after: cursor });
    }
  }
  return { caseIds, reserved, queues: queueVariants({ assignees, cursors }), checkCases };
}

async function recordReference(label: string, url: string, headers: Record<string, string>, options: BenchOptions): Promise<Reference> {
  const picked = answerOrThrow(
    'picking open cases',
    await post(
      url,
      headers,
      JSON.stringify({
        query: '{ cases(first: 100, filter: { status: [OPEN] }) { nodes { id order { number } asset { serialNumber } } } }',
      }),
    ),
  ) as { cases: { nodes: { id: string; order: unknown; asset: unknown }[] } };
  const caseIds = picked.cases.nodes
    .filter((node) => node.order && node.asset)
    .slice(0, CASE_COUNT)
    .map((node) => node.id);
  if (caseIds.length === 0) throw new Error('no open case with an order and an asset to load CaseContext with');
  const queue = answerOrThrow('CaseQueue', await post(url, headers, queueBody(100)));
  const contexts = new Map<string, unknown>();
  const mix = await collectMix(url, headers, options, caseIds);
  for (const id of new Set([...caseIds, ...mix.checkCases]))
    contexts.set(id, answerOrThrow(`CaseContext(${id})`, await post(url, headers, contextBody(id))));
  const queueAnswers = new Map<string, unknown>();
  for (const view of mix.queues)
    queueAnswers.set(view.name, answerOrThrow(`CaseQueue ${view.name}`, await post(url, headers, queueViewBody(view))));
  return { gateway: label, day: utcDay(), caseIds, queue, contexts, mix: { ...mix, queueAnswers } };
}

const utcDay = () => Math.floor(Date.now() / 86_400_000);

/**
 * An answer as it would have been on the reference's day: `daysRemaining` counts from today, so
 * a run that crosses midnight sees it drop by one; the days since are added back.
 */
export function asOfDay(value: unknown, daysSince: number): unknown {
  if (daysSince === 0 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((item) => asOfDay(item, daysSince));
  return Object.fromEntries(
    Object.entries(value).map(([key, item]) => [
      key,
      key === 'daysRemaining' && typeof item === 'number' ? item + daysSince : asOfDay(item, daysSince),
    ]),
  );
}

/** The first place two JSON values differ, as a path; null when they are equal. */
export function firstDifference(a: unknown, b: unknown, path = '$'): string | null {
  if (isDeepStrictEqual(a, b)) return null;
  if (a && b && typeof a === 'object' && typeof b === 'object' && Array.isArray(a) === Array.isArray(b)) {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    for (const key of keys) {
      const found = firstDifference((a as Record<string, unknown>)[key], (b as Record<string, unknown>)[key], `${path}.${key}`);
      if (found) return found;
    }
  }
  return `${path}: ${JSON.stringify(a)?.slice(0, 80)} ≠ ${JSON.stringify(b)?.slice(0, 80)}`;
}

/** Throws unless the gateway answers CaseQueue and every CaseContext of `ids` exactly as the reference did. */
async function checkContexts(reference: Reference, ids: readonly string[], url: string, headers: Record<string, string>): Promise<void> {
  await Promise.all(
    ids.map(async (id) => {
      const context = answerOrThrow(`CaseContext(${id})`, await post(url, headers, contextBody(id)));
      const diff = firstDifference(asOfDay(context, utcDay() - reference.day), reference.contexts.get(id));
      if (diff) throw new Error(`CaseContext(${id}) differs from ${reference.gateway}'s at ${diff}`);
    }),
  );
}

/** The repeated-query operations: CaseQueue (100) and the 20 CaseContexts. */
async function checkAnswers(reference: Reference, url: string, headers: Record<string, string>): Promise<void> {
  const queue = answerOrThrow('CaseQueue', await post(url, headers, queueBody(100)));
  const queueDiff = firstDifference(queue, reference.queue);
  if (queueDiff) throw new Error(`CaseQueue differs from ${reference.gateway}'s at ${queueDiff}`);
  await checkContexts(reference, reference.caseIds, url, headers);
}

/** The realistic mix's sample: every queue view and the checked cases. */
async function checkMixAnswers(reference: Reference, url: string, headers: Record<string, string>): Promise<void> {
  for (const view of reference.mix.queues) {
    const answer = answerOrThrow(`CaseQueue ${view.name}`, await post(url, headers, queueViewBody(view)));
    const diff = firstDifference(answer, reference.mix.queueAnswers.get(view.name));
    if (diff) throw new Error(`CaseQueue ${view.name} differs from ${reference.gateway}'s at ${diff}`);
  }
  await checkContexts(reference, reference.mix.checkCases, url, headers);
}

const log = (message: string) => process.stderr.write(`${message}\n`);

interface State {
  reference: Reference | null;
  report: BenchReport;
  /** Gateways that gave wrong answers: measured in no later window. */
  wrong: Map<GatewayId, string>;
  mix: MixState | null;
}

/** A gateway whose answers differ from the reference: the run fails, and it is measured in no later window. */
function wrongAnswers(state: State, gateway: { id: GatewayId; label: string }, error: unknown): string {
  process.exitCode = 1;
  const why = `wrong answers, not measured: ${(error as Error).message}`;
  log(`  ${gateway.label}: FAILED ${why}`);
  state.wrong.set(gateway.id, why);
  return why;
}

/**
 * Starts a gateway and waits until it answers; resolves to the service, or to why it did not
 * start. `body` runs with it and it is stopped afterwards, whatever happens.
 */
async function withGateway(
  setup: Setup,
  gateway: Gateway,
  body: (service: Service, url: string, port: number) => Promise<void>,
): Promise<string | null> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}/graphql`;
  const headers = { authorization: `Bearer ${setup.tokens[gateway.token]}` };
  const service = startService(gateway.label, gateway.args(port), gateway.env(port), root);
  try {
    try {
      await waitUntil(service, async () => {
        const answer = await post(url, headers, JSON.stringify({ query: '{ __typename }' }));
        return answer.status === 200 && answer.data !== undefined;
      });
    } catch (error) {
      const summary = error instanceof ServiceStartError ? error.summary : (error as Error).message;
      log(`  ${gateway.label}: FAILED did not start: ${(error as Error).message}`);
      return `did not start: ${summary}`;
    }
    await body(service, url, port);
    return null;
  } finally {
    await service.stop();
  }
}

const exitedWhy = (service: Service) => `exited during the run: ${failureReason(service.output())}`;

/** One realistic window of one gateway in one round: checks its answers first if this is its first window. */
async function runRealisticWindow(
  setup: Setup,
  gateway: Gateway,
  round: number,
  subgraphs: readonly Subgraph[],
  state: State,
): Promise<void> {
  const { options } = setup;
  const rows = state.report.realistic!.windows;
  const wrong = state.wrong.get(gateway.id);
  if (wrong) {
    rows.push({ gateway: gateway.label, round, result: { failure: wrong } });
    return;
  }
  log(`${gateway.label}: round ${round}`);
  const readHeaders = { authorization: `Bearer ${setup.tokens[gateway.token]}` };
  const failure = await withGateway(setup, gateway, async (service, url, port) => {
    try {
      if (!state.reference) {
        state.reference = await recordReference(gateway.label, url, readHeaders, options);
        const mix = state.reference.mix;
        state.mix = new MixState({
          caseQuery: CASE_CONTEXT,
          queueQuery: CASE_QUEUE,
          writeQuery: WRITE_QUERY,
          caseIds: mix.caseIds,
          reserved: mix.reserved,
          queues: mix.queues,
          notesPerCase: NOTES_PER_CASE,
          runId: `${process.pid}-${Date.now().toString(36)}`,
        });
        state.report.reference = { gateway: gateway.label, caseIds: state.reference.caseIds };
        state.report.realistic!.sample = {
          cases: mix.caseIds.length,
          queueViews: mix.queues.map((view) => view.name),
          checkedCases: mix.checkCases.length,
          reserved: mix.reserved.size,
        };
        log(
          `  reference answers from ${gateway.label}: ${mix.caseIds.length} cases, ${mix.queues.length} queue views, ` +
            `${mix.checkCases.length} + ${state.reference.caseIds.length} checked cases`,
        );
      } else if (
        round === 1 ||
        !state.report.realistic!.windows.some((row) => row.gateway === gateway.label && !('failure' in row.result))
      ) {
        await checkMixAnswers(state.reference, url, readHeaders);
        log(`  answers equal to ${state.reference.gateway}'s`);
      }
    } catch (error) {
      rows.push({ gateway: gateway.label, round, result: { failure: wrongAnswers(state, gateway, error) } });
      return;
    }
    const mixState = state.mix!;
    const readAuthorization = setup.tokens[gateway.token];
    const writeAuthorization = gateway.token === 'client' ? setup.tokens.clientWriter : setup.tokens.internalWriter;
    // The same mix for every gateway, its tokens its own.
    const spec: LoadSpec = {
      url,
      headers: {},
      bodies: [],
      connections: options.connections,
      duration: options.duration,
      warmup: options.warmup,
      generate: (connection, window) => {
        const next = mixGenerator(mixState, options.seed * 1_000 + round * 10 + (window === 'warmup' ? 1 : 0), connection);
        return () => {
          const made = next();
          return { ...made, authorization: `Bearer ${made.kind === 'write' ? writeAuthorization : readAuthorization}` };
        };
      },
      gatewayMetricsUrl: gateway.metricsUrl(port),
    };
    const writesBefore = mixState.writes;
    const result = await measure(spec, service.pid, subgraphs);
    if (!service.running()) {
      rows.push({ gateway: gateway.label, round, result: { failure: exitedWhy(service) } });
      log(`  ${gateway.label}: ${exitedWhy(service)}\n${service.output()}`);
      return;
    }
    rows.push({ gateway: gateway.label, round, result });
    const kinds = Object.entries(result.byKind ?? {})
      .map(([kind, m]) => `${kind} ${m.requests} (p95 ${m.p95.toFixed(1)} ms${m.errors ? `, ${m.errors} errors` : ''})`)
      .join(', ');
    log(
      `  ${result.rps.toFixed(1)} req/s, p50 ${result.p50.toFixed(1)} ms, p95 ${result.p95.toFixed(1)} ms, p99 ${result.p99.toFixed(1)} ms, ` +
        `${result.errors} errors, ${result.gatewayCpuMs.toFixed(2)} CPU ms/req, ${result.vendorCalls.toFixed(2)} vendor calls/req, ` +
        `load ${result.loadAverage?.toFixed(2)}, ${result.machineCores?.toFixed(2)} cores busy (${result.otherCores.toFixed(2)} elsewhere); ${kinds}; ` +
        `${mixState.writes - writesBefore} notes written with warm-up`,
    );
    if (result.errors > 0) log(`  ${gateway.label}: ${result.errors} errors; last output:\n${service.output()}`);
  });
  if (failure) rows.push({ gateway: gateway.label, round, result: { failure } });
}

interface Phase {
  name: 'throughput' | 'latency';
  connections: number;
}

/**
 * The repeated-query measurement or the latency phase for one gateway: starts it, checks its
 * answers, runs the phase's loads, stops it. A gateway that fails gets its rows marked with why.
 */
async function runGateway(setup: Setup, gateway: Gateway, phase: Phase, subgraphs: readonly Subgraph[], state: State): Promise<void> {
  const { options } = setup;
  const operations = phase.name === 'throughput' ? ['CaseQueue', 'CaseContext'] : ['CaseContext'];
  const rows = phase.name === 'throughput' ? state.report.throughput : state.report.latency;
  const fail = (why: string) => {
    for (const op of operations) rows.push({ gateway: gateway.label, operation: op, result: { failure: why } });
    if (phase.name === 'throughput' && gateway.id.startsWith('concord')) {
      state.report.queueScaling.push({ gateway: gateway.label, first10: null, first100: null });
    }
  };
  const wrong = state.wrong.get(gateway.id);
  if (wrong) return fail(wrong);
  log(`${gateway.label}: ${phase.name}`);
  const headers = { authorization: `Bearer ${setup.tokens[gateway.token]}` };
  const failure = await withGateway(setup, gateway, async (service, url) => {
    try {
      if (!state.reference) {
        state.reference = await recordReference(gateway.label, url, headers, options);
        state.report.reference = { gateway: gateway.label, caseIds: state.reference.caseIds };
        log(`  reference answers from ${gateway.label}; CaseContext over ${state.reference.caseIds.length} cases`);
      } else {
        await checkAnswers(state.reference, url, headers);
        log(`  answers equal to ${state.reference.gateway}'s`);
      }
    } catch (error) {
      return fail(wrongAnswers(state, gateway, error));
    }
    const caseIds = state.reference.caseIds;
    const load = (bodies: string[], overrides: Partial<LoadSpec> = {}): LoadSpec => ({
      url,
      headers,
      bodies,
      connections: phase.connections,
      duration: options.repeatDuration,
      warmup: Math.min(options.warmup, 2),
      ...overrides,
    });
    const specs: Record<string, LoadSpec> = {
      CaseQueue: load([queueBody(100)]),
      CaseContext: load(caseIds.map(contextBody)),
    };
    for (const op of operations) {
      if (!service.running()) {
        log(`  ${gateway.label}: ${exitedWhy(service)}\n${service.output()}`);
        rows.push({ gateway: gateway.label, operation: op, result: { failure: exitedWhy(service) } });
        continue;
      }
      const result = await measure(specs[op]!, service.pid, subgraphs);
      rows.push({ gateway: gateway.label, operation: op, result });
      log(
        `  ${op}: ${result.rps.toFixed(1)} req/s, p50 ${result.p50.toFixed(1)} ms, p95 ${result.p95.toFixed(1)} ms, ` +
          `${result.errors} errors, ${result.gatewayCpuMs.toFixed(2)} CPU ms/req, ${result.vendorCalls.toFixed(2)} vendor calls/req, ` +
          `${result.otherCores.toFixed(2)} cores busy elsewhere`,
      );
      if (result.errors > 0) log(`  ${gateway.label} ${op}: ${result.errors} errors; last output:\n${service.output()}`);
    }
    if (phase.name === 'throughput' && gateway.id.startsWith('concord') && service.running()) {
      // Only the vendor calls matter here: a shorter run gives the same per-request count.
      const first100 = rows.find((row) => row.gateway === gateway.label && row.operation === 'CaseQueue')?.result;
      const few = await measure(
        load([queueBody(10)], { duration: Math.min(options.repeatDuration, 4), warmup: Math.min(options.warmup, 1) }),
        service.pid,
        subgraphs,
      );
      state.report.queueScaling.push({
        gateway: gateway.label,
        first10: few.vendorCalls,
        first100: first100 && !('failure' in first100) ? first100.vendorCalls : null,
      });
      log(`  CaseQueue (10 cases): ${few.vendorCalls.toFixed(2)} vendor calls/req`);
    }
  });
  if (failure) fail(failure);
}

function machine(): BenchReport['machine'] {
  let cpu = cpus()[0]?.model ?? 'unknown CPU';
  try {
    cpu = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? cpu;
  } catch {
    // Not Linux: os.cpus() said it.
  }
  return {
    cpu,
    cores: cpus().length,
    node: process.version,
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    loadAverage: loadavg()[0] ?? 0,
  };
}

async function main(argv: string[]): Promise<void> {
  const options = parseBenchOptions(argv);
  if (options.help) {
    console.log(HELP);
    return;
  }
  const startedAt = performance.now();
  const dataDir = mkdtempSync(join(tmpdir(), 'concord-bench-'));
  let build: Build | null = null;
  const cleanup = () => {
    rmSync(dataDir, { recursive: true, force: true });
    build?.remove();
  };
  // Ctrl+C reaches this process more than once (npm and tsx pass it on too): stop once, then exit.
  let interrupted = false;
  const interrupt = (signal: NodeJS.Signals) => {
    if (interrupted) return;
    interrupted = true;
    log(`\n${signal}: stopping every service`);
    void stopAllServices().finally(() => process.exit(130));
  };
  process.on('SIGINT', interrupt);
  process.on('SIGTERM', interrupt);
  // Whatever ends the run, no service, no data folder and no build outlives it.
  process.once('exit', () => {
    killAllServicesNow();
    cleanup();
  });
  try {
    log(`data folder ${dataDir}`);
    log('compiling (tsc -p tsconfig.build.json; the peers transpiled)');
    const [built] = await Promise.all([buildForBench(root, log), ensureSeeded(dataDir, { info: log })]);
    build = built;
    const keys = await ensureDevKeys(dataDir);
    // Long enough for any run; the gateway still refuses tokens older than AUTH_MAX_TOKEN_AGE_S.
    const ttlSeconds = 6 * 3600;
    const tokens = {
      client: await signDevToken(keys.issuer.privateKey, { roles: ['support_agent'], subject: AGENT_SUBJECT, ttlSeconds }),
      internal: await internalToken(keys, ttlSeconds, ['support_agent'], AGENT_SUBJECT),
      clientWriter: await signDevToken(keys.issuer.privateKey, { roles: ['integration'], subject: SERVICE_SUBJECT, ttlSeconds }),
      internalWriter: await internalToken(keys, ttlSeconds, ['integration'], SERVICE_SUBJECT),
    };
    const ports = { crm: await freePort(), erp: await freePort(), support: await freePort() };
    // One supergraph for every gateway, routed to this run's subgraphs.
    const supergraphPath = join(dataDir, 'supergraph.graphql');
    const supergraph = readFileSync(join(root, 'schema/supergraph.graphql'), 'utf8').replace(
      /@join__graph\(name: "([a-z]+)", url: "[^"]*"\)/g,
      (match, name: string) =>
        (SYSTEMS as readonly string[]).includes(name)
          ? `@join__graph(name: "${name}", url: "http://127.0.0.1:${ports[name as System]}/graphql")`
          : match,
    );
    writeFileSync(supergraphPath, supergraph);
    const setup: Setup = { dataDir, supergraphPath, ports, keys, tokens, options, build };

    const latency: Latencies = options.latency ?? { crm: 0, erp: 0, support: 0 };
    const plan = buildQueryPlan(supergraph, CASE_CONTEXT, 'CaseContext');
    const list = gateways(setup);
    const report: BenchReport = {
      machine: machine(),
      settings: {
        duration: options.repeatDuration,
        warmup: Math.min(options.warmup, 2),
        connections: options.connections,
        latencyConnections: Math.max(1, Math.round(options.connections / 2)),
        workers: options.workers,
        latency: options.latency,
        gateways: list.map((gateway) => gateway.label),
      },
      runs: [
        ...list.map((gateway) => ({ gateway: gateway.label, how: gateway.how })),
        { gateway: 'subgraphs', how: 'node dist/subgraphs/<crm|erp|support>/src/index.js (the same build), LOG_LEVEL=warn' },
      ],
      realistic: {
        rounds: options.rounds,
        duration: options.duration,
        warmup: options.warmup,
        cases: options.cases,
        seed: options.seed,
        notesPerCase: NOTES_PER_CASE,
        order: list.map((gateway) => gateway.label),
        sample: null,
        windows: [],
        writes: 0,
        notedCases: 0,
      },
      reference: null,
      throughput: [],
      queueScaling: [],
      latency: [],
      plan: options.latency
        ? { limit: planLimit(plan, latency), steps: sequentialSteps(plan), lines: formatPlanSteps(plan, latency) }
        : null,
      elapsedSeconds: 0,
    };
    const state: State = { reference: null, report, wrong: new Map(), mix: null };

    log('\nphase 1: realistic profile, interleaved rounds, embedded systems without added latency');
    let running = await startSubgraphs(setup, null);
    for (let round = 1; round <= options.rounds; round++) {
      for (const gateway of list) await runRealisticWindow(setup, gateway, round, running.subgraphs, state);
    }
    if (state.mix) {
      report.realistic!.writes = state.mix.writes;
      report.realistic!.notedCases = state.mix.notes.size;
    }

    log('\nphase 2: repeated queries (one CaseQueue, CaseContext over 20 cases)');
    for (const gateway of list)
      await runGateway(setup, gateway, { name: 'throughput', connections: options.connections }, running.subgraphs, state);
    await Promise.all(running.services.map((service) => service.stop()));

    if (options.latency) {
      log(
        `\nphase 3: CaseContext with system latency (${Object.entries(latency)
          .map(([s, ms]) => `${s} ${ms} ms`)
          .join(', ')})`,
      );
      running = await startSubgraphs(setup, options.latency);
      for (const gateway of list) {
        await runGateway(setup, gateway, { name: 'latency', connections: report.settings.latencyConnections }, running.subgraphs, state);
      }
      await Promise.all(running.services.map((service) => service.stop()));
    }

    report.elapsedSeconds = (performance.now() - startedAt) / 1000;
    console.log(`\n${formatConsole(report)}`);
    if (options.write) {
      const out = resolve(root, options.out);
      const document = replaceGenerated(existsSync(out) ? readFileSync(out, 'utf8') : null, formatMarkdown(report));
      // Formatted as the repository's prettier check wants it, so a run never fails `npm test`.
      writeFileSync(out, await prettier.format(document, { ...(await prettier.resolveConfig(out)), filepath: out }));
      log(`\nwrote ${options.out}`);
    }
  } finally {
    await stopAllServices();
    cleanup();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main(process.argv.slice(2)).catch(async (error: unknown) => {
    const expected = error instanceof RangeError || error instanceof ServiceStartError;
    console.error(`bench: ${expected ? error.message : ((error as Error).stack ?? error)}`);
    await stopAllServices();
    process.exitCode = process.exitCode || (error instanceof RangeError ? 2 : 1);
  });
}
