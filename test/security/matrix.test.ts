import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kind, parse, type DefinitionNode, type FieldDefinitionNode } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { grantsFor, permits, type PolicyTable } from '../../platform/authorization.ts';
import { ROLES, type Identity, type Role } from '../../platform/identity.ts';
import { CRM_POLICY } from '../../subgraphs/crm/src/policy.ts';
import { ERP_POLICY } from '../../subgraphs/erp/src/policy.ts';
import { SUPPORT_POLICY } from '../../subgraphs/support/src/policy.ts';
import { createLogger } from '../../platform/logger.ts';
import { openDatabase } from '../../platform/sqlite.ts';
import { createWorkflowEngine } from '../../platform/workflow/engine.ts';
import { sqliteExecutor } from '../../platform/workflow/sql.ts';
import { PROCESSES_POLICY } from '../../processes/src/policy.ts';
import { seededDatabases, startStack, type Stack } from '../helpers/stack.ts';
import { addInstalledProduct, addReturnOrder, addSubscription, ownRecords, type OwnRecords } from './fixtures.ts';

const MUTATION_ONLY = new Set([
  'Mutation',
  'CreateReturnAuthorizationPayload',
  'ReturnAuthorizationError',
  'CreateReturnOrderPayload',
  'ReturnOrderError',
  'CreateSalesOrderPayload',
  'SalesOrderError',
  'CancelSalesOrderPayload',
  'ConvertOpportunityToOrderPayload',
  'QuoteToOrderError',
  'OnboardCustomerPayload',
  'OnboardingError',
  'BlockCustomerPayload',
  'OnboardAccountPayload',
  'AccountOnboardingError',
  'ApplyBillingChangePayload',
  'BillingChangeError',
  'ApplySubscriptionChangePayload',
  'SubscriptionChangeError',
  'ResolveWorkflowPayload',
  'ResolveWorkflowError',
  'CustomerActivity',
]);

const POLICIES: Record<string, PolicyTable> = { crm: CRM_POLICY, erp: ERP_POLICY, support: SUPPORT_POLICY, processes: PROCESSES_POLICY };

/** The records the matrix reaches, and a workflow of the test customer. */
type Records = OwnRecords & { workflowId: string };

/** Every field each subgraph defines (not its @external ones), with whether it is a leaf. */
function fieldsOf(subgraph: string): { type: string; field: string; object: boolean }[] {
  const folder = subgraph === 'processes' ? '../../processes' : `../../subgraphs/${subgraph}`;
  const sdl = readFileSync(new URL(`${folder}/schema.graphql`, import.meta.url), 'utf8');
  const definitions = parse(sdl).definitions as DefinitionNode[];
  const scalarsAndEnums = new Set(['ID', 'String', 'Int', 'Float', 'Boolean']);
  for (const d of definitions)
    if (d.kind === Kind.ENUM_TYPE_DEFINITION || d.kind === Kind.SCALAR_TYPE_DEFINITION) scalarsAndEnums.add(d.name.value);
  const named = (field: FieldDefinitionNode): string => {
    let type = field.type;
    while (type.kind !== Kind.NAMED_TYPE) type = type.type;
    return type.name.value;
  };
  return definitions.flatMap((d) =>
    d.kind === Kind.OBJECT_TYPE_DEFINITION
      ? (d.fields ?? [])
          .filter((f) => !f.directives?.some((directive) => directive.name.value === 'external'))
          .map((f) => ({ type: d.name.value, field: f.name.value, object: !scalarsAndEnums.has(named(f)) }))
      : [],
  );
}

/** Which subgraph answers each field the subgraphs define (keys: the one that returned the object). */
const OWNER = new Map<string, string>();
for (const subgraph of Object.keys(POLICIES))
  for (const { type, field } of fieldsOf(subgraph)) if (!OWNER.has(`${type}.${field}`)) OWNER.set(`${type}.${field}`, subgraph);

