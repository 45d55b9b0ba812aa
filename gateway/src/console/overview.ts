/**
 * The figures of the operations console (GET /console/api/overview): per system, what flows
 * through this gateway process now (requests per second, 95th percentile latency, error ratio),
 * read from its own prom-client registry in snapshots every few seconds, and each system's
 * health (its GET /ready) and vendor API budget (its GET /metrics), asked at its routing URL.
 *
 * With several gateway workers, each answers for itself: the figures are those of the worker the
 * request reached, not of the whole gateway (docs/console.md).
 */
import type { Registry } from 'prom-client';

/** The systems the console shows, in this order, with their names in business terms. */
export const CONSOLE_SYSTEMS: ReadonlyArray<{ readonly name: string; readonly title: string }> = [
  { name: 'crm', title: 'CRM' },
  { name: 'erp', title: 'ERP' },
  { name: 'support', title: 'Support desk' },
  { name: 'processes', title: 'Process service' },
];

export interface SystemFlow {
  /** Subgraph fetches per second over the window; null before two snapshots exist. */
  readonly requestsPerSecond: number | null;
  /** 95th percentile of the fetches' duration in the window, in ms (from the histogram's buckets); null without fetches. */
  readonly p95Ms: number | null;
  /** Failed fetches (outcome error) over all fetches in the window; null without fetches. */
  readonly errorRatio: number | null;
}

export interface SystemHealth {
  /** up: /ready answered 200; down: it answered something else; unreachable: no answer in time; unknown: no routing URL. */
  readonly status: 'up' | 'down' | 'unreachable' | 'unknown';
  readonly detail: string | null;
}

export interface ApiBudget {
  readonly limit: number | null;
  readonly used: number | null;
  readonly remaining: number | null;
}

export interface SystemOverview extends SystemFlow {
  readonly name: string;
  readonly title: string;
  readonly health: SystemHealth;
  /** The vendor's API budget from the subgraph's /metrics; null when it reports none or its /metrics needs a token. */
  readonly budget: ApiBudget | null;
}

export interface Overview {
  readonly at: string;
  /** The span the figures cover, in seconds (up to the window; less just after start). */
  readonly windowSeconds: number;
  readonly systems: readonly SystemOverview[];
  /** Per snapshot interval, oldest first: for the charts. */
  readonly series: {
    readonly t: readonly number[];
    readonly systems: Readonly<Record<string, { rps: (number | null)[]; p95Ms: (number | null)[]; errorRatio: (number | null)[] }>>;
  };
}

/** One reading of the registry, per subgraph. */
export interface Snapshot {
  readonly atMs: number;
  readonly bySystem: ReadonlyMap<string, Reading>;
}

interface Reading {
  requests: number;
  errors: number;
  /** Cumulative bucket counts by upper bound (seconds), +Inf last. */
  buckets: Map<number, number>;
}

/** Reads the gateway's subgraph metrics out of a registry (metrics.ts names them). */
export async function readSnapshot(registry: Registry, atMs = Date.now()): Promise<Snapshot> {
  const bySystem = new Map<string, Reading>();
  const of = (system: string) => {
    let reading = bySystem.get(system);
    if (!reading) bySystem.set(system, (reading = { requests: 0, errors: 0, buckets: new Map() }));
    return reading;
  };
  const requests = registry.getSingleMetric('concord_subgraph_requests_total');
  if (requests) {
    for (const value of (await requests.get()).values) {
      const system = String(value.labels.subgraph ?? '');
      if (!system) continue;
      of(system).requests += value.value;
      if (value.labels.outcome === 'error') of(system).errors += value.value;
    }
  }
  const duration = registry.getSingleMetric('concord_subgraph_request_duration_seconds');
  if (duration) {
    for (const value of (await duration.get()).values) {
      if ((value as { metricName?: string }).metricName !== 'concord_subgraph_request_duration_seconds_bucket') continue;
      const system = String(value.labels.subgraph ?? '');
      if (!system) continue;
      const le = value.labels.le === '+Inf' ? Infinity : Number(value.labels.le);
      const buckets = of(system).buckets;
      buckets.set(le, (buckets.get(le) ?? 0) + value.value);
    }
  }
  return { atMs, bySystem };
}

