import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AS_OF, operation, startStack, type Stack } from '../helpers/stack.ts';

/**
 * The whole graph over HTTP: three subgraphs and the gateway on free ports, the registered
 * agent-console operations, values checked against what each system holds.
 */
describe('the federated graph, end to end', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(async () => {
    await stack?.stop();
  });

  interface TicketRef {
    id: number;
    subject: string;
    orderNumber: string;
    serialNumber: string;
    customerId: string;
  }

  function activeContractOf(customerId: string) {
    return stack.dbs.crm
      .prepare(
        `SELECT k.ContractNumber, k.SupportTier__c FROM Contract k JOIN Account a ON a.Id = k.AccountId
         WHERE a.AccountNumber = ? AND k.Status = 'Activated' AND k.StartDate <= ? AND k.EndDate >= ?
         ORDER BY k.StartDate DESC LIMIT 1`,
      )
      .get(customerId, AS_OF, AS_OF) as { ContractNumber: string; SupportTier__c: string } | undefined;
  }

  /** A case about a unit of an order, with an internal note, whose customer has a contract in force. */
  function caseWithOrderAndAsset(): TicketRef {
    const candidates = stack.dbs.support
      .prepare(
        `SELECT t.id, t.subject, fo.value AS orderNumber, fs.value AS serialNumber, o.external_id AS customerId
         FROM tickets t
         JOIN organizations o ON o.id = t.organization_id
         JOIN ticket_custom_fields fo ON fo.ticket_id = t.id AND fo.field_id = 360000000101
         JOIN ticket_custom_fields fs ON fs.ticket_id = t.id AND fs.field_id = 360000000102
         WHERE EXISTS (SELECT 1 FROM ticket_comments c WHERE c.ticket_id = t.id AND c.public = 0)
         ORDER BY t.id`,
      )
      .all() as TicketRef[];
    const ticket = candidates.find((candidate) => activeContractOf(candidate.customerId));
    if (!ticket) throw new Error('the seeded data has no case with an order, a unit, an internal note and a contract in force');
    return ticket;
  }

  it('answers CaseContext with fields from the desk, the CRM and the ERP in one response', async () => {
    const ticket = caseWithOrderAndAsset();
    const { status, body } = await stack.query<{ case: any }>(operation('agent-console', 'CaseContext'), { id: String(ticket.id) });
    expect(status).toBe(200);
    expect(body.errors).toBeUndefined();
    const found = body.data!.case;

    // Support desk
    expect(found.id).toBe(String(ticket.id));
    expect(found.subject).toBe(ticket.subject);
    const comments = stack.dbs.support
      .prepare('SELECT body, public FROM ticket_comments WHERE ticket_id = ? ORDER BY created_at, id')
      .all(ticket.id) as { body: string; public: number }[];
    expect(found.comments.map((c: any) => [c.body, c.public])).toEqual(comments.map((c) => [c.body, c.public === 1]));
    expect(found.comments.some((c: any) => c.public === false)).toBe(true);

    // CRM
    const account = stack.dbs.crm.prepare('SELECT Name FROM Account WHERE AccountNumber = ?').get(ticket.customerId) as { Name: string };
    expect(found.customer.id).toBe(ticket.customerId);
    expect(found.customer.name).toBe(account.Name);
    const contract = activeContractOf(ticket.customerId)!;
    expect(found.customer.activeContract.id).toBe(contract.ContractNumber);
    expect(found.customer.activeContract.supportTier).toBe(contract.SupportTier__c.toUpperCase());
    // The desk's SLA for that tier, reached through @requires on the CRM's field.
    const policy = stack.dbs.support
      .prepare('SELECT title FROM sla_policies WHERE filter_tag = ?')
      .get(`tier_${contract.SupportTier__c.toLowerCase()}`) as {
      title: string;
    };
    expect(found.customer.activeContract.sla.name).toBe(policy.title);
    expect(found.customer.activeContract.sla.targets.length).toBeGreaterThan(0);

    // ERP
    const customer = stack.dbs.erp.prepare('SELECT balanceDue, currencyCode FROM customers WHERE number = ?').get(ticket.customerId) as {
      balanceDue: number;
      currencyCode: string;
    };
    expect(found.customer.openBalance).toEqual({ amount: customer.balanceDue.toFixed(2), currency: customer.currencyCode });
    expect(found.order.number).toBe(ticket.orderNumber);
    const shipments = stack.dbs.erp
      .prepare('SELECT number, packageTrackingNumber FROM salesShipments WHERE orderNumber = ? ORDER BY postingDate, number')
      .all(ticket.orderNumber) as { number: string; packageTrackingNumber: string }[];
    expect(found.order.shipments.map((s: any) => [s.id, s.trackingNumber])).toEqual(
      shipments.map((s) => [s.number, s.packageTrackingNumber]),
    );
    const invoices = stack.dbs.erp
      .prepare('SELECT number FROM salesInvoices WHERE orderNumber = ? ORDER BY invoiceDate, number')
      .all(ticket.orderNumber) as {
      number: string;
    }[];
    expect(found.order.invoices.map((i: any) => i.number)).toEqual(invoices.map((i) => i.number));
    const serial = stack.dbs.erp
      .prepare('SELECT warrantyEndDate, itemNumber FROM serialNumbers WHERE serialNumber = ?')
      .get(ticket.serialNumber) as {
      warrantyEndDate: string;
      itemNumber: string;
    };
    expect(found.asset.serialNumber).toBe(ticket.serialNumber);
    expect(found.asset.product.sku).toBe(serial.itemNumber);
    expect(found.asset.warranty.endDate).toBe(serial.warrantyEndDate);
    expect(found.asset.warranty.status).toBe(serial.warrantyEndDate >= AS_OF ? 'ACTIVE' : 'EXPIRED');
  });

  it('answers CaseQueue with open cases, newest first, each with customer name, order status and balance', async () => {
    const { body } = await stack.query<{ cases: any }>(operation('agent-console', 'CaseQueue'), { first: 25 });
    expect(body.errors).toBeUndefined();
    const expected = stack.dbs.support
      .prepare(
        `SELECT t.id, o.external_id AS customerId FROM tickets t LEFT JOIN organizations o ON o.id = t.organization_id
                WHERE t.status IN ('new', 'open') ORDER BY t.id DESC LIMIT 25`,
      )
      .all() as { id: number; customerId: string }[];
    const total = stack.dbs.support.prepare(`SELECT COUNT(*) AS n FROM tickets WHERE status IN ('new', 'open')`).get() as { n: number };
    const { nodes, totalCount, pageInfo } = body.data!.cases;
    expect(nodes.map((n: any) => n.id)).toEqual(expected.map((t) => String(t.id)));
    expect(totalCount).toBe(total.n);
    expect(pageInfo.hasNextPage).toBe(total.n > 25);
    for (const node of nodes) {
      expect(['NEW', 'OPEN']).toContain(node.status);
      const account = stack.dbs.crm.prepare('SELECT Name FROM Account WHERE AccountNumber = ?').get(node.customer.id) as { Name: string };
      expect(node.customer.name).toBe(account.Name);
      const billing = stack.dbs.erp.prepare('SELECT balanceDue, currencyCode FROM customers WHERE number = ?').get(node.customer.id) as {
        balanceDue: number;
        currencyCode: string;
      };
      expect(node.customer.openBalance).toEqual({ amount: billing.balanceDue.toFixed(2), currency: billing.currencyCode });
      if (node.order) {
        const order = stack.dbs.erp.prepare('SELECT fullyShipped, status FROM salesOrders WHERE number = ?').get(node.order.number) as {
          fullyShipped: number;
          status: string;
        };
        if (order.fullyShipped) expect(node.order.status).toBe('SHIPPED');
        else expect(['DRAFT', 'IN_REVIEW', 'OPEN', 'PARTIALLY_SHIPPED']).toContain(node.order.status);
      }
    }
    expect(nodes.some((n: any) => n.order?.status)).toBe(true);
  });

  it('pages through cases with cursors, without gaps or repeats', async () => {
    const page = `query Page($after: String) { cases(first: 7, after: $after, filter: { status: [SOLVED] }) {
      nodes { id } pageInfo { hasNextPage endCursor } } }`;
    const first = await stack.query<{ cases: any }>(page);
    const second = await stack.query<{ cases: any }>(page, { after: first.body.data!.cases.pageInfo.endCursor });
    const ids = [...first.body.data!.cases.nodes, ...second.body.data!.cases.nodes].map((n: any) => Number(n.id));
    const expected = stack.dbs.support.prepare(`SELECT id FROM tickets WHERE status = 'solved' ORDER BY id DESC LIMIT 14`).all() as {
      id: number;
    }[];
    expect(ids).toEqual(expected.map((t) => t.id));
  });

  it('gives null for an unknown case and BAD_USER_INPUT naming a bad argument', async () => {
    const unknown = await stack.query<{ case: unknown }>('{ case(id: "987654321") { id subject } }');
    expect(unknown.body.errors).toBeUndefined();
    expect(unknown.body.data!.case).toBeNull();

    const bad = await stack.query('{ case(id: "abc") { id } }');
    expect(bad.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(bad.body.errors?.[0]?.message).toContain('"id"');

    const tooMany = await stack.query('{ cases(first: 500) { nodes { id } } }');
    expect(tooMany.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(tooMany.body.errors?.[0]?.message).toContain('"first"');

    const badCursor = await stack.query('{ cases(after: "not-a-cursor") { nodes { id } } }');
    expect(badCursor.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(badCursor.body.errors?.[0]?.message).toContain('"after"');
  });

  it('answers customer, order and invoice queries from their owners', async () => {
    const invoice = stack.dbs.erp
      .prepare(
        `SELECT number, orderNumber, customerNumber, remainingAmount, dueDate, status FROM salesInvoices
                WHERE status = 'Open' AND dueDate < ? LIMIT 1`,
      )
      .get(AS_OF) as { number: string; orderNumber: string; customerNumber: string; remainingAmount: number };
    const { body } = await stack.query<any>(
      `query($invoice: ID!, $order: ID!, $customer: ID!) {
        invoice(number: $invoice) { number status balance { amount } order { number } customer { id name } }
        order(number: $order) { number customer { id } cases { id } }
        customer(id: $customer) { id name contacts { id email } openCaseCount invoices(status: OVERDUE) { number status } }
      }`,
      { invoice: invoice.number, order: invoice.orderNumber, customer: invoice.customerNumber },
    );
    expect(body.errors).toBeUndefined();
    expect(body.data.invoice).toMatchObject({
      number: invoice.number,
      status: 'OVERDUE',
      balance: { amount: invoice.remainingAmount.toFixed(2) },
    });
    expect(body.data.invoice.customer.id).toBe(invoice.customerNumber);
    expect(body.data.order.customer.id).toBe(invoice.customerNumber);
    const orderCases = stack.dbs.support
      .prepare('SELECT ticket_id FROM ticket_custom_fields WHERE field_id = 360000000101 AND value = ? ORDER BY ticket_id DESC')
      .all(invoice.orderNumber) as { ticket_id: number }[];
    expect(body.data.order.cases.map((c: any) => Number(c.id))).toEqual(orderCases.map((c) => c.ticket_id));
    expect(body.data.customer.invoices.map((i: any) => i.number)).toContain(invoice.number);
    expect(body.data.customer.invoices.every((i: any) => i.status === 'OVERDUE')).toBe(true);
    const open = stack.dbs.support
      .prepare(
        `SELECT COUNT(*) AS n FROM tickets t JOIN organizations o ON o.id = t.organization_id
                WHERE o.external_id = ? AND t.status IN ('new','open','pending','hold')`,
      )
      .get(invoice.customerNumber) as { n: number };
    expect(body.data.customer.openCaseCount).toBe(open.n);
  });

  it('returns the client correlation id, or a new one', async () => {
    const given = await stack.query('{ cases(first: 1) { nodes { id } } }', {}, { 'x-correlation-id': 'agent-console-42' });
    expect(given.headers.get('x-correlation-id')).toBe('agent-console-42');
    const made = await stack.query('{ cases(first: 1) { nodes { id } } }');
    expect(made.headers.get('x-correlation-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('answers /health (with the version of package.json), /ready and /metrics (with the build) on every service', async () => {
    const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    for (const service of [stack.gateway, stack.crm, stack.erp, stack.support]) {
      const base = service.url.replace(/\/graphql$/, '');
      const health = await fetch(`${base}/health`);
      expect(health.status).toBe(200);
      expect(await health.json()).toEqual({ status: 'ok', service: service.name, version });
      expect((await fetch(`${base}/ready`)).status).toBe(200);
      const metrics = await fetch(`${base}/metrics`).then((r) => r.text());
      expect(metrics).toContain('concord_http_request_duration_seconds');
      expect(metrics).toContain(`concord_build_info{version="${version}",node="${process.versions.node}",service="${service.name}"} 1`);
    }
  });
});
