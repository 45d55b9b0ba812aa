import { loadavg } from 'node:os';
import autocannon from 'autocannon';
import { REQUEST_KINDS, type GeneratedRequest, type RequestKind } from './mix.ts';
import { cpuMs, machineBusyMs, samplePeakRss } from './processes.ts';

/**
 * One load run against one gateway, and what it cost: throughput and latency from the client's
 * side, CPU and memory of the gateway's processes from the kernel's, and calls to the systems
 * behind the subgraphs from their own counters. Each cost is a delta over the measured window
 * only, divided by the requests answered in it, so warm-up and start-up never count.
 */

export interface LoadSpec {
  url: string;
  headers: Record<string, string>;
  /** Request bodies; each connection goes through them in turn, starting at its own place. */
  bodies: readonly string[];
  /**
   * Instead of `bodies`: each connection's own generator of requests (kind, body, token), made
   * for the warm-up and again for the measured window. Answers are then counted by kind.
   */
  generate?: (connection: number, window: 'warmup' | 'measured') => () => GeneratedRequest;
  /** The gateway's Prometheus /metrics, read before and after the window (counters only). */
  gatewayMetricsUrl?: string;
  connections: number;
  /** Measured seconds. */
  duration: number;
  /** Seconds of the same load first, not measured. */
  warmup: number;
}

export interface Subgraph {
  pid: number;
  metricsUrl: string;
}

export interface Measurement {
  requests: number;
  rps: number;
  p50: number;
  p95: number;
  p99: number;
  /** Connection errors and timeouts, non-2xx answers, and 2xx answers carrying GraphQL errors. */
  errors: number;
  /** The gateway's processes' CPU time over the window, per request. */
  gatewayCpuMs: number;
  /** The three subgraphs' CPU time over the window, per request. */
  subgraphCpuMs: number;
  /** Highest resident memory of the gateway's processes during warm-up and window. */
  peakRssMb: number;
  /** Calls to the systems (concord_connector_calls_total over the subgraphs) per request. */
  vendorCalls: number;
  /**
   * Cores kept busy during the window by processes outside the benchmark (the machine's busy
   * time less the gateway's, the subgraphs' and the load generator's): above a few tenths, the
   * machine was shared and the numbers are not comparable.
   */
  otherCores: number;
  /** Cores the whole machine kept busy during the window (/proc/stat), everything included. */
  machineCores?: number;
  /** The 1-minute load average when the window ended. */
  loadAverage?: number;
  /** With a generated load: answers, errors and latency by kind of request. */
  byKind?: Partial<Record<RequestKind, KindMeasurement>>;
  /** With gatewayMetricsUrl: how much each counter series of the gateway grew over the window. */
  gatewayCounters?: Record<string, number> | null;
}

export interface KindMeasurement {
  requests: number;
  errors: number;
  p50: number;
  p95: number;
  p99: number;
}

/** A GraphQL response with an `errors` member (a key only appears unescaped as a key). */
const GRAPHQL_ERRORS = /"errors"\s*:/;

/** Sum of concord_connector_calls_total over the subgraphs' /metrics. */
export async function connectorCalls(subgraphs: readonly Subgraph[]): Promise<number> {
  const totals = await Promise.all(
    subgraphs.map(async (subgraph) => {
      const response = await fetch(subgraph.metricsUrl);
      if (!response.ok) throw new Error(`${subgraph.metricsUrl} answered ${response.status}`);
      let sum = 0;
      for (const line of (await response.text()).split('\n')) {
        if (line.startsWith('concord_connector_calls_total{')) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
      }
      return sum;
    }),
  );
  return totals.reduce((a, b) => a + b, 0);
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

interface Run {
  responses: number;
  latencies: number[];
  errors: number;
  elapsedMs: number;
  byKind: Map<RequestKind, { latencies: number[]; errors: number }>;
}

async function fire(spec: LoadSpec, seconds: number, window: 'warmup' | 'measured'): Promise<Run> {
  let graphqlErrors = 0;
  const latencies: number[] = [];
  const byKind = new Map<RequestKind, { latencies: number[]; errors: number }>(
    REQUEST_KINDS.map((kind) => [kind, { latencies: [], errors: 0 }]),
  );
  // The kind of the answer just recorded: autocannon calls a request's onResponse and then,
  // synchronously, emits the same answer's 'response' with its time.
  let lastKind: RequestKind | null = null;
  const failed = (status: number, responseBody: string) => !(status >= 200 && status < 300) || GRAPHQL_ERRORS.test(responseBody);
  const requests = spec.bodies.map((body) => ({
    method: 'POST' as const,
    body,
    onResponse: (status: number, responseBody: string) => {
      if (status >= 200 && status < 300 && GRAPHQL_ERRORS.test(responseBody)) graphqlErrors++;
    },
  }));
  const generated = (next: () => GeneratedRequest) => [
    {
      method: 'POST' as const,
      setupRequest: (request: autocannon.Request, context: Record<string, unknown>) => {
        const made = next();
        context.kind = made.kind;
        return { ...request, body: made.body, headers: { ...request.headers, authorization: made.authorization } };
      },
      onResponse: (status: number, responseBody: string, context: Record<string, unknown>) => {
        lastKind = context.kind as RequestKind;
        if (status >= 200 && status < 300 && GRAPHQL_ERRORS.test(responseBody)) graphqlErrors++;
        if (failed(status, responseBody)) byKind.get(lastKind)!.errors++;
      },
    },
  ];
  // Connections start at different bodies, so they do not ask for the same thing at the same time.
  let clients = 0;
  const setupClient = (client: autocannon.Client) => {
    const index = clients++;
    if (spec.generate) {
      client.setRequests(generated(spec.generate(index, window)) as unknown as autocannon.Request[]);
      return;
    }
    const offset = index % requests.length;
    if (offset) client.setRequests([...requests.slice(offset), ...requests.slice(0, offset)]);
  };
  const started = performance.now();
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(
      {
        url: spec.url,
        method: 'POST',
        headers: { 'content-type': 'application/json', ...spec.headers },
        // With a generator, each connection gets its own requests in setupClient.
        requests: spec.generate ? [{ method: 'POST', body: '{"query":"{ __typename }"}' }] : requests,
        connections: spec.connections,
        duration: seconds,
        setupClient,
      },
      (error, done) => (error ? reject(error) : resolve(done)),
    );
    // autocannon reports p97.5 but no p95: every response time is kept for exact percentiles.
    instance.on('response', (_client, _status, _bytes, responseTime) => {
      latencies.push(responseTime);
      if (lastKind) byKind.get(lastKind)!.latencies.push(responseTime);
      lastKind = null;
    });
  });
  return {
    responses: latencies.length,
    latencies,
    errors: result.errors + result.non2xx + graphqlErrors,
    elapsedMs: performance.now() - started,
    byKind,
  };
}

