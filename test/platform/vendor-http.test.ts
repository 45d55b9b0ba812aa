import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createConnectorTelemetry } from '../../platform/connector-telemetry.ts';
import { ConnectorError } from '../../platform/errors.ts';
import { createLogger } from '../../platform/logger.ts';
import { createMetrics } from '../../platform/metrics.ts';
import { createResilience, DEFAULT_POLICY, SystemCallError } from '../../platform/resilience.ts';
import {
  createVendorHttp,
  rateLimitHeaders,
  retryAfterMs,
  verdictOf,
  type StatusTable,
  type VendorHttpOptions,
} from '../../platform/vendor-http.ts';

const TABLE: StatusTable = [
  { status: 401, verdict: 'refresh-auth' },
  { code: /^Caller_/, verdict: 'fail' },
  { status: 429, verdict: 'rate-limited', retryAfter: true },
  { status: [408, 502], verdict: 'retry' },
  { status: { from: 500, to: 599 }, verdict: 'retry', retryAfter: true },
];

describe('a vendor status table', () => {
  it('decides by the first rule that matches, status and code together, and fails what no rule names', () => {
    expect(verdictOf(TABLE, 401, 'Caller_Bad').verdict).toBe('refresh-auth');
    expect(verdictOf(TABLE, 503, 'Caller_Bad').verdict).toBe('fail');
    expect(verdictOf(TABLE, 503, null)).toMatchObject({ verdict: 'retry', retryAfter: true });
    expect(verdictOf(TABLE, 502, null)).toMatchObject({ verdict: 'retry' });
    expect(verdictOf(TABLE, 502, null).retryAfter).toBeUndefined();
    expect(verdictOf(TABLE, 429, null).verdict).toBe('rate-limited');
    expect(verdictOf(TABLE, 404, null).verdict).toBe('fail');
    expect(verdictOf(TABLE, 600, null).verdict).toBe('fail');
  });

  it('reads Retry-After as seconds or an HTTP date, never negative, nothing for blank or garbage', () => {
    const now = Date.parse('2026-12-07T12:00:00Z');
    expect(retryAfterMs('2', now)).toBe(2_000);
    expect(retryAfterMs('0', now)).toBe(0);
    expect(retryAfterMs('-5', now)).toBe(0);
    expect(retryAfterMs('Mon, 07 Dec 2026 12:00:30 GMT', now)).toBe(30_000);
    expect(retryAfterMs('Mon, 07 Dec 2026 11:00:00 GMT', now)).toBe(0);
    for (const blank of [null, undefined, '', '  ', 'soon']) expect(retryAfterMs(blank, now)).toBeUndefined();
  });
});

