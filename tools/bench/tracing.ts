import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { signDevToken } from '../../platform/dev-token.ts';
import { ensureDevKeys } from '../../platform/keys.ts';
import { measure, type Measurement } from './load.ts';
import { freePort, ownCpuMs, processTree } from './processes.ts';

/**
 * `npm run bench:tracing`: what tracing costs. The whole stack (`npm start`: gateway, three
 * subgraphs, process service) is started with tracing off (no OTEL_* variable), with every
 * request traced, and with one trace in ten sampled (OTLP/HTTP to a collector endpoint in this
 * process, which counts and drops the spans), in turn, and loaded with the same uncached CaseContext requests (three systems per
 * request). Prints req/s, latency and the CPU time of all five services per request, each mode
 * against off in the same run.
 */

const HELP = `Usage: npm run bench:tracing -- [--duration 10] [--connections 16] [--warmup 3] [--rounds 2]

  --duration N     measured seconds per mode and round (default 10)
  --connections N  concurrent connections (default 16)
  --warmup N       unmeasured seconds before each measurement (default 3)
  --rounds N       rounds of the three modes (off, on, 1 in 10 sampled), in turn, each on a fresh start (default 2)`;

const root = fileURLToPath(new URL('../..', import.meta.url));
const CASE_CONTEXT = readFileSync(join(root, 'schema/operations/agent-console/CaseContext.graphql'), 'utf8');

type Mode = 'off' | 'on' | 'sampled';
const MODES: readonly Mode[] = ['off', 'on', 'sampled'];
const MODE_LABEL: Record<Mode, string> = { off: 'off', on: 'on, every trace', sampled: 'on, 1 in 10 sampled' };

const log = (message: string) => process.stderr.write(`${message}\n`);

