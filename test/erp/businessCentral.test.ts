import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createConnectorTelemetry, silentTelemetry } from '../../platform/connector-telemetry.ts';
import { ConnectorError } from '../../platform/errors.ts';
import { createLogger } from '../../platform/logger.ts';
import { createMetrics } from '../../platform/metrics.ts';
import { createResilience, type ResiliencePolicy } from '../../platform/resilience.ts';
import { BusinessCentralError, createBusinessCentralConnector } from '../../subgraphs/erp/src/connectors/businessCentral.ts';
import { createEmbeddedErpConnector } from '../../subgraphs/erp/src/connectors/embedded/index.ts';
import type {
  BillingChange,
  ErpCustomerRecord,
  NewCustomer,
  NewReturnOrder,
  NewSalesOrder,
  OrderRecord,
  ReturnOrderRecord,
} from '../../subgraphs/erp/src/connectors/types.ts';
import { AS_OF, seededDatabases } from '../helpers/stack.ts';
import { startBusinessCentralServer, type BusinessCentralServer } from '../vendors/businessCentral/server.ts';

// Small delays and short deadlines keep the fault tests fast.
const POLICY: ResiliencePolicy = {
  timeoutMs: 2_000,
  retries: 3,
  baseDelayMs: 2,
  maxDelayMs: 10,
  maxConcurrent: 8,
  breakerThreshold: 5,
  breakerOpenMs: 60_000,
};

interface SerialRow {
  serialNumber: string;
  itemNumber: string;
  customerNumber: string;
  orderNumber: string;
}
interface LineRow {
  orderNumber: string;
  sequence: number;
  sku: string;
  customerNumber: string;
}

const sortBy =
  <T>(...keys: ((row: T) => string | number)[]) =>
  (rows: readonly T[]): T[] =>
    [...rows].sort((a, b) => {
      for (const key of keys) {
        const [x, y] = [key(a), key(b)];
        if (x !== y) return x < y ? -1 : 1;
      }
      return 0;
    });

const withoutCreatedAt = ({ createdAt: _createdAt, ...rest }: ReturnOrderRecord) => rest;
/** An order as both systems make it: number and id are each system's own. */
const withoutKeys = ({ number: _number, erpId: _erpId, ...rest }: OrderRecord) => rest;
const withoutOrderNumber = <T extends { orderNumber: string }>({ orderNumber: _orderNumber, ...rest }: T) => rest;

