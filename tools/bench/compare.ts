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
import { measure, type LoadSpec, type Subgraph } from './load.ts';
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
  replaceGenerated,
  type BenchReport,
  type Row,
} from './report.ts';

/**
 * `npm run bench`: Concord's gateway against the gateways a team would otherwise deploy
 * (@apollo/gateway and Hive Gateway, with their defaults), over the same subgraphs, the same
 * seeded data and the same load, one gateway at a time, each in its own process so its CPU and
 * memory are its own. A second phase adds latency to every system call and compares each
 * gateway's CaseContext latency with the least its query plan allows. Writes docs/benchmarks.md.
 */

const HELP = `Usage: npm run bench -- [--duration 10] [--connections 16] [--warmup 3] [--workers 1]
                        [--latency crm=80,erp=120,support=60] [--only concord,apollo-gateway]
                        [--out docs/benchmarks.md] [--no-write]

Seeds a temporary data folder (the default demo world), starts the three subgraphs as
processes, then each gateway in turn on the same subgraphs and supergraph:

  concord            gateway/src/index.ts, CACHE_STORE=memory, GATEWAY_WORKERS=--workers
  concord-entities   the same with CACHE_WHOLE_ANSWERS=false (entity cache only)
  concord-no-cache   the same with CACHE_STORE=none
  apollo-gateway     @apollo/gateway defaults under Apollo Server (tools/bench/peers/apollo-gateway.ts)
  hive-gateway       Hive Gateway defaults (tools/bench/peers/hive-gateway.config.ts)

Each gateway's CaseQueue and CaseContext answers are checked against the first gateway's, then
each operation is loaded (--warmup s unmeasured, --duration s measured, --connections). Then the
subgraphs restart with --latency ms added to every system call and CaseContext is measured again
with half the connections, against the physical limit of its query plan.

  --duration N      measured seconds per gateway and operation (default 10)
  --connections N   concurrent connections (default 16)
  --warmup N        unmeasured seconds before each measurement (default 3)
  --workers N       Concord's GATEWAY_WORKERS (default 1)
  --latency LIST    per-system latency of the second phase, e.g. crm=80,erp=120,support=60; "off" skips it
  --only LIST       gateways to run, of: concord, concord-entities, concord-no-cache, apollo-gateway, hive-gateway
  --out FILE        where to write the report (default docs/benchmarks.md)
  --no-write        print only
  --help            this text`;

const root = fileURLToPath(new URL('../..', import.meta.url));
const SYSTEMS = ['crm', 'erp', 'support'] as const;
type System = (typeof SYSTEMS)[number];
const operation = (name: string) => readFileSync(join(root, 'schema/operations/agent-console', `${name}.graphql`), 'utf8');
const CASE_QUEUE = operation('CaseQueue');
const CASE_CONTEXT = operation('CaseContext');
const AGENT_SUBJECT = 'bench@concord.example';
/** CaseContext rotates over this many open cases that have an order and an asset. */
const CASE_COUNT = 20;
const DEFAULT_LATENCY = 'crm=80,erp=120,support=60';

export interface BenchOptions {
  duration: number;
  connections: number;
  warmup: number;
  workers: number;
  /** null: no latency phase. */
  latency: Record<System, number> | null;
  only: readonly GatewayId[];
  out: string;
  write: boolean;
  help: boolean;
}

const GATEWAY_IDS = ['concord', 'concord-entities', 'concord-no-cache', 'apollo-gateway', 'hive-gateway'] as const;
type GatewayId = (typeof GATEWAY_IDS)[number];

/** The command line, validated; throws a RangeError naming the option at fault. */
export function parseBenchOptions(argv: readonly string[]): BenchOptions {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      duration: { type: 'string', default: '10' },
      connections: { type: 'string', default: '16' },
      warmup: { type: 'string', default: '3' },
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
  args(port: number): string[];
  env(port: number): Record<string, string>;
  /** Concord verifies a client token; peers forward the one token they get (see internalToken). */
  token: 'client' | 'internal';
}