/**
 * How a query reaches an object of each type, owned by the test customer: the selection around
 * the field under test, and the fields it passes through (checked against the policies too).
 */
function entry(type: string, r: Records): { wrap: (selection: string) => string; path: string[] } {
  const root = (field: string, args: string) => (selection: string) => `{ ${field}${args} { ${selection} } }`;
  const nest = (outer: (s: string) => string, field: string) => (selection: string) => outer(`${field} { ${selection} }`);
  const customer = root('customer', `(id: "${r.customerId}")`);
  const caseRoot = root('case', `(id: "${r.caseId}")`);
  const asset = root('asset', `(serialNumber: "${r.serialNumber}")`);
  const shipment = root('shipment', `(id: "${r.shipmentId}")`);
  const order = root('order', `(number: "${r.orderNumber}")`);
  const invoice = root('invoice', `(number: "${r.invoiceNumber}")`);
  const cases = root('cases', '(first: 2)');
  const contract = nest(customer, 'activeContract');
  const opportunity = root('opportunity', `(id: "${r.opportunityId}")`);
  const workflow = root('workflow', `(id: "${r.workflowId}")`);
  const workflows = root('workflows', '(first: 1)');
  const sla = nest(contract, 'sla');
  const entries: Record<string, { wrap: (s: string) => string; path: string[] }> = {
    Customer: { wrap: customer, path: ['Query.customer'] },
    Address: { wrap: nest(customer, 'billingAddress'), path: ['Query.customer', 'Customer.billingAddress'] },
    BillingProfile: { wrap: nest(customer, 'billing'), path: ['Query.customer', 'Customer.billing'] },
    Contract: { wrap: contract, path: ['Query.customer', 'Customer.activeContract'] },
    SlaPolicy: { wrap: sla, path: ['Query.customer', 'Customer.activeContract', 'Contract.sla'] },
    SlaTarget: { wrap: nest(sla, 'targets'), path: ['Query.customer', 'Customer.activeContract', 'Contract.sla', 'SlaPolicy.targets'] },
    Contact: { wrap: nest(caseRoot, 'requester'), path: ['Query.case', 'Case.requester'] },
    Case: { wrap: caseRoot, path: ['Query.case'] },
    CaseComment: { wrap: nest(caseRoot, 'comments'), path: ['Query.case', 'Case.comments'] },
    Agent: { wrap: nest(caseRoot, 'assignee'), path: ['Query.case', 'Case.assignee'] },
    CaseConnection: { wrap: cases, path: ['Query.cases'] },
    CaseEdge: { wrap: nest(cases, 'edges'), path: ['Query.cases', 'CaseConnection.edges'] },
    PageInfo: { wrap: nest(cases, 'pageInfo'), path: ['Query.cases', 'CaseConnection.pageInfo'] },
    Order: { wrap: order, path: ['Query.order'] },
    OrderLine: { wrap: nest(order, 'lines'), path: ['Query.order', 'Order.lines'] },
    Shipment: { wrap: shipment, path: ['Query.shipment'] },
    ShipmentLine: { wrap: nest(shipment, 'lines'), path: ['Query.shipment', 'Shipment.lines'] },
    Asset: { wrap: asset, path: ['Query.asset'] },
    Warranty: { wrap: nest(asset, 'warranty'), path: ['Query.asset', 'Asset.warranty'] },
    Invoice: { wrap: invoice, path: ['Query.invoice'] },
    Money: { wrap: nest(invoice, 'balance'), path: ['Query.invoice', 'Invoice.balance'] },
    Product: { wrap: root('product', `(sku: "${r.sku}")`), path: ['Query.product'] },
    Opportunity: { wrap: opportunity, path: ['Query.opportunity'] },
    Account: { wrap: root('account', `(id: "${r.accountId}")`), path: ['Query.account'] },
    ServiceSubscription: { wrap: root('serviceSubscription', `(id: "${r.subscriptionId}")`), path: ['Query.serviceSubscription'] },
    BillingSchedule: { wrap: nest(customer, 'billingSchedules'), path: ['Query.customer', 'Customer.billingSchedules'] },
    Entitlement: { wrap: nest(customer, 'entitlements'), path: ['Query.customer', 'Customer.entitlements'] },
    OpportunityLine: { wrap: nest(opportunity, 'lines'), path: ['Query.opportunity', 'Opportunity.lines'] },
    InstalledProduct: { wrap: nest(customer, 'installedBase'), path: ['Query.customer', 'Customer.installedBase'] },
    Workflow: { wrap: workflow, path: ['Query.workflow'] },
    WorkflowStep: { wrap: nest(workflow, 'steps'), path: ['Query.workflow', 'Workflow.steps'] },
    WorkflowEvent: { wrap: nest(workflow, 'history'), path: ['Query.workflow', 'Workflow.history'] },
    WorkflowConnection: { wrap: workflows, path: ['Query.workflows'] },
    WorkflowPageInfo: { wrap: nest(workflows, 'pageInfo'), path: ['Query.workflows', 'WorkflowConnection.pageInfo'] },
    ReturnAuthorization: { wrap: nest(caseRoot, 'returnAuthorizations'), path: ['Query.case', 'Case.returnAuthorizations'] },
    ReturnAuthorizationLine: {
      wrap: nest(nest(caseRoot, 'returnAuthorizations'), 'lines'),
      path: ['Query.case', 'Case.returnAuthorizations', 'ReturnAuthorization.lines'],
    },
    Query: { wrap: (s) => `{ ${s} }`, path: [] },
  };
  const found = entries[type];
  if (!found) throw new Error(`the matrix has no way to reach ${type}: add an entry`);
  return found;
}