/** The flow of one system between two snapshots. */
export function flowBetween(before: Snapshot, after: Snapshot, system: string): SystemFlow {
  const seconds = (after.atMs - before.atMs) / 1000;
  const a = before.bySystem.get(system);
  const b = after.bySystem.get(system);
  if (seconds <= 0) return { requestsPerSecond: null, p95Ms: null, errorRatio: null };
  const requests = Math.max(0, (b?.requests ?? 0) - (a?.requests ?? 0));
  const errors = Math.max(0, (b?.errors ?? 0) - (a?.errors ?? 0));
  const buckets = [...(b?.buckets ?? new Map<number, number>())]
    .map(([le, count]) => [le, Math.max(0, count - (a?.buckets.get(le) ?? 0))] as const)
    .sort(([x], [y]) => x - y);
  return {
    requestsPerSecond: round(requests / seconds, 3),
    p95Ms: requests === 0 ? null : quantileMs(buckets, 0.95),
    errorRatio: requests === 0 ? null : round(errors / requests, 4),
  };
}

/**
 * A quantile from cumulative histogram buckets, interpolated linearly within the bucket it falls
 * in (as Prometheus' histogram_quantile does); the largest finite bound when it falls in +Inf.
 */
export function quantileMs(buckets: ReadonlyArray<readonly [number, number]>, q: number): number | null {
  const total = buckets.at(-1)?.[1] ?? 0;
  if (total <= 0) return null;
  const rank = q * total;
  let lowerBound = 0;
  let lowerCount = 0;
  for (const [le, count] of buckets) {
    if (count >= rank) {
      if (le === Infinity) return round(lowerBound * 1000, 1);
      const inBucket = count - lowerCount;
      const fraction = inBucket > 0 ? (rank - lowerCount) / inBucket : 1;
      return round((lowerBound + (le - lowerBound) * fraction) * 1000, 1);
    }
    lowerBound = le;
    lowerCount = count;
  }
  return round(lowerBound * 1000, 1);
}

function round(value: number, digits: number): number {
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
}

/** The `concord_vendor_api_budget` gauges in a Prometheus text exposition, summed per measure. */
export function budgetOf(metricsText: string): ApiBudget | null {
  const found: Record<string, number> = {};
  for (const line of metricsText.split('\n')) {
    const match = /^concord_vendor_api_budget\{([^}]*)\}\s+(\S+)/.exec(line);
    if (!match?.[1] || !match[2]) continue;
    const measure = /measure="([^"]*)"/.exec(match[1])?.[1];
    const value = Number(match[2]);
    if (!measure || !Number.isFinite(value)) continue;
    found[measure] = (found[measure] ?? 0) + value;
  }
  if (Object.keys(found).length === 0) return null;
  return { limit: found.limit ?? null, used: found.used ?? null, remaining: found.remaining ?? null };
}

export interface OverviewSource {
  /** The overview now (health and budgets asked at most every few seconds). */
  overview(): Promise<Overview>;
  /** Takes a snapshot now (tests; the timer takes one every interval). */
  sample(): Promise<void>;
  stop(): void;
}

/**
 * Keeps a ring of snapshots of `registry` (one every `intervalMs`, `windowMs` of them) and asks
 * each system's /ready and /metrics at its routing URL's origin when an overview is asked for,
 * remembering the answers for `probeCacheMs`.
 */