interface Setup {
  dataDir: string;
  supergraphPath: string;
  ports: Record<System, number>;
  keys: DevKeys;
  tokens: { client: string; internal: string };
  options: BenchOptions;
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

function gateways(setup: Setup): Gateway[] {
  const concord = (id: GatewayId, label: string, cache: string, wholeAnswers = true): Gateway => ({
    id,
    label,
    token: 'client',
    args: () => [...GATEWAY_NODE_FLAGS, '--import', 'tsx', 'gateway/src/index.ts'],
    env: (port) => ({
      ...baseEnv(),
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
  });
  // The real entry point, not the .bin shim, so the process measured is the gateway itself.
  const hiveBin = realpathSync(join(root, 'node_modules/.bin/hive-gateway'));
  const all: Gateway[] = [
    concord('concord', CONCORD, 'memory'),
    concord('concord-entities', CONCORD_ENTITIES, 'memory', false),
    concord('concord-no-cache', CONCORD_NO_CACHE, 'none'),
    {
      id: 'apollo-gateway',
      label: APOLLO,
      token: 'internal',
      args: () => ['--import', 'tsx', 'tools/bench/peers/apollo-gateway.ts'],
      env: (port) => ({ ...baseEnv(), PORT: String(port), SUPERGRAPH: setup.supergraphPath }),
    },
    {
      id: 'hive-gateway',
      label: HIVE,
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
        join(root, 'tools/bench/peers/hive-gateway.config.ts'),
      ],
      env: () => baseEnv(),
    },
  ];
  return all.filter((gateway) => setup.options.only.includes(gateway.id));
}

const subgraphUrl = (setup: Setup, system: System) => `http://127.0.0.1:${setup.ports[system]}/graphql`;

/**
 * The one token peers get: they cannot sign Concord's per-subgraph internal tokens, so their
 * clients send one with the internal token's shape (gateway issuer, the agent's roles) valid for
 * all three subgraphs, and the peers forward it.
 */
function internalToken(keys: DevKeys, ttlSeconds: number): Promise<string> {
  return new SignJWT({ roles: ['support_agent'], customer: null, cid: 'bench' })
    .setProtectedHeader({ alg: INTERNAL_ALGORITHM, typ: 'JWT' })
    .setIssuer(INTERNAL_ISSUER)
    .setAudience([...SYSTEMS])
    .setSubject(AGENT_SUBJECT)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + ttlSeconds)
    .sign(keys.internal.privateKey);
}

/** Starts the three subgraphs on the setup's ports, with latency or without, and waits until each is ready. */
async function startSubgraphs(
  setup: Setup,
  latency: Record<System, number> | null,
): Promise<{ services: Service[]; subgraphs: Subgraph[] }> {
  const services = SYSTEMS.map((system) => {
    const prefix = system.toUpperCase();
    return startService(
      system,
      ['--import', 'tsx', `subgraphs/${system}/src/index.ts`],
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
const contextBody = (id: string) => JSON.stringify({ query: CASE_CONTEXT, operationName: 'CaseContext', variables: { id } });

/** What every gateway must answer: picked and recorded through the first gateway that runs. */
interface Reference {
  gateway: string;
  caseIds: string[];
  queue: unknown;
  contexts: Map<string, unknown>;
}

function answerOrThrow(what: string, answer: GraphQLAnswer): unknown {
  if (answer.status !== 200 || answer.errors?.length || answer.data === undefined) {
    throw new Error(`${what} answered HTTP ${answer.status}${answer.errors?.length ? `: ${answer.errors[0]?.message}` : ''}`);
  }
  return answer.data;
}

async function recordReference(label: string, url: string, headers: Record<string, string>): Promise<Reference> {
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
  for (const id of caseIds) contexts.set(id, answerOrThrow(`CaseContext(${id})`, await post(url, headers, contextBody(id))));
  return { gateway: label, caseIds, queue, contexts };
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

/** Throws unless the gateway answers CaseQueue and every CaseContext exactly as the reference did. */
async function checkAnswers(reference: Reference, url: string, headers: Record<string, string>): Promise<void> {
  const queue = answerOrThrow('CaseQueue', await post(url, headers, queueBody(100)));
  const queueDiff = firstDifference(queue, reference.queue);
  if (queueDiff) throw new Error(`CaseQueue differs from ${reference.gateway}'s at ${queueDiff}`);
  await Promise.all(
    reference.caseIds.map(async (id) => {
      const context = answerOrThrow(`CaseContext(${id})`, await post(url, headers, contextBody(id)));
      const diff = firstDifference(context, reference.contexts.get(id));
      if (diff) throw new Error(`CaseContext(${id}) differs from ${reference.gateway}'s at ${diff}`);
    }),
  );
}

const log = (message: string) => process.stderr.write(`${message}\n`);

interface Phase {
  name: 'throughput' | 'latency';
  connections: number;
}

/**
 * Starts one gateway, checks its answers (recording the reference with the first one), runs the
 * phase's loads, stops it. A gateway that fails gets its rows marked with why; the run goes on.
 */
async function runGateway(
  setup: Setup,
  gateway: Gateway,
  phase: Phase,
  subgraphs: readonly Subgraph[],
  state: { reference: Reference | null; report: BenchReport },
): Promise<void> {
  const { options } = setup;
  const operations = phase.name === 'throughput' ? ['CaseQueue', 'CaseContext'] : ['CaseContext'];
  const rows = phase.name === 'throughput' ? state.report.throughput : state.report.latency;
  const fail = (why: string, detail = why) => {
    log(`  ${gateway.label}: FAILED ${detail}`);
    for (const op of operations) rows.push({ gateway: gateway.label, operation: op, result: { failure: why } });
    if (phase.name === 'throughput' && gateway.id.startsWith('concord')) {
      state.report.queueScaling.push({ gateway: gateway.label, first10: null, first100: null });
    }
  };
  const port = await freePort();
  const url = `http://127.0.0.1:${port}/graphql`;
  const headers = { authorization: `Bearer ${setup.tokens[gateway.token]}` };
  log(`${gateway.label}: starting on port ${port}`);
  const service = startService(gateway.label, gateway.args(port), gateway.env(port), root);
  try {
    try {
      await waitUntil(service, async () => {
        const answer = await post(url, headers, JSON.stringify({ query: '{ __typename }' }));
        return answer.status === 200 && answer.data !== undefined;
      });
    } catch (error) {
      const summary = error instanceof ServiceStartError ? error.summary : (error as Error).message;
      return fail(`did not start: ${summary}`, `did not start: ${(error as Error).message}`);
    }
    try {
      if (!state.reference) {
        state.reference = await recordReference(gateway.label, url, headers);
        state.report.reference = { gateway: gateway.label, caseIds: state.reference.caseIds };
        log(`  reference answers from ${gateway.label}; CaseContext over ${state.reference.caseIds.length} cases`);
      } else {
        await checkAnswers(state.reference, url, headers);
        log(`  answers equal to ${state.reference.gateway}'s`);
      }
    } catch (error) {
      process.exitCode = 1;
      return fail(`wrong answers, not measured: ${(error as Error).message}`);
    }
    const caseIds = state.reference.caseIds;
    const load = (bodies: string[], overrides: Partial<LoadSpec> = {}): LoadSpec => ({
      url,
      headers,
      bodies,
      connections: phase.connections,
      duration: options.duration,
      warmup: options.warmup,
      ...overrides,
    });
    const specs: Record<string, LoadSpec> = {
      CaseQueue: load([queueBody(100)]),
      CaseContext: load(caseIds.map(contextBody)),
    };
    for (const op of operations) {
      if (!service.running()) {
        const why = `exited during the run: ${failureReason(service.output())}`;
        log(`  ${gateway.label}: ${why}\n${service.output()}`);
        rows.push({ gateway: gateway.label, operation: op, result: { failure: why } });
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
        load([queueBody(10)], { duration: Math.min(options.duration, 5), warmup: Math.min(options.warmup, 1) }),
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
  } finally {
    await service.stop();
  }
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
  const cleanup = () => rmSync(dataDir, { recursive: true, force: true });
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
  // Whatever ends the run, no service and no data folder outlives it.
  process.once('exit', () => {
    killAllServicesNow();
    cleanup();
  });
  try {
    log(`data folder ${dataDir}`);
    await ensureSeeded(dataDir, { info: log });
    const keys = await ensureDevKeys(dataDir);
    // Long enough for any run; the gateway still refuses tokens older than AUTH_MAX_TOKEN_AGE_S.
    const ttlSeconds = 6 * 3600;
    const tokens = {
      client: await signDevToken(keys.issuer.privateKey, { roles: ['support_agent'], subject: AGENT_SUBJECT, ttlSeconds }),
      internal: await internalToken(keys, ttlSeconds),
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
    const setup: Setup = { dataDir, supergraphPath, ports, keys, tokens, options };

    const latency: Latencies = options.latency ?? { crm: 0, erp: 0, support: 0 };
    const plan = buildQueryPlan(supergraph, CASE_CONTEXT, 'CaseContext');
    const report: BenchReport = {
      machine: machine(),
      settings: {
        duration: options.duration,
        warmup: options.warmup,
        connections: options.connections,
        latencyConnections: Math.max(1, Math.round(options.connections / 2)),
        workers: options.workers,
        latency: options.latency,
        gateways: gateways(setup).map((gateway) => gateway.label),
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
    const state = { reference: null as Reference | null, report };

    log('\nphase 1: throughput, embedded systems without added latency');
    let running = await startSubgraphs(setup, null);
    for (const gateway of gateways(setup))
      await runGateway(setup, gateway, { name: 'throughput', connections: options.connections }, running.subgraphs, state);
    await Promise.all(running.services.map((service) => service.stop()));

    if (options.latency) {
      log(
        `\nphase 2: CaseContext with system latency (${Object.entries(latency)
          .map(([s, ms]) => `${s} ${ms} ms`)
          .join(', ')})`,
      );
      running = await startSubgraphs(setup, options.latency);
      for (const gateway of gateways(setup)) {
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