/** Arguments that root fields need, for testing the root field itself. */
function rootArgs(field: string, r: Records): string {
  const args: Record<string, string> = {
    customer: `(id: "${r.customerId}")`,
    contact: '(id: "none")',
    contract: `(id: "${r.contractId}")`,
    order: `(number: "${r.orderNumber}")`,
    invoice: `(number: "${r.invoiceNumber}")`,
    product: `(sku: "${r.sku}")`,
    asset: `(serialNumber: "${r.serialNumber}")`,
    shipment: `(id: "${r.shipmentId}")`,
    case: `(id: "${r.caseId}")`,
    cases: '(first: 1)',
    opportunity: `(id: "${r.opportunityId}")`,
    account: `(id: "${r.accountId}")`,
    serviceSubscription: `(id: "${r.subscriptionId}")`,
    workflow: `(id: "${r.workflowId}")`,
    workflows: '(first: 1)',
  };
  return args[field] ?? '';
}

interface Cell {
  subgraph: string;
  coordinate: string;
  query: string;
  expected: Record<Role, boolean>;
}

describe('the role × field matrix, generated from the policy tables', () => {
  let stack: Stack;
  let records: Records;
  const cells: Cell[] = [];

  const registered = mkdtempSync(join(tmpdir(), 'concord-matrix-'));
  beforeAll(async () => {
    const dbs = seededDatabases();
    // A workflow of the test customer in the process service's store (of a type no replica runs: it stays as it is).
    const store = sqliteExecutor(openDatabase(':memory:'));
    const seeding = await createWorkflowEngine({
      sql: store,
      workflows: [{ type: 'test.matrix', steps: [], customerOf: (input: { customerId: string }) => input.customerId }],
      logger: createLogger('matrix', 'silent'),
    });
    const own = ownRecords(dbs);
    const { instance } = await seeding.start(
      'test.matrix',
      { customerId: own.customerId },
      { idempotencyKey: 'matrix', correlationId: 'matrix' },
    );
    records = { ...own, workflowId: instance.id };
    await addReturnOrder(dbs, records);
    await addInstalledProduct(dbs, records);
    await addSubscription(dbs, records);
    const identity = (role: Role): Identity => ({
      subject: role,
      roles: [role],
      customerId: role === 'portal_customer' ? records.customerId : null,
    });
    // Every record on every path is the test customer's: a portal grant on "own" records applies.
    const allowed = (role: Role, subgraph: string, coordinate: string) => {
      const [type = '', field = ''] = coordinate.split('.');
      return permits(identity(role), grantsFor(POLICIES[subgraph]!, type, field), records.customerId);
    };
    for (const subgraph of Object.keys(POLICIES)) {
      for (const { type, field, object } of fieldsOf(subgraph)) {
        if (type === 'Query' && field.startsWith('_')) continue;
        // Mutations and what only they return are their suites' (test/processes/returns.test.ts, resolve-workflow.test.ts, …).
        if (MUTATION_ONLY.has(type)) continue;
        const coordinate = `${type}.${field}`;
        const { wrap, path } = entry(type, records);
        const leaf = `${field}${type === 'Query' ? rootArgs(field, records) : ''}${object ? ' { __typename }' : ''}`;
        // A key field comes from the subgraph that returned its object; any other from its own.
        const answering = path.length && !OWNER.has(coordinate) ? subgraph : path.length ? (OWNER.get(path.at(-1)!) ?? subgraph) : subgraph;
        const keyField = OWNER.get(coordinate) !== subgraph || (path.length > 0 && isKey(type, field));
        const leafSubgraph = keyField ? answering : subgraph;
        if (keyField && leafSubgraph !== subgraph) continue; // tested where that subgraph answers it
        const expected = Object.fromEntries(
          ROLES.map((role) => [
            role,
            path.every((step) => allowed(role, OWNER.get(step)!, step)) && allowed(role, leafSubgraph, coordinate),
          ]),
        ) as Record<Role, boolean>;
        cells.push({ subgraph, coordinate, query: wrap(leaf), expected });
      }
    }
    // A portal customer may run registered operations only: register every cell's query.
    cells.forEach((cell, i) => writeFileSync(join(registered, `Cell${i}.graphql`), cell.query));
    stack = await startStack({ dbs, gateway: { portalOperationsDir: registered }, processes: { sql: store } });
  });
  afterAll(async () => {
    await stack?.stop();
    rmSync(registered, { recursive: true, force: true });
  });

  it.each(ROLES)(
    'shows %s exactly the fields the tables grant it',
    async (role) => {
      expect(cells.length).toBeGreaterThan(120);
      const who = role === 'portal_customer' ? { role, customer: records.customerId } : role;
      const token = await stack.bearer(who);
      const mismatches: string[] = [];
      for (let i = 0; i < cells.length; i += 16) {
        await Promise.all(
          cells.slice(i, i + 16).map(async (cell) => {
            const response = await fetch(stack.gateway.url, {
              method: 'POST',
              headers: { 'content-type': 'application/json', authorization: token },
              body: JSON.stringify({ query: cell.query }),
            });
            const body = (await response.json()) as { data?: unknown; errors?: { extensions?: { code?: string } }[] };
            const codes = (body.errors ?? []).map((error) => error.extensions?.code);
            const denied = codes.includes('FORBIDDEN');
            const broken = codes.filter((code) => code !== 'FORBIDDEN');
            if (broken.length) mismatches.push(`${cell.coordinate} [${cell.subgraph}]: unexpected ${broken.join(', ')}`);
            else if (denied === cell.expected[role]) {
              mismatches.push(
                `${cell.coordinate} [${cell.subgraph}]: ${cell.expected[role] ? 'denied but granted' : 'shown but not granted'}`,
              );
            }
          }),
        );
      }
      expect(mismatches).toEqual([]);
    },
    60_000,
  );
});

function isKey(type: string, field: string): boolean {
  const keys: Record<string, string> = {
    Customer: 'id',
    Contact: 'id',
    Contract: 'id',
    Order: 'number',
    Asset: 'serialNumber',
    Case: 'id',
    Workflow: 'id',
    Shipment: 'id',
    Invoice: 'number',
    Product: 'sku',
  };
  return keys[type] === field;
}
