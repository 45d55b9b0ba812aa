import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { loadGatewayConfig } from '../../gateway/src/config.ts';
import { ConfigError } from '../../platform/config.ts';
import { loadProcessesConfig } from '../../processes/src/config.ts';
import { loadErpConfig } from '../../subgraphs/erp/src/config.ts';

describe('configuration', () => {
  it('uses the documented defaults', () => {
    expect(loadGatewayConfig({})).toMatchObject({
      port: 4000,
      supergraphPath: 'schema/supergraph.graphql',
      subgraphTimeoutMs: 10_000,
      subgraphUrls: {},
    });
    expect(loadErpConfig({})).toMatchObject({ port: 4002, connector: { kind: 'embedded', database: 'data/erp.sqlite' } });
  });

  it('names the variable and the bad value', () => {
    expect(() => loadGatewayConfig({ GATEWAY_PORT: 'eighty' })).toThrow(ConfigError);
    expect(() => loadGatewayConfig({ GATEWAY_PORT: 'eighty' })).toThrow(/GATEWAY_PORT.*"eighty"/);
    expect(() => loadGatewayConfig({ SUBGRAPH_CRM_URL: 'crm:4001' })).toThrow(/SUBGRAPH_CRM_URL/);
    expect(() => loadErpConfig({ ERP_CONNECTOR: 'sap' })).toThrow(/ERP_CONNECTOR/);
    expect(() => loadErpConfig({ LOG_LEVEL: 'loud' })).toThrow(/LOG_LEVEL/);
  });

  it('in production, never assumes the demo systems, the embedded broker nor the dev keys', () => {
    const production = {
      CONCORD_ENV: 'production',
      INTERNAL_TOKEN_PUBLIC_KEY: '-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----',
    };
    expect(() => loadErpConfig(production)).toThrow(/ERP_CONNECTOR: required when CONCORD_ENV=production/);
    expect(() => loadProcessesConfig({ ...production, PROCESS_DATABASE_URL: 'postgres://concord@db.internal/concord' })).toThrow(
      /EVENT_BROKER: required when CONCORD_ENV=production/,
    );
    const processes = { ...production, EVENT_BROKER: 'nats', PROCESS_DATABASE_URL: 'postgres://concord@db.internal/concord' };
    expect(() => loadProcessesConfig(processes)).toThrow(/SERVICE_CLIENT_ID: required when CONCORD_ENV=production/);
    expect(loadProcessesConfig({ ...processes, SERVICE_TOKEN: 'x'.repeat(40) }).serviceToken).toEqual({
      kind: 'static',
      token: 'x'.repeat(40),
    });
  });

  it('routes subgraphs by name from SUBGRAPH_<NAME>_URL', () => {
    expect(loadGatewayConfig({ SUBGRAPH_BILLING_URL: 'http://billing:4010/graphql' }).subgraphUrls).toEqual({
      billing: 'http://billing:4010/graphql',
    });
  });

  it.each([
    ['a port out of range', 'gateway/src/index.ts', { GATEWAY_PORT: '99999' }, /GATEWAY_PORT/],
    [
      'an override for a subgraph that does not exist',
      'gateway/src/index.ts',
      { SUBGRAPH_CMR_URL: 'http://crm:4001/graphql' },
      /SUBGRAPH_CMR_URL.*no subgraph "cmr".*crm, erp, processes, support/,
    ],
    [
      'a database file that does not exist',
      'subgraphs/crm/src/index.ts',
      { CRM_DATABASE: '/nonexistent/crm.sqlite' },
      /CRM_DATABASE: \/nonexistent\/crm\.sqlite does not exist/,
    ],
  ])('stops at start-up on %s, naming the variable', (_case, entry, env, message) => {
    const run = spawnSync(process.execPath, ['--import', 'tsx', entry], {
      env: { ...process.env, ...env },
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(run.status).toBe(78);
    expect(run.stderr).toMatch(message);
  });
});
