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

/** One gateway and operation: what was measured, or why nothing was. */
export interface Row {
  gateway: string;
  operation: string;
  result: Measurement | { failure: string };
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
  /** The gateway whose answers every other was checked against, and the CaseContext ids used. */
  reference: { gateway: string; caseIds: readonly string[] } | null;
  throughput: Row[];
  /** CaseQueue with 10 and with 100 cases, vendor calls per request, per Concord configuration. */
  queueScaling: { gateway: string; first10: number | null; first100: number | null }[];
  latency: Row[];
  plan: { limit: number; steps: number; lines: readonly string[] } | null;
  elapsedSeconds: number;
}

const measured = (row: Row | undefined): Measurement | null => (row && !('failure' in row.result) ? row.result : null);

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
      if (!m) return [row.gateway, row.operation, `failed: ${(row.result as { failure: string }).failure.split('\n')[0]}`];
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
      if (!m) return [row.gateway, `failed: ${(row.result as { failure: string }).failure.split('\n')[0]}`];
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
  const table: Table = {
    labels: 2,
    head: [
      'operation',
      'gateway',
      'req/s vs apollo-gateway',
      'req/s vs hive-gateway',
      'CPU/req vs apollo-gateway',
      'CPU/req vs hive-gateway',
    ],
    rows: [],
  };
  const operations = [...new Set(rows.map((row) => row.operation))];
  for (const operation of operations) {
    for (const gateway of [CONCORD, CONCORD_ENTITIES, CONCORD_NO_CACHE]) {
      const own = find(rows, gateway, operation);
      if (!own) continue;
      const apollo = find(rows, APOLLO, operation);
      const hive = find(rows, HIVE, operation);
      table.rows.push([
        operation,
        gateway,
        ratio(divide(own.rps, apollo?.rps)),
        ratio(divide(own.rps, hive?.rps)),
        ratio(divide(own.gatewayCpuMs, apollo?.gatewayCpuMs)),
        ratio(divide(own.gatewayCpuMs, hive?.gatewayCpuMs)),
      ]);
    }
  }
  return table;
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
  const others = [...report.throughput, ...report.latency].map(measured).filter((m): m is Measurement => m !== null);
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
    `${s.connections} connections, ${s.warmup} s warm-up then ${s.duration} s measured per gateway and operation; ` +
      `Concord with GATEWAY_WORKERS=${s.workers}; gateways: ${s.gateways.join(', ')}`,
    s.latency ? `latency phase: ${latencyList(s.latency)} per system call, ${s.latencyConnections} connections` : 'latency phase: off',
  ];
}

const targetLines = (report: BenchReport) =>
  evaluateTargets(report).map((target) => `  ${verdict(target.held).padEnd(12)} ${target.target}: ${target.measured}`);

/** What the console shows at the end of a run. */
export function formatConsole(report: BenchReport): string {
  const out: string[] = [];
  out.push(`${report.machine.cpu}, ${report.machine.cores} cores, Node ${report.machine.node}, ${report.machine.date}`);
  const shared = sharedWarning(report);
  if (shared) out.push(`NOTE: ${shared}`);
  out.push(...settingsLines(report));
  if (report.reference)
    out.push(`answers checked against ${report.reference.gateway}'s; CaseContext over ${report.reference.caseIds.length} open cases`);
  out.push('', 'Throughput (embedded systems, no added latency)', '', ...plain(throughputTable(report.throughput)));
  const ratios = ratioTable(report.throughput);
  if (ratios.rows.length) out.push('', 'Ratios (req/s: higher is better; CPU/req: lower is better)', '', ...plain(ratios));
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
  out.push(...settingsLines(report).map((line) => `- ${line}`));
  if (report.reference) {
    out.push(
      `- Answers checked JSON-equal to ${report.reference.gateway}'s before measuring; CaseContext rotates over ${report.reference.caseIds.length} open cases with an order and an asset`,
    );
  }
  const shared = sharedWarning(report);
  if (shared) out.push('', `> **Note:** ${shared}`);
  out.push('', '### Throughput', '', 'Embedded systems, no added latency.', '', ...markdown(throughputTable(report.throughput)));
  const ratios = ratioTable(report.throughput);
  if (ratios.rows.length) {
    out.push('', '### Ratios', '', 'Requests/s: higher is better. Gateway CPU per request: lower is better.', '', ...markdown(ratios));
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
      '```',
      ...report.plan.lines,
      '```',
      '',
    );
  }
  out.push(...(report.latency.length ? markdown(latencyTable(report.latency, report.plan?.limit ?? null)) : ['Not run.']));
  out.push('', '### Targets', '', '| target | this run | result |', '| --- | --- | --- |');
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
