import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import { createGatewayMetrics } from '../../gateway/src/metrics.ts';
import { budgetOf, createOverviewSource, quantileMs, type Overview } from '../../gateway/src/console/overview.ts';
import { ROLES } from '../../platform/identity.ts';
import { startStack, tokenFor, type Stack, type Who } from '../helpers/stack.ts';

/** The operations console as the gateway serves it: the page, its files, the overview and its auth. */
describe('operations console (gateway)', () => {
  let stack: Stack;
  let origin: string;
  beforeAll(async () => {
    stack = await startStack();
    origin = new URL(stack.gateway.url).origin;
  });
  afterAll(async () => {
    await stack?.stop();
  });

  const overviewAs = async (who: Who) =>
    fetch(`${origin}/console/api/overview`, { headers: { authorization: `Bearer ${await tokenFor(stack.keys, who)}` } });

  it('serves the page at /console and /console/ with a CSP that allows only its own files and its import map', async () => {
    for (const path of ['/console', '/console/']) {
      const response = await fetch(`${origin}${path}`);
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toMatch(/^text\/html/);
      const csp = response.headers.get('content-security-policy')!;
      expect(csp).toContain("default-src 'none'");
      expect(csp).toMatch(/script-src 'self' 'sha256-[A-Za-z0-9+/=]+'/);
      const html = await response.text();
      expect(html).toContain('<script type="importmap">');
      expect(html).not.toMatch(/https?:\/\/(?!localhost)/);
      // Dev sign-in is offered: the stack's gateway runs in development with the development issuer.
      expect(html).toContain('"devSignIn":true');
    }
  });

  it('serves exactly its allow-listed files (cached for good, gzipped on request); anything else under /console is a 404', async () => {
    const html = await (await fetch(`${origin}/console`)).text();
    const tag = /\/console\/([0-9a-f]{12})\/app\.js/.exec(html)?.[1];
    expect(tag).toBeDefined();
    for (const [name, type] of [
      ['app.js', 'text/javascript'],
      ['plain-words.js', 'text/javascript'],
      ['app.css', 'text/css'],
      ['vendor/preact.mjs', 'text/javascript'],
      ['vendor/preact-hooks.mjs', 'text/javascript'],
      ['vendor/htm.mjs', 'text/javascript'],
      ['vendor/uplot.mjs', 'text/javascript'],
      ['vendor/uplot.css', 'text/css'],
    ] as const) {
      const response = await fetch(`${origin}/console/${tag}/${name}`);
      expect(response.status, name).toBe(200);
      expect(response.headers.get('content-type'), name).toContain(type);
      expect(response.headers.get('cache-control')).toContain('immutable');
      const etag = response.headers.get('etag')!;
      const again = await fetch(`${origin}/console/${tag}/${name}`, { headers: { 'if-none-match': etag } });
      expect(again.status).toBe(304);
    }
    for (const path of [
      `/console/${tag}/index.html`,
      `/console/${tag}/../../package.json`,
      `/console/${tag}/%2e%2e/%2e%2e/package.json`,
      `/console/${tag}/vendor/../app.js.map`,
      `/console/${tag}/vendor/preact.js`,
      '/console/000000000000/app.js',
      '/console/app.js',
      '/console/api/nothing',
      '/consoles',
    ]) {
      const response = await fetch(`${origin}${path}`);
      expect(response.status, path).toBe(404);
    }
  });

  it('answers the overview 401 without a token or with a bad one, 403 for roles not of the console', async () => {
    expect((await fetch(`${origin}/console/api/overview`)).status).toBe(401);
    const bad = await fetch(`${origin}/console/api/overview`, { headers: { authorization: 'Bearer not.a.token' } });
    expect(bad.status).toBe(401);
    expect(await bad.json()).toMatchObject({ error: { code: 'UNAUTHENTICATED' } });
    const allowed = new Set(['integration_operator', 'support_lead', 'finance']);
    for (const role of ROLES.filter((r) => !allowed.has(r))) {
      const response = await overviewAs(role === 'portal_customer' ? { role, customer: 'C10001' } : role);
      expect(response.status, role).toBe(403);
      expect(await response.json()).toMatchObject({ error: { code: 'FORBIDDEN' } });
    }
    // A token without any Concord role: refused by the verifier itself (403, as the API does).
    const noRole = await fetch(`${origin}/console/api/overview`, {
      headers: { authorization: `Bearer ${await tokenFor(stack.keys, { subject: 'x', roles: [], customerId: null })}` },
    });
    expect(noRole.status).toBe(403);
  });

  it('gives the console roles every system, its health and budget, and what flowed through this gateway', async () => {
    await stack.query('{ cases(first: 2) { nodes { id subject customer { name } } } }');
    for (const role of ['integration_operator', 'support_lead', 'finance'] as const) {
      const response = await overviewAs(role);
      expect(response.status, role).toBe(200);
      const overview = (await response.json()) as Overview;
      expect(overview.systems.map((system) => system.name)).toEqual(['crm', 'erp', 'support', 'processes']);
      for (const system of overview.systems) expect(system.health, system.name).toEqual({ status: 'up', detail: null });
      expect(overview.systems.find((system) => system.name === 'crm')!.title).toBe('CRM');
    }
  });

  it('offers dev sign-in for the console roles only, with a token the gateway accepts', async () => {
    const response = await fetch(`${origin}/console/api/dev-token?role=integration_operator`);
    expect(response.status).toBe(200);
    const { token } = (await response.json()) as { token: string };
    const overview = await fetch(`${origin}/console/api/overview`, { headers: { authorization: `Bearer ${token}` } });
    expect(overview.status).toBe(200);
    expect((await fetch(`${origin}/console/api/dev-token?role=integration`)).status).toBe(400);
    expect((await fetch(`${origin}/console/api/dev-token?role=support_agent`)).status).toBe(400);
  });
});