export function createOverviewSource(options: {
  registry: Registry;
  /** Subgraph name → its routing URL (…/graphql); the origin is what /ready and /metrics are asked at. */
  routingUrls: () => Readonly<Record<string, string>>;
  intervalMs?: number;
  windowMs?: number;
  probeTimeoutMs?: number;
  probeCacheMs?: number;
  now?: () => number;
}): OverviewSource {
  const intervalMs = options.intervalMs ?? 5_000;
  const windowMs = options.windowMs ?? 60_000;
  const probeTimeoutMs = options.probeTimeoutMs ?? 1_500;
  const probeCacheMs = options.probeCacheMs ?? 4_000;
  const now = options.now ?? Date.now;
  const ring: Snapshot[] = [];
  const keep = Math.max(2, Math.ceil(windowMs / intervalMs) + 1);

  async function sample(): Promise<void> {
    ring.push(await readSnapshot(options.registry, now()));
    while (ring.length > keep) ring.shift();
  }
  void sample();
  const timer = setInterval(() => void sample().catch(() => undefined), intervalMs);
  timer.unref();

  let probed: { atMs: number; answers: Promise<Map<string, { health: SystemHealth; budget: ApiBudget | null }>> } | null = null;
  function probes(): Promise<Map<string, { health: SystemHealth; budget: ApiBudget | null }>> {
    if (probed && now() - probed.atMs < probeCacheMs) return probed.answers;
    const urls = options.routingUrls();
    const answers = Promise.all(
      CONSOLE_SYSTEMS.map(async ({ name }) => [name, await probe(urls[name] ?? null, probeTimeoutMs)] as const),
    ).then((entries) => new Map(entries));
    probed = { atMs: now(), answers };
    return answers;
  }

  return {
    sample,
    stop: () => clearInterval(timer),
    async overview(): Promise<Overview> {
      const current = await readSnapshot(options.registry, now());
      const windowStart = ring.find((snapshot) => current.atMs - snapshot.atMs <= windowMs + intervalMs / 2) ?? current;
      // The snapshots, oldest first, each at least a second after the one before, ending with now.
      const points: Snapshot[] = [];
      for (const snapshot of [...ring, current])
        if (!points.length || snapshot.atMs - points.at(-1)!.atMs >= 1_000) points.push(snapshot);
        else if (snapshot === current) points[points.length - 1] = current;
      const systems = new Map(CONSOLE_SYSTEMS.map((system) => [system.name, system.title]));
      for (const snapshot of points) for (const name of snapshot.bySystem.keys()) if (!systems.has(name)) systems.set(name, name);
      const answers = await probes();
      const series: Overview['series'] = { t: points.slice(1).map((point) => point.atMs), systems: {} };
      for (const name of systems.keys()) {
        const rows = points.slice(1).map((point, i) => flowBetween(points[i]!, point, name));
        (series.systems as Record<string, unknown>)[name] = {
          rps: rows.map((row) => row.requestsPerSecond),
          p95Ms: rows.map((row) => row.p95Ms),
          errorRatio: rows.map((row) => row.errorRatio),
        };
      }
      return {
        at: new Date(current.atMs).toISOString(),
        windowSeconds: round((current.atMs - windowStart.atMs) / 1000, 1),
        systems: [...systems].map(([name, title]) => ({
          name,
          title,
          ...(windowStart === current
            ? { requestsPerSecond: null, p95Ms: null, errorRatio: null }
            : flowBetween(windowStart, current, name)),
          health: answers.get(name)?.health ?? { status: 'unknown', detail: 'not a subgraph the console asks' },
          budget: answers.get(name)?.budget ?? null,
        })),
        series,
      };
    },
  };
}

/** A system's /ready and /metrics at its routing URL's origin, each with a short timeout; never throws. */
async function probe(routingUrl: string | null, timeoutMs: number): Promise<{ health: SystemHealth; budget: ApiBudget | null }> {
  if (!routingUrl) return { health: { status: 'unknown', detail: 'no routing URL' }, budget: null };
  let origin: string;
  try {
    origin = new URL(routingUrl).origin;
  } catch {
    return { health: { status: 'unknown', detail: 'the routing URL is not a URL' }, budget: null };
  }
  const ask = (path: string) => fetch(`${origin}${path}`, { signal: AbortSignal.timeout(timeoutMs), redirect: 'error' });
  const [health, budget] = await Promise.all([
    ask('/ready').then(
      async (response): Promise<SystemHealth> => {
        await response.body?.cancel();
        return response.ok ? { status: 'up', detail: null } : { status: 'down', detail: `/ready answered ${response.status}` };
      },
      (error: unknown): SystemHealth => ({
        status: 'unreachable',
        detail: (error as Error).name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : 'no connection',
      }),
    ),
    ask('/metrics').then(
      async (response) => {
        if (!response.ok) {
          await response.body?.cancel();
          return null;
        }
        return budgetOf(await response.text());
      },
      () => null,
    ),
  ]);
  return { health, budget };
}
