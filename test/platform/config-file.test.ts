import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadGatewayConfig } from '../../gateway/src/config.ts';
import { ConfigError } from '../../platform/config.ts';
import { configuredEnv } from '../../platform/config-file.ts';
import { fromPackageRoot } from '../../platform/package-root.ts';
import { loadCrmConfig } from '../../subgraphs/crm/src/config.ts';
import { loadProcessesConfig } from '../../processes/src/config.ts';
import { loadErpConfig } from '../../subgraphs/erp/src/config.ts';
import { loadSupportConfig } from '../../subgraphs/support/src/config.ts';

/** concord.yaml and .env in a folder of their own, read as a service started there would. */
let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'concord-config-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const write = (name: string, text: string) => writeFileSync(join(dir, name), text);
const gateway = (env: NodeJS.ProcessEnv = {}) => loadGatewayConfig(configuredEnv('gateway', env, dir));
const erp = (env: NodeJS.ProcessEnv = {}) => loadErpConfig(configuredEnv('erp', env, dir));
const crm = (env: NodeJS.ProcessEnv = {}) => loadCrmConfig(configuredEnv('crm', env, dir));
const processes = (env: NodeJS.ProcessEnv = {}) => loadProcessesConfig(configuredEnv('processes', env, dir));

describe('concord.yaml and .env', () => {
  it('layers defaults, the file, its service section, .env and the environment, the environment winning', () => {
    write('concord.yaml', 'LOG_LEVEL: warn\nGATEWAY_PORT: 4100\nerp:\n  LOG_LEVEL: debug\n  ERP_PORT: 4102\n');
    expect(gateway().port).toBe(4100);
    expect(gateway().logLevel).toBe('warn');
    // The erp's section applies to the erp only, over the top level.
    expect(erp().logLevel).toBe('debug');
    expect(erp().port).toBe(4102);
    expect(crm().logLevel).toBe('warn');
    expect(crm().port).toBe(4001);

    write('.env', '# development\nGATEWAY_PORT=4200\nERP_PORT="4202"\n');
    expect(gateway().port).toBe(4200);
    expect(erp().port).toBe(4202);

    expect(gateway({ GATEWAY_PORT: '4300' }).port).toBe(4300);
    expect(erp({ LOG_LEVEL: 'error' }).logLevel).toBe('error');
    // An empty variable is unset: it does not blank out the file.
    expect(gateway({ GATEWAY_PORT: '' }).port).toBe(4200);
  });

  it('takes YAML booleans, numbers and lists where variables hold text', () => {
    write(
      'concord.yaml',
      [
        'gateway:',
        '  GATEWAY_BATCHING: true',
        '  CACHE_WHOLE_ANSWERS: off',
        '  CORS_ORIGINS: [https://portal.example.com, https://agents.example.com]',
        '  AUTH_SERVICE_SUBJECTS:',
        '    - concord-processes',
        '    - nightly-sync',
        '  SUBGRAPH_CRM_URL: http://crm.internal:4001/graphql',
        'processes:',
        '  RMA_AGENT_LIMIT: 1250.5',
        '',
      ].join('\n'),
    );
    const config = gateway();
    expect(config.batching).toBe(true);
    expect(config.cache.wholeAnswers).toBe(false);
    expect([...config.corsOrigins]).toEqual(['https://portal.example.com', 'https://agents.example.com']);
    expect(config.auth.serviceSubjects).toEqual(['concord-processes', 'nightly-sync']);
    expect(config.subgraphUrls).toEqual({ crm: 'http://crm.internal:4001/graphql' });
    expect(processes().returns.agentLimit).toBe(1250.5);
  });

  it('refuses a key no service reads, or one in the section of a service that does not read it, naming the file', () => {
    write('concord.yaml', 'GATEWAY_PROT: 4000\ngateway:\n  ERP_PORT: 4002\n  CACHE_STORE: redis\n');
    const problem = () => gateway();
    expect(problem).toThrow(ConfigError);
    expect(problem).toThrow(new RegExp(`in ${join(dir, 'concord.yaml')}`));
    expect(problem).toThrow(/GATEWAY_PROT: no service reads such a variable/);
    expect(problem).toThrow(/gateway\.ERP_PORT: the gateway reads no such variable \(another service does/);
    // The same file stops every service, not only the one whose section holds the mistake.
    expect(() => crm()).toThrow(/GATEWAY_PROT/);
  });

  it('checks values with the same schemas as variables, and says which file gave the bad one', () => {
    write('concord.yaml', 'gateway:\n  GATEWAY_PORT: eighty\n');
    expect(() => gateway()).toThrow(
      new RegExp(`GATEWAY_PORT: must be a port number \\(got "eighty" in ${join(dir, 'concord.yaml')} \\(gateway\\)\\)`),
    );
    write('concord.yaml', 'CACHE_STORE: redis\n');
    expect(() => gateway()).toThrow(/CACHE_REDIS_URL: required with CACHE_STORE=redis/);
    write('concord.yaml', 'gateway:\n  CORS_ORIGINS: {a: 1}\n');
    expect(() => gateway()).toThrow(/gateway\.CORS_ORIGINS: must be a text, a number, true\/false or a list/);
    write('.env', 'GATEWAY_PORT=-1\n');
    write('concord.yaml', '');
    expect(() => gateway()).toThrow(new RegExp(`GATEWAY_PORT: .*\\(got "-1" in ${join(dir, '.env')}\\)`));
  });

  it('says where a file is not YAML, or not a map', () => {
    write('concord.yaml', 'gateway:\n  GATEWAY_PORT: 4000\n GATEWAY_WORKERS: 2\n');
    expect(() => gateway()).toThrow(/not valid YAML at line 3/);
    write('concord.yaml', 'GATEWAY_PORT: 4000\nGATEWAY_PORT: 4001\n');
    expect(() => gateway()).toThrow(/not valid YAML at line 2.*unique/i);
    write('concord.yaml', '- GATEWAY_PORT\n');
    expect(() => gateway()).toThrow(/must be a map of variables/);
  });

  it('never reads .env where production comes from the environment or the file', () => {
    write('.env', 'GATEWAY_PORT=4200\n');
    expect(gateway().port).toBe(4200);
    expect(configuredEnv('gateway', { CONCORD_ENV: 'production' }, dir).GATEWAY_PORT).toBeUndefined();
    write('concord.yaml', 'CONCORD_ENV: production\n');
    expect(configuredEnv('gateway', {}, dir).GATEWAY_PORT).toBeUndefined();
    // The environment's word is the last: development there reads .env again.
    expect(configuredEnv('gateway', { CONCORD_ENV: 'development' }, dir).GATEWAY_PORT).toBe('4200');
  });

  it('reads the files CONCORD_CONFIG and CONCORD_ENV_FILE name, which must exist', () => {
    write('production.yaml', 'GATEWAY_PORT: 4500\n');
    write('local.env', 'CRM_PORT=4501\n');
    const env = { CONCORD_CONFIG: 'production.yaml', CONCORD_ENV_FILE: join(dir, 'local.env') };
    expect(gateway(env).port).toBe(4500);
    expect(crm(env).port).toBe(4501);
    expect(() => gateway({ CONCORD_CONFIG: 'missing.yaml' })).toThrow(/CONCORD_CONFIG: .*missing\.yaml does not exist/);
    expect(() => gateway({ CONCORD_ENV_FILE: 'missing.env' })).toThrow(/CONCORD_ENV_FILE: .*missing\.env does not exist/);
  });

  it('runs every service on the example file as it is shipped', () => {
    write('concord.yaml', readFileSync(fromPackageRoot('concord.example.yaml'), 'utf8'));
    expect(gateway()).toMatchObject({ port: 4000, workers: 1, cache: { store: 'memory' } });
    expect(gateway().corsOrigins.size).toBe(0);
    expect(crm()).toMatchObject({ port: 4001, connectorKind: 'embedded' });
    expect(erp()).toMatchObject({ port: 4002, connectorKind: 'embedded' });
    expect(loadSupportConfig(configuredEnv('support', {}, dir))).toMatchObject({ port: 4003 });
    expect(processes()).toMatchObject({
      port: 4004,
      store: { kind: 'sqlite', file: 'data/workflows.sqlite' },
      returns: { agentLimit: 25_000 },
    });
  });
});
