import { describe, expect, it } from 'vitest';
import { withLatency } from '../../platform/latency.ts';
import { createEmbeddedErpConnector } from '../../subgraphs/erp/src/connectors/embedded/index.ts';
import { createContextFactory } from '../../subgraphs/erp/src/context.ts';
import { createServer } from '../../subgraphs/erp/src/server.ts';
import { seededDatabases } from '../helpers/stack.ts';
import { useSubgraph } from '../helpers/subgraph.ts';
import { recordTrips, type TripRecorder } from '../helpers/trips.ts';
import type { ErpConnector } from '../../subgraphs/erp/src/connectors/types.ts';

// What the gateway asks of the ERP for an agent's CaseContext: the case's order, asset and customer.
const CASE_CONTEXT_FETCH = `query($r: [_Any!]!) { _entities(representations: $r) {
  ... on Order { number orderDate status total { amount currency }
    lines { sequence quantity description product { sku name } }
    shipments { id carrier trackingNumber shippedDate deliveredDate status }
    invoices { number status dueDate balance { amount currency } } }
  ... on Asset { serialNumber product { sku name } warranty { status startDate endDate coverage daysRemaining } }
  ... on Customer { billing { currency paymentTerms creditHold } openBalance { amount currency } }
} }`;

const LATENCY_MS = 40;

describe('erp round trips', () => {
  const dbs = seededDatabases();
  let trips!: TripRecorder<ErpConnector>;
  const run = useSubgraph({
    database: dbs.erp,
    createConnector: (db, telemetry) => {
      trips = recordTrips(withLatency(createEmbeddedErpConnector(db, telemetry), LATENCY_MS));
      return trips.connector;
    },
    createServer,
    createContext: createContextFactory,
  });

  const asset = dbs.erp
    .prepare(
      `SELECT s.serialNumber, s.itemNumber AS sku, s.customerNumber, o.number AS orderNumber FROM serialNumbers s
       JOIN salesOrders o ON o.number = s.orderNumber
       WHERE EXISTS (SELECT 1 FROM salesInvoices i WHERE i.orderNumber = o.number) ORDER BY s.serialNumber LIMIT 1`,
    )
    .get() as { serialNumber: string; sku: string; customerNumber: string; orderNumber: string };

  it("answers a case's order with its lines, products, shipments and invoices, its asset with its product, in one trip", async () => {
    trips.reset();
    const result = await run(CASE_CONTEXT_FETCH, {
      r: [
        { __typename: 'Order', number: asset.orderNumber },
        { __typename: 'Asset', serialNumber: asset.serialNumber },
        { __typename: 'Customer', id: asset.customerNumber },
      ],
    });
    expect(result.errors).toBeUndefined();
    const [order, unit, customer] = result.data._entities;
    const lines = dbs.erp
      .prepare(
        'SELECT l.sequence, i.displayName FROM salesOrderLines l JOIN salesOrders o ON o.id = l.documentId JOIN items i ON i.number = l.lineObjectNumber WHERE o.number = ? ORDER BY l.sequence',
      )
      .all(asset.orderNumber) as { sequence: number; displayName: string }[];
    expect(order.lines.map((line: any) => [line.sequence, line.product?.name])).toEqual(
      lines.map((line) => [line.sequence, line.displayName]),
    );
    expect(order.shipments.length).toBeGreaterThan(0);
    expect(order.invoices.length).toBeGreaterThan(0);
    expect(unit.product.sku).toBe(asset.sku);
    expect(customer.billing.currency).toMatch(/^[A-Z]{3}$/);
    // Every read waits only for the representations the gateway sent: none waits for another.
    expect(trips.depth()).toBe(1);
  });

  it('reads an order asked for alone with its siblings in one call, and nothing of its parts', async () => {
    const numbers = (dbs.erp.prepare('SELECT number FROM salesOrders ORDER BY number LIMIT 50').all() as { number: string }[]).map(
      (row) => row.number,
    );
    trips.reset();
    const result = await run('query($r: [_Any!]!) { _entities(representations: $r) { ... on Order { number status } } }', {
      r: numbers.map((number) => ({ __typename: 'Order', number })),
    });
    expect(result.errors).toBeUndefined();
    expect(result.data._entities.map((order: any) => order.number)).toEqual(numbers);
    expect(trips.calls().map((call) => call.method)).toEqual(['ordersByNumbers']);
  });

  it('reads an order and the parts its query selects in one trip from the root field too', async () => {
    trips.reset();
    const result = await run('query($n: ID!) { order(number: $n) { number lines { product { name } } invoices { number } } }', {
      n: asset.orderNumber,
    });
    expect(result.errors).toBeUndefined();
    expect(result.data.order.lines.every((line: any) => typeof line.product?.name === 'string')).toBe(true);
    expect(trips.depth()).toBe(1);
    expect(trips.calls().map((call) => call.method)).toEqual(['orderGraphsByNumbers']);
  });
});
