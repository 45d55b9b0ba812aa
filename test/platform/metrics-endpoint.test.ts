import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadGatewayConfig } from '../../gateway/src/config.ts';
import { createLogger } from '../../platform/logger.ts';
import { generateDevKeys } from '../../platform/keys.ts';
import { openDatabase } from '../../platform/sqlite.ts';
import { loadCrmConfig } from '../../subgraphs/crm/src/config.ts';
import { startCrm } from '../../subgraphs/crm/src/index.ts';
import { loadErpConfig } from '../../subgraphs/erp/src/config.ts';
import { loadSupportConfig } from '../../subgraphs/support/src/config.ts';
import { seedDatabases } from '../../tools/seed/index.ts';
import { PRIVATE_EVENTS, startGatewayOver, SUPERGRAPH_PATH } from '../helpers/stack.ts';

const TOKEN = 'metrics-scrape-token-for-tests';
const scrape = async (url: string, token?: string) => {
  const response = await fetch(url, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  return { status: response.status, text: await response.text() };
};
const supergraph = () => readFileSync(SUPERGRAPH_PATH, 'utf8');
const apiMetrics = (graphqlUrl: string) => graphqlUrl.replace(/\/graphql$/, '/metrics');

describe('/metrics of the gateway', () => {
  it('on METRICS_PORT: served there, and not on the public API port', async () => {
    const { metrics } = loadGatewayConfig({ METRICS_PORT: '0' });
    const { gateway, stop } = await startGatewayOver(supergraph(), { metrics });
    try {
      expect(gateway.metricsUrl).not.toBeNull();
      expect(new URL(gateway.metricsUrl!).port).not.toBe(String(gateway.port));
      expect((await scrape(apiMetrics(gateway.url))).status).toBe(404);
      const own = await scrape(gateway.metricsUrl!);
      expect(own.status).toBe(200);
      expect(own.text).toContain('concord_http_request_duration_seconds');
      // The metrics port serves nothing else.
      expect((await scrape(gateway.metricsUrl!.replace('/metrics', '/graphql'))).status).toBe(404);
    } finally {
      await stop();
    }
  });

  it('behind METRICS_TOKEN: a scrape without the token, or with another, is 401', async () => {
    const { metrics } = loadGatewayConfig({ METRICS_TOKEN: TOKEN });
    const { gateway, stop } = await startGatewayOver(supergraph(), { metrics });
    try {
      expect((await scrape(apiMetrics(gateway.url))).status).toBe(401);
      expect((await scrape(apiMetrics(gateway.url), `${TOKEN}x`)).status).toBe(401);
      const allowed = await scrape(apiMetrics(gateway.url), TOKEN);
      expect(allowed.status).toBe(200);
      expect(allowed.text).toContain('concord_http_request_duration_seconds');
    } finally {
      await stop();
    }
  });
});

describe('/metrics of a subgraph', () => {
  it('on <PREFIX>_METRICS_PORT and behind METRICS_TOKEN', async () => {
    const dbs = { crm: openDatabase(':memory:'), erp: openDatabase(':memory:'), support: openDatabase(':memory:') };
    seedDatabases(dbs, { customers: 5, orders: 10, cases: 10, seed: 1, asOf: '2026-11-01' });
    const keys = await generateDevKeys();
    const crm = await startCrm(
      {
        ...loadCrmConfig({ CRM_PORT: '0', CRM_METRICS_PORT: '0', METRICS_TOKEN: TOKEN }),
        host: '127.0.0.1',
        logLevel: 'silent',
        events: PRIVATE_EVENTS,
      },
      { database: dbs.crm, internalPublicKey: keys.internal.publicKey, logger: createLogger('crm', 'silent') },
    );
    try {
      expect((await scrape(apiMetrics(crm.url), TOKEN)).status).toBe(404);
      expect((await scrape(crm.metricsUrl!)).status).toBe(401);
      const allowed = await scrape(crm.metricsUrl!, TOKEN);
      expect(allowed.status).toBe(200);
      expect(allowed.text).toContain('concord_connector_calls_total');
    } finally {
      await crm.stop();
    }
  });
});

describe('the metrics endpoint in production', () => {
  const publicKey = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const privateKey = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const gatewayEnv = {
    CONCORD_ENV: 'production',
    EVENT_BROKER: 'nats',
    AUTH_PUBLIC_KEY: publicKey,
    AUTH_ISSUER: 'https://idp.example',
    INTERNAL_TOKEN_PRIVATE_KEY: privateKey,
  };
  const subgraphEnv = (prefix: string) => ({
    CONCORD_ENV: 'production',
    EVENT_BROKER: 'nats',
    INTERNAL_TOKEN_PUBLIC_KEY: publicKey,
    [`${prefix}_CONNECTOR`]: 'embedded',
  });

  it('is a separate port by default, not the public API port', () => {
    expect(loadGatewayConfig(gatewayEnv).metrics).toEqual({ port: 9400, token: null });
    expect(loadCrmConfig(subgraphEnv('CRM')).metrics).toEqual({ port: 9401, token: null });
    expect(loadErpConfig({ ...subgraphEnv('ERP'), SERVICE_TOKEN: 'a-fixed-service-token' }).metrics).toEqual({ port: 9402, token: null });
    expect(loadSupportConfig(subgraphEnv('SUPPORT')).metrics).toEqual({ port: 9403, token: null });
    // Chosen otherwise: behind a token on the API port, or another port.
    expect(loadGatewayConfig({ ...gatewayEnv, METRICS_TOKEN: TOKEN }).metrics).toEqual({ port: null, token: TOKEN });
    expect(loadGatewayConfig({ ...gatewayEnv, METRICS_PORT: '9500' }).metrics).toEqual({ port: 9500, token: null });
    expect(() => loadGatewayConfig({ ...gatewayEnv, METRICS_PORT: '4000' })).toThrow(/METRICS_PORT: must differ from GATEWAY_PORT/);
    expect(() => loadGatewayConfig({ METRICS_TOKEN: 'short' })).toThrow(/METRICS_TOKEN: must be at least 16 characters/);
  });

  it('development keeps /metrics on the API port, open, as before', () => {
    expect(loadGatewayConfig({}).metrics).toEqual({ port: null, token: null });
    expect(loadCrmConfig({}).metrics).toEqual({ port: null, token: null });
  });
});
