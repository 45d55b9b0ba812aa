import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../platform/config.ts';
import { loadSupportConfig } from '../../subgraphs/support/src/config.ts';

const base = { SUPPORT_CONNECTOR: 'servicenow', SERVICENOW_BASE_URL: 'https://acme.service-now.com/' };

describe('SUPPORT_CONNECTOR=servicenow', () => {
  it('takes basic auth, client credentials at the instance, or a fixed token', () => {
    expect(loadSupportConfig({ ...base, SERVICENOW_USER: 'concord', SERVICENOW_PASSWORD: 'pw' }).servicenow?.auth).toEqual({
      kind: 'basic',
      user: 'concord',
      password: 'pw',
    });
    expect(loadSupportConfig({ ...base, SERVICENOW_CLIENT_ID: 'c', SERVICENOW_CLIENT_SECRET: 's' }).servicenow?.auth).toEqual({
      kind: 'oauth',
      token: { kind: 'client_credentials', tokenUrl: 'https://acme.service-now.com/oauth_token.do', clientId: 'c', clientSecret: 's' },
    });
    expect(loadSupportConfig({ ...base, SERVICENOW_ACCESS_TOKEN: 't' }).servicenow?.auth).toEqual({
      kind: 'oauth',
      token: { kind: 'static', token: 't' },
    });
    expect(loadSupportConfig({ ...base, SERVICENOW_ACCESS_TOKEN: 't' }).zendesk).toBeNull();
    expect(loadSupportConfig({}).servicenow).toBeNull();
  });

  it('names the variable that is missing', () => {
    expect(() => loadSupportConfig({ SUPPORT_CONNECTOR: 'servicenow', SERVICENOW_USER: 'u', SERVICENOW_PASSWORD: 'p' })).toThrow(
      ConfigError,
    );
    expect(() => loadSupportConfig({ SUPPORT_CONNECTOR: 'servicenow', SERVICENOW_USER: 'u' })).toThrow(/SERVICENOW_BASE_URL/);
    expect(() => loadSupportConfig({ ...base })).toThrow(/SERVICENOW_USER: required with SUPPORT_CONNECTOR=servicenow/);
    expect(() => loadSupportConfig({ ...base, SERVICENOW_USER: 'u' })).toThrow(/SERVICENOW_PASSWORD/);
    expect(() => loadSupportConfig({ ...base, SERVICENOW_CLIENT_ID: 'c' })).toThrow(/SERVICENOW_CLIENT_SECRET/);
  });
});
