import type { Measurement } from './load.ts';
import type { Latencies } from './plan-limit.ts';

/**
 * Turns a comparison run into what people read: a table per phase, the ratios the targets are
 * stated in, and whether each target held, on the console and in docs/benchmarks.md. Only the
 * part between the markers is generated, so the hand-written explanation around it survives
 * every rerun.
 */

export const BEGIN_MARKER = '<!-- bench:begin -->';
export const END_MARKER = '<!-- bench:end -->';

/** The gateway labels the report compares Concord against, and Concord's own. */
export const CONCORD = 'concord';
export const CONCORD_NO_CACHE = 'concord (no cache)';
export const CONCORD_ENTITIES = 'concord (entity cache only)';
export const APOLLO = 'apollo-gateway';
export const HIVE = 'hive-gateway';
export const HIVE_RUST = 'hive-gateway-rust';
/** The peers, in the order the ratio tables set Concord against them. */
export const PEERS = [APOLLO, HIVE, HIVE_RUST] as const;
const CONCORDS = [CONCORD, CONCORD_ENTITIES, CONCORD_NO_CACHE] as const;

/** One gateway and operation: what was measured, or why nothing was. */
export interface Row {
  gateway: string;
  operation: string;
  result: Measurement | { failure: string };
}

/** One window of the realistic profile: one gateway in one round. */
export interface WindowRow {
  gateway: string;
  round: number;
  result: Measurement | { failure: string };
}

/** The realistic profile: its settings, its sample, and every window measured. */
export interface RealisticReport {
  rounds: number;
  duration: number;
  warmup: number;
  cases: number;
  seed: number;
  notesPerCase: number;
  /** The order of the gateways within each round. */
  order: readonly string[];
  sample: { cases: number; queueViews: readonly string[]; checkedCases: number; reserved: number } | null;
  windows: WindowRow[];
  /** Notes the mix wrote over the run (warm-ups included), and on how many cases. */
  writes: number;
  notedCases: number;
}

export interface BenchReport {
  /** loadAverage: the 1-minute load average when the run started, other processes included. */
  machine: { cpu: string; cores: number; node: string; date: string; loadAverage: number };
  settings: {
    duration: number;
    warmup: number;
    connections: number;
    latencyConnections: number;
    workers: number;
    /** null: no latency phase (--latency off). */
    latency: Latencies | null;
    gateways: readonly string[];
  };
  /** How each gateway process (and the subgraphs) ran. */
  runs?: { gateway: string; how: string }[];
  /** The realistic profile, the headline; absent in reports of the repeated queries alone. */
  realistic?: RealisticReport;
  /** The gateway whose answers every other was checked against, and the CaseContext ids used. */
  reference: { gateway: string; caseIds: readonly string[] } | null;
  throughput: Row[];
  /** CaseQueue with 10 and with 100 cases, vendor calls per request, per Concord configuration. */
  queueScaling: { gateway: string; first10: number | null; first100: number | null }[];
  latency: Row[];
  plan: { limit: number; steps: number; lines: readonly string[] } | null;
  elapsedSeconds: number;
}

const measured = (row: Pick<Row, 'result'> | undefined): Measurement | null => (row && !('failure' in row.result) ? row.result : null);
/** The cell of a row that was not measured: why, in its first line. */
const failedCell = (row: Pick<Row, 'result'>): string => `failed: ${(row.result as { failure: string }).failure.split('\n')[0]}`;

function fixed(value: number | null | undefined, digits: number): string {
  return value === null || value === undefined || !Number.isFinite(value) ? '–' : value.toFixed(digits);
}

const ratio = (value: number | null) => (value === null || !Number.isFinite(value) ? '–' : `${value.toFixed(2)}×`);

function find(rows: readonly Row[], gateway: string, operation: string): Measurement | null {
  return measured(rows.find((row) => row.gateway === gateway && row.operation === operation));
}

