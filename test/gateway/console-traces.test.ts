import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { traceFromOtlp, traceStore, type Trace } from '../../gateway/src/console/traces.ts';
import { startStack, tokenFor, type Stack } from '../helpers/stack.ts';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const ROOT = '00f067aa0ba902b7';
const CHILD = '53995c3f42cd8ad8';
const b64 = (hex: string) => Buffer.from(hex, 'hex').toString('base64');
const ns = (ms: number) => String(1_765_000_000_000_000_000n + BigInt(ms) * 1_000_000n);

/** Two services' spans of one trace as OTLP JSON carries them, ids in base64 or hex. */
function resourceSpans(id: (hex: string) => string) {
  return [
    {
      resource: { attributes: [{ key: 'service.name', value: { stringValue: 'gateway' } }] },
      scopeSpans: [
        {
          spans: [
            {
              traceId: id(TRACE),
              spanId: id(ROOT),
              name: 'POST /graphql',
              kind: 2,
              startTimeUnixNano: ns(0),
              endTimeUnixNano: ns(120),
              attributes: [
                { key: 'http.request.method', value: { stringValue: 'POST' } },
                { key: 'http.response.status_code', value: { intValue: '200' } },
                // Not shown: whatever else a span may carry.
                { key: 'enduser.id', value: { stringValue: 'alex@example.com' } },
                { key: 'graphql.document', value: { stringValue: 'mutation { secret }' } },
              ],
            },
          ],
        },
      ],
    },
    {
      resource: { attributes: [{ key: 'service.name', value: { stringValue: 'crm' } }] },
      scopeSpans: [
        {
          spans: [
            {
              traceId: id(TRACE),
              spanId: id(CHILD),
              parentSpanId: id(ROOT),
              name: 'crm logActivity',
              kind: 'SPAN_KIND_CLIENT',
              startTimeUnixNano: ns(30),
              endTimeUnixNano: ns(80),
              status: { code: 2, message: 'crm: connection refused' },
              attributes: [
                { key: 'concord.system', value: { stringValue: 'crm' } },
                { key: 'concord.retries', value: { intValue: 2 } },
              ],
            },
            // A span whose parent the store does not hold: drawn as a root.
            {
              traceId: id(TRACE),
              spanId: id('1111111111111111'),
              parentSpanId: id('2222222222222222'),
              name: 'process concord.workflow.changed',
              kind: 5,
              startTimeUnixNano: ns(200),
              endTimeUnixNano: ns(210),
            },
          ],
        },
      ],
    },
  ];
}

describe('traces for the console timeline', () => {
  it('reads Tempo (v2 and v1), Jaeger and bare OTLP JSON answers alike, ids in base64 or hex', () => {
    const answers = [
      { trace: { resourceSpans: resourceSpans(b64) } },
      { batches: resourceSpans(b64) },
      { result: { resourceSpans: resourceSpans((hex) => hex) } },
      { resourceSpans: resourceSpans((hex) => hex.toUpperCase()) },
    ];
    const traces = answers.map((answer) => traceFromOtlp(TRACE, answer));
    for (const trace of traces) expect(trace).toEqual(traces[0]);
    const trace = traces[0]!;
    expect(trace).toMatchObject({ traceId: TRACE, durationMs: 210, services: ['gateway', 'crm'], truncated: false });
    expect(trace.startedAt).toBe(new Date(1_765_000_000_000).toISOString());
    expect(
      trace.spans.map((span) => [span.name, span.service, span.kind, span.parentSpanId, span.startMs, span.durationMs, span.error]),
    ).toEqual([
      ['POST /graphql', 'gateway', 'server', '', 0, 120, false],
      ['crm logActivity', 'crm', 'client', ROOT, 30, 50, true],
      ['process concord.workflow.changed', 'crm', 'consumer', '', 200, 10, false],
    ]);
    expect(trace.spans[1]!.statusMessage).toBe('crm: connection refused');
    expect(trace.spans[1]!.attributes).toEqual({ 'concord.system': 'crm', 'concord.retries': 2 });
    // Names and codes pass; user ids and documents do not.
    expect(trace.spans[0]!.attributes).toEqual({ 'http.request.method': 'POST', 'http.response.status_code': 200 });
  });

  it('keeps the earliest spans of a huge trace and says it did, and draws none of another trace', () => {
    const many = Array.from({ length: 2_500 }, (_, n) => ({
      traceId: TRACE,
      spanId: n.toString(16).padStart(16, '1'),
      name: `span ${n}`,
      kind: 1,
      startTimeUnixNano: ns(2_500 - n),
      endTimeUnixNano: ns(2_501 - n),
    }));
    const other = { ...many[0]!, traceId: 'ffffffffffffffffffffffffffffffff', spanId: 'ffffffffffffffff', name: 'elsewhere' };
    const trace = traceFromOtlp(TRACE, { resourceSpans: [{ scopeSpans: [{ spans: [...many, other] }] }] });
    expect(trace.spans).toHaveLength(2_000);
    expect(trace.truncated).toBe(true);
    expect(trace.spans[0]!.name).toBe('span 2499');
    expect(trace.spans.some((span) => span.name === 'elsewhere')).toBe(false);
    expect(trace.services).toEqual(['unknown']);
    expect(traceFromOtlp(TRACE, 'not json at all').spans).toEqual([]);
  });
});

