import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../platform/config.ts';
import { loadErpConfig } from '../../subgraphs/erp/src/config.ts';

const base = { ERP_CONNECTOR: 's4hana', S4HANA_BASE_URL: 'https://my123456-api.s4hana.cloud.sap' };
const TOKEN_URL = 'https://acme.authentication.eu10.hana.ondemand.com/oauth/token';

describe('ERP_CONNECTOR=s4hana', () => {
  it('takes client credentials, a fixed token or a communication user, and the company currency', () => {
    const oauth = loadErpConfig({ ...base, S4HANA_TOKEN_URL: TOKEN_URL, S4HANA_CLIENT_ID: 'c', S4HANA_CLIENT_SECRET: 's' }).s4hana;
    expect(oauth?.auth).toEqual({
      kind: 'oauth',
      token: { kind: 'client_credentials', tokenUrl: TOKEN_URL, clientId: 'c', clientSecret: 's', scope: undefined },
    });
    expect(oauth?.companyCurrency).toBe('USD');
    expect(oauth?.policy.maxConcurrent).toBe(5);
    expect(loadErpConfig({ ...base, S4HANA_ACCESS_TOKEN: 't' }).s4hana?.auth).toEqual({
      kind: 'oauth',
      token: { kind: 'static', token: 't' },
    });
    const basic = loadErpConfig({ ...base, S4HANA_USER: 'COMM_USER', S4HANA_PASSWORD: 'pw', S4HANA_COMPANY_CURRENCY: 'EUR' });
    expect(basic.s4hana).toMatchObject({ auth: { kind: 'basic', user: 'COMM_USER', password: 'pw' }, companyCurrency: 'EUR' });
    expect(basic.businessCentral).toBeNull();
    expect(loadErpConfig({}).s4hana).toBeNull();
  });

  it('names the variable that is missing or wrong', () => {
    expect(() => loadErpConfig({ ERP_CONNECTOR: 's4hana', S4HANA_ACCESS_TOKEN: 't' })).toThrow(ConfigError);
    expect(() => loadErpConfig({ ERP_CONNECTOR: 's4hana', S4HANA_ACCESS_TOKEN: 't' })).toThrow(/S4HANA_BASE_URL/);
    expect(() => loadErpConfig({ ...base })).toThrow(/S4HANA_USER: required with ERP_CONNECTOR=s4hana/);
    expect(() => loadErpConfig({ ...base, S4HANA_USER: 'u' })).toThrow(/S4HANA_PASSWORD/);
    expect(() => loadErpConfig({ ...base, S4HANA_CLIENT_ID: 'c', S4HANA_CLIENT_SECRET: 's' })).toThrow(/S4HANA_TOKEN_URL/);
    expect(() => loadErpConfig({ ...base, S4HANA_TOKEN_URL: TOKEN_URL, S4HANA_CLIENT_ID: 'c' })).toThrow(/S4HANA_CLIENT_SECRET/);
    expect(() => loadErpConfig({ ...base, S4HANA_ACCESS_TOKEN: 't', S4HANA_COMPANY_CURRENCY: 'dollars' })).toThrow(
      /S4HANA_COMPANY_CURRENCY/,
    );
    // The Business Central feed has nothing to read on S/4HANA.
    expect(() => loadErpConfig({ ...base, S4HANA_ACCESS_TOKEN: 't', ERP_POLL_SECONDS: '60' })).toThrow(
      /ERP_POLL_SECONDS: needs ERP_CONNECTOR=business-central/,
    );
  });
});