function divide(a: number | null | undefined, b: number | null | undefined): number | null {
  return a === null || a === undefined || b === null || b === undefined || b === 0 ? null : a / b;
}

/** Column heads, rows, and how many leading columns are labels (left-aligned); numbers are right-aligned. */
type Table = { head: string[]; rows: string[][]; labels: number };

function throughputTable(rows: readonly Row[]): Table {
  return {
    labels: 2,
    head: [
      'gateway',
      'operation',
      'req/s',
      'p50 ms',
      'p95 ms',
      'p99 ms',
      'errors',
      'gateway CPU ms/req',
      'subgraphs CPU ms/req',
      'peak RSS MB',
      'vendor calls/req',
      'other load (cores)',
    ],
    rows: rows.map((row) => {
      const m = measured(row);
      if (!m) return [row.gateway, row.operation, failedCell(row)];
      return [
        row.gateway,
        row.operation,
        fixed(m.rps, 0),
        fixed(m.p50, 1),
        fixed(m.p95, 1),
        fixed(m.p99, 1),
        String(m.errors),
        fixed(m.gatewayCpuMs, 2),
        fixed(m.subgraphCpuMs, 2),
        fixed(m.peakRssMb, 0),
        fixed(m.vendorCalls, 2),
        fixed(m.otherCores, 2),
      ];
    }),
  };
}

function latencyTable(rows: readonly Row[], limit: number | null): Table {
  return {
    labels: 1,
    head: [
      'gateway',
      'req/s',
      'p50 ms',
      'p95 ms',
      'p99 ms',
      'errors',
      'limit ms',
      'p50 − limit',
      'p95 − limit',
      'vendor calls/req',
      'other load (cores)',
    ],
    rows: rows.map((row) => {
      const m = measured(row);
      if (!m) return [row.gateway, failedCell(row)];
      return [
        row.gateway,
        fixed(m.rps, 1),
        fixed(m.p50, 1),
        fixed(m.p95, 1),
        fixed(m.p99, 1),
        String(m.errors),
        fixed(limit, 0),
        limit === null ? '–' : signed(m.p50 - limit),
        limit === null ? '–' : signed(m.p95 - limit),
        fixed(m.vendorCalls, 2),
        fixed(m.otherCores, 2),
      ];
    }),
  };
}

const signed = (value: number) => `${value >= 0 ? '+' : ''}${value.toFixed(1)}`;

/** Concord's configurations against each peer: requests/s (higher is better), CPU per request (lower is better). */
function ratioTable(rows: readonly Row[]): Table {
  const present = new Set(rows.map((row) => row.gateway));
  // apollo-gateway and hive-gateway always have their columns (– when not run); the Rust planner's when it ran.
  const peers = PEERS.filter((peer) => peer !== HIVE_RUST || present.has(peer));
  const table: Table = {
    labels: 2,
    head: ['operation', 'gateway', ...peers.map((peer) => `req/s vs ${peer}`), ...peers.map((peer) => `CPU/req vs ${peer}`)],
    rows: [],
  };
  const operations = [...new Set(rows.map((row) => row.operation))];
  for (const operation of operations) {
    for (const gateway of CONCORDS) {
      const own = find(rows, gateway, operation);
      if (!own) continue;
      const others = peers.map((peer) => find(rows, peer, operation));
      table.rows.push([
        operation,
        gateway,
        ...others.map((other) => ratio(divide(own.rps, other?.rps))),
        ...others.map((other) => ratio(divide(own.gatewayCpuMs, other?.gatewayCpuMs))),
      ]);
    }
  }
  return table;
}

