import { describe, expect, it } from 'vitest';
import { firstDifference, parseBenchOptions, parseLatency } from '../../tools/bench/compare.ts';
import type { Measurement } from '../../tools/bench/load.ts';
import {
  BEGIN_MARKER,
  END_MARKER,
  evaluateTargets,
  formatConsole,
  formatMarkdown,
  replaceGenerated,
  type BenchReport,
} from '../../tools/bench/report.ts';

/** npm run bench's options, answer check, targets and the regenerated part of docs/benchmarks.md. */
describe('gateway comparison report', () => {
  const m = (overrides: Partial<Measurement>): Measurement => ({
    requests: 1000,
    rps: 100,
    p50: 10,
    p95: 20,
    p99: 30,
    errors: 0,
    gatewayCpuMs: 4,
    subgraphCpuMs: 3,
    peakRssMb: 150,
    vendorCalls: 6,
    otherCores: 0,
    ...overrides,
  });
  const report = (): BenchReport => ({
    machine: { cpu: 'Test CPU', cores: 2, node: 'v20.0.0', date: '2026-01-01T00:00:00Z', loadAverage: 0.1 },
    settings: {
      duration: 10,
      warmup: 3,
      connections: 16,
      latencyConnections: 8,
      workers: 1,
      latency: { crm: 80, erp: 120, support: 60 },
      gateways: ['concord', 'apollo-gateway', 'hive-gateway'],
    },
    reference: { gateway: 'concord', caseIds: ['1', '2'] },
    throughput: [
      { gateway: 'concord', operation: 'CaseQueue', result: m({ rps: 300, gatewayCpuMs: 2 }) },
      { gateway: 'concord', operation: 'CaseContext', result: m({ rps: 400, gatewayCpuMs: 1, vendorCalls: 0.5 }) },
      { gateway: 'apollo-gateway', operation: 'CaseQueue', result: m({ rps: 150, gatewayCpuMs: 4 }) },
      { gateway: 'apollo-gateway', operation: 'CaseContext', result: m({ rps: 200, gatewayCpuMs: 3 }) },
      { gateway: 'hive-gateway', operation: 'CaseQueue', result: { failure: 'did not start: exited (code 1)' } },
      { gateway: 'hive-gateway', operation: 'CaseContext', result: { failure: 'did not start: exited (code 1)' } },
    ],
    queueScaling: [{ gateway: 'concord', first10: 6, first100: 6 }],
    latency: [{ gateway: 'concord', operation: 'CaseContext', result: m({ p95: 205 }) }],
    plan: { limit: 200, steps: 3, lines: ['Sequence (200 ms)'] },
    elapsedSeconds: 120,
  });

  it('reads the options, with the documented defaults', () => {
    expect(parseBenchOptions([])).toMatchObject({
      duration: 15,
      connections: 16,
      warmup: 4,
      rounds: 3,
      cases: 5000,
      seed: 1,
      repeatDuration: 6,
      workers: 1,
      latency: { crm: 80, erp: 120, support: 60 },
      only: ['concord', 'concord-entities', 'concord-no-cache', 'apollo-gateway', 'hive-gateway', 'hive-gateway-rust'],
      out: 'docs/benchmarks.md',
      write: true,
    });
    expect(() => parseBenchOptions(['--rounds', '0'])).toThrow(/--rounds/);
    expect(parseBenchOptions(['--only', 'hive-gateway,concord', '--no-write']).only).toEqual(['concord', 'hive-gateway']);
    expect(parseBenchOptions(['--no-write']).write).toBe(false);
    expect(() => parseBenchOptions(['--only', 'kong'])).toThrow(/--only.*kong/);
    expect(() => parseBenchOptions(['--duration', '0'])).toThrow(/--duration/);
    expect(parseLatency('erp=50')).toEqual({ crm: 0, erp: 50, support: 0 });
    expect(parseLatency('off')).toBeNull();
    expect(() => parseLatency('sap=10')).toThrow(/--latency/);
  });

  it('finds where two answers differ, whatever the key order', () => {
    expect(firstDifference({ a: 1, b: [1, { c: 2 }] }, { b: [1, { c: 2 }], a: 1 })).toBeNull();
    expect(firstDifference({ case: { order: { status: 'OPEN' } } }, { case: { order: { status: 'SHIPPED' } } })).toBe(
      '$.case.order.status: "OPEN" ≠ "SHIPPED"',
    );
  });

  it('says which targets held, and which could not be measured', () => {
    // rps: 2× apollo-gateway, but hive-gateway failed; CPU 0.5× and 0.33×; p95 205 ≤ 210; 0.5 calls; 6 → 6; 150 MB.
    expect(evaluateTargets(report()).map((target) => target.held)).toEqual([null, true, true, true, true, true]);
    const slower = report();
    slower.latency = [{ gateway: 'concord', operation: 'CaseContext', result: m({ p95: 260 }) }];
    slower.queueScaling = [{ gateway: 'concord', first10: 4, first100: 9 }];
    expect(evaluateTargets(slower).map((target) => target.held)).toEqual([null, true, false, true, false, true]);
  });

  it('prints failed gateways with their reason, and flags a shared machine', () => {
    const text = formatConsole(report());
    expect(text).toMatch(/hive-gateway\s+CaseQueue\s+failed: did not start: exited \(code 1\)/);
    expect(text).toMatch(/CaseQueue\s+concord\s+2\.00×/);
    expect(text).not.toMatch(/NOTE/);
    // A high load average alone (it trails by minutes) is no warning; load during a window is.
    const trailing = report();
    trailing.machine.loadAverage = 6;
    expect(formatConsole(trailing)).not.toMatch(/NOTE/);
    const busy = report();
    busy.machine.loadAverage = 6;
    busy.throughput[0] = { ...busy.throughput[0]!, result: m({ otherCores: 0.8 }) };
    expect(formatConsole(busy)).toMatch(/NOTE: the machine was shared: load average 6\.00 .* up to 0\.80 cores busy/);
  });

  it('replaces only the generated part of the document', () => {
    const generated = formatMarkdown(report());
    expect(generated.startsWith(BEGIN_MARKER)).toBe(true);
    expect(generated.endsWith(END_MARKER)).toBe(true);
    expect(generated).toContain('| hive-gateway | CaseQueue | failed: did not start: exited (code 1) |');
    const doc = `# Benchmarks\n\nWritten by hand.\n\n${BEGIN_MARKER}\nold numbers\n${END_MARKER}\n\n## After\n\nAlso by hand.\n`;
    const updated = replaceGenerated(doc, generated);
    expect(updated).toContain('Written by hand.');
    expect(updated).toContain('## After\n\nAlso by hand.');
    expect(updated).not.toContain('old numbers');
    expect(replaceGenerated(updated, generated)).toBe(updated);
    expect(replaceGenerated('# Benchmarks\n', 'G')).toBe('# Benchmarks\n\nG\n');
    expect(replaceGenerated(null, 'G')).toBe('# Benchmarks\n\nG\n');
  });
});
