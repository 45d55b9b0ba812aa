import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadGatewayConfig } from '../../gateway/src/config.ts';
import { ConfigError } from '../../platform/config.ts';
import { startStack, tokenFor, type Stack } from '../helpers/stack.ts';

const PORTAL = 'https://portal.example.com';
const CONSOLE = 'http://console.example.com:8080';
const QUERY = JSON.stringify({ query: '{ cases(first: 1) { totalCount } }' });

/**
 * A browser page may call the gateway only from an origin on CORS_ORIGINS: its preflight is
 * answered, its answers carry Access-Control-Allow-Origin for that origin alone, and any other
 * origin's page gets no CORS headers (the browser withholds the answer) and a refused preflight.
 */
describe('CORS', () => {
  let stack: Stack;
  let url: string;
  let authorization: string;
  beforeAll(async () => {
    stack = await startStack({ gateway: { corsOrigins: new Set([PORTAL, CONSOLE]) } });
    url = stack.gateway.url;
    authorization = `Bearer ${await tokenFor(stack.keys, 'support_agent')}`;
  });
  afterAll(() => stack?.stop());

  const preflight = (origin: string) =>
    fetch(url, {
      method: 'OPTIONS',
      headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' },
    });

  it('answers the preflight of an allowed origin with what a browser checks', async () => {
    const answer = await preflight(PORTAL);
    expect(answer.status).toBe(204);
    expect(answer.headers.get('access-control-allow-origin')).toBe(PORTAL);
    expect(answer.headers.get('access-control-allow-methods')).toContain('POST');
    expect(answer.headers.get('access-control-allow-headers')).toContain('authorization');
    expect(answer.headers.get('access-control-allow-headers')).toContain('content-type');
    expect(answer.headers.get('access-control-allow-credentials')).toBeNull();
    expect(answer.headers.get('vary')).toContain('Origin');
  });

  it("lets an allowed origin's page read the answer and its correlation id", async () => {
    const answer = await fetch(url, {
      method: 'POST',
      headers: { origin: CONSOLE, 'content-type': 'application/json', authorization },
      body: QUERY,
    });
    expect(answer.status).toBe(200);
    expect(answer.headers.get('access-control-allow-origin')).toBe(CONSOLE);
    expect(answer.headers.get('access-control-expose-headers')).toContain('x-correlation-id');
    expect(((await answer.json()) as { data: { cases: { totalCount: number } } }).data.cases.totalCount).toBeGreaterThan(0);
  });

  it('gives any other origin no CORS headers and refuses its preflight', async () => {
    for (const origin of ['https://evil.example', 'https://portal.example.com.evil.example', 'null', 'https://PORTAL.example.com']) {
      const refused = await preflight(origin);
      expect(refused.status).toBe(403);
      expect(refused.headers.get('access-control-allow-origin')).toBeNull();
      const answer = await fetch(url, {
        method: 'POST',
        headers: { origin, 'content-type': 'application/json', authorization },
        body: QUERY,
      });
      expect(answer.headers.get('access-control-allow-origin')).toBeNull();
    }
  });

  it('is off by default: no CORS headers for any origin', async () => {
    const plain = await startStack();
    try {
      const answer = await fetch(plain.gateway.url, {
        method: 'OPTIONS',
        headers: { origin: PORTAL, 'access-control-request-method': 'POST' },
      });
      expect(answer.headers.get('access-control-allow-origin')).toBeNull();
      expect(answer.status).toBeGreaterThanOrEqual(400);
    } finally {
      await plain.stop();
    }
    expect(loadGatewayConfig({}).corsOrigins.size).toBe(0);
  });

  it('takes origins only as browsers send them, naming CORS_ORIGINS otherwise', () => {
    expect([...loadGatewayConfig({ CORS_ORIGINS: `${PORTAL}, ${CONSOLE}` }).corsOrigins]).toEqual([PORTAL, CONSOLE]);
    for (const bad of ['*', 'https://portal.example.com/', 'portal.example.com', 'https://*.example.com', 'ftp://files.example.com']) {
      expect(() => loadGatewayConfig({ CORS_ORIGINS: bad })).toThrow(ConfigError);
      expect(() => loadGatewayConfig({ CORS_ORIGINS: bad })).toThrow(/CORS_ORIGINS/);
    }
  });
});