export function median(values: readonly number[]): number | null {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (sorted.length === 0) return null;
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

const spread = (values: readonly number[], digits: number) => {
  const finite = values.filter(Number.isFinite);
  return finite.length ? `${Math.min(...finite).toFixed(digits)}–${Math.max(...finite).toFixed(digits)}` : '–';
};

/** The windows each gateway was measured in, by round. */
function windowsOf(realistic: RealisticReport, gateway: string): Map<number, Measurement> {
  const out = new Map<number, Measurement>();
  for (const row of realistic.windows) {
    if (row.gateway === gateway && !('failure' in row.result)) out.set(row.round, row.result);
  }
  return out;
}

function failureOf(realistic: RealisticReport, gateway: string): string | null {
  const failed = realistic.windows.find((row) => row.gateway === gateway && 'failure' in row.result);
  return failed ? (failed.result as { failure: string }).failure.split('\n')[0]! : null;
}

/** Hits and lookups of a gateway's cache tier over a window, from concord_cache_lookups_total (uncacheable lookups left out). */
export function cacheLookups(counters: Record<string, number> | null | undefined, tier: string): { hits: number; lookups: number } {
  let hits = 0;
  let lookups = 0;
  for (const [key, value] of Object.entries(counters ?? {})) {
    if (!key.startsWith('concord_cache_lookups_total{') || !key.includes(`tier="${tier}"`)) continue;
    if (key.includes('outcome="hit"')) {
      hits += value;
      lookups += value;
    } else if (key.includes('outcome="miss"')) lookups += value;
  }
  return { hits, lookups };
}

function counterSum(counters: Record<string, number> | null | undefined, name: string): number {
  let sum = 0;
  for (const [key, value] of Object.entries(counters ?? {})) if (key === name || key.startsWith(`${name}{`)) sum += value;
  return sum;
}

/** A tier's hit rate over all rounds' windows, in percent; null where the gateway has no such counters. */
function hitRate(windows: readonly Measurement[], tier: string): number | null {
  let hits = 0;
  let lookups = 0;
  let counted = false;
  for (const m of windows) {
    if (!m.gatewayCounters) continue;
    counted = true;
    const tierLookups = cacheLookups(m.gatewayCounters, tier);
    hits += tierLookups.hits;
    lookups += tierLookups.lookups;
  }
  return counted && lookups > 0 ? (100 * hits) / lookups : null;
}

/** Per gateway, over its rounds: medians, the spread of requests/s, and Concord's cache hit rates. */
function realisticTable(realistic: RealisticReport): Table {
  return {
    labels: 1,
    head: [
      'gateway',
      'rounds',
      'req/s (median)',
      'req/s min–max',
      'p50 ms',
      'p95 ms',
      'p99 ms',
      'errors',
      'gateway CPU ms/req',
      'vendor calls/req',
      'peak RSS MB',
      'whole-answer hits',
      'entity hits',
      'notices applied/window',
    ],
    rows: realistic.order.map((gateway) => {
      const windows = [...windowsOf(realistic, gateway).values()];
      if (windows.length === 0) return [gateway, `failed: ${failureOf(realistic, gateway) ?? 'not measured'}`];
      const med = (pick: (m: Measurement) => number) => median(windows.map(pick));
      const rate = (tier: string) => {
        const value = hitRate(windows, tier);
        return value === null ? '–' : `${value.toFixed(1)} %`;
      };
      const notices = windows.every((m) => m.gatewayCounters)
        ? med((m) => counterSum(m.gatewayCounters, 'concord_events_consumed_total'))
        : null;
      return [
        gateway,
        String(windows.length),
        fixed(
          med((m) => m.rps),
          0,
        ),
        spread(
          windows.map((m) => m.rps),
          0,
        ),
        fixed(
          med((m) => m.p50),
          1,
        ),
        fixed(
          med((m) => m.p95),
          1,
        ),
        fixed(
          med((m) => m.p99),
          1,
        ),
        String(windows.reduce((sum, m) => sum + m.errors, 0)),
        fixed(
          med((m) => m.gatewayCpuMs),
          2,
        ),
        fixed(
          med((m) => m.vendorCalls),
          2,
        ),
        fixed(Math.max(...windows.map((m) => m.peakRssMb)), 0),
        rate('response'),
        rate('entity'),
        fixed(notices, 0),
      ];
    }),
  };
}

/** Per gateway, the medians over rounds of each kind of request's latency. */
function kindTable(realistic: RealisticReport): Table {
  const kinds = ['CaseContext', 'CaseQueue', 'write'] as const;
  return {
    labels: 1,
    head: ['gateway', ...kinds.flatMap((kind) => [`${kind} share`, `${kind} p50 ms`, `${kind} p95 ms`])],
    rows: realistic.order.flatMap((gateway) => {
      const windows = [...windowsOf(realistic, gateway).values()];
      if (windows.length === 0) return [];
      return [
        [
          gateway,
          ...kinds.flatMap((kind) => {
            const of = windows.map((m) => m.byKind?.[kind]).filter((k) => k !== undefined);
            const share = median(windows.map((m) => (100 * (m.byKind?.[kind]?.requests ?? 0)) / m.requests));
            return [
              share === null ? '–' : `${share.toFixed(1)} %`,
              fixed(median(of.map((k) => k.p50)), 1),
              fixed(median(of.map((k) => k.p95)), 1),
            ];
          }),
        ],
      ];
    }),
  };
}

/**
 * Concord's configurations against each peer: the ratio is taken inside each round (the two
 * windows closest in time), then the median over rounds, with the range of the rounds' ratios.
 */
export function roundRatios(realistic: RealisticReport, gateway: string, peer: string, pick: (m: Measurement) => number): number[] {
  const own = windowsOf(realistic, gateway);
  const other = windowsOf(realistic, peer);
  const ratios: number[] = [];
  for (const [round, m] of own) {
    const p = other.get(round);
    const value = p ? divide(pick(m), pick(p)) : null;
    if (value !== null && Number.isFinite(value)) ratios.push(value);
  }
  return ratios;
}

function realisticRatioTable(realistic: RealisticReport): Table {
  const peers = PEERS.filter((peer) => realistic.order.includes(peer));
  const cell = (ratios: number[]) => (ratios.length ? `${ratio(median(ratios))} (${spread(ratios, 2)})` : '–');
  return {
    labels: 1,
    head: ['gateway', ...peers.map((peer) => `req/s vs ${peer}`), ...peers.map((peer) => `CPU/req vs ${peer}`)],
    rows: CONCORDS.filter((gateway) => realistic.order.includes(gateway)).map((gateway) => [
      gateway,
      ...peers.map((peer) => cell(roundRatios(realistic, gateway, peer, (m) => m.rps))),
      ...peers.map((peer) => cell(roundRatios(realistic, gateway, peer, (m) => m.gatewayCpuMs))),
    ]),
  };
}

/** Every window: when it ran relative to the others, and how busy the machine was meanwhile. */
function roundsTable(realistic: RealisticReport): Table {
  return {
    labels: 2,
    head: [
      'round',
      'gateway',
      'req/s',
      'p50 ms',
      'p95 ms',
      'p99 ms',
      'errors',
      'load avg (1 min)',
      'machine busy (cores)',
      'other load (cores)',
    ],
    rows: realistic.windows.map((row) => {
      const m = measured(row);
      if (!m) return [String(row.round), row.gateway, failedCell(row)];
      return [
        String(row.round),
        row.gateway,
        fixed(m.rps, 0),
        fixed(m.p50, 1),
        fixed(m.p95, 1),
        fixed(m.p99, 1),
        String(m.errors),
        fixed(m.loadAverage, 2),
        fixed(m.machineCores, 2),
        fixed(m.otherCores, 2),
      ];
    }),
  };
}

export interface Target {
  target: string;
  measured: string;
  /** null: not measured in this run. */
  held: boolean | null;
}

const QUEUE = 'CaseQueue';
const CONTEXT = 'CaseContext';

/** Each target of docs/benchmarks.md and whether this run met it. */
export function evaluateTargets(report: BenchReport): Target[] {
  const targets: Target[] = [];
  const queue = find(report.throughput, CONCORD, QUEUE);
  const apolloQueue = find(report.throughput, APOLLO, QUEUE);
  const hiveQueue = find(report.throughput, HIVE, QUEUE);
  const vsApollo = divide(queue?.rps, apolloQueue?.rps);
  const vsHive = divide(queue?.rps, hiveQueue?.rps);
  targets.push({
    target: 'CaseQueue requests/s ≥ 1.5× apollo-gateway and ≥ 2× hive-gateway',
    measured: `${ratio(vsApollo)} apollo-gateway, ${ratio(vsHive)} hive-gateway`,
    held: vsApollo === null || vsHive === null ? null : vsApollo >= 1.5 && vsHive >= 2,
  });

  const cpu = [QUEUE, CONTEXT].map((operation) => ({
    operation,
    value: divide(find(report.throughput, CONCORD, operation)?.gatewayCpuMs, find(report.throughput, APOLLO, operation)?.gatewayCpuMs),
  }));
  targets.push({
    target: "gateway CPU ms/request ≤ 0.6× apollo-gateway's",
    measured: cpu.map((entry) => `${entry.operation} ${ratio(entry.value)}`).join(', '),
    held: cpu.some((entry) => entry.value === null) ? null : cpu.every((entry) => entry.value! <= 0.6),
  });

  const slow = measured(report.latency.find((row) => row.gateway === CONCORD));
  const limit = report.plan?.limit ?? null;
  targets.push({
    target: 'CaseContext p95 with system latency ≤ physical limit + 10 ms',
    measured: slow && limit !== null ? `p95 ${fixed(slow.p95, 1)} ms, limit ${fixed(limit, 0)} ms` : '–',
    held: slow && limit !== null ? slow.p95 <= limit + 10 : null,
  });

  const context = find(report.throughput, CONCORD, CONTEXT);
  targets.push({
    target: 'vendor calls per CaseContext with a warm cache ≤ 1',
    measured: context ? fixed(context.vendorCalls, 2) : '–',
    held: context ? context.vendorCalls <= 1 : null,
  });

  const scaling = report.queueScaling.filter((entry) => entry.first10 !== null && entry.first100 !== null);
  // Batching makes the calls independent of the page size; a page of 10 may just miss an entity
  // type a page of 100 has, so one call or 15% either way is still constant. N+1 would be ×10.
  const constant = (a: number, b: number) => Math.abs(a - b) <= Math.max(1, 0.15 * Math.max(a, b));
  targets.push({
    target: 'CaseQueue vendor calls constant from 10 to 100 cases',
    measured: scaling.length
      ? scaling.map((entry) => `${entry.gateway}: ${fixed(entry.first10, 2)} → ${fixed(entry.first100, 2)}`).join('; ')
      : '–',
    held: scaling.length ? scaling.every((entry) => constant(entry.first10!, entry.first100!)) : null,
  });

  const concordRss = [...report.throughput, ...report.latency]
    .filter((row) => row.gateway === CONCORD || row.gateway === CONCORD_ENTITIES || row.gateway === CONCORD_NO_CACHE)
    .map(measured)
    .filter((m): m is Measurement => m !== null)
    .map((m) => m.peakRssMb);
  const peak = concordRss.length ? Math.max(...concordRss) : null;
  targets.push({
    target: 'gateway RSS under load ≤ 300 MB',
    measured: peak === null ? '–' : `peak ${fixed(peak, 0)} MB`,
    held: peak === null ? null : peak <= 300,
  });
  return targets;
}

/**
 * Says so when other processes competed for the CPU during a measured window: such a run's
 * ratios say little about the gateways. (The load average at the start is reported too, but it
 * trails by minutes, the benchmark's own seeding included, so it decides nothing.)
 */
export function sharedWarning(report: BenchReport): string | null {
  const others = [...(report.realistic?.windows ?? []), ...report.throughput, ...report.latency]
    .map((row) => measured(row))
    .filter((m): m is Measurement => m !== null);
  const worst = others.length ? Math.max(...others.map((m) => m.otherCores)) : 0;
  const limit = 0.25;
  if (worst <= limit) return null;
  return (
    `the machine was shared: load average ${report.machine.loadAverage.toFixed(2)} on ${report.machine.cores} cores at the start, ` +
    `up to ${worst.toFixed(2)} cores busy outside the benchmark during a measurement. Rerun on a quiet machine before comparing.`
  );
}

const verdict = (held: boolean | null) => (held === null ? 'not measured' : held ? 'held' : 'missed');

function plain(table: Table): string[] {
  const complete = table.rows.filter((row) => row.length === table.head.length);
  const widths = table.head.map((cell, i) => Math.max(cell.length, ...complete.map((row) => row[i]!.length)));
  // A row cut short ends with why it has no numbers, written out in full.
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => {
        if (cells.length < widths.length && i === cells.length - 1) return cell;
        return i < table.labels ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!);
      })
      .join('  ')
      .trimEnd();
  return [line(table.head), ...table.rows.map(line)];
}