describe('the trace store, over HTTP', () => {
  let store: http.Server;
  let base: string;
  const seen: { url: string; headers: http.IncomingHttpHeaders }[] = [];
  beforeAll(async () => {
    // A Tempo-shaped store: /api/v2/traces/<id>; some ids answer as a failing store would.
    store = http.createServer((req, res) => {
      seen.push({ url: req.url ?? '', headers: req.headers });
      const id = (req.url ?? '').split('/').pop();
      if (id === TRACE)
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ trace: { resourceSpans: resourceSpans(b64) } }));
      else if (id === 'e'.repeat(32)) res.writeHead(500).end('boom');
      else if (id === 'b'.repeat(32)) res.writeHead(200, { 'content-type': 'text/html' }).end('<html>login</html>');
      else if (id === 'a'.repeat(32)) setTimeout(() => res.writeHead(200).end('{}'), 2_000);
      else res.writeHead(404).end('trace not found');
    });
    await new Promise<void>((resolve) => store.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(store.address() as AddressInfo).port}/api/v2/traces/{traceId}`;
  });
  afterAll(async () => {
    store.closeAllConnections();
    await new Promise((resolve) => store.close(resolve));
  });

  it('answers a trace, and names each way a store can fail with its own status and code', async () => {
    const source = traceStore(base, { 'x-scope-orgid': 'ops' }, { timeoutMs: 300 });
    try {
      const found = await source.trace(TRACE);
      expect(found.found && found.trace.spans.length).toBe(3);
      expect(seen.at(-1)).toMatchObject({
        url: `/api/v2/traces/${TRACE}`,
        headers: { 'x-scope-orgid': 'ops', accept: 'application/json' },
      });
      const cases = [
        ['c'.repeat(32), 404, 'TRACE_NOT_FOUND'],
        ['e'.repeat(32), 502, 'TRACE_STORE_FAILED'],
        ['b'.repeat(32), 502, 'TRACE_STORE_FAILED'],
        ['a'.repeat(32), 504, 'TRACE_STORE_TIMEOUT'],
      ] as const;
      for (const [id, status, code] of cases) expect(await source.trace(id), id).toMatchObject({ found: false, status, code });
    } finally {
      await source.close();
    }
    // A store nothing listens for any more.
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const down = traceStore(`http://127.0.0.1:${port}/api/v2/traces/{traceId}`);
    try {
      expect(await down.trace(TRACE)).toMatchObject({ found: false, status: 502, code: 'TRACE_STORE_UNAVAILABLE' });
    } finally {
      await down.close();
    }
  });

  describe('GET /console/api/traces/<id> at the gateway', () => {
    let stack: Stack;
    let origin: string;
    beforeAll(async () => {
      stack = await startStack({ gateway: { consoleTraces: { url: base, headers: {} } } });
      origin = new URL(stack.gateway.url).origin;
    });
    afterAll(async () => {
      await stack?.stop();
    });
    const get = async (path: string, who?: Parameters<typeof tokenFor>[1]) =>
      fetch(`${origin}${path}`, who ? { headers: { authorization: `Bearer ${await tokenFor(stack.keys, who)}` } } : {});

    it('gives the console roles the trace, refuses others, and says what is wrong with a bad id', async () => {
      for (const role of ['integration_operator', 'support_lead', 'finance'] as const) {
        const response = await get(`/console/api/traces/${TRACE}`, role);
        expect(response.status, role).toBe(200);
        expect(response.headers.get('cache-control')).toBe('no-store');
        const trace = (await response.json()) as Trace;
        expect(trace.spans.map((span) => span.name)).toEqual(['POST /graphql', 'crm logActivity', 'process concord.workflow.changed']);
      }
      // Upper-case ids are the same id.
      expect((await get(`/console/api/traces/${TRACE.toUpperCase()}`, 'integration_operator')).status).toBe(200);
      expect((await get(`/console/api/traces/${TRACE}`)).status).toBe(401);
      expect((await get(`/console/api/traces/${TRACE}`, 'support_agent')).status).toBe(403);
      for (const bad of ['1234', '0'.repeat(32), `${TRACE}0`, 'z'.repeat(32), `${TRACE}/x`]) {
        const response = await get(`/console/api/traces/${bad}`, 'integration_operator');
        expect(response.status, bad).toBe(400);
        expect(await response.json()).toMatchObject({ error: { code: 'BAD_REQUEST' } });
      }
      const missing = await get(`/console/api/traces/${'c'.repeat(32)}`, 'integration_operator');
      expect(missing.status).toBe(404);
      expect(await missing.json()).toMatchObject({ error: { code: 'TRACE_NOT_FOUND' } });
      const failing = await get(`/console/api/traces/${'e'.repeat(32)}`, 'integration_operator');
      expect(failing.status).toBe(502);
      // The page knows where to ask.
      const page = await (await fetch(`${origin}/console`)).text();
      expect(page).toContain('"tracesPath":"/console/api/traces"');
      // The page reads the roles from the claim the gateway does.
      expect(page).toContain('"rolesClaim":"roles"');
    });

    it('says no trace store is configured when there is none, and the page offers no traces', async () => {
      const bare = await startStack();
      try {
        const at = new URL(bare.gateway.url).origin;
        const response = await fetch(`${at}/console/api/traces/${TRACE}`, {
          headers: { authorization: `Bearer ${await tokenFor(bare.keys, 'integration_operator')}` },
        });
        expect(response.status).toBe(404);
        expect(await response.json()).toMatchObject({ error: { code: 'TRACES_NOT_CONFIGURED' } });
        expect(await (await fetch(`${at}/console`)).text()).toContain('"tracesPath":null');
      } finally {
        await bare.stop();
      }
    });
  });
});
