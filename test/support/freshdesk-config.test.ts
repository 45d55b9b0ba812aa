import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../platform/config.ts';
import { loadSupportConfig } from '../../subgraphs/support/src/config.ts';

const base = { SUPPORT_CONNECTOR: 'freshdesk', FRESHDESK_API_KEY: 'fd-key' };

describe('SUPPORT_CONNECTOR=freshdesk', () => {
  it('takes the account by name or URL, its API key, and defaults for the rest', () => {
    const config = loadSupportConfig({ ...base, FRESHDESK_DOMAIN: 'Acme' });
    expect(config.freshdesk).toMatchObject({
      baseUrl: 'https://acme.freshdesk.com',
      apiKey: 'fd-key',
      customStatuses: {},
      slaPolicyIds: {},
      customObjects: { installedBase: 'installed_product', entitlements: 'entitlement' },
    });
    expect(config.zendesk).toBeNull();
    expect(config.servicenow).toBeNull();
    expect(loadSupportConfig({ ...base, FRESHDESK_BASE_URL: 'https://help.acme.example' }).freshdesk?.baseUrl).toBe(
      'https://help.acme.example',
    );
    expect(loadSupportConfig({}).freshdesk).toBeNull();
    expect(
      loadSupportConfig({ SUPPORT_CONNECTOR: 'servicenow', SERVICENOW_BASE_URL: 'https://a.service-now.com', SERVICENOW_ACCESS_TOKEN: 't' })
        .freshdesk,
    ).toBeNull();
  });

  it('reads the custom statuses, SLA policies and custom objects', () => {
    const config = loadSupportConfig({
      ...base,
      FRESHDESK_DOMAIN: 'acme',
      FRESHDESK_CUSTOM_STATUSES: '6=NEW, 7=on_hold',
      FRESHDESK_SLA_POLICY_IDS: 'BASIC=1,standard=2,PREMIUM=3',
      FRESHDESK_INSTALLED_BASE_OBJECT: '3000000001',
      FRESHDESK_ENTITLEMENT_OBJECT: 'subscriptions',
    }).freshdesk!;
    expect(config.customStatuses).toEqual({ 6: 'NEW', 7: 'ON_HOLD' });
    expect(config.slaPolicyIds).toEqual({ BASIC: 1, STANDARD: 2, PREMIUM: 3 });
    expect(config.customObjects).toEqual({ installedBase: '3000000001', entitlements: 'subscriptions' });
  });

  it('names the variable that is missing or malformed', () => {
    expect(() => loadSupportConfig({ ...base })).toThrow(ConfigError);
    expect(() => loadSupportConfig({ ...base })).toThrow(/FRESHDESK_DOMAIN: required with SUPPORT_CONNECTOR=freshdesk/);
    expect(() => loadSupportConfig({ SUPPORT_CONNECTOR: 'freshdesk', FRESHDESK_DOMAIN: 'acme' })).toThrow(/FRESHDESK_API_KEY/);
    expect(() => loadSupportConfig({ ...base, FRESHDESK_DOMAIN: 'acme.freshdesk.com' })).toThrow(/FRESHDESK_DOMAIN/);
    expect(() => loadSupportConfig({ ...base, FRESHDESK_BASE_URL: 'not a url' })).toThrow(/FRESHDESK_BASE_URL/);
    expect(() => loadSupportConfig({ ...base, FRESHDESK_DOMAIN: 'acme', FRESHDESK_CUSTOM_STATUSES: '6=WAITING' })).toThrow(
      /FRESHDESK_CUSTOM_STATUSES/,
    );
    expect(() => loadSupportConfig({ ...base, FRESHDESK_DOMAIN: 'acme', FRESHDESK_SLA_POLICY_IDS: 'GOLD=1' })).toThrow(
      /FRESHDESK_SLA_POLICY_IDS/,
    );
  });
});