function markdown(table: Table): string[] {
  const escape = (cell: string) => cell.replace(/\|/g, '\\|').replace(/\n/g, ' ');
  const width = table.head.length;
  return [
    `| ${table.head.join(' | ')} |`,
    `| ${table.head.map((_, i) => (i < table.labels ? '---' : '---:')).join(' | ')} |`,
    ...table.rows.map((row) => {
      const cells = row.length < width ? [...row, ...Array<string>(width - row.length).fill('')] : row;
      return `| ${cells.map(escape).join(' | ')} |`;
    }),
  ];
}

const latencyList = (latency: Latencies | null) =>
  Object.entries(latency ?? {})
    .map(([system, ms]) => `${system} ${ms} ms`)
    .join(', ');

function settingsLines(report: BenchReport): string[] {
  const s = report.settings;
  return [
    `repeated queries: ${s.connections} connections, ${s.warmup} s warm-up then ${s.duration} s measured per gateway and operation; ` +
      `Concord with GATEWAY_WORKERS=${s.workers}; gateways: ${s.gateways.join(', ')}`,
    s.latency ? `latency phase: ${latencyList(s.latency)} per system call, ${s.latencyConnections} connections` : 'latency phase: off',
  ];
}

function realisticLines(report: BenchReport): string[] {
  const r = report.realistic;
  if (!r) return [];
  const lines = [
    `realistic profile: ${r.rounds} rounds of ${r.order.join(' → ')}, each window ${r.warmup} s warm-up then ${r.duration} s measured, ` +
      `${report.settings.connections} connections, mix seed ${r.seed}`,
  ];
  if (r.sample)
    lines.push(
      `mix: 70 % CaseContext over ${r.sample.cases} cases (Zipf, s = 1), 28 % CaseQueue over ${r.sample.queueViews.length} views (Zipf, s = 1), ` +
        `2 % writes (an internal note, at most ${r.notesPerCase} per case); ${r.writes} notes written on ${r.notedCases} cases over the run, warm-ups included`,
      `answers checked JSON-equal to ${report.reference?.gateway ?? 'the first gateway'}'s before each gateway's first window: every queue view and ${r.sample.checkedCases} cases never written`,
    );
  return lines;
}