describe('the vendor HTTP pipeline against a vendor-shaped server', () => {
  let server: http.Server;
  let base: string;
  /** What the server answers next, per path; each request is logged with the token it carried. */
  const script = new Map<string, { status: number; headers?: Record<string, string>; body?: unknown }[]>();
  const seen: { path: string; authorization: string | undefined; method: string }[] = [];
  beforeAll(async () => {
    server = http.createServer((req, res) => {
      seen.push({ path: req.url ?? '', authorization: req.headers.authorization, method: req.method ?? '' });
      if (req.url === '/hang') return;
      const next = script.get(req.url ?? '')?.shift() ?? { status: 200, body: { ok: true } };
      res.writeHead(next.status, { 'content-type': 'application/json', ...next.headers });
      res.end(next.body === undefined ? '' : JSON.stringify(next.body));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  function pipeline(overrides: Partial<VendorHttpOptions> = {}) {
    const metrics = createMetrics('test', { processMetrics: false });
    const logger = createLogger('test', 'silent');
    let token = 1;
    const client = createVendorHttp({
      baseUrl: base,
      auth: { authorization: () => `Bearer t${token}`, renew: async () => `Bearer t${++token}` },
      statuses: TABLE,
      errorOf: (body) => {
        const error = (body as { error?: { code?: string; message?: string } } | null)?.error;
        return { code: error?.code ?? null, message: error?.message ?? '' };
      },
      failure: (request, answer, error, details) =>
        new SystemCallError(`${request.method} answered ${answer.status} ${error.code ?? ''}`, details),
      budget: rateLimitHeaders('x-ratelimit-total', 'x-ratelimit-remaining'),
      telemetry: createConnectorTelemetry('vendor', metrics, logger),
      resilience: createResilience('vendor', { ...DEFAULT_POLICY, timeoutMs: 300, retries: 2, baseDelayMs: 1, maxDelayMs: 2 }, { logger }),
      ...overrides,
    });
    const calls = async (outcome: string) =>
      (await metrics.registry.getSingleMetric('concord_connector_calls_total')!.get()).values.find((v) => v.labels.outcome === outcome)
        ?.value ?? 0;
    return { client, calls };
  }

  it('renews a refused token once and sends again; a second refusal is the answer, not a loop', async () => {
    const { client } = pipeline();
    script.set('/renew', [{ status: 401 }]);
    seen.length = 0;
    const answer = await client.call('read', { idempotent: true }, (signal) =>
      client.exchange('read', {}, { method: 'GET', url: `${base}/renew` }, signal),
    );
    expect(answer.status).toBe(200);
    expect(seen.map((entry) => entry.authorization)).toEqual(['Bearer t1', 'Bearer t2']);

    script.set('/refused', [{ status: 401 }, { status: 401, body: { error: { code: 'Authentication_InvalidCredentials' } } }]);
    seen.length = 0;
    const refused = client.call('read', { idempotent: true }, (signal) =>
      client.exchange('read', {}, { method: 'GET', url: `${base}/refused` }, signal),
    );
    // Credentials refused: a ConnectorError naming the system, sent twice (one renewal), not retried.
    await expect(refused).rejects.toBeInstanceOf(ConnectorError);
    await expect(refused).rejects.toThrow(/refused Concord's credentials \(401\)/);
    expect(seen).toHaveLength(2);
  });

  it("retries a 429 after the vendor's Retry-After, reading the budget from every answer, failed ones too", async () => {
    const { client, calls } = pipeline();
    script.set('/busy', [{ status: 429, headers: { 'retry-after': '1', 'x-ratelimit-total': '100', 'x-ratelimit-remaining': '0' } }]);
    const started = Date.now();
    const answer = await client.call('read', { idempotent: true }, (signal) =>
      client.exchange('read', {}, { method: 'GET', url: `${base}/busy` }, signal),
    );
    expect(answer.body).toEqual({ ok: true });
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
    expect(client.budget()).toEqual({ limit: 100, remaining: 0 });
    // Each request the vendor saw counted once: the 429 as an error, the retry as a success.
    expect(await calls('error')).toBe(1);
    expect(await calls('ok')).toBe(1);
  });

  it('fails a caller error at once, with the status and code, and returns an expected status as an answer', async () => {
    const { client } = pipeline();
    script.set('/bad', [{ status: 503, body: { error: { code: 'Caller_Wrong' } } }]);
    seen.length = 0;
    const bad = client.call('read', { idempotent: true }, (signal) =>
      client.exchange('read', {}, { method: 'GET', url: `${base}/bad` }, signal),
    );
    await expect(bad).rejects.toThrow('GET answered 503 Caller_Wrong');
    await expect(bad).rejects.toMatchObject({ details: { retryable: false, status: 503 } });
    expect(seen).toHaveLength(1);
    script.set('/missing', [{ status: 404 }]);
    const missing = await client.call('find', { idempotent: true }, (signal) =>
      client.exchange('find', {}, { method: 'GET', url: `${base}/missing` }, signal, [404]),
    );
    expect(missing.status).toBe(404);
  });

  it('keeps the token on the vendor: no request, no next link to another origin', async () => {
    const { client } = pipeline();
    seen.length = 0;
    const elsewhere = client.call('read', { idempotent: true }, (signal) =>
      client.exchange('read', {}, { method: 'GET', url: 'http://127.0.0.2:9/steal' }, signal),
    );
    await expect(elsewhere).rejects.toThrow(/refusing to send a request to http:\/\/127\.0\.0\.2:9/);
    expect(seen).toHaveLength(0);
    expect(() => client.followable('http://evil.example/next', `${base}/page`)).toThrow(/refusing to follow a next link/);
    expect(client.followable('/page?skip=2', `${base}/page`)).toBe(`${base}/page?skip=2`);
  });

  it('retries a request that got no answer, and gives up at the deadline with the deadline named', async () => {
    const { client } = pipeline();
    // A port nothing listens on any more.
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const gone = `http://127.0.0.1:${(closed.address() as AddressInfo).port}`;
    await new Promise((resolve) => closed.close(resolve));
    const down = pipeline({ baseUrl: gone }).client;
    await expect(
      down.call('read', { idempotent: true }, (signal) => down.exchange('read', {}, { method: 'GET', url: `${gone}/x` }, signal)),
    ).rejects.toThrow(/GET \/x failed: ECONNREFUSED/);
    seen.length = 0;
    const started = Date.now();
    await expect(
      client.call('read', { idempotent: true }, (signal) => client.exchange('read', {}, { method: 'GET', url: `${base}/hang` }, signal)),
    ).rejects.toThrow(/timed out after 300 ms/);
    // Three tries (two retries), each cut at 300 ms.
    expect(seen.filter((entry) => entry.path === '/hang')).toHaveLength(3);
    expect(Date.now() - started).toBeLessThan(3_000);
  });
});
