import autocannon from 'autocannon';
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
}

async function fire(spec: LoadSpec, seconds: number): Promise<Run> {
  let graphqlErrors = 0;
  const latencies: number[] = [];
  const requests = spec.bodies.map((body) => ({
    method: 'POST' as const,
    body,
    onResponse: (status: number, responseBody: string) => {
      if (status >= 200 && status < 300 && GRAPHQL_ERRORS.test(responseBody)) graphqlErrors++;
    },
  }));
  // Connections start at different bodies, so they do not ask for the same thing at the same time.
  let clients = 0;
  const setupClient = (client: autocannon.Client) => {
    const offset = clients++ % requests.length;
    if (offset) client.setRequests([...requests.slice(offset), ...requests.slice(0, offset)]);
  };
  const started = performance.now();
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(
      {
        url: spec.url,
        method: 'POST',
        headers: { 'content-type': 'application/json', ...spec.headers },
        requests,
        connections: spec.connections,
        duration: seconds,
        setupClient,
      },
      (error, done) => (error ? reject(error) : resolve(done)),
    );
    // autocannon reports p97.5 but no p95: every response time is kept for exact percentiles.
    instance.on('response', (_client, _status, _bytes, responseTime) => {
      latencies.push(responseTime);
    });
  });
  return {
    responses: latencies.length,
    latencies,
    errors: result.errors + result.non2xx + graphqlErrors,
    elapsedMs: performance.now() - started,
  };
}

/** Warm-up, then the measured window with its CPU, memory and connector-call deltas. */
export async function measure(spec: LoadSpec, gatewayPid: number, subgraphs: readonly Subgraph[]): Promise<Measurement> {
  const rss = samplePeakRss(gatewayPid);
  try {
    if (spec.warmup > 0) await fire(spec, spec.warmup);
    const callsBefore = await connectorCalls(subgraphs);
    const gatewayBefore = cpuMs([gatewayPid]);
    const subgraphsBefore = cpuMs(subgraphs.map((subgraph) => subgraph.pid));
    const ownBefore = process.cpuUsage();
    const machineBefore = machineBusyMs();
    const run = await fire(spec, spec.duration);
    const machineCpu = machineBusyMs() - machineBefore;
    const own = process.cpuUsage(ownBefore);
    const gatewayCpu = cpuMs([gatewayPid]) - gatewayBefore;
    const subgraphCpu = cpuMs(subgraphs.map((subgraph) => subgraph.pid)) - subgraphsBefore;
    const calls = (await connectorCalls(subgraphs)) - callsBefore;
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
    };
  } finally {
    rss.stop();
  }
}