const targetLines = (report: BenchReport) =>
  evaluateTargets(report).map((target) => `  ${verdict(target.held).padEnd(12)} ${target.target}: ${target.measured}`);

/** What the console shows at the end of a run. */
export function formatConsole(report: BenchReport): string {
  const out: string[] = [];
  out.push(`${report.machine.cpu}, ${report.machine.cores} cores, Node ${report.machine.node}, ${report.machine.date}`);
  const shared = sharedWarning(report);
  if (shared) out.push(`NOTE: ${shared}`);
  out.push(...realisticLines(report), ...settingsLines(report));
  if (report.runs) for (const run of report.runs) out.push(`  ${run.gateway}: ${run.how}`);
  const r = report.realistic;
  if (r && r.windows.length) {
    out.push('', 'Realistic profile (medians over rounds)', '', ...plain(realisticTable(r)));
    const ratios = realisticRatioTable(r);
    if (ratios.rows.length && ratios.head.length > 1)
      out.push(
        '',
        'Ratios inside each round, median (min–max) over rounds (req/s: higher is better; CPU/req: lower is better)',
        '',
        ...plain(ratios),
      );
    out.push('', 'Latency by kind of request (medians over rounds)', '', ...plain(kindTable(r)));
    out.push('', 'Rounds', '', ...plain(roundsTable(r)));
  }
  if (report.reference)
    out.push(
      '',
      `answers checked against ${report.reference.gateway}'s; repeated CaseContext over ${report.reference.caseIds.length} open cases`,
    );
  out.push(
    '',
    'Repeated queries: one CaseQueue, CaseContext over 20 cases (embedded systems, no added latency)',
    '',
    ...plain(throughputTable(report.throughput)),
  );
  const ratios = ratioTable(report.throughput);
  if (ratios.rows.length) out.push('', 'Repeated-query ratios (req/s: higher is better; CPU/req: lower is better)', '', ...plain(ratios));
  if (report.queueScaling.length) {
    out.push('', 'CaseQueue vendor calls per request, 10 vs 100 cases');
    for (const entry of report.queueScaling)
      out.push(`  ${entry.gateway.padEnd(20)} ${fixed(entry.first10, 2)} → ${fixed(entry.first100, 2)}`);
  }
  if (report.settings.latency) {
    out.push('', `CaseContext with system latency (${latencyList(report.settings.latency)})`, '');
    if (report.plan) {
      out.push(`query plan: ${report.plan.steps} sequential steps, physical limit ${report.plan.limit} ms`);
      out.push(...report.plan.lines.map((line) => `  ${line}`), '');
    }
    out.push(...(report.latency.length ? plain(latencyTable(report.latency, report.plan?.limit ?? null)) : ['(not run)']));
  }
  out.push('', 'Targets', '', ...targetLines(report), '', `run took ${Math.round(report.elapsedSeconds)} s`);
  return out.join('\n');
}

