import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { connectorCalls, measure } from '../../tools/bench/load.ts';
import { cpuMs, failureReason, processTree, rssMb } from '../../tools/bench/processes.ts';

/** What one load run counts: answers, every kind of error, the process's costs, the systems' calls. */
describe('bench load', () => {
  let server: Server | undefined;
  afterEach(() => new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve())));

  const listen = async (handler: Parameters<typeof createServer>[1]): Promise<string> => {
    server = createServer(handler);
    server.keepAliveTimeout = 5_000;
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  };

  it('counts non-2xx answers and GraphQL errors in 2xx answers as errors, and starts connections at different bodies', async () => {
    const firstBodies = new Set<string>();
    let calls = 0;
    const url = await listen((req, res) => {
      if (req.url === '/metrics') {
        res.end(`# HELP x\nconcord_connector_calls_total{system="crm",operation="a",outcome="ok"} ${calls}\n`);
        return;
      }
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => {
        const socket = req.socket as typeof req.socket & { seen?: boolean };
        if (!socket.seen) firstBodies.add(body);
        socket.seen = true;
        calls += 2;
        const { n } = JSON.parse(body) as { n: number };
        if (n === 0) res.writeHead(500).end('{"errors":[{"message":"down"}]}');
        else if (n === 1) res.end('{"data":null,"errors":[{"message":"Forbidden"}]}');
        else res.end(`{"data":{"subject":"\\"errors\\": none here"}}`);
      });
    });
    const bodies = [0, 1, 2, 3].map((n) => JSON.stringify({ n }));
    const result = await measure({ url: `${url}/graphql`, headers: {}, bodies, connections: 4, duration: 1, warmup: 0 }, process.pid, [
      { pid: process.pid, metricsUrl: `${url}/metrics` },
    ]);
    expect(result.requests).toBeGreaterThan(8);
    // Half the bodies fail (one with HTTP 500, one with GraphQL errors); the escaped text does not.
    expect(result.errors / result.requests).toBeGreaterThan(0.3);
    expect(result.errors / result.requests).toBeLessThan(0.7);
    expect(firstBodies.size).toBe(4);
    expect(result.vendorCalls).toBeCloseTo(2, 0);
    expect(result.p50).toBeLessThanOrEqual(result.p95);
    expect(result.p95).toBeLessThanOrEqual(result.p99);
    expect(result.peakRssMb).toBeGreaterThan(10);
    expect(result.gatewayCpuMs).toBeGreaterThan(0);
  });

  it('sums the connector counters of every subgraph', async () => {
    const url = await listen((_req, res) =>
      res.end(
        [
          '# TYPE concord_connector_calls_total counter',
          'concord_connector_calls_total{system="erp",operation="ordersByNumbers",outcome="ok",service="erp"} 3',
          'concord_connector_calls_total{system="erp",operation="productsBySkus",outcome="error",service="erp"} 1',
          'concord_connector_call_duration_seconds_count{system="erp",operation="ordersByNumbers"} 99',
        ].join('\n'),
      ),
    );
    expect(
      await connectorCalls([
        { pid: 0, metricsUrl: `${url}/metrics` },
        { pid: 0, metricsUrl: `${url}/metrics` },
      ]),
    ).toBe(8);
  });

  it('reads CPU time and memory of a process tree from /proc', () => {
    expect(processTree(process.pid)[0]).toBe(process.pid);
    expect(cpuMs([process.pid])).toBeGreaterThan(0);
    expect(rssMb(process.pid)).toBeGreaterThan(10);
  });

  it('finds the line of a service output that says why it failed', () => {
    expect(failureReason('gateway: Invalid configuration:\n  GATEWAY_PORT: must be a port number (got "x")')).toBe(
      'gateway: Invalid configuration: GATEWAY_PORT: must be a port number (got "x")',
    );
    expect(failureReason('INF Starting\nERR\n  stack: "Error: Cannot find config file at /x.ts\n  at loadConfig')).toBe(
      'stack: "Error: Cannot find config file at /x.ts',
    );
    expect(failureReason('starting\nkilled\n')).toBe('killed');
    expect(failureReason('')).toBe('no output');
  });
});