describe('operations console in production', () => {
  it('serves the page and the overview, and offers no dev sign-in', async () => {
    const stack = await startStack({ gateway: { environment: 'production' } });
    try {
      const origin = new URL(stack.gateway.url).origin;
      const html = await (await fetch(`${origin}/console`)).text();
      expect(html).toContain('"devSignIn":false');
      expect((await fetch(`${origin}/console/api/dev-token?role=integration_operator`)).status).toBe(404);
      expect((await fetch(`${origin}/console/api/overview`)).status).toBe(401);
      // The GraphQL IDE's files are not served in production.
      expect((await fetch(`${origin}/ide/x/start.js`)).status).toBe(404);
    } finally {
      await stack.stop();
    }
  });
});

describe('overview figures', () => {
  it('computes requests per second, p95 and the error ratio over the window from snapshots of the registry', async () => {
    const registry = new Registry();
    const metrics = createGatewayMetrics(registry);
    let now = 1_000_000;
    const source = createOverviewSource({ registry, routingUrls: () => ({}), intervalMs: 5_000, windowMs: 30_000, now: () => now });
    try {
      await source.sample();
      for (let i = 0; i < 100; i++) {
        metrics.subgraphRequests.inc({ subgraph: 'crm', outcome: i < 10 ? 'error' : 'ok' });
        metrics.subgraphDuration.observe({ subgraph: 'crm' }, i < 90 ? 0.02 : 0.3);
      }
      now += 10_000;
      await source.sample();
      const overview = await source.overview();
      const crm = overview.systems.find((system) => system.name === 'crm')!;
      expect(crm.requestsPerSecond).toBe(10);
      expect(crm.errorRatio).toBe(0.1);
      // 95 of 100: in the 0.25–0.5 s bucket, half-way through it.
      expect(crm.p95Ms).toBe(375);
      expect(overview.windowSeconds).toBe(10);
      const erp = overview.systems.find((system) => system.name === 'erp')!;
      expect(erp).toMatchObject({ requestsPerSecond: 0, p95Ms: null, errorRatio: null, health: { status: 'unknown' }, budget: null });
      expect(overview.series.systems.crm!.rps.at(-1)).toBe(10);
    } finally {
      source.stop();
    }
  });

  it('reads quantiles from cumulative buckets and the vendor budget from a /metrics text', () => {
    expect(quantileMs([], 0.95)).toBeNull();
    expect(
      quantileMs(
        [
          [0.1, 50],
          [0.2, 100],
          [Infinity, 100],
        ],
        0.5,
      ),
    ).toBe(100);
    expect(quantileMs([[Infinity, 5]], 0.95)).toBe(0);
    const text = [
      '# HELP concord_vendor_api_budget …',
      'concord_vendor_api_budget{system="salesforce",measure="limit"} 15000',
      'concord_vendor_api_budget{system="salesforce",measure="used"} 120',
      'concord_vendor_api_budget{system="salesforce",measure="remaining"} 14880',
    ].join('\n');
    expect(budgetOf(text)).toEqual({ limit: 15000, used: 120, remaining: 14880 });
    expect(budgetOf('concord_http_requests_total 3')).toBeNull();
  });
});