/** The generated part of docs/benchmarks.md, markers included. */
export function formatMarkdown(report: BenchReport): string {
  const out: string[] = [BEGIN_MARKER, '', '## Last run', ''];
  const m = report.machine;
  out.push(`- Machine: ${m.cpu}, ${m.cores} cores, Node ${m.node}`);
  out.push(
    `- Date: ${m.date}; the run took ${Math.round(report.elapsedSeconds)} s; load average ${m.loadAverage.toFixed(2)} when it started`,
  );
  out.push(...realisticLines(report).map((line) => `- ${line}`));
  out.push(...settingsLines(report).map((line) => `- ${line}`));
  if (report.reference) {
    out.push(
      `- Repeated queries: answers checked JSON-equal to ${report.reference.gateway}'s before measuring; CaseContext rotates over ${report.reference.caseIds.length} open cases with an order and an asset`,
    );
  }
  if (report.runs) {
    out.push('- How each ran:');
    for (const run of report.runs) out.push(`  - \`${run.gateway}\`: ${run.how}`);
  }
  const shared = sharedWarning(report);
  if (shared) out.push('', `> **Note:** ${shared}`);
  const r = report.realistic;
  if (r && r.windows.length) {
    out.push(
      '',
      '### Realistic profile',
      '',
      `Embedded systems, no added latency. Medians over ${r.rounds} rounds; req/s min–max is the spread over rounds; errors are summed. ` +
        "Hit rates are hits over hits and misses of each tier of Concord's cache over all its windows (`concord_cache_lookups_total`); " +
        'notices applied are the change notices its event consumer applied in a window (`concord_events_consumed_total`).',
      '',
      ...markdown(realisticTable(r)),
    );
    const ratios = realisticRatioTable(r);
    if (ratios.rows.length && ratios.head.length > 1) {
      out.push(
        '',
        '### Realistic profile: ratios',
        '',
        "Each ratio is taken between two windows of the same round, then the median over rounds, with the rounds' range in brackets. " +
          'Requests/s: higher is better. Gateway CPU per request: lower is better.',
        '',
        ...markdown(ratios),
      );
    }
    out.push('', '### Realistic profile: latency by kind of request', '', 'Medians over rounds.', '', ...markdown(kindTable(r)));
    out.push(
      '',
      '### Realistic profile: rounds',
      '',
      'Every window in the order it ran. Load average: the 1-minute figure at the end of the window; machine busy: cores busy over the window, all processes (`/proc/stat`); other load: of those, cores outside the gateway, the subgraphs and the load generator.',
      '',
      ...markdown(roundsTable(r)),
    );
  }
  out.push(
    '',
    '### Repeated queries',
    '',
    'One CaseQueue (100 cases) again and again, and CaseContext over 20 cases: a working set that fits any cache. Embedded systems, no added latency.',
    '',
    ...markdown(throughputTable(report.throughput)),
  );
  const ratios = ratioTable(report.throughput);
  if (ratios.rows.length) {
    out.push(
      '',
      '### Repeated queries: ratios',
      '',
      'Requests/s: higher is better. Gateway CPU per request: lower is better.',
      '',
      ...markdown(ratios),
    );
  }
  if (report.queueScaling.length) {
    out.push(
      '',
      '### CaseQueue: 10 vs 100 cases',
      '',
      '| gateway | vendor calls/req, 10 cases | vendor calls/req, 100 cases |',
      '| --- | ---: | ---: |',
    );
    for (const entry of report.queueScaling) out.push(`| ${entry.gateway} | ${fixed(entry.first10, 2)} | ${fixed(entry.first100, 2)} |`);
  }
  out.push('', '### CaseContext with system latency', '');
  if (report.settings.latency) out.push(`Each system call waits: ${latencyList(report.settings.latency)}.`, '');
  if (report.plan) {
    out.push(
      `The query plan makes ${report.plan.steps} fetches one after another on its longest chain; its physical limit is ${report.plan.limit} ms:`,
      '',
      '\`\`\`',
      ...report.plan.lines,
      '\`\`\`',
      '',
    );
  }
  out.push(...(report.latency.length ? markdown(latencyTable(report.latency, report.plan?.limit ?? null)) : ['Not run.']));
  out.push(
    '',
    '### Targets',
    '',
    'Measured on the repeated queries and the latency phase, as the targets are stated.',
    '',
    '| target | this run | result |',
    '| --- | --- | --- |',
  );
  for (const target of evaluateTargets(report)) out.push(`| ${target.target} | ${target.measured} | ${verdict(target.held)} |`);
  out.push('', END_MARKER);
  return out.join('\n');
}

/** The document with its generated part replaced (or added at its end); a new document if there was none. */
export function replaceGenerated(existing: string | null, generated: string): string {
  if (existing === null) return `# Benchmarks\n\n${generated}\n`;
  const begin = existing.indexOf(BEGIN_MARKER);
  const end = existing.indexOf(END_MARKER);
  if (begin === -1 || end === -1 || end < begin) return `${existing.trimEnd()}\n\n${generated}\n`;
  return existing.slice(0, begin) + generated + existing.slice(end + END_MARKER.length);
}
