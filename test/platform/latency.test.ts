import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../platform/config.ts';
import { withLatency } from '../../platform/latency.ts';
import { loadSubgraphConfig } from '../../platform/subgraph-config.ts';
import { loadCrmConfig } from '../../subgraphs/crm/src/config.ts';
import { loadSupportConfig } from '../../subgraphs/support/src/config.ts';

/** Simulated system latency: every port call waits, ping and close do not, vendors refuse it. */
describe('simulated latency', () => {
  const connector = () => {
    const calls: string[] = [];
    return {
      calls,
      async customersByIds(ids: readonly string[]) {
        calls.push(`customersByIds ${ids.join(',')}`);
        return ids.map((id) => ({ id }));
      },
      async contactsByIds(ids: readonly string[]) {
        // A port method that calls a sibling makes one trip to the system, not two.
        return this.customersByIds(ids);
      },
      async ping() {},
      async close() {},
    };
  };

  it('delays every port call by at least the latency, then runs it with its arguments', async () => {
    const inner = connector();
    const slow = withLatency(inner, 50);
    const started = performance.now();
    await expect(slow.customersByIds(['C10001', 'C10002'])).resolves.toEqual([{ id: 'C10001' }, { id: 'C10002' }]);
    expect(performance.now() - started).toBeGreaterThanOrEqual(49);
    expect(inner.calls).toEqual(['customersByIds C10001,C10002']);
  });

  it('delays calls made together in parallel, and a call to a sibling only once', async () => {
    const slow = withLatency(connector(), 150);
    const started = performance.now();
    await Promise.all([slow.customersByIds(['a']), slow.customersByIds(['b']), slow.contactsByIds(['c'])]);
    const elapsed = performance.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(149);
    expect(elapsed).toBeLessThan(290);
  });

  it('leaves ping and close immediate, and the connector as it is at 0', async () => {
    const inner = connector();
    const slow = withLatency(inner, 200);
    const started = performance.now();
    await slow.ping();
    await slow.close();
    expect(performance.now() - started).toBeLessThan(100);
    expect(withLatency(inner, 0)).toBe(inner);
  });

  it('is read from <PREFIX>_LATENCY_MS, 0 by default', () => {
    const system = { prefix: 'CRM', defaultPort: 0, databaseFile: ':memory:' };
    expect(loadSubgraphConfig(system, {}).latencyMs).toBe(0);
    expect(loadCrmConfig({ CRM_LATENCY_MS: '80' }).latencyMs).toBe(80);
    expect(() => loadSubgraphConfig(system, { CRM_LATENCY_MS: '-5' })).toThrow(/CRM_LATENCY_MS/);
    expect(() => loadSubgraphConfig(system, { CRM_LATENCY_MS: 'slow' })).toThrow(/CRM_LATENCY_MS.*"slow"/);
  });

  it('is refused with a vendor connector, naming the variable', () => {
    const vendor = () =>
      loadSupportConfig({ SUPPORT_CONNECTOR: 'zendesk', SUPPORT_LATENCY_MS: '60', ZENDESK_BASE_URL: 'https://acme.zendesk.com' });
    expect(vendor).toThrow(ConfigError);
    expect(vendor).toThrow(/SUPPORT_LATENCY_MS: .*embedded connector only.*SUPPORT_CONNECTOR=zendesk/);
    expect(
      loadCrmConfig({
        CRM_CONNECTOR: 'salesforce',
        CRM_LATENCY_MS: '0',
        SALESFORCE_INSTANCE_URL: 'https://x.my.salesforce.com',
        SALESFORCE_ACCESS_TOKEN: 't',
      }).latencyMs,
    ).toBe(0);
  });
});
