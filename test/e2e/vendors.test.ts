import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { operation, seededDatabases, startStack, type Stack } from '../helpers/stack.ts';
import { startBusinessCentralServer, type BusinessCentralServer } from '../vendors/businessCentral/server.ts';
import { startSalesforceServer, type SalesforceServer } from '../vendors/salesforce/server.ts';
import { loadZendeskData, startZendeskServer, type ZendeskServer } from '../vendors/zendesk/server.ts';

/**
 * The whole graph on the vendor adapters (Salesforce through jsforce, Business Central over
 * OData, Zendesk over REST), each pointed at a local server that answers in the vendor's wire
 * format with the same demo data: the agent console's operations answer exactly as they do on
 * the embedded systems, and the vendor calls per CaseQueue do not grow with the page.
 */
describe('the graph on the vendor connectors', () => {
  let vendors: Stack;
  let embedded: Stack;
  let salesforce: SalesforceServer;
  let businessCentral: BusinessCentralServer;
  let zendesk: ZendeskServer;

  beforeAll(async () => {
    const dbs = seededDatabases();
    salesforce = await startSalesforceServer({ db: dbs.crm });
    businessCentral = await startBusinessCentralServer({ erp: dbs.erp });
    zendesk = await startZendeskServer({
      data: loadZendeskData(dbs.support),
      credentials: { email: 'concord@acme.example', apiToken: 'zd-token' },
    });
    const fast = (prefix: string) => ({ [`${prefix}_RETRIES`]: '1', [`${prefix}_TIMEOUT_MS`]: '5000' });
    vendors = await startStack({
      dbs,
      crmEnv: {
        CRM_CONNECTOR: 'salesforce',
        SALESFORCE_INSTANCE_URL: salesforce.instanceUrl,
        SALESFORCE_ACCESS_TOKEN: salesforce.accessToken,
        ...fast('CRM'),
      },
      erpEnv: {
        ERP_CONNECTOR: 'business-central',
        BC_BASE_URL: businessCentral.baseUrl,
        BC_COMPANY_ID: businessCentral.companyId,
        BC_ACCESS_TOKEN: businessCentral.token,
        BC_EXTENSION_PUBLISHER: businessCentral.extension.publisher,
        BC_EXTENSION_GROUP: businessCentral.extension.group,
        BC_EXTENSION_VERSION: businessCentral.extension.version,
        ...fast('ERP'),
      },
      supportEnv: {
        SUPPORT_CONNECTOR: 'zendesk',
        ZENDESK_BASE_URL: zendesk.url,
        ZENDESK_EMAIL: 'concord@acme.example',
        ZENDESK_API_TOKEN: 'zd-token',
        ZENDESK_ORDER_FIELD_ID: '360000000101',
        ZENDESK_SERIAL_FIELD_ID: '360000000102',
        ...fast('SUPPORT'),
      },
    });
    embedded = await startStack();
  });
  afterAll(async () => {
    await vendors?.stop();
    await embedded?.stop();
    await Promise.all([salesforce?.close(), businessCentral?.close(), zendesk?.close()]);
  });

  it('answers CaseContext and CaseQueue as the embedded systems do', async () => {
    const caseId = (
      embedded.dbs.support
        .prepare(`SELECT ticket_id AS id FROM ticket_custom_fields WHERE field_id = 360000000102 ORDER BY ticket_id LIMIT 1`)
        .get() as { id: number }
    ).id;
    for (const [name, variables] of [
      ['CaseContext', { id: String(caseId) }],
      ['CaseQueue', { first: 25 }],
    ] as const) {
      const before = [salesforce.requests.length, businessCentral.requests.length, zendesk.requests.length];
      const fromVendors = await vendors.query(operation('agent-console', name), variables);
      const spent = [
        salesforce.requests.length - before[0]!,
        businessCentral.requests.length - before[1]!,
        zendesk.requests.length - before[2]!,
      ];
      if (process.env.PRINT_VENDOR_CALLS)
        console.log(`${name} vendor calls: Salesforce ${spent[0]}, Business Central ${spent[1]}, Zendesk ${spent[2]}`);
      const fromEmbedded = await embedded.query(operation('agent-console', name), variables);
      expect(fromVendors.body.errors, name).toBeUndefined();
      expect(fromVendors.body, name).toEqual(fromEmbedded.body);
    }
  });

  it('makes the same vendor calls for CaseQueue with 10 cases as with 100', async () => {
    const calls = async (first: number) => {
      const before = [salesforce.requests.length, businessCentral.requests.length, zendesk.requests.length];
      const { body } = await vendors.query<{ cases: { nodes: unknown[] } }>(operation('agent-console', 'CaseQueue'), {
        first,
        filter: { status: ['NEW', 'OPEN', 'PENDING', 'ON_HOLD', 'SOLVED', 'CLOSED'] },
      });
      expect(body.errors).toBeUndefined();
      expect(body.data!.cases.nodes).toHaveLength(first);
      return {
        salesforce: salesforce.requests.length - before[0]!,
        businessCentral: businessCentral.requests.length - before[1]!,
        zendesk: zendesk.requests.length - before[2]!,
      };
    };
    const ten = await calls(10);
    if (process.env.PRINT_VENDOR_CALLS) console.log('CaseQueue vendor calls', JSON.stringify(ten));
    const hundred = await calls(100);
    expect(hundred).toEqual(ten);
    expect(Math.min(ten.salesforce, ten.businessCentral, ten.zendesk)).toBeGreaterThan(0);
    // The allocations the vendors report are exported for operators.
    const crmMetrics = await fetch(vendors.crm.url.replace(/graphql$/, 'metrics')).then((r) => r.text());
    expect(crmMetrics).toMatch(/concord_vendor_api_budget\{[^}]*measure="used"[^}]*\} \d+/);
    const deskMetrics = await fetch(vendors.support.url.replace(/graphql$/, 'metrics')).then((r) => r.text());
    expect(deskMetrics).toMatch(/concord_vendor_api_budget\{[^}]*measure="remaining"[^}]*\} \d+/);
  });

  it("answers the other systems' fields at once when Salesforce is down, and names the CRM", async () => {
    salesforce.faults.failNext('unavailable', 1_000);
    const started = Date.now();
    const { body } = await vendors.query<{ cases: any }>(
      '{ cases(first: 3) { nodes { id subject customer { name openBalance { amount } } } } }',
    );
    const elapsed = Date.now() - started;
    salesforce.reset();
    expect(body.data!.cases.nodes).toHaveLength(3);
    for (const node of body.data!.cases.nodes) {
      expect(node.subject).toEqual(expect.any(String));
      expect(node.customer.name).toBeNull();
      expect(node.customer.openBalance.amount).toMatch(/^\d+\.\d{2}$/);
    }
    expect(body.errors?.every((error) => error.extensions?.serviceName === 'crm' && error.extensions?.code === 'SYSTEM_UNAVAILABLE')).toBe(
      true,
    );
    expect(elapsed).toBeLessThan(5_000);

    if (process.env.PRINT_VENDOR_CALLS) {
      salesforce.faults.failNext('unavailable', 1_000);
      const caseId = (
        vendors.dbs.support.prepare('SELECT ticket_id AS id FROM ticket_custom_fields WHERE field_id = 360000000102 LIMIT 1').get() as {
          id: number;
        }
      ).id;
      for (const attempt of ['first', 'breaker open']) {
        const t0 = Date.now();
        const context = await vendors.query<{ case: any }>(operation('agent-console', 'CaseContext'), { id: String(caseId) });
        console.log(
          `CaseContext with Salesforce down (${attempt}): ${Date.now() - t0} ms; customer.name=${context.body.data?.case.customer.name}; ` +
            `order.status=${context.body.data?.case.order?.status}; errors=${JSON.stringify(context.body.errors?.map((e) => [e.path?.join('.'), e.extensions?.code, e.extensions?.serviceName]))}`,
        );
      }
      salesforce.reset();
    }
  });
});
