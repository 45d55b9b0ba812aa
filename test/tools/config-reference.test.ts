import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadGatewayConfig } from '../../gateway/src/config.ts';
import { fromPackageRoot } from '../../platform/package-root.ts';
import { loadCrmConfig } from '../../subgraphs/crm/src/config.ts';
import { loadErpConfig } from '../../subgraphs/erp/src/config.ts';
import { loadSupportConfig } from '../../subgraphs/support/src/config.ts';
import { REFERENCE_FILES, renderJsonSchema, renderReference, variables } from '../../tools/config-reference.ts';

/**
 * Every variable a loader reads, recorded by reading through a proxy: what the code really
 * looks at, whatever schemas the reference was generated from.
 */
function variablesRead(load: (env: NodeJS.ProcessEnv) => unknown, given: Record<string, string>): Set<string> {
  const read = new Set<string>();
  const env = new Proxy(given as NodeJS.ProcessEnv, {
    get(target, key) {
      if (typeof key === 'string') read.add(key);
      return Reflect.get(target, key);
    },
  });
  load(env);
  return read;
}

const key = (type: 'ed25519' | 'rsa') =>
  type === 'rsa'
    ? generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
    : generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();

/** Settings that take each service down every branch of its loader: production, a vendor connector, every credential. */
const everyBranch = {
  gateway: {
    CONCORD_ENV: 'production',
    AUTH_ISSUER: 'https://login.example.com/',
    AUTH_JWKS_URL: 'https://login.example.com/jwks.json',
    INTERNAL_TOKEN_PRIVATE_KEY: key('ed25519'),
    CACHE_STORE: 'redis',
    CACHE_REDIS_URL: 'redis://cache:6379',
    EVENT_BROKER: 'nats',
  },
  subgraph: {
    CONCORD_ENV: 'production',
    INTERNAL_TOKEN_PUBLIC_KEY: '-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----',
    EVENT_BROKER: 'nats',
  },
};

describe('the configuration reference', () => {
  it('is docs/configuration.md and schema/concord.schema.json as generated from the schemas (npm run config:docs)', async () => {
    expect(readFileSync(fromPackageRoot(REFERENCE_FILES.reference), 'utf8')).toBe(await renderReference());
    expect(readFileSync(fromPackageRoot(REFERENCE_FILES.jsonSchema), 'utf8')).toBe(await renderJsonSchema());
  });

  it('lists every variable a service reads, down every branch of its loader', () => {
    const documented = variables();
    const read = new Set([
      ...variablesRead(loadGatewayConfig, everyBranch.gateway),
      ...variablesRead(loadCrmConfig, {
        ...everyBranch.subgraph,
        CRM_CONNECTOR: 'salesforce',
        SALESFORCE_INSTANCE_URL: 'https://example.my.salesforce.com',
        SALESFORCE_CLIENT_ID: 'client',
        SALESFORCE_USERNAME: 'integration@example.com',
        SALESFORCE_PRIVATE_KEY: key('rsa'),
      }),
      ...variablesRead(loadErpConfig, {
        ...everyBranch.subgraph,
        ERP_CONNECTOR: 'business-central',
        BC_BASE_URL: 'https://api.businesscentral.dynamics.com/v2.0/tenant/production',
        BC_COMPANY_ID: 'company',
        BC_TENANT_ID: 'tenant',
        BC_CLIENT_ID: 'client',
        BC_CLIENT_SECRET: 'secret',
        SERVICE_TOKEN_URL: 'https://login.example.com/token',
        SERVICE_CLIENT_ID: 'concord-processes',
        SERVICE_CLIENT_SECRET: 'secret',
      }),
      ...variablesRead(loadErpConfig, {
        ...everyBranch.subgraph,
        ERP_CONNECTOR: 's4hana',
        S4HANA_BASE_URL: 'https://my123456-api.s4hana.cloud.sap',
        S4HANA_TOKEN_URL: 'https://acme.authentication.eu10.hana.ondemand.com/oauth/token',
        S4HANA_CLIENT_ID: 'client',
        S4HANA_CLIENT_SECRET: 'secret',
      }),
      ...variablesRead(loadSupportConfig, {
        ...everyBranch.subgraph,
        SUPPORT_CONNECTOR: 'zendesk',
        ZENDESK_BASE_URL: 'https://example.zendesk.com',
        ZENDESK_EMAIL: 'agent@example.com',
        ZENDESK_API_TOKEN: 'token',
        ZENDESK_ORDER_FIELD_ID: '1',
        ZENDESK_SERIAL_FIELD_ID: '2',
      }),
      ...variablesRead(loadSupportConfig, {
        ...everyBranch.subgraph,
        SUPPORT_CONNECTOR: 'servicenow',
        SERVICENOW_BASE_URL: 'https://example.service-now.com',
        SERVICENOW_CLIENT_ID: 'client',
        SERVICENOW_CLIENT_SECRET: 'secret',
      }),
      ...variablesRead(loadSupportConfig, {
        ...everyBranch.subgraph,
        SUPPORT_CONNECTOR: 'freshdesk',
        FRESHDESK_DOMAIN: 'example',
        FRESHDESK_API_KEY: 'key',
      }),
    ]);
    const undocumented = [...read].filter((name) => !documented.has(name));
    expect(undocumented).toEqual([]);
    // And the vendor branches were really taken.
    for (const name of [
      'SALESFORCE_ACCESS_TOKEN',
      'CRM_BREAKER_OPEN_MS',
      'BC_SCOPE',
      'ERP_TIMEOUT_MS',
      'ZENDESK_OAUTH_TOKEN',
      'SERVICENOW_CLIENT_SECRET',
      'SERVICENOW_ACCESS_TOKEN',
      'FRESHDESK_API_KEY',
      'FRESHDESK_CUSTOM_STATUSES',
      'S4HANA_CLIENT_SECRET',
      'ERP_API_RESERVE',
      'SUPPORT_RETRIES',
    ])
      expect(read).toContain(name);
  });

  it('gives each variable one meaning, a default and what it accepts', () => {
    for (const variable of variables().values()) {
      expect(variable.description, variable.name).toMatch(/^\S.*[.)]$/);
      expect(variable.defaultText, variable.name).not.toBe('');
      expect(variable.accepts, variable.name).not.toBe('');
    }
  });
});