/** Every counter series of a Prometheus text page (`name{labels}` → value), of the names given. */
export async function readCounters(url: string, names: readonly string[]): Promise<Map<string, number>> {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url} answered ${response.status}`);
  const series = new Map<string, number>();
  for (const line of (await response.text()).split('\n')) {
    if (line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    const key = line.slice(0, space);
    const name = key.split('{', 1)[0]!;
    if (names.includes(name)) series.set(key, (series.get(key) ?? 0) + Number(line.slice(space + 1)));
  }
  return series;
}

/** The counters the report reads from Concord's gateway: its cache lookups by tier, the change notices it applied, its fetches. */
export const GATEWAY_COUNTERS = [
  'concord_cache_lookups_total',
  'concord_events_consumed_total',
  'concord_subgraph_requests_total',
] as const;

function kindMeasurement(entry: { latencies: number[]; errors: number }): KindMeasurement {
  const sorted = entry.latencies.sort((a, b) => a - b);
  return {
    requests: sorted.length,
    errors: entry.errors,
    p50: percentile(sorted, 50),
    p95: percentile(sorted, 95),
    p99: percentile(sorted, 99),
  };
}

/** Warm-up, then the measured window with its CPU, memory and connector-call deltas. */
export async function measure(spec: LoadSpec, gatewayPid: number, subgraphs: readonly Subgraph[]): Promise<Measurement> {
  const rss = samplePeakRss(gatewayPid);
  try {
    if (spec.warmup > 0) await fire(spec, spec.warmup, 'warmup');
    const countersBefore = spec.gatewayMetricsUrl ? await readCounters(spec.gatewayMetricsUrl, GATEWAY_COUNTERS) : null;
    const callsBefore = await connectorCalls(subgraphs);
    const gatewayBefore = cpuMs([gatewayPid]);
    const subgraphsBefore = cpuMs(subgraphs.map((subgraph) => subgraph.pid));
    const ownBefore = process.cpuUsage();
    const machineBefore = machineBusyMs();
    const run = await fire(spec, spec.duration, 'measured');
    const machineCpu = machineBusyMs() - machineBefore;
    const loadAverage = loadavg()[0] ?? 0;
    const own = process.cpuUsage(ownBefore);
    const gatewayCpu = cpuMs([gatewayPid]) - gatewayBefore;
    const subgraphCpu = cpuMs(subgraphs.map((subgraph) => subgraph.pid)) - subgraphsBefore;
    const calls = (await connectorCalls(subgraphs)) - callsBefore;
    let gatewayCounters: Record<string, number> | null = null;
    if (spec.gatewayMetricsUrl && countersBefore) {
      const after = await readCounters(spec.gatewayMetricsUrl, GATEWAY_COUNTERS);
      gatewayCounters = Object.fromEntries([...after].map(([key, value]) => [key, value - (countersBefore.get(key) ?? 0)]));
    }
    const otherCpu = machineCpu - gatewayCpu - subgraphCpu - (own.user + own.system) / 1000;
    const sorted = run.latencies.sort((a, b) => a - b);
    const per = (value: number) => (run.responses ? value / run.responses : NaN);
    return {
      requests: run.responses,
      rps: run.responses / (run.elapsedMs / 1000),
      p50: percentile(sorted, 50),
      p95: percentile(sorted, 95),
      p99: percentile(sorted, 99),
      errors: run.errors,
      gatewayCpuMs: per(gatewayCpu),
      subgraphCpuMs: per(subgraphCpu),
      peakRssMb: rss.stop(),
      vendorCalls: per(calls),
      otherCores: Math.max(0, otherCpu / run.elapsedMs),
      machineCores: machineCpu / run.elapsedMs,
      loadAverage,
      byKind: spec.generate
        ? Object.fromEntries(
            [...run.byKind]
              .filter(([, entry]) => entry.latencies.length || entry.errors)
              .map(([kind, entry]) => [kind, kindMeasurement(entry)]),
          )
        : {},
      gatewayCounters,
    };
  } finally {
    rss.stop();
  }
}
