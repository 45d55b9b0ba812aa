import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { freePort } from '../../tools/bench/processes.ts';
import { locate } from '../setup/servers.ts';

/**
 * A real Prometheus (Debian's package; the test setup installs it) scraping the given targets, on
 * a free port of 127.0.0.1, its configuration and its store in a throwaway folder.
 */
export interface PrometheusTarget {
  /** The job label of the target's series. */
  readonly job: string;
  /** The full URL of its metrics: http://host:port/metrics. */
  readonly url: string;
  /** Sent as `Authorization: Bearer <token>` (a service's METRICS_TOKEN). */
  readonly token?: string;
}

export interface PrometheusOptions {
  readonly targets: readonly PrometheusTarget[];
  /** Rule files (alerting or recording) Prometheus loads and evaluates. */
  readonly rules?: readonly string[];
  /** Scrape and rule evaluation interval in seconds; default 1. */
  readonly scrapeIntervalS?: number;
}

/** One series of an instant vector, as the HTTP API answers it: its labels and [time, value]. */
export interface VectorSample {
  readonly metric: Readonly<Record<string, string>>;
  readonly value: readonly [number, string];
}

/** A target Prometheus scrapes, as /api/v1/targets lists it. */
export interface ActiveTarget {
  readonly labels: Readonly<Record<string, string>>;
  readonly scrapePool: string;
  readonly scrapeUrl: string;
  readonly health: 'up' | 'down' | 'unknown';
  readonly lastError: string;
  readonly lastScrape: string;
}

export interface Prometheus {
  /** http://127.0.0.1:<port> */
  readonly url: string;
  /** Evaluates an instant query now; throws unless the answer is an instant vector. */
  query(promql: string): Promise<VectorSample[]>;
  /** The targets being scraped, with their health. */
  targets(): Promise<ActiveTarget[]>;
  /** Every metric name stored (/api/v1/label/__name__/values). */
  metricNames(): Promise<string[]>;
  /** Polls the query until `predicate` holds for its answer, which it returns; throws with the last answer after `timeoutMs`. */
  waitFor(promql: string, predicate: (result: VectorSample[]) => boolean, timeoutMs?: number): Promise<VectorSample[]>;
  /** What Prometheus logged so far. */
  log(): string;
  /** Stops Prometheus and removes its folder. */
  stop(): Promise<void>;
}

export function prometheusPath(): string {
  const found = locate('prometheus');
  if (!found) throw new Error('prometheus is not installed: `apt-get install -y prometheus` (test/setup/servers.ts does it when it may)');
  return found;
}

/** The Prometheus configuration for the targets, one job each. */
export function prometheusConfig(options: PrometheusOptions): Record<string, unknown> {
  const interval = `${options.scrapeIntervalS ?? 1}s`;
  return {
    global: { scrape_interval: interval, scrape_timeout: interval, evaluation_interval: interval },
    rule_files: (options.rules ?? []).map((file) => resolve(file)),
    scrape_configs: options.targets.map((target) => {
      const url = new URL(target.url);
      return {
        job_name: target.job,
        scheme: url.protocol.replace(/:$/, ''),
        metrics_path: url.pathname,
        static_configs: [{ targets: [url.host] }],
        ...(target.token ? { authorization: { type: 'Bearer', credentials: target.token } } : {}),
      };
    }),
  };
}

export async function startPrometheus(options: PrometheusOptions): Promise<Prometheus> {
  const binary = prometheusPath();
  const dir = mkdtempSync(join(tmpdir(), 'concord-prometheus-'));
  const configFile = join(dir, 'prometheus.yml');
  const logFile = join(dir, 'prometheus.log');
  writeFileSync(configFile, stringify(prometheusConfig(options)));
  const log = () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : '');

  let child: ChildProcess | undefined;
  let url = '';
  const kill = async () => {
    const current = child;
    child = undefined;
    if (!current) return;
    live.delete(current);
    if (current.exitCode !== null || current.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => current.once('exit', () => resolve()));
    current.kill('SIGTERM');
    const timer = setTimeout(() => current.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  };

  try {
    // freePort() closes the port before Prometheus binds it, so another process may take it meanwhile: then try another.
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      url = `http://127.0.0.1:${port}`;
      const out = openSync(logFile, 'w');
      child = spawn(
        binary,
        [
          `--config.file=${configFile}`,
          `--storage.tsdb.path=${join(dir, 'data')}`,
          `--web.listen-address=127.0.0.1:${port}`,
          '--log.level=info',
        ],
        { stdio: ['ignore', out, out] },
      );
      closeSync(out);
      child.once('error', () => undefined);
      live.add(child);
      try {
        await untilReady(child, url, log);
        break;
      } catch (error) {
        await kill();
        if (attempt === 3 || !/address already in use/i.test(log())) throw error;
      }
    }
  } catch (error) {
    rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
    throw error;
  }

  const api = async <T>(path: string): Promise<T> => {
    const response = await fetch(`${url}${path}`);
    const body = (await response.json()) as { status: string; data?: T; error?: string; errorType?: string };
    if (body.status !== 'success') throw new Error(`Prometheus ${path}: ${body.errorType ?? response.status}: ${body.error ?? ''}`);
    return body.data as T;
  };
  const query = async (promql: string): Promise<VectorSample[]> => {
    const data = await api<{ resultType: string; result: VectorSample[] }>(`/api/v1/query?query=${encodeURIComponent(promql)}`);
    if (data.resultType !== 'vector') throw new Error(`${promql}: a ${data.resultType}, not an instant vector`);
    return data.result;
  };
  return {
    url,
    query,
    targets: async () => (await api<{ activeTargets: ActiveTarget[] }>('/api/v1/targets?state=active')).activeTargets,
    metricNames: () => api<string[]>('/api/v1/label/__name__/values'),
    async waitFor(promql, predicate, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const result = await query(promql);
        if (predicate(result)) return result;
        if (Date.now() > deadline)
          throw new Error(`Prometheus: ${promql} did not hold within ${timeoutMs} ms; last answer: ${JSON.stringify(result)}`);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    },
    log,
    async stop() {
      await kill();
      rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
    },
  };
}

/** The Prometheus processes of this process not stopped yet: a test that forgets stop() must not leave one behind. */
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

/** Resolves once /-/ready answers 200; rejects if Prometheus exits first or takes over 20 s. */
async function untilReady(child: ChildProcess, url: string, log: () => string): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`prometheus exited (${child.exitCode ?? child.signalCode}) before it was ready at ${url}:\n${log()}`);
    const ready = await fetch(`${url}/-/ready`).then(
      (response) => response.status === 200,
      () => false,
    );
    if (ready) return;
    if (Date.now() > deadline) throw new Error(`prometheus was not ready at ${url} within 20 s:\n${log()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