describe('Business Central adapter against a Business Central-shaped server', () => {
  const { erp: db } = seededDatabases();
  // The seed holds no partly shipped order: ship one line of an open order, in both systems' data.
  db.prepare(
    `UPDATE salesOrderLines SET shippedQuantity = 1
     WHERE documentId = (SELECT id FROM salesOrders WHERE number = 'SO-100397') AND sequence = 10000`,
  ).run();
  const embedded = createEmbeddedErpConnector(db, silentTelemetry('erp'));
  // The seed sets no tax areas and nothing on hand: two tax areas (a third of the customers have
  // none) and some stock, in both systems' data.
  db.prepare(`UPDATE customers SET taxAreaCode = CASE rowid % 3 WHEN 0 THEN NULL WHEN 1 THEN 'ATLANTA, GA' ELSE 'CHICAGO, IL' END`).run();
  db.prepare('UPDATE items SET inventory = (rowid * 7) % 25').run();
  const column = <T>(sql: string) => (db.prepare(sql).all() as Record<string, T>[]).map((row) => Object.values(row)[0] as T);
  const serials = db
    .prepare('SELECT serialNumber, itemNumber, customerNumber, orderNumber FROM serialNumbers ORDER BY serialNumber LIMIT 8')
    .all() as SerialRow[];
  const orderLines = db
    .prepare(
      `SELECT o.number AS orderNumber, l.sequence, l.lineObjectNumber AS sku, o.customerNumber
       FROM salesOrderLines l JOIN salesOrders o ON o.id = l.documentId ORDER BY o.number, l.sequence LIMIT 8`,
    )
    .all() as LineRow[];

  /** A return of one serialized unit and two of an order line's items. */
  function newReturn(key: string, caseId: string, i: number): NewReturnOrder {
    const serial = serials[i]!;
    const line = orderLines[i]!;
    return {
      externalDocumentNumber: key,
      customerId: serial.customerNumber,
      caseId,
      resolution: i % 2 ? 'REFUND' : 'REPLACE',
      currency: 'USD',
      lines: [
        {
          sku: serial.itemNumber,
          quantity: 1,
          unitPrice: '199.90',
          reason: 'DEFECTIVE',
          serialNumber: serial.serialNumber,
          orderNumber: serial.orderNumber,
          orderLineSequence: null,
          appliesToInvoiceNumber: null,
        },
        {
          sku: line.sku,
          quantity: 2,
          unitPrice: '12.50',
          reason: 'WRONG_ITEM',
          serialNumber: null,
          orderNumber: line.orderNumber,
          orderLineSequence: line.sequence,
          appliesToInvoiceNumber: 'INV-700001',
        },
      ],
    };
  }

  const salesCustomers = db.prepare('SELECT number, currencyCode FROM customers ORDER BY number LIMIT 10').all() as {
    number: string;
    currencyCode: string;
  }[];
  const salesItems = column<string>('SELECT number FROM items ORDER BY number LIMIT 12');

  /** An order of two lines, in the customer's currency. */
  function newSalesOrder(key: string, i: number): NewSalesOrder {
    const customer = salesCustomers[i]!;
    return {
      externalDocumentNumber: key,
      customerId: customer.number,
      currency: customer.currencyCode,
      requestedDeliveryDate: '2026-12-04',
      lines: [
        { sku: salesItems[i]!, quantity: 2, unitPrice: '149.90', description: 'Pump, as quoted' },
        { sku: salesItems[i + 1]!, quantity: 3, unitPrice: '12.35', description: 'Seal kit' },
      ],
    };
  }

  let server: BusinessCentralServer;

  beforeAll(async () => {
    // Return orders exist before the server loads the data, so both adapters see them.
    await embedded.createReturnOrder(newReturn('RET-SEED-1', 'CASE-1', 0));
    await embedded.createReturnOrder(newReturn('RET-SEED-2', 'CASE-1', 1));
    await embedded.createReturnOrder(newReturn('RET-SEED-3', 'CASE-2', 2));
    server = await startBusinessCentralServer({ erp: db });
  });
  afterAll(async () => {
    await server.close();
  });
  beforeEach(() => {
    server.faults.clear();
  });

  /** A fresh adapter (its own breaker and metrics) on the server. */
  function connect(
    options: {
      policy?: Partial<ResiliencePolicy>;
      maxPageSize?: number;
      token?: string;
      companyId?: string;
      refreshToken?: () => Promise<string>;
    } = {},
  ) {
    const metrics = createMetrics('erp');
    const resilience = createResilience('erp', { ...POLICY, ...options.policy });
    const connector = createBusinessCentralConnector({
      baseUrl: server.baseUrl,
      companyId: options.companyId ?? server.companyId,
      extension: server.extension,
      token: async () => options.token ?? server.token,
      ...(options.refreshToken ? { refreshToken: options.refreshToken } : {}),
      telemetry: createConnectorTelemetry('erp', metrics, createLogger('erp', 'silent')),
      resilience,
      maxPageSize: options.maxPageSize ?? 1_000,
    });
    const calls = async () => (await metrics.connectorCalls.get()).values.reduce((sum, value) => sum + value.value, 0);
    return { connector, resilience, calls };
  }

  /** The requests the server received from `mark` on. */
  const requestsSince = (mark: number) => server.requests.slice(mark);

  describe('returns the same records as the embedded adapter over the same data', () => {
    // Small pages, so most reads below also follow @odata.nextLink.
    const bc = () => connect({ maxPageSize: 25 }).connector;

    it('customers and products', async () => {
      const customers = [...column<string>('SELECT number FROM customers'), 'C99999', 'C10001'];
      const skus = [...column<string>('SELECT number FROM items'), 'NOPE-1'];
      const byId = sortBy<{ id: string }>((c) => c.id);
      const bySku = sortBy<{ sku: string }>((p) => p.sku);
      expect(byId(await bc().customersByIds(customers))).toEqual(byId(await embedded.customersByIds(customers)));
      expect(bySku(await bc().productsBySkus(skus))).toEqual(bySku(await embedded.productsBySkus(skus)));
      // Blank values come back as null, not "" or 0001-01-01; a blocked customer is on credit hold.
      expect((await bc().customersByIds(customers)).filter((c) => c.creditHold)).toHaveLength(1);
      expect((await bc().productsBySkus(['SPR-9012']))[0]).toMatchObject({ serialized: false, warrantyMonths: null });
    });

    it("the customer's tax area and the quantities on hand", async () => {
      const customers = column<string>('SELECT number FROM customers');
      const areas = (records: readonly { id: string; taxArea: string | null }[]) =>
        Object.fromEntries(records.map((c) => [c.id, c.taxArea]));
      const viaBc = areas(await bc().customersByIds(customers));
      expect(viaBc).toEqual(areas(await embedded.customersByIds(customers)));
      expect(new Set(Object.values(viaBc))).toEqual(new Set(['ATLANTA, GA', 'CHICAGO, IL', null]));

      const skus = [...column<string>('SELECT number FROM items'), 'NOPE-1'];
      const onHand = await bc().availableQuantities(skus);
      expect(onHand).toEqual(await embedded.availableQuantities(skus));
      expect(onHand.size).toBe(skus.length - 1);
      expect(onHand.has('NOPE-1')).toBe(false);
      expect([...onHand.values()].some((quantity) => quantity > 0)).toBe(true);
    });

    it('a tax area without a description is read by its code', async () => {
      // Business Central shows a customer's tax area by its description; a blank one leaves only
      // the id, whose code comes from taxAreas.
      const described = await startBusinessCentralServer({ erp: db, taxAreaDescriptions: { 'CHICAGO, IL': '' } });
      try {
        const metrics = createMetrics('erp');
        const connector = createBusinessCentralConnector({
          baseUrl: described.baseUrl,
          companyId: described.companyId,
          extension: described.extension,
          token: async () => described.token,
          telemetry: createConnectorTelemetry('erp', metrics, createLogger('erp', 'silent')),
          resilience: createResilience('erp', POLICY),
        });
        const customers = column<string>('SELECT number FROM customers');
        const byId = sortBy<{ id: string }>((c) => c.id);
        expect(byId(await connector.customersByIds(customers))).toEqual(byId(await embedded.customersByIds(customers)));
        // One read of the customers, then one of the one tax area shown without a description.
        const areaReads = described.requests.filter((r) => r.entitySet === 'taxAreas');
        expect(areaReads).toHaveLength(1);
        expect(areaReads[0]).toMatchObject({ method: 'GET', query: { $filter: expect.stringMatching(/^id eq [0-9a-f-]{36}$/) } });
        expect(described.requests.at(-1)).toBe(areaReads[0]);
      } finally {
        await described.close();
      }
    });

    it('orders, with every status, and their lines', async () => {
      const numbers = [...column<string>('SELECT number FROM salesOrders'), 'SO-0'];
      const byNumber = sortBy<{ number: string }>((o) => o.number);
      const orders = await bc().ordersByNumbers(numbers);
      expect(byNumber(orders)).toEqual(byNumber(await embedded.ordersByNumbers(numbers)));
      expect(new Set(orders.map((o) => o.status))).toEqual(new Set(['SHIPPED', 'OPEN', 'DRAFT', 'PARTIALLY_SHIPPED']));
      expect(orders.some((o) => o.requestedDeliveryDate === null && o.customerPurchaseOrder === null)).toBe(true);

      const lines = sortBy<{ orderNumber: string; sequence: number }>(
        (l) => l.orderNumber,
        (l) => l.sequence,
      );
      const some = numbers.slice(0, 120);
      expect(lines(await bc().orderLinesByOrderNumbers(some))).toEqual(lines(await embedded.orderLinesByOrderNumbers(some)));
    });

    it('order graphs: orders with their lines, products, shipments and invoices, each order and its lines one read', async () => {
      const numbers = [...column<string>('SELECT DISTINCT orderNumber FROM salesInvoices WHERE orderNumber IS NOT NULL LIMIT 20'), 'SO-0'];
      const parts = { lines: true, products: true, shipments: true, invoices: true };
      const mark = server.requests.length;
      const graph = await bc().orderGraphsByNumbers(numbers, parts);
      const sets = requestsSince(mark).map((r) => r.entitySet);
      expect(sets.filter((set) => set === 'salesOrders')).toHaveLength(1);
      const expected = await embedded.orderGraphsByNumbers(numbers, parts);
      const byNumber = sortBy<{ number: string }>((o) => o.number);
      const lines = sortBy<{ orderNumber: string; sequence: number }>(
        (l) => l.orderNumber,
        (l) => l.sequence,
      );
      expect(byNumber(graph.orders)).toEqual(byNumber(expected.orders));
      expect(lines(graph.lines)).toEqual(lines(expected.lines));
      expect(sortBy<{ sku: string }>((p) => p.sku)(graph.products)).toEqual(sortBy<{ sku: string }>((p) => p.sku)(expected.products));
      expect(sortBy<{ id: string }>((s) => s.id)(graph.shipments)).toEqual(sortBy<{ id: string }>((s) => s.id)(expected.shipments));
      expect(byNumber(graph.invoices)).toEqual(byNumber(expected.invoices));
      expect(graph.invoices.length).toBeGreaterThan(0);
      // Parts not asked for are not read.
      const before = server.requests.length;
      const plain = await bc().orderGraphsByNumbers(numbers, { lines: false, products: false, shipments: false, invoices: false });
      expect(plain.lines).toEqual([]);
      expect(byNumber(plain.orders)).toEqual(byNumber(expected.orders));
      expect(new Set(requestsSince(before).map((r) => r.entitySet))).toEqual(new Set(['salesOrders']));
    });

    it('the most recent orders of each customer (limits below and above a page)', async () => {
      const customers = column<string>('SELECT number FROM customers');
      const byNumber = sortBy<{ number: string }>((o) => o.number);
      for (const limit of [1, 3, 30]) {
        expect(byNumber(await bc().ordersByCustomerIds(customers, limit))).toEqual(
          byNumber(await embedded.ordersByCustomerIds(customers, limit)),
        );
      }
    });

    it('shipments (carrier and tracking from the extension), their lines and serialized assets', async () => {
      const ids = column<string>('SELECT number FROM salesShipments');
      const orderNumbers = column<string>("SELECT DISTINCT orderNumber FROM salesShipments WHERE orderNumber > 'SO-100090' LIMIT 80");
      const byId = sortBy<{ id: string }>((s) => s.id);
      expect(byId(await bc().shipmentsByIds(ids))).toEqual(byId(await embedded.shipmentsByIds(ids)));
      expect(byId(await bc().shipmentsByOrderNumbers(orderNumbers))).toEqual(byId(await embedded.shipmentsByOrderNumbers(orderNumbers)));

      const lines = sortBy<{ shipmentId: string; sequence: number }>(
        (l) => l.shipmentId,
        (l) => l.sequence,
      );
      const some = ids.slice(0, 150);
      expect(lines(await bc().shipmentLinesByShipmentIds(some))).toEqual(lines(await embedded.shipmentLinesByShipmentIds(some)));

      const serialNumbers = [...column<string>('SELECT serialNumber FROM serialNumbers'), 'SN-NONE'];
      const bySerial = sortBy<{ serialNumber: string }>((a) => a.serialNumber);
      const assets = await bc().assetsBySerialNumbers(serialNumbers);
      expect(bySerial(assets)).toEqual(bySerial(await embedded.assetsBySerialNumbers(serialNumbers)));
      expect(new Set(assets.map((a) => a.warrantyCoverage))).toEqual(new Set(['STANDARD', 'EXTENDED', 'PARTS_ONLY']));
      expect(bySerial(await bc().assetsByShipmentIds(some))).toEqual(bySerial(await embedded.assetsByShipmentIds(some)));
    });

    it('invoices by number, by order and per customer with state and due-date filters', async () => {
      const numbers = column<string>('SELECT number FROM salesInvoices');
      const orderNumbers = column<string>('SELECT number FROM salesOrders LIMIT 100');
      const customers = column<string>('SELECT number FROM customers');
      const byNumber = sortBy<{ number: string }>((i) => i.number);
      const invoices = await bc().invoicesByNumbers(numbers);
      expect(byNumber(invoices)).toEqual(byNumber(await embedded.invoicesByNumbers(numbers)));
      expect(invoices.some((i) => i.status === 'OPEN' && i.paidDate === null)).toBe(true);
      expect(byNumber(await bc().invoicesByOrderNumbers(orderNumbers))).toEqual(
        byNumber(await embedded.invoicesByOrderNumbers(orderNumbers)),
      );
      const queries = [
        { limit: 5 },
        { limit: 30 },
        { limit: 3, status: 'PAID' as const },
        { limit: 10, status: 'OPEN' as const, dueBefore: AS_OF },
        { limit: 10, status: 'OPEN' as const, dueOnOrAfter: AS_OF },
        { limit: 10, status: 'DRAFT' as const },
      ];
      for (const query of queries) {
        expect(byNumber(await bc().invoicesByCustomerIds(customers, query))).toEqual(
          byNumber(await embedded.invoicesByCustomerIds(customers, query)),
        );
      }
    });

    it('return orders (from the extension), their lines and the quantities already returned', async () => {
      const byNumber = sortBy<ReturnOrderRecord>((r) => r.number);
      const numbers = ['RMA-900001', 'RMA-900002', 'RMA-900003', 'RMA-1'];
      expect(byNumber(await bc().returnOrdersByNumbers(numbers))).toEqual(byNumber(await embedded.returnOrdersByNumbers(numbers)));
      expect(byNumber(await bc().returnOrdersByCaseIds(['CASE-1', 'CASE-2', 'CASE-9']))).toEqual(
        byNumber(await embedded.returnOrdersByCaseIds(['CASE-1', 'CASE-2', 'CASE-9'])),
      );
      expect(await bc().returnOrderByExternalDocument('RET-SEED-2')).toEqual(await embedded.returnOrderByExternalDocument('RET-SEED-2'));
      expect(await bc().returnOrderByExternalDocument('RET-NONE')).toBeNull();

      const lines = sortBy<{ returnNumber: string; sequence: number }>(
        (l) => l.returnNumber,
        (l) => l.sequence,
      );
      expect(lines(await bc().returnLinesByReturnNumbers(numbers))).toEqual(lines(await embedded.returnLinesByReturnNumbers(numbers)));

      const query = {
        serialNumbers: serials.map((s) => s.serialNumber),
        orderLines: orderLines.map((l) => ({ orderNumber: l.orderNumber, sequence: l.sequence })),
      };
      const returned = await bc().returnedQuantities(query);
      expect(returned).toEqual(await embedded.returnedQuantities(query));
      expect(returned.bySerialNumber.size).toBe(3);
    });

    it('creates a return order as the embedded adapter does, and finds it again by its external document number', async () => {
      const { connector } = connect();
      const mark = server.requests.length;
      const viaBc = await connector.createReturnOrder(newReturn('RET-NEW-1', 'CASE-3', 3));
      const viaEmbedded = await embedded.createReturnOrder(newReturn('RET-NEW-1', 'CASE-3', 3));
      // Look up (none), create.
      expect(requestsSince(mark).map((r) => r.method)).toEqual(['GET', 'POST']);
      expect(withoutCreatedAt(viaBc)).toEqual(withoutCreatedAt(viaEmbedded));
      expect(viaBc.createdAt).toMatch(/^\d{4}-\d{2}-\d{2}T/);
      const number = viaBc.number;
      const lines = sortBy<{ sequence: number }>((l) => l.sequence);
      expect(lines(await connector.returnLinesByReturnNumbers([number]))).toEqual(
        lines(await embedded.returnLinesByReturnNumbers([number])),
      );

      const again = server.requests.length;
      expect(await connector.createReturnOrder(newReturn('RET-NEW-1', 'CASE-3', 3))).toEqual(viaBc);
      // The same external document number: found, not created again.
      expect(requestsSince(again).map((r) => r.method)).toEqual(['GET']);
      expect(server.returnOrders('RET-NEW-1')).toHaveLength(1);
    });
  });

  describe('batching and paging, counted from the request log', () => {
    it('sends keys as $filter or-terms short enough for a URL, several filters in one $batch', async () => {
      const { connector } = connect();
      const numbers = column<string>('SELECT number FROM salesOrders ORDER BY number');
      const sentFor = async (n: number) => {
        const mark = server.requests.length;
        expect(await connector.ordersByNumbers(numbers.slice(0, n))).toHaveLength(n);
        return requestsSince(mark);
      };
      const ten = await sentFor(10);
      expect(ten.map((r) => r.method)).toEqual(['GET']);
      const hundred = await sentFor(100);
      expect(hundred.map((r) => [r.method, r.entitySet, r.operations.length])).toEqual([['POST', '$batch', 3]]);
      for (const request of ten) {
        expect(`${new URL(server.baseUrl).origin}${request.url}`.length).toBeLessThanOrEqual(1_600);
        expect(request.query.$filter!.split(' or ').length).toBeLessThanOrEqual(50);
        expect(request.query.$expand).toBe('salesOrderLines($select=shippedQuantity)');
      }
    });

    it('follows @odata.nextLink under Prefer: odata.maxpagesize, one request per page', async () => {
      const { connector } = connect({ maxPageSize: 10 });
      // Thirty customer numbers fit one filter; their thirty customers take three pages of ten.
      const customers = column<string>('SELECT number FROM customers LIMIT 30');
      const mark = server.requests.length;
      expect(await connector.customersByIds(customers)).toHaveLength(30);
      const sent = requestsSince(mark);
      expect(sent).toHaveLength(3);
      expect(new Set(sent.map((r) => r.query.$filter))).toHaveLength(1);
      expect(sent.slice(1).every((r) => r.query.$skiptoken)).toBe(true);
    });

    it('reads the most recent orders or invoices of forty customers in one $batch request', async () => {
      const { connector } = connect();
      const customers = column<string>('SELECT number FROM customers');
      let mark = server.requests.length;
      await connector.ordersByCustomerIds(customers, 5);
      expect(requestsSince(mark).map((r) => [r.method, r.entitySet, r.operations.length])).toEqual([['POST', '$batch', 40]]);
      mark = server.requests.length;
      await connector.invoicesByCustomerIds(customers, { limit: 5, status: 'OPEN', dueBefore: AS_OF });
      expect(requestsSince(mark).map((r) => [r.method, r.entitySet, r.operations.length])).toEqual([['POST', '$batch', 40]]);
    });

    it('sends nothing for no keys, and escapes quotes in keys', async () => {
      const { connector } = connect();
      const mark = server.requests.length;
      expect(await connector.ordersByNumbers([])).toEqual([]);
      expect(await connector.invoicesByCustomerIds([], { limit: 3 })).toEqual([]);
      expect(requestsSince(mark)).toHaveLength(0);
      expect(await connector.ordersByNumbers(["O'Brien"])).toEqual([]);
      expect(requestsSince(mark)[0]?.query.$filter).toBe("number eq 'O''Brien'");
    });

    it('counts each HTTP request once in concord_connector_calls_total, retries and pages included', async () => {
      const { connector, calls } = connect({ maxPageSize: 10 });
      const mark = server.requests.length;
      server.faults.failNext(1, { kind: 'serverError' });
      await connector.customersByIds(column<string>('SELECT number FROM customers LIMIT 30'));
      await connector.ordersByCustomerIds(['C10001', 'C10002'], 2);
      // A 503 and its retry, two more pages, one $batch.
      expect(requestsSince(mark).map((r) => r.status)).toEqual([503, 200, 200, 200, 200]);
      expect(await calls()).toBe(5);
    });
  });

  describe('failures', () => {
    it('retries a 429 after the Retry-After it names', async () => {
      const { connector } = connect();
      server.faults.failNext(1, { kind: 'rateLimit', retryAfterSeconds: 1 });
      const mark = server.requests.length;
      const started = Date.now();
      expect(await connector.ordersByNumbers(['SO-100001'])).toHaveLength(1);
      expect(Date.now() - started).toBeGreaterThanOrEqual(950);
      expect(requestsSince(mark).map((r) => r.status)).toEqual([429, 200]);
    });

    it('retries 5xx answers', async () => {
      const { connector } = connect();
      server.faults.failNext(2, { kind: 'serverError', status: 503 });
      const mark = server.requests.length;
      expect(await connector.shipmentsByIds(['SHP-400001'])).toHaveLength(1);
      expect(requestsSince(mark).map((r) => r.status)).toEqual([503, 503, 200]);
    });

    it('retries a reset connection', async () => {
      const { connector } = connect();
      server.faults.failNext(1, { kind: 'reset' });
      const mark = server.requests.length;
      expect(await connector.invoicesByNumbers(['INV-700001'])).toHaveLength(1);
      expect(requestsSince(mark).map((r) => [r.fault, r.status])).toEqual([
        ['reset', null],
        [null, 200],
      ]);
    });

    it('fetches a new token once after a 401 and resends, without a loop', async () => {
      let refreshes = 0;
      const { connector } = connect({ token: 'revoked-token', refreshToken: async () => ((refreshes += 1), server.token) });
      const mark = server.requests.length;
      expect(await connector.customersByIds(['C10001'])).toHaveLength(1);
      expect(requestsSince(mark).map((r) => r.status)).toEqual([401, 200]);
      expect(refreshes).toBe(1);
      const stillRefused = connect({ token: 'revoked-token', refreshToken: async () => 'also-revoked' }).connector;
      const before = server.requests.length;
      await expect(stillRefused.customersByIds(['C10001'])).rejects.toBeInstanceOf(ConnectorError);
      expect(requestsSince(before).map((r) => r.status)).toEqual([401, 401]);
    });

    it('does not retry a 401, and reports it as the ERP being unavailable (no client can fix it)', async () => {
      const { connector } = connect({ token: 'expired-token' });
      const mark = server.requests.length;
      const error = await connector.customersByIds(['C10001']).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ConnectorError);
      expect(error).toMatchObject({
        system: 'erp',
        cause: { code: 'Authentication_InvalidCredentials', details: { status: 401, retryable: false } },
      });
      expect(requestsSince(mark)).toHaveLength(1);
    });

    it('does not retry a BadRequest_* answer', async () => {
      // An extension page that is not installed: Business Central answers 404 BadRequest_NotFound.
      const metrics = createMetrics('erp');
      const connector = createBusinessCentralConnector({
        baseUrl: server.baseUrl,
        companyId: server.companyId,
        extension: { publisher: 'someone', group: 'else', version: 'v1.0' },
        token: async () => server.token,
        telemetry: createConnectorTelemetry('erp', metrics, createLogger('erp', 'silent')),
        resilience: createResilience('erp', POLICY),
      });
      const mark = server.requests.length;
      await expect(connector.assetsBySerialNumbers(['SN1'])).rejects.toMatchObject({ code: 'BadRequest_NotFound' });
      expect(requestsSince(mark)).toHaveLength(1);
    });

    it('opens the circuit after repeated failures and then fails fast without calling', async () => {
      const { connector, resilience } = connect({ policy: { retries: 0, breakerThreshold: 3 } });
      server.faults.failNext(10, { kind: 'serverError', status: 500 });
      for (let i = 0; i < 3; i += 1) await expect(connector.ordersByNumbers(['SO-100001'])).rejects.toBeInstanceOf(ConnectorError);
      expect(resilience.state()).toBe('open');
      const mark = server.requests.length;
      await expect(connector.ordersByNumbers(['SO-100001'])).rejects.toThrow(/circuit is open/);
      expect(requestsSince(mark)).toHaveLength(0);
    });

    it('pings with a keyed GET of the company; an unknown company is not found', async () => {
      await expect(connect().connector.ping()).resolves.toBeUndefined();
      const mark = server.requests.length;
      await expect(connect({ companyId: '11111111-2222-3333-4444-555555555555' }).connector.ping()).rejects.toThrow(/not found/);
      expect(requestsSince(mark).map((r) => r.status)).toEqual([404]);
    });
  });

  describe('createReturnOrder when the POST commits and the answer never comes in time', () => {
    for (const [label, answerAfterMs] of [
      ['never answered', undefined],
      ['answered after the deadline', 600],
    ] as const) {
      it(`yields exactly one return order (${label})`, async () => {
        const { connector } = connect({ policy: { timeoutMs: 300 } });
        const key = `RET-CTT-${label}`;
        server.faults.commitThenTimeout(answerAfterMs === undefined ? {} : { answerAfterMs });
        const mark = server.requests.length;
        const created = await connector.createReturnOrder(newReturn(key, 'CASE-4', 4));
        expect(server.returnOrders(key)).toHaveLength(1);
        expect(created.number).toBe(server.returnOrders(key)[0]!.number);
        // Look up (none), create (committed, timed out), look up again (found): no second POST.
        expect(requestsSince(mark).map((r) => [r.method, r.fault])).toEqual([
          ['GET', null],
          ['POST', 'commitThenTimeout'],
          ['GET', null],
        ]);
      });
    }

    it('yields one return order when two callers race: the loser gets 409 and fetches the winner', async () => {
      const { connector } = connect();
      server.faults.latencyMs = 30;
      const mark = server.requests.length;
      const [a, b] = await Promise.all([
        connector.createReturnOrder(newReturn('RET-RACE', 'CASE-5', 5)),
        connector.createReturnOrder(newReturn('RET-RACE', 'CASE-5', 5)),
      ]);
      expect(a).toEqual(b);
      expect(server.returnOrders('RET-RACE')).toHaveLength(1);
      expect(
        requestsSince(mark)
          .filter((r) => r.method === 'POST')
          .map((r) => r.status)
          .sort(),
      ).toEqual([201, 409]);
    });
  });

  describe('sales orders', () => {
    it('creates a sales order with its lines in one POST, as the embedded adapter does, and once per external document number', async () => {
      const { connector } = connect();
      const key = 'CSO-NEW-1';
      const mark = server.requests.length;
      const viaBc = await connector.createSalesOrder(newSalesOrder(key, 0));
      const viaEmbedded = await embedded.createSalesOrder(newSalesOrder(key, 0));
      // Look up (none), create header and lines in one deep insert.
      const sent = requestsSince(mark);
      expect(sent.map((r) => [r.method, r.entitySet, r.status])).toEqual([
        ['GET', 'salesOrders', 200],
        ['POST', 'salesOrders', 201],
      ]);
      expect(sent[0]!.query.$filter).toBe(`externalDocumentNumber eq '${key}' and customerNumber eq '${salesCustomers[0]!.number}'`);
      expect(sent[1]!.query.$expand).toBe('salesOrderLines');
      expect(withoutKeys(viaBc)).toEqual(withoutKeys(viaEmbedded));
      expect(viaBc).toMatchObject({ status: 'OPEN', totalIncludingTax: '336.85', customerPurchaseOrder: key });
      expect(viaBc.number).toMatch(/^SO-2\d{5}$/);

      const lines = await connector.orderLinesByOrderNumbers([viaBc.number]);
      expect(lines.map(withoutOrderNumber)).toEqual(
        (await embedded.orderLinesByOrderNumbers([viaEmbedded.number])).map(withoutOrderNumber),
      );
      expect(lines.map((l) => [l.sequence, l.sku, l.quantity, l.amount])).toEqual([
        [10000, salesItems[0], 2, '299.80'],
        [20000, salesItems[1], 3, '37.05'],
      ]);

      const again = server.requests.length;
      expect(await connector.createSalesOrder(newSalesOrder(key, 0))).toEqual(viaBc);
      // The same external document number: found, not created again.
      expect(requestsSince(again).map((r) => r.method)).toEqual(['GET']);
      expect(server.salesOrders(key)).toHaveLength(1);
      expect(server.salesOrders(key)[0]!.lines).toHaveLength(2);

      expect(await connector.salesOrderByExternalDocument(key)).toEqual(viaBc);
      expect(withoutKeys((await embedded.salesOrderByExternalDocument(key))!)).toEqual(withoutKeys(viaBc));
      expect(await connector.salesOrderByExternalDocument('CSO-NONE')).toBeNull();
    });

    it('finds an order whatever the case of its external document number, which Business Central upper-cases', async () => {
      const { connector } = connect();
      const created = await connector.createSalesOrder(newSalesOrder('cso-lower-1', 1));
      expect(created.customerPurchaseOrder).toBe('CSO-LOWER-1');
      expect(server.salesOrders('CSO-LOWER-1').map((row) => row.externalDocumentNumber)).toEqual(['CSO-LOWER-1']);
      const mark = server.requests.length;
      expect(await connector.createSalesOrder(newSalesOrder('Cso-Lower-1', 1))).toEqual(created);
      expect(await connector.salesOrderByExternalDocument('cso-lower-1')).toEqual(created);
      expect(requestsSince(mark).map((r) => r.method)).toEqual(['GET', 'GET']);
      expect(server.salesOrders('cso-lower-1')).toHaveLength(1);
    });

    it('refuses an external document number that does not fit, and looks up none for it', async () => {
      const { connector } = connect();
      const mark = server.requests.length;
      await expect(connector.createSalesOrder(newSalesOrder('X'.repeat(36), 2))).rejects.toBeInstanceOf(RangeError);
      await expect(connector.createSalesOrder(newSalesOrder('  ', 2))).rejects.toBeInstanceOf(RangeError);
      expect(await connector.salesOrderByExternalDocument('X'.repeat(36))).toBeNull();
      // A blank key would match every order without an external document number.
      expect(await connector.salesOrderByExternalDocument('')).toBeNull();
      expect(requestsSince(mark)).toHaveLength(0);
    });

    for (const [label, answerAfterMs] of [
      ['never answered', undefined],
      ['answered after the deadline', 600],
    ] as const) {
      it(`yields exactly one sales order when the POST commits and times out (${label})`, async () => {
        const { connector } = connect({ policy: { timeoutMs: 300 } });
        const key = `CSO-CTT-${answerAfterMs ?? 'NEVER'}`;
        server.faults.commitThenTimeout(answerAfterMs === undefined ? {} : { answerAfterMs });
        const mark = server.requests.length;
        const created = await connector.createSalesOrder(newSalesOrder(key, 3));
        expect(server.salesOrders(key)).toHaveLength(1);
        expect(created.number).toBe(server.salesOrders(key)[0]!.number);
        // Look up (none), create (committed, timed out), look up again (found): no second POST.
        expect(requestsSince(mark).map((r) => [r.method, r.fault])).toEqual([
          ['GET', null],
          ['POST', 'commitThenTimeout'],
          ['GET', null],
        ]);
        expect(await connector.orderLinesByOrderNumbers([created.number])).toHaveLength(2);
      });
    }

    it('cancels an unshipped order by deleting it under If-Match, and then finds none to cancel', async () => {
      const { connector } = connect();
      const key = 'CSO-CANCEL-1';
      const created = await connector.createSalesOrder(newSalesOrder(key, 4));
      const mark = server.requests.length;
      expect(await connector.cancelSalesOrder(created.number)).toBe('cancelled');
      const sent = requestsSince(mark);
      expect(sent.map((r) => [r.method, r.entitySet, r.status])).toEqual([
        ['GET', 'salesOrders', 200],
        ['DELETE', 'salesOrders', 204],
      ]);
      expect(sent[1]!.url).toContain(`/salesOrders(${created.erpId})`);
      expect(sent[1]!.ifMatch).toMatch(/^W\/"/);
      expect(server.salesOrders(key)).toHaveLength(0);
      expect(await connector.orderLinesByOrderNumbers([created.number])).toEqual([]);

      const again = server.requests.length;
      expect(await connector.cancelSalesOrder(created.number)).toBe('not_found');
      expect(requestsSince(again).map((r) => r.method)).toEqual(['GET']);

      // The embedded adapter answers the same.
      const local = await embedded.createSalesOrder(newSalesOrder(key, 4));
      expect(await embedded.cancelSalesOrder(local.number)).toBe('cancelled');
      expect(await embedded.cancelSalesOrder(local.number)).toBe('not_found');
    });

    it('answers shipped for an order with a shipped line (partly or fully shipped) and sends no DELETE', async () => {
      const { connector } = connect();
      const fullyShipped = column<string>('SELECT number FROM salesOrders WHERE fullyShipped = 1 LIMIT 1')[0]!;
      for (const number of ['SO-100397', fullyShipped]) {
        const mark = server.requests.length;
        expect(await connector.cancelSalesOrder(number)).toBe('shipped');
        expect(await embedded.cancelSalesOrder(number)).toBe('shipped');
        expect(requestsSince(mark).map((r) => r.method)).toEqual(['GET']);
        expect(server.salesOrders().some((row) => row.number === number)).toBe(true);
      }
      expect(await connector.cancelSalesOrder('SO-0')).toBe('not_found');
      expect(await embedded.cancelSalesOrder('SO-0')).toBe('not_found');
    });

    it('cancels once when the DELETE commits and its answer never comes', async () => {
      const { connector } = connect({ policy: { timeoutMs: 300 } });
      const created = await connector.createSalesOrder(newSalesOrder('CSO-CANCEL-CTT', 5));
      server.faults.commitThenTimeout({ method: 'DELETE' });
      const mark = server.requests.length;
      // The retry finds no order: the DELETE that timed out is what removed it.
      expect(await connector.cancelSalesOrder(created.number)).toBe('cancelled');
      expect(requestsSince(mark).map((r) => [r.method, r.fault])).toEqual([
        ['GET', null],
        ['DELETE', 'commitThenTimeout'],
        ['GET', null],
      ]);
      expect(server.salesOrders('CSO-CANCEL-CTT')).toHaveLength(0);
    });

    it('reads the order again when it changed between the read and the DELETE (409 Request_EntityChanged)', async () => {
      const { connector } = connect();
      const created = await connector.createSalesOrder(newSalesOrder('CSO-CANCEL-409', 6));
      server.faults.failNext(1, { kind: 'entityChanged' });
      const mark = server.requests.length;
      expect(await connector.cancelSalesOrder(created.number)).toBe('cancelled');
      expect(requestsSince(mark).map((r) => [r.method, r.status])).toEqual([
        ['GET', 200],
        ['DELETE', 409],
        ['GET', 200],
        ['DELETE', 204],
      ]);
    });

    it('the Business Central-shaped server refuses a DELETE without If-Match, with a stale ETag, of an unknown id or of a shipped order', async () => {
      const { connector } = connect();
      const created = await connector.createSalesOrder(newSalesOrder('CSO-CANCEL-RAW', 7));
      const orders = `${server.baseUrl}/api/v2.0/companies(${server.companyId})/salesOrders`;
      const shipped = server.salesOrders().find((row) => row.number === 'SO-100397')!;
      const del = async (id: unknown, ifMatch?: string) => {
        const response = await fetch(`${orders}(${String(id)})`, {
          method: 'DELETE',
          headers: { authorization: `Bearer ${server.token}`, ...(ifMatch ? { 'if-match': ifMatch } : {}) },
        });
        const text = await response.text();
        return [response.status, text ? (JSON.parse(text) as { error: { code: string } }).error.code : null];
      };
      expect(await del(created.erpId)).toEqual([400, 'BadRequest_InvalidToken']);
      expect(await del(created.erpId, 'W/"c3RhbGU="')).toEqual([409, 'Request_EntityChanged']);
      expect(await del('11111111-2222-3333-4444-555555555555', '*')).toEqual([404, 'Internal_RecordNotFound']);
      expect(await del(shipped.id, '*')).toEqual([400, 'Application_FieldValidationException']);
      expect(server.salesOrders('CSO-CANCEL-RAW')).toHaveLength(1);
      expect(await del(created.erpId, '*')).toEqual([204, null]);
      expect(server.salesOrders('CSO-CANCEL-RAW')).toHaveLength(0);
    });
  });

  describe('subscription billing schedules (the extension pages)', () => {
    /** A change of a subscription, leaving it in the state given (active, monthly, for 2026 unless told). */
    function billingChange(key: string, subscriptionId: string, i: number, state: Partial<BillingChange> = {}): BillingChange {
      const customer = salesCustomers[i]!;
      return {
        key,
        subscriptionId,
        customerId: customer.number,
        sku: salesItems[i]!,
        quantity: 5,
        unitPrice: '49.90',
        frequency: 'MONTHLY',
        status: 'ACTIVE',
        startDate: '2026-01-01',
        endDate: '2026-12-31',
        currency: customer.currencyCode,
        ...state,
      };
    }

    /** Activates, amends, suspends and renews a subscription: the changes of its life. */
    function lifecycle(subscriptionId: string, i: number): BillingChange[] {
      return [
        billingChange(`${subscriptionId}/activate`, subscriptionId, i),
        billingChange(`${subscriptionId}/amend`, subscriptionId, i, { quantity: 8, unitPrice: '44.50', frequency: 'ANNUAL' }),
        billingChange(`${subscriptionId}/suspend`, subscriptionId, i, {
          quantity: 8,
          unitPrice: '44.50',
          frequency: 'ANNUAL',
          status: 'SUSPENDED',
        }),
        billingChange(`${subscriptionId}/renew 'Q1'`, subscriptionId, i, {
          quantity: 8,
          unitPrice: '44.50',
          frequency: 'ANNUAL',
          startDate: '2027-01-01',
          endDate: null,
        }),
      ];
    }

    /** The change keys the embedded adapter recorded for a subscription, with the versions they made. */
    const embeddedChanges = (subscriptionId: string) =>
      db
        .prepare('SELECT changeKey, subscriptionId, version FROM subscriptionBillingChanges WHERE subscriptionId = ? ORDER BY version')
        .all(subscriptionId);
    const serverChanges = (subscriptionId: string) =>
      [...server.billingChanges(subscriptionId)]
        .sort((a, b) => Number(a.version) - Number(b.version))
        .map(({ changeKey, version }) => ({ changeKey, subscriptionId, version }));
    const writesSince = (mark: number) =>
      requestsSince(mark)
        .filter((r) => r.method !== 'GET')
        .map((r) => [r.method, r.entitySet, r.status, r.fault]);

    it('activates, amends, suspends and renews a schedule as the embedded adapter does, one version per change', async () => {
      const { connector } = connect();
      const subscriptionId = 'a0X5f000001BiLL01';
      const versions: number[] = [];
      for (const [i, change] of lifecycle(subscriptionId, 0).entries()) {
        const mark = server.requests.length;
        const viaBc = await connector.applyBillingChange(change);
        expect(viaBc).toEqual(await embedded.applyBillingChange(change));
        versions.push(viaBc.version);
        // Read the change key and the schedule; record the change; then create or PATCH the schedule.
        const sent = requestsSince(mark);
        expect(
          sent
            .filter((r) => r.method === 'GET')
            .map((r) => r.entitySet)
            .sort(),
        ).toEqual(['subscriptionBillingChanges', 'subscriptionBillingSchedules']);
        expect(writesSince(mark)).toEqual([
          ['POST', 'subscriptionBillingChanges', 201, null],
          i === 0 ? ['POST', 'subscriptionBillingSchedules', 201, null] : ['PATCH', 'subscriptionBillingSchedules', 200, null],
        ]);
        expect(sent.find((r) => r.method === 'POST')!.body).toEqual({ changeKey: change.key, subscriptionId, version: i + 1 });
        if (i > 0) {
          const write = sent.find((r) => r.method === 'PATCH')!;
          expect(write.url).toContain(`/subscriptionBillingSchedules(%27${subscriptionId}%27)`);
          expect(write.ifMatch).toMatch(/^W\/"/);
          // The schedule keeps the customer it was created for.
          expect(write.body).not.toHaveProperty('customerNumber');
        }
      }
      expect(versions).toEqual([1, 2, 3, 4]);
      const [schedule] = await connector.billingSchedulesBySubscriptionIds([subscriptionId]);
      expect(schedule).toMatchObject({ version: 4, status: 'ACTIVE', frequency: 'ANNUAL', startDate: '2027-01-01', endDate: null });
      // Kept while active, blank while suspended, the start date when active again.
      expect(schedule!.nextInvoiceDate).toBe('2027-01-01');
      expect(server.billingSchedules(subscriptionId)).toMatchObject([{ version: 4, endDate: null, nextInvoiceDate: '2027-01-01' }]);
      expect(serverChanges(subscriptionId)).toEqual(embeddedChanges(subscriptionId));
    });

    it('reads schedules by subscription and by customer as the embedded adapter does', async () => {
      const { connector } = connect({ maxPageSize: 2 });
      const subscriptions = ['a0X5f000001BiLL11', 'a0X5f000001BiLL12', 'a0X5f000001BiLL13', 'a0X5f000001BiLL14'];
      const changes = [
        billingChange('read/1', subscriptions[0]!, 1, { startDate: '2026-03-01' }),
        billingChange('read/2', subscriptions[1]!, 1, { frequency: 'ANNUAL', startDate: '2026-02-01' }),
        billingChange('read/3', subscriptions[2]!, 1, { status: 'SUSPENDED', startDate: '2026-02-01' }),
        billingChange('read/4', subscriptions[3]!, 2, { quantity: 1.5, unitPrice: '1200' }),
      ];
      for (const change of changes) {
        expect(await connector.applyBillingChange(change)).toEqual(await embedded.applyBillingChange(change));
      }
      const ids = [...subscriptions, subscriptions[0]!, 'a0X5f000001NOPE'];
      expect(await connector.billingSchedulesBySubscriptionIds(ids)).toEqual(await embedded.billingSchedulesBySubscriptionIds(ids));
      const customers = [salesCustomers[2]!.number, salesCustomers[1]!.number, 'C99999'];
      const byCustomer = await connector.billingSchedulesByCustomerIds(customers);
      expect(byCustomer).toEqual(await embedded.billingSchedulesByCustomerIds(customers));
      // By customer, start date and subscription (the seed's schedules of these customers among them).
      expect(byCustomer.map((s) => s.subscriptionId).filter((id) => subscriptions.includes(id))).toEqual([
        subscriptions[1],
        subscriptions[2],
        subscriptions[0],
        subscriptions[3],
      ]);
      expect(byCustomer.find((s) => s.subscriptionId === subscriptions[3])).toMatchObject({ quantity: 1.5, unitPrice: '1200.00' });

      const mark = server.requests.length;
      expect(await connector.billingSchedulesByCustomerIds([])).toEqual([]);
      expect(await connector.billingSchedulesBySubscriptionIds([])).toEqual([]);
      expect(requestsSince(mark)).toHaveLength(0);
      await connector.billingSchedulesBySubscriptionIds(subscriptions);
      // One $filter of or-terms, its pages followed.
      expect(requestsSince(mark).map((r) => r.query.$filter?.split(' or ').length)).toEqual([4, 4]);
    });

    it('applies a change key once: the same key again reads, writes nothing and returns the schedule as it is', async () => {
      const { connector } = connect();
      const subscriptionId = 'a0X5f000001BiLL21';
      const [activate, amend] = lifecycle(subscriptionId, 3);
      const first = await connector.applyBillingChange(activate!);
      expect(first).toEqual(await embedded.applyBillingChange(activate!));

      const mark = server.requests.length;
      const again = await connector.applyBillingChange({ ...activate!, quantity: 99 });
      expect(again).toEqual(first);
      expect(await embedded.applyBillingChange({ ...activate!, quantity: 99 })).toEqual(first);
      expect(requestsSince(mark).map((r) => r.method)).toEqual(['GET', 'GET']);

      const amended = await connector.applyBillingChange(amend!);
      expect(amended).toEqual(await embedded.applyBillingChange(amend!));
      // An older key applied again: the schedule as the later change left it.
      expect(await connector.applyBillingChange(activate!)).toEqual(amended);
      expect(await embedded.applyBillingChange(activate!)).toEqual(amended);
      expect(await connector.applyBillingChange(amend!)).toMatchObject({ version: 2 });
      expect(server.billingSchedules(subscriptionId)).toMatchObject([{ version: 2 }]);
      expect(serverChanges(subscriptionId)).toEqual(embeddedChanges(subscriptionId));
    });

    for (const [label, method, entitySet, step, answerAfterMs] of [
      ['the change record POST', 'POST', 'subscriptionBillingChanges', 1, undefined],
      ['the schedule POST (first activation)', 'POST', 'subscriptionBillingSchedules', 0, undefined],
      ['the schedule PATCH', 'PATCH', 'subscriptionBillingSchedules', 1, undefined],
      ['the schedule PATCH, answered after the deadline', 'PATCH', 'subscriptionBillingSchedules', 2, 600],
    ] as const) {
      it(`raises the version once when ${label} commits and times out, and the change is retried`, async () => {
        const { connector } = connect({ policy: { timeoutMs: 300 } });
        const subscriptionId = `a0X5f000001CTT0${label.length}`;
        const changes = lifecycle(subscriptionId, 4).slice(0, step + 1);
        for (const change of changes.slice(0, step)) {
          expect(await connector.applyBillingChange(change)).toEqual(await embedded.applyBillingChange(change));
        }
        const change = changes[step]!;
        server.faults.commitThenTimeout({ method, entitySet, ...(answerAfterMs === undefined ? {} : { answerAfterMs }) });
        const mark = server.requests.length;
        const viaBc = await connector.applyBillingChange(change);
        expect(viaBc).toEqual(await embedded.applyBillingChange(change));
        expect(viaBc.version).toBe(step + 1);
        const schedule = step === 0 ? 'POST' : 'PATCH';
        // The retry reads the change recorded: only what is left is written, once.
        expect(writesSince(mark)).toEqual(
          entitySet === 'subscriptionBillingChanges'
            ? [
                ['POST', 'subscriptionBillingChanges', null, 'commitThenTimeout'],
                [schedule, 'subscriptionBillingSchedules', schedule === 'POST' ? 201 : 200, null],
              ]
            : [
                ['POST', 'subscriptionBillingChanges', 201, null],
                [schedule, 'subscriptionBillingSchedules', null, 'commitThenTimeout'],
              ],
        );
        expect(requestsSince(mark).filter((r) => r.method === 'GET')).toHaveLength(4);
        expect(server.billingSchedules(subscriptionId)).toMatchObject([{ version: step + 1 }]);
        expect(serverChanges(subscriptionId)).toEqual(embeddedChanges(subscriptionId));
        expect(await connector.billingSchedulesBySubscriptionIds([subscriptionId])).toEqual(
          await embedded.billingSchedulesBySubscriptionIds([subscriptionId]),
        );
      });
    }

    it('reads again and writes once when the schedule PATCH meets a changed schedule (409 Request_EntityChanged)', async () => {
      const { connector } = connect();
      const subscriptionId = 'a0X5f000001BiLL31';
      const [activate, amend] = lifecycle(subscriptionId, 5);
      await connector.applyBillingChange(activate!);
      await embedded.applyBillingChange(activate!);
      server.faults.failNext(1, { kind: 'entityChanged' });
      const mark = server.requests.length;
      const viaBc = await connector.applyBillingChange(amend!);
      expect(viaBc).toEqual(await embedded.applyBillingChange(amend!));
      expect(writesSince(mark)).toEqual([
        ['POST', 'subscriptionBillingChanges', 201, null],
        ['PATCH', 'subscriptionBillingSchedules', 409, 'entityChanged'],
        ['PATCH', 'subscriptionBillingSchedules', 200, null],
      ]);
      expect(serverChanges(subscriptionId)).toEqual(embeddedChanges(subscriptionId));
    });

    it('applies two changes of one subscription racing each other one after the other, and the same key racing itself once', async () => {
      const { connector } = connect();
      const subscriptionId = 'a0X5f000001BiLL41';
      const [activate, amend, suspend] = lifecycle(subscriptionId, 6);
      await connector.applyBillingChange(activate!);
      server.faults.latencyMs = 20;
      const mark = server.requests.length;
      const [a, b] = await Promise.all([connector.applyBillingChange(amend!), connector.applyBillingChange(suspend!)]);
      expect([a.version, b.version].sort()).toEqual([2, 3]);
      // Both record version 2; the loser of the PATCH finds version 2 another key's, moves its record to 3 and writes there.
      const writes = (since: number) =>
        writesSince(since)
          .map((write) => write.join(' '))
          .sort();
      expect(writes(mark)).toEqual([
        'PATCH subscriptionBillingChanges 200 ',
        'PATCH subscriptionBillingSchedules 200 ',
        'PATCH subscriptionBillingSchedules 200 ',
        'PATCH subscriptionBillingSchedules 409 ',
        'POST subscriptionBillingChanges 201 ',
        'POST subscriptionBillingChanges 201 ',
      ]);
      expect(server.billingSchedules(subscriptionId)).toMatchObject([{ version: 3 }]);
      expect(serverChanges(subscriptionId).map((c) => c.version)).toEqual([1, 2, 3]);

      const renew = lifecycle(subscriptionId, 6)[3]!;
      const again = server.requests.length;
      const [c, d] = await Promise.all([connector.applyBillingChange(renew), connector.applyBillingChange(renew)]);
      expect(c).toEqual(d);
      // The second record of the key is refused; its caller reads the change applied by the first.
      expect(writes(again)).toEqual([
        'PATCH subscriptionBillingSchedules 200 ',
        'POST subscriptionBillingChanges 201 ',
        'POST subscriptionBillingChanges 409 ',
      ]);
      expect(c.version).toBe(4);
      expect(server.billingSchedules(subscriptionId)).toMatchObject([{ version: 4, status: 'Active' }]);
      expect(serverChanges(subscriptionId).map((row) => row.version)).toEqual([1, 2, 3, 4]);
    });

    it('the Business Central-shaped server filters the pages, and refuses a known key, a PATCH without If-Match or with a stale ETag', async () => {
      const { connector } = connect();
      const subscriptionId = 'a0X5f000001BiLL51';
      await connector.applyBillingChange(lifecycle(subscriptionId, 7)[0]!);
      const { publisher, group, version } = server.extension;
      const page = (set: string) => `${server.baseUrl}/api/${publisher}/${group}/${version}/companies(${server.companyId})/${set}`;
      const key = (value: string) => `(${encodeURIComponent(`'${value}'`).replace(/'/g, '%27')})`;
      const call = async (method: string, url: string, body?: unknown, ifMatch?: string) => {
        const response = await fetch(url, {
          method,
          headers: {
            authorization: `Bearer ${server.token}`,
            'content-type': 'application/json',
            ...(ifMatch ? { 'if-match': ifMatch } : {}),
          },
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        });
        const json = (await response.json()) as { error?: { code: string }; value?: Record<string, unknown>[] } & Record<string, unknown>;
        return { status: response.status, code: json.error?.code ?? null, json };
      };
      const schedules = page('subscriptionBillingSchedules');
      const changes = page('subscriptionBillingChanges');
      const listed = await call('GET', `${schedules}?$filter=${encodeURIComponent(`subscriptionId eq '${subscriptionId}'`)}`);
      expect(listed.json.value).toMatchObject([{ subscriptionId, version: 1, endDate: '2026-12-31', billingPeriod: 'Monthly' }]);
      const etag = String(listed.json.value![0]!['@odata.etag']);
      expect(etag).toMatch(/^W\/"/);

      expect(await call('POST', changes, { changeKey: `${subscriptionId}/activate`, subscriptionId, version: 1 })).toMatchObject({
        status: 409,
        code: 'Internal_EntityWithSameKeyExists',
      });
      const schedule = { subscriptionId, customerNumber: 'C10001', itemNumber: 'X', billingPeriod: 'Monthly', status: 'Active' };
      expect(await call('POST', schedules, { ...schedule, startDate: '2026-01-01', currencyCode: 'USD' })).toMatchObject({
        status: 409,
        code: 'Internal_EntityWithSameKeyExists',
      });
      const entity = `${schedules}${key(subscriptionId)}`;
      expect(await call('PATCH', entity, { quantity: 2 })).toMatchObject({ status: 400, code: 'BadRequest_InvalidToken' });
      expect(await call('PATCH', entity, { quantity: 2 }, 'W/"c3RhbGU="')).toMatchObject({ status: 409, code: 'Request_EntityChanged' });
      expect(await call('PATCH', entity, { billingPeriod: 'Weekly' }, etag)).toMatchObject({
        status: 400,
        code: 'BadRequest_InvalidRequestBody',
      });
      expect(await call('PATCH', `${schedules}${key('a0X5f000001NOPE')}`, { quantity: 2 }, '*')).toMatchObject({
        status: 404,
        code: 'Internal_RecordNotFound',
      });
      const patched = await call('PATCH', entity, { quantity: 2, nextInvoiceDate: '0001-01-01' }, etag);
      expect(patched).toMatchObject({ status: 200, json: { quantity: 2, nextInvoiceDate: '0001-01-01' } });
      expect(patched.json['@odata.etag']).not.toBe(etag);
      expect(await call('PATCH', entity, { quantity: 3 }, etag)).toMatchObject({ status: 409, code: 'Request_EntityChanged' });
      expect(server.billingSchedules(subscriptionId)).toMatchObject([{ quantity: 2, nextInvoiceDate: null }]);
      const recorded = await call('GET', `${changes}${key(`${subscriptionId}/activate`)}`);
      expect(recorded).toMatchObject({ status: 200, json: { changeKey: `${subscriptionId}/activate`, version: 1 } });
    });
  });
});

describe('customer onboarding through the Business Central adapter', () => {
  const { erp: db } = seededDatabases();
  // Business Central keeps a tax registration number as typed: one in lower case, in both systems' data.
  db.prepare(`UPDATE customers SET taxRegistrationNumber = lower(taxRegistrationNumber) WHERE number = 'C10003'`).run();
  const embedded = createEmbeddedErpConnector(db, silentTelemetry('erp'));
  const seeded = db.prepare('SELECT number, displayName, postalCode, taxRegistrationNumber FROM customers ORDER BY number').all() as {
    number: string;
    displayName: string;
    postalCode: string;
    taxRegistrationNumber: string;
  }[];

  let server: BusinessCentralServer;
  beforeAll(async () => {
    server = await startBusinessCentralServer({ erp: db });
  });
  afterAll(async () => {
    await server.close();
  });
  beforeEach(() => {
    server.faults.clear();
  });

  function connect(policy: Partial<ResiliencePolicy> = {}) {
    return createBusinessCentralConnector({
      baseUrl: server.baseUrl,
      companyId: server.companyId,
      extension: server.extension,
      token: async () => server.token,
      telemetry: createConnectorTelemetry('erp', createMetrics('erp'), createLogger('erp', 'silent')),
      resilience: createResilience('erp', { ...POLICY, ...policy }),
    });
  }

  const requestsSince = (mark: number) => server.requests.slice(mark);
  const byId = sortBy<ErpCustomerRecord>((c) => c.id);
  /** A customer as both systems make it: the id (a GUID) is each system's own. */
  const withoutErpId = ({ erpId: _erpId, ...rest }: ErpCustomerRecord) => rest;
  const withTaxId = (taxId: string) => server.customers().filter((row) => row.taxRegistrationNumber === taxId);

  function newCustomer(reference: string, i: number): NewCustomer {
    return {
      reference,
      name: `Onboarded Instruments ${i} B.V.`,
      email: `billing${i}@onboarded.example`,
      phone: i % 2 ? null : '+31 20 555 0100',
      address: { street: `Keizersgracht ${i}`, city: 'Amsterdam', state: null, postalCode: '1015 CJ', country: 'NL' },
      currency: 'EUR',
      taxRegistrationNumber: `NL8${String(i).padStart(8, '0')}B01`,
      paymentTermsCode: 'NET30',
      taxArea: 'NL',
    };
  }

  it('finds customers by tax registration number and by name and postal code as the embedded adapter does', async () => {
    const bc = connect();
    const spaced = (taxId: string) => taxId.replace(/(.{4})/g, '$1 ').trim();
    const taxIds = [
      ...seeded.slice(0, 10).map((c) => c.taxRegistrationNumber),
      // Upper-cased (stored in lower case), in lower case, with spaces, twice, unknown, blank.
      seeded[2]!.taxRegistrationNumber.toUpperCase(),
      seeded[5]!.taxRegistrationNumber.toLowerCase(),
      spaced(seeded[11]!.taxRegistrationNumber),
      seeded[0]!.taxRegistrationNumber,
      'XX000000000',
      ' ',
    ];
    const mark = server.requests.length;
    const found = await bc.customersByTaxRegistrationNumbers(taxIds);
    expect(byId(found)).toEqual(byId(await embedded.customersByTaxRegistrationNumbers(taxIds)));
    expect(found.map((c) => c.id).sort()).toEqual([...seeded.slice(0, 10).map((c) => c.number), seeded[11]!.number].sort());
    // One GET: every spelling an or-term on the one field ($filter cannot or across fields).
    const [read] = requestsSince(mark);
    expect(requestsSince(mark)).toHaveLength(1);
    expect(read).toMatchObject({ method: 'GET', entitySet: 'customers' });
    expect(read!.query.$filter!.split(' or ').every((term) => term.startsWith('taxRegistrationNumber eq '))).toBe(true);
    expect(await bc.customersByTaxRegistrationNumbers(['', '  '])).toEqual([]);

    for (const customer of seeded.slice(0, 6)) {
      const name = customer.displayName.toUpperCase();
      const postalCode = ` ${customer.postalCode.toLowerCase()} `;
      const viaBc = await bc.customersByNameAndPostalCode(name, postalCode);
      expect(viaBc).toEqual(await embedded.customersByNameAndPostalCode(name, postalCode));
      expect(viaBc.map((c) => c.id)).toEqual([customer.number]);
    }
    expect(await bc.customersByNameAndPostalCode(seeded[0]!.displayName, '00000')).toEqual([]);
    expect(await bc.customersByNameAndPostalCode('Nobody Ltd.', seeded[0]!.postalCode)).toEqual([]);
    expect(await bc.customerByReference('001NOBODY')).toBeNull();
    expect(await embedded.customerByReference('001NOBODY')).toBeNull();
  });

  it('creates a customer as the embedded adapter does, marks it with its reference, and makes it once per reference', async () => {
    const bc = connect();
    const customer = newCustomer('001ACC-NEW-1', 1);
    const mark = server.requests.length;
    const viaBc = await bc.createCustomer(customer);
    const viaEmbedded = await embedded.createCustomer(customer);
    expect(withoutErpId(viaBc)).toEqual(withoutErpId(viaEmbedded));
    expect(viaBc).toMatchObject({
      id: 'C10041',
      paymentTerms: 'Net 30 days',
      taxArea: 'NL',
      creditLimit: '0.00',
      creditHold: false,
      balanceDue: '0.00',
    });

    // Look up the reference, the tax registration number, the payment terms and the tax area; create; write the reference.
    const sent = requestsSince(mark);
    expect(
      sent
        .slice(0, 4)
        .map((r) => `${r.method} ${r.api} ${r.entitySet}`)
        .sort(),
    ).toEqual(['GET extension customerReferences', 'GET standard customers', 'GET standard paymentTerms', 'GET standard taxAreas']);
    expect(sent.slice(4).map((r) => [r.method, r.api, r.entitySet, r.status])).toEqual([
      ['POST', 'standard', 'customers', 201],
      ['PATCH', 'extension', 'customerReferences', 200],
    ]);
    const net30 = server.requests.find((r) => r.entitySet === 'paymentTerms');
    expect(net30!.query.$filter).toBe("code eq 'NET30'");
    const post = sent[4]!;
    expect(post.body).not.toHaveProperty('number');
    expect(post.body).not.toHaveProperty('blocked');
    expect(post.body).toMatchObject({
      displayName: customer.name,
      postalCode: '1015 CJ',
      taxRegistrationNumber: customer.taxRegistrationNumber,
      paymentTermsId: expect.stringMatching(/^[0-9a-f-]{36}$/),
      taxAreaId: expect.stringMatching(/^[0-9a-f-]{36}$/),
    });
    expect(sent[5]!.url).toContain(`/customerReferences(${viaBc.erpId})`);
    expect(sent[5]).toMatchObject({ ifMatch: '*', body: { crmReference: customer.reference } });
    expect(withTaxId(customer.taxRegistrationNumber)).toMatchObject([{ number: 'C10041', crmReference: customer.reference, blocked: ' ' }]);

    expect(await bc.customerByReference(customer.reference)).toEqual(viaBc);
    expect(withoutErpId((await embedded.customerByReference(customer.reference))!)).toEqual(withoutErpId(viaBc));

    const again = server.requests.length;
    expect(await bc.createCustomer(customer)).toEqual(viaBc);
    // Found by its reference: nothing written.
    expect(requestsSince(again).map((r) => r.method)).toEqual(['GET', 'GET', 'GET', 'GET']);
    expect(withTaxId(customer.taxRegistrationNumber)).toHaveLength(1);
    expect(withoutErpId(await embedded.createCustomer(customer))).toEqual(withoutErpId(viaBc));

    // The next customer takes the next number of the series.
    expect((await bc.createCustomer(newCustomer('001ACC-NEW-2', 2))).id).toBe('C10042');
  });

  it('refuses a customer whose tax area does not exist, and creates none', async () => {
    const bc = connect();
    const customer = { ...newCustomer('001ACC-NO-AREA', 3), taxArea: 'XX-NOWHERE' };
    await expect(bc.createCustomer(customer)).rejects.toThrow(/no tax area has the code "XX-NOWHERE"/);
    expect(withTaxId(customer.taxRegistrationNumber)).toHaveLength(0);
    await expect(bc.createCustomer({ ...customer, reference: ' ' })).rejects.toBeInstanceOf(RangeError);
  });

  for (const [label, answerAfterMs] of [
    ['never answered', undefined],
    ['answered after the deadline', 600],
  ] as const) {
    it(`yields exactly one customer when the POST commits and times out (${label})`, async () => {
      const bc = connect({ timeoutMs: 300 });
      const customer = newCustomer(`001ACC-CTT-${answerAfterMs ?? 'NEVER'}`, answerAfterMs ? 4 : 5);
      server.faults.commitThenTimeout(answerAfterMs === undefined ? {} : { answerAfterMs });
      const mark = server.requests.length;
      const created = await bc.createCustomer(customer);
      expect(withTaxId(customer.taxRegistrationNumber)).toMatchObject([{ number: created.id, crmReference: customer.reference }]);
      // Created (committed, timed out); the retry finds it by tax registration number and name
      // without a reference, and writes the reference instead of creating it again.
      const writes = requestsSince(mark).filter((r) => r.method !== 'GET');
      expect(writes.map((r) => [r.method, r.entitySet, r.fault])).toEqual([
        ['POST', 'customers', 'commitThenTimeout'],
        ['PATCH', 'customerReferences', null],
      ]);
      expect(writes[1]!.ifMatch).toMatch(/^W\/"/);
      expect(await bc.customerByReference(customer.reference)).toEqual(created);
    });
  }

  it('finds a customer whose reference write was lost by its tax registration number and name, never one with another reference', async () => {
    const bc = connect();
    const customer = newCustomer('001ACC-LOST-1', 6);
    // A customer an earlier create made before it stopped, without writing the reference.
    const response = await fetch(`${server.baseUrl}/api/v2.0/companies(${server.companyId})/customers`, {
      method: 'POST',
      headers: { authorization: `Bearer ${server.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ displayName: customer.name.toUpperCase(), taxRegistrationNumber: customer.taxRegistrationNumber }),
    });
    expect(response.status).toBe(201);
    const orphan = (await response.json()) as { id: string; number: string };

    const mark = server.requests.length;
    const found = await bc.createCustomer(customer);
    expect(found).toMatchObject({ id: orphan.number, erpId: orphan.id });
    expect(
      requestsSince(mark)
        .filter((r) => r.method !== 'GET')
        .map((r) => [r.method, r.entitySet, r.status]),
    ).toEqual([['PATCH', 'customerReferences', 200]]);
    expect(withTaxId(customer.taxRegistrationNumber)).toMatchObject([{ number: orphan.number, crmReference: customer.reference }]);

    // The same tax registration number and name for another CRM account: the customer found has a
    // reference of its own, so a new one is made.
    const other = await bc.createCustomer({ ...customer, reference: '001ACC-LOST-2' });
    expect(other.id).not.toBe(orphan.number);
    expect(withTaxId(customer.taxRegistrationNumber).map((row) => row.crmReference)).toEqual(['001ACC-LOST-1', '001ACC-LOST-2']);
  });

  it('blocks a customer with a PATCH under If-Match, as the embedded adapter does; false for an unknown number', async () => {
    const bc = connect();
    const number = seeded[4]!.number;
    const mark = server.requests.length;
    expect(await bc.blockCustomer(number)).toBe(true);
    const sent = requestsSince(mark);
    expect(sent.map((r) => [r.method, r.entitySet, r.status])).toEqual([
      ['GET', 'customers', 200],
      ['PATCH', 'customers', 200],
    ]);
    expect(sent[1]).toMatchObject({ ifMatch: expect.stringMatching(/^W\/"/), body: { blocked: 'All' } });
    expect(await embedded.blockCustomer(number)).toBe(true);
    const [viaBc] = await bc.customersByIds([number]);
    expect(viaBc).toMatchObject({ creditHold: true });
    expect(viaBc).toEqual((await embedded.customersByIds([number]))[0]);

    // Blocked already: read, nothing sent.
    const again = server.requests.length;
    expect(await bc.blockCustomer(number)).toBe(true);
    expect(requestsSince(again).map((r) => r.method)).toEqual(['GET']);

    expect(await bc.blockCustomer('C99999')).toBe(false);
    expect(await embedded.blockCustomer('C99999')).toBe(false);
  });

  it('reads the customer again when it changed between the read and the PATCH (409 Request_EntityChanged)', async () => {
    const bc = connect();
    server.faults.failNext(1, { kind: 'entityChanged' });
    const mark = server.requests.length;
    expect(await bc.blockCustomer(seeded[6]!.number)).toBe(true);
    expect(requestsSince(mark).map((r) => [r.method, r.status])).toEqual([
      ['GET', 200],
      ['PATCH', 409],
      ['GET', 200],
      ['PATCH', 200],
    ]);
  });

  it('blocks once when the PATCH commits and its answer never comes', async () => {
    const bc = connect({ timeoutMs: 300 });
    server.faults.commitThenTimeout({ method: 'PATCH' });
    const mark = server.requests.length;
    expect(await bc.blockCustomer(seeded[7]!.number)).toBe(true);
    // The retry reads a customer blocked already.
    expect(requestsSince(mark).map((r) => [r.method, r.fault])).toEqual([
      ['GET', null],
      ['PATCH', 'commitThenTimeout'],
      ['GET', null],
    ]);
  });

  it('the Business Central-shaped server refuses a PATCH without If-Match or with a stale ETag, and a reference another customer holds', async () => {
    const [first, second] = server.customers();
    const patch = async (path: string, body: unknown, ifMatch?: string) => {
      const response = await fetch(`${server.baseUrl}${path}`, {
        method: 'PATCH',
        headers: {
          authorization: `Bearer ${server.token}`,
          'content-type': 'application/json',
          ...(ifMatch ? { 'if-match': ifMatch } : {}),
        },
        body: JSON.stringify(body),
      });
      const json = (await response.json()) as { error?: { code: string }; blocked?: string };
      return [response.status, json.error?.code ?? json.blocked];
    };
    const customers = `/api/v2.0/companies(${server.companyId})/customers`;
    const { publisher, group, version } = server.extension;
    const references = `/api/${publisher}/${group}/${version}/companies(${server.companyId})/customerReferences`;
    expect(await patch(`${customers}(${String(first!.id)})`, { blocked: 'Ship' })).toEqual([400, 'BadRequest_InvalidToken']);
    expect(await patch(`${customers}(${String(first!.id)})`, { blocked: 'Ship' }, 'W/"c3RhbGU="')).toEqual([409, 'Request_EntityChanged']);
    expect(await patch(`${customers}(${String(first!.id)})`, { blocked: 'Everything' }, '*')).toEqual([
      400,
      'BadRequest_InvalidRequestBody',
    ]);
    expect(await patch(`${customers}(11111111-2222-3333-4444-555555555555)`, { blocked: 'All' }, '*')).toEqual([
      404,
      'Internal_RecordNotFound',
    ]);
    expect(await patch(`${references}(${String(first!.id)})`, { crmReference: '001ACC-HELD' }, '*')).toEqual([200, undefined]);
    expect(await patch(`${references}(${String(second!.id)})`, { crmReference: '001ACC-HELD' }, '*')).toEqual([
      409,
      'Internal_EntityWithSameKeyExists',
    ]);
    expect(first!.blocked).toBe(' ');
    expect([first!.crmReference, second!.crmReference]).toEqual(['001ACC-HELD', null]);
  });
});