/** An OTLP/HTTP trace endpoint that answers at once and counts the spans it is sent. */
async function startCollector(): Promise<{ endpoint: string; spans(): number; close(): Promise<void> }> {
  let spans = 0;
  const server = http.createServer((req, res) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (text += chunk));
    req.on('end', () => {
      spans += (text.match(/"spanId"/g) ?? []).length;
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    spans: () => spans,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

async function startStack(dataDir: string, env: Record<string, string>): Promise<{ child: ChildProcess; gateway: string }> {
  const ports = {
    GATEWAY_PORT: await freePort(),
    CRM_PORT: await freePort(),
    ERP_PORT: await freePort(),
    SUPPORT_PORT: await freePort(),
    PROCESSES_PORT: await freePort(),
  };
  const inherited = Object.fromEntries(
    ['PATH', 'HOME', 'TMPDIR', 'LANG', 'TZ'].flatMap((name) => (process.env[name] === undefined ? [] : [[name, process.env[name]!]])),
  );
  const child = spawn(process.execPath, ['--import', 'tsx', 'tools/start.ts'], {
    cwd: root,
    env: {
      ...inherited,
      ...Object.fromEntries(Object.entries(ports).map(([name, port]) => [name, String(port)])),
      DATA_DIR: dataDir,
      LOG_LEVEL: 'warn',
      CACHE_STORE: 'none',
      GATEWAY_WORKERS: '1',
      CONCORD_CONFIG: '/dev/null',
      CONCORD_ENV_FILE: '/dev/null',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const deadline = Date.now() + 120_000;
  while (!output.includes('Stop with Ctrl+C')) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`npm start did not come up:\n${output.slice(-2000)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return { child, gateway: `http://127.0.0.1:${ports.GATEWAY_PORT}/graphql` };
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGINT');
  await exited;
}

async function caseIds(url: string, token: string): Promise<string[]> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({
      query: '{ cases(first: 100, filter: { status: [OPEN] }) { nodes { id order { number } asset { serialNumber } } } }',
    }),
  });
  const body = (await response.json()) as { data?: { cases: { nodes: { id: string; order: unknown; asset: unknown }[] } } };
  const ids = (body.data?.cases.nodes ?? []).filter((node) => node.order && node.asset).map((node) => node.id);
  if (!ids.length) throw new Error(`no open case to load CaseContext with: ${JSON.stringify(body).slice(0, 300)}`);
  return ids.slice(0, 20);
}

const SERVICES = ['gateway', 'crm', 'erp', 'support', 'processes'] as const;

/** CPU ms used so far by each service of an `npm start` tree, told apart by its entry point. */
function cpuByService(root: number): Record<string, number> {
  const found: Record<string, number> = {};
  for (const pid of processTree(root)) {
    let command: string;
    try {
      command = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    } catch {
      continue;
    }
    const service = /gateway\/src\/index/.test(command)
      ? 'gateway'
      : (/subgraphs\/(crm|erp|support)\//.exec(command)?.[1] ?? (/processes\/src\/index/.test(command) ? 'processes' : null));
    if (service) found[service] = (found[service] ?? 0) + ownCpuMs(pid);
  }
  return found;
}

const format = (value: number, digits = 1) => (Number.isFinite(value) ? value.toFixed(digits) : '–');

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      duration: { type: 'string', default: '10' },
      connections: { type: 'string', default: '16' },
      warmup: { type: 'string', default: '3' },
      rounds: { type: 'string', default: '2' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(HELP);
    return;
  }
  const number = (name: string, text: string, min: number, max: number) => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < min || n > max)
      throw new RangeError(`--${name} must be a whole number from ${min} to ${max} (got ${text})`);
    return n;
  };
  const duration = number('duration', values.duration, 1, 3600);
  const connections = number('connections', values.connections, 1, 1000);
  const warmup = number('warmup', values.warmup, 0, 600);
  const rounds = number('rounds', values.rounds, 1, 20);

  const dataDir = mkdtempSync(join(tmpdir(), 'concord-bench-tracing-'));
  const collector = await startCollector();
  const results: Record<Mode, { measurement: Measurement; spansPerRequest: number; perService: Record<string, number> }[]> = {
    off: [],
    on: [],
    sampled: [],
  };
  try {
    const keys = await ensureDevKeys(dataDir);
    const token = await signDevToken(keys.issuer.privateKey, {
      roles: ['support_agent'],
      subject: 'bench@concord.example',
      ttlSeconds: 3600,
    });
    for (let round = 1; round <= rounds; round++) {
      for (const mode of MODES) {
        const exporting = { OTEL_EXPORTER_OTLP_ENDPOINT: collector.endpoint, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' };
        const env: Record<string, string> =
          mode === 'on'
            ? exporting
            : mode === 'sampled'
              ? { ...exporting, OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.1' }
              : {};
        log(`round ${round}, tracing ${mode}: starting npm start`);
        const stack = await startStack(dataDir, env);
        try {
          const ids = await caseIds(stack.gateway, token);
          const bodies = ids.map((id) => JSON.stringify({ query: CASE_CONTEXT, operationName: 'CaseContext', variables: { id } }));
          const spec = { url: stack.gateway, headers: { authorization: `Bearer ${token}` }, bodies, connections, duration, warmup: 0 };
          if (warmup > 0) await measure({ ...spec, duration: warmup }, stack.child.pid!, []);
          const spansBefore = collector.spans();
          const servicesBefore = cpuByService(stack.child.pid!);
          const measurement = await measure(spec, stack.child.pid!, []);
          const servicesAfter = cpuByService(stack.child.pid!);
          const perService = Object.fromEntries(
            SERVICES.map((service) => [service, ((servicesAfter[service] ?? 0) - (servicesBefore[service] ?? 0)) / measurement.requests]),
          );
          // The last batch is exported within the batch processor's delay (5 s by default).
          await stop(stack.child);
          const spans = collector.spans() - spansBefore;
          results[mode].push({ measurement, spansPerRequest: spans / measurement.requests, perService });
          log(
            `  ${format(measurement.rps, 0)} req/s, p95 ${format(measurement.p95, 0)} ms, ${format(measurement.gatewayCpuMs, 2)} CPU ms/request, ${measurement.errors} errors`,
          );
        } finally {
          await stop(stack.child);
        }
      }
    }
  } finally {
    await collector.close();
    rmSync(dataDir, { recursive: true, force: true });
  }

  const mean = (mode: Mode, pick: (m: Measurement) => number) =>
    results[mode].reduce((sum, run) => sum + pick(run.measurement), 0) / results[mode].length;
  const rows = MODES.map((mode) => {
    const rps = mean(mode, (m) => m.rps);
    const cpu = mean(mode, (m) => m.gatewayCpuMs);
    return {
      mode,
      rps,
      p50: mean(mode, (m) => m.p50),
      p95: mean(mode, (m) => m.p95),
      cpu,
      errors: results[mode].reduce((sum, run) => sum + run.measurement.errors, 0),
      spans: results[mode].reduce((sum, run) => sum + run.spansPerRequest, 0) / results[mode].length,
      otherCores: mean(mode, (m) => m.otherCores),
    };
  });
  const off = rows[0]!;
  console.log(
    `\nTracing overhead: uncached CaseContext through npm start (5 services, CACHE_STORE=none), ${connections} connections, ${duration} s x ${rounds} rounds per mode, alternating\n`,
  );
  console.log(
    '| tracing | req/s | vs off | p50 ms | p95 ms | CPU ms/request (all services) | vs off | spans/request | errors | other cores busy |',
  );
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const row of rows)
    console.log(
      `| ${MODE_LABEL[row.mode]} | ${format(row.rps, 0)} | ${format(row.rps / off.rps, 2)}x | ${format(row.p50)} | ${format(row.p95)} | ${format(row.cpu, 2)} | ${format(row.cpu / off.cpu, 2)}x | ${format(row.spans)} | ${row.errors} | ${format(row.otherCores, 2)} |`,
    );

  console.log('\nCPU ms per request, by service:\n');
  console.log(`| tracing | ${SERVICES.join(' | ')} |`);
  console.log(`|---|${SERVICES.map(() => '---:').join('|')}|`);
  for (const mode of MODES)
    console.log(
      `| ${MODE_LABEL[mode]} | ${SERVICES.map((service) => format(results[mode].reduce((sum, run) => sum + (run.perService[service] ?? 0), 0) / results[mode].length, 2)).join(' | ')} |`,
    );
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
