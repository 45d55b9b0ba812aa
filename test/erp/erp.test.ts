import { describe, expect, it } from 'vitest';
import { createConnectorTelemetry } from '../../platform/connector-telemetry.ts';
import { createLogger } from '../../platform/logger.ts';
import { createMetrics } from '../../platform/metrics.ts';
import { createEmbeddedErpConnector } from '../../subgraphs/erp/src/connectors/embedded/index.ts';
import { createContextFactory } from '../../subgraphs/erp/src/context.ts';
import { createServer } from '../../subgraphs/erp/src/server.ts';
import { AS_OF, seededDatabases } from '../helpers/stack.ts';
import { useSubgraph } from '../helpers/subgraph.ts';

describe('erp subgraph', () => {
  const dbs = seededDatabases();
  const metrics = createMetrics('erp');
  const run = useSubgraph({
    database: dbs.erp,
    createConnector: createEmbeddedErpConnector,
    createServer,
    createContext: createContextFactory,
    telemetry: createConnectorTelemetry('erp', metrics, createLogger('erp', 'silent')),
  });

  const callCount = async () => (await metrics.connectorCalls.get()).values.reduce((sum, v) => sum + v.value, 0);

  it('resolves many Order references with one call per entity and edge', async () => {
    const orders = dbs.erp
      .prepare(
        'SELECT number, customerNumber, totalAmountIncludingTax, currencyCode FROM salesOrders WHERE fullyShipped = 1 ORDER BY number LIMIT 30',
      )
      .all() as {
      number: string;
      customerNumber: string;
      totalAmountIncludingTax: number;
      currencyCode: string;
    }[];
    const before = await callCount();
    const result = await run(
      'query($r: [_Any!]!) { _entities(representations: $r) { ... on Order { number status total { amount currency } customer { id } lines { sequence } shipments { id } } } }',
      { r: orders.map((o) => ({ __typename: 'Order', number: o.number })) },
    );
    expect(result.errors).toBeUndefined();
    expect(result.data._entities.map((o: any) => [o.number, o.status, o.total, o.customer.id])).toEqual(
      orders.map((o) => [
        o.number,
        'SHIPPED',
        { amount: o.totalAmountIncludingTax.toFixed(2), currency: o.currencyCode },
        o.customerNumber,
      ]),
    );
    expect(result.data._entities.every((o: any) => o.lines.length > 0 && o.shipments.length > 0)).toBe(true);
    // orders, lines, shipments: three calls for thirty orders.
    expect((await callCount()) - before).toBe(3);
  });

  it("derives warranty status and days remaining from the asset's dates and today", async () => {
    const active = dbs.erp
      .prepare('SELECT serialNumber, warrantyEndDate FROM serialNumbers WHERE warrantyEndDate >= ? LIMIT 1')
      .get(AS_OF) as {
      serialNumber: string;
      warrantyEndDate: string;
    };
    const expired = dbs.erp.prepare('SELECT serialNumber FROM serialNumbers WHERE warrantyEndDate < ? LIMIT 1').get(AS_OF) as {
      serialNumber: string;
    };
    const result = await run(
      'query($r: [_Any!]!) { _entities(representations: $r) { ... on Asset { serialNumber warranty { status daysRemaining endDate } } } }',
      {
        r: [active, expired].map((a) => ({ __typename: 'Asset', serialNumber: a.serialNumber })),
      },
    );
    const [first, second] = result.data._entities;
    const days = Math.round((Date.parse(active.warrantyEndDate) - Date.parse(AS_OF)) / 86_400_000);
    expect(first.warranty).toMatchObject({ status: 'ACTIVE', daysRemaining: days, endDate: active.warrantyEndDate });
    expect(second.warranty).toMatchObject({ status: 'EXPIRED', daysRemaining: 0 });
  });

  it('tells open, overdue and paid invoices apart, in exact decimal amounts', async () => {
    const pick = (where: string) =>
      dbs.erp
        .prepare(`SELECT number, totalAmountIncludingTax AS total, remainingAmount AS remaining FROM salesInvoices WHERE ${where} LIMIT 1`)
        .get(AS_OF) as {
        number: string;
        total: number;
        remaining: number;
      };
    const overdue = pick(`status = 'Open' AND dueDate < ?`);
    const open = pick(`status = 'Open' AND dueDate >= ?`);
    const paid = pick(`status = 'Paid' AND ? IS NOT NULL`);
    const result = await run(
      'query($r: [_Any!]!) { _entities(representations: $r) { ... on Invoice { number status amount { amount } balance { amount } paidDate } } }',
      {
        r: [overdue, open, paid].map((i) => ({ __typename: 'Invoice', number: i.number })),
      },
    );
    expect(result.data._entities.map((i: any) => i.status)).toEqual(['OVERDUE', 'OPEN', 'PAID']);
    expect(result.data._entities[0].balance.amount).toBe(overdue.remaining.toFixed(2));
    expect(result.data._entities[2].balance.amount).toBe('0.00');
    expect(result.data._entities[2].paidDate).toEqual(expect.stringMatching(/^\d{4}-\d{2}-\d{2}$/));
  });

  it("gives a customer's billing profile, balance and overdue invoices", async () => {
    const customer = dbs.erp
      .prepare(`SELECT number, creditLimit, balanceDue, currencyCode FROM customers WHERE balanceDue > 0 LIMIT 1`)
      .get() as {
      number: string;
      creditLimit: number;
      balanceDue: number;
      currencyCode: string;
    };
    const overdue = dbs.erp
      .prepare(
        `SELECT number FROM salesInvoices WHERE customerNumber = ? AND status = 'Open' AND dueDate < ? ORDER BY invoiceDate DESC, number DESC`,
      )
      .all(customer.number, AS_OF) as {
      number: string;
    }[];
    const result = await run(
      'query($r: [_Any!]!) { _entities(representations: $r) { ... on Customer { billing { currency creditLimit { amount } creditHold } openBalance { amount } invoices(status: OVERDUE, first: 100) { number } } } }',
      {
        r: [{ __typename: 'Customer', id: customer.number }],
      },
    );
    expect(result.errors).toBeUndefined();
    const found = result.data._entities[0];
    expect(found.billing).toMatchObject({ currency: customer.currencyCode, creditLimit: { amount: customer.creditLimit.toFixed(2) } });
    expect(found.openBalance.amount).toBe(customer.balanceDue.toFixed(2));
    expect(found.invoices.map((i: any) => i.number)).toEqual(overdue.map((i) => i.number));
  });

  it('gives null for unknown orders and invoices, and BAD_USER_INPUT for a blank number', async () => {
    const result = await run('{ order(number: "SO-000000") { number } invoice(number: "INV-000000") { number } }');
    expect(result.errors).toBeUndefined();
    expect(result.data).toEqual({ order: null, invoice: null });
    const blank = await run('{ order(number: "  ") { number } }');
    expect(blank.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(blank.errors?.[0]?.message).toContain('"number"');
  });

  it('gives each customer its own most recent orders, in one call for many customers', async () => {
    const customers = dbs.erp.prepare('SELECT number FROM customers ORDER BY number LIMIT 4').all() as { number: string }[];
    const before = await callCount();
    const result = await run(
      'query($r: [_Any!]!) { _entities(representations: $r) { ... on Customer { id orders(first: 3) { number orderDate } } } }',
      {
        r: customers.map((c) => ({ __typename: 'Customer', id: c.number })),
      },
    );
    expect(result.errors).toBeUndefined();
    for (const [i, customer] of customers.entries()) {
      const expected = dbs.erp
        .prepare('SELECT number FROM salesOrders WHERE customerNumber = ? ORDER BY orderDate DESC, number DESC LIMIT 3')
        .all(customer.number) as { number: string }[];
      expect(result.data._entities[i].orders.map((o: any) => o.number)).toEqual(expected.map((o) => o.number));
    }
    expect((await callCount()) - before).toBe(1);
  });

  it('tells open invoices not yet due from overdue ones', async () => {
    const customer = dbs.erp
      .prepare(`SELECT customerNumber AS number FROM salesInvoices WHERE status = 'Open' AND dueDate >= ? LIMIT 1`)
      .get(AS_OF) as { number: string };
    const open = dbs.erp
      .prepare(
        `SELECT number FROM salesInvoices WHERE customerNumber = ? AND status = 'Open' AND dueDate >= ? ORDER BY invoiceDate DESC, number DESC`,
      )
      .all(customer.number, AS_OF) as { number: string }[];
    const result = await run(
      'query($r: [_Any!]!) { _entities(representations: $r) { ... on Customer { invoices(status: OPEN, first: 100) { number status } } } }',
      {
        r: [{ __typename: 'Customer', id: customer.number }],
      },
    );
    expect(result.data._entities[0].invoices).toEqual(open.map((i) => ({ number: i.number, status: 'OPEN' })));
  });

  it('lists what a shipment carried: its lines and the serialized units', async () => {
    const shipment = dbs.erp.prepare('SELECT shipmentNumber AS id FROM serialNumbers LIMIT 1').get() as { id: string };
    const serials = dbs.erp
      .prepare('SELECT serialNumber FROM serialNumbers WHERE shipmentNumber = ? ORDER BY serialNumber')
      .all(shipment.id) as { serialNumber: string }[];
    const lines = dbs.erp
      .prepare('SELECT lineObjectNumber, quantity FROM salesShipmentLines WHERE documentNo = ? ORDER BY sequence')
      .all(shipment.id) as {
      lineObjectNumber: string;
      quantity: number;
    }[];
    const result = await run(
      'query($id: ID!) { shipment(id: $id) { id status lines { product { sku } quantity } assets { serialNumber shipment { id } } } }',
      { id: shipment.id },
    );
    expect(result.errors).toBeUndefined();
    expect(result.data.shipment.lines).toEqual(lines.map((l) => ({ product: { sku: l.lineObjectNumber }, quantity: l.quantity })));
    expect(result.data.shipment.assets).toEqual(serials.map((s) => ({ serialNumber: s.serialNumber, shipment: { id: shipment.id } })));
  });

  it('calls an order partially shipped once some of it has left', async () => {
    const order = dbs.erp.prepare('SELECT id, number FROM salesOrders WHERE fullyShipped = 0 LIMIT 1').get() as {
      id: string;
      number: string;
    };
    const query = 'query($n: ID!) { order(number: $n) { status } }';
    expect((await run(query, { n: order.number })).data.order.status).not.toBe('PARTIALLY_SHIPPED');
    dbs.erp
      .prepare(
        'UPDATE salesOrderLines SET shippedQuantity = 1 WHERE documentId = ? AND sequence = (SELECT MIN(sequence) FROM salesOrderLines WHERE documentId = ?)',
      )
      .run(order.id, order.id);
    expect((await run(query, { n: order.number })).data.order.status).toBe('PARTIALLY_SHIPPED');
  });
});
