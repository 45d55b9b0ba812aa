import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { silentTelemetry } from '../../platform/connector-telemetry.ts';
import { ConnectorError } from '../../platform/errors.ts';
import { oauthTokenSource } from '../../platform/oauth.ts';
import { createResilience, type ResiliencePolicy } from '../../platform/resilience.ts';
import { createEmbeddedErpConnector } from '../../subgraphs/erp/src/connectors/embedded/index.ts';
import { createS4HanaConnector, S4HanaError } from '../../subgraphs/erp/src/connectors/s4hana.ts';
import type {
  ErpCustomerRecord,
  NewCustomer,
  NewReturnOrder,
  NewSalesOrder,
  OrderRecord,
  ReturnOrderRecord,
} from '../../subgraphs/erp/src/connectors/types.ts';
import { countingTelemetry, TEST_POLICY } from '../helpers/connector-tests.ts';
import { AS_OF, seededDatabases } from '../helpers/stack.ts';
import { startS4HanaServer, type S4HanaServer } from '../vendors/s4hana/server.ts';

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

/** S/4HANA's sales orders have no GUID on the V2 API: their id is the document number. */
const withOrderId = (order: OrderRecord): OrderRecord => ({ ...order, erpId: order.number });
/** S/4HANA keeps a return's creation time to the second (CreationDate and CreationTime). */
const toSecond = (order: ReturnOrderRecord): ReturnOrderRecord => ({ ...order, createdAt: `${order.createdAt.slice(0, 19)}Z` });
const withoutKeys = ({ number: _number, erpId: _erpId, ...rest }: OrderRecord) => rest;
const withoutOrderNumber = <T extends { orderNumber: string }>({ orderNumber: _orderNumber, ...rest }: T) => rest;
const withoutErpId = ({ erpId: _erpId, ...rest }: ErpCustomerRecord) => rest;

describe('S/4HANA Cloud adapter against an S/4HANA-shaped server', () => {
  const { erp: db } = seededDatabases();
  db.prepare(
    `UPDATE salesOrderLines SET shippedQuantity = 1
     WHERE documentId = (SELECT id FROM salesOrders WHERE number = 'SO-100397') AND sequence = 10000`,
  ).run();
  db.prepare(`UPDATE customers SET taxAreaCode = CASE rowid % 3 WHEN 0 THEN NULL WHEN 1 THEN 'ATLANTA, GA' ELSE 'CHICAGO, IL' END`).run();
  // The seed onboards no customer from the CRM: one has a CRM reference, in both systems' data.
  db.prepare(`UPDATE customers SET crmReference = '001Dn00000ACME1' WHERE number = 'C10003'`).run();
  const embedded = createEmbeddedErpConnector(db, silentTelemetry('erp'));
  const column = <T>(sql: string) => (db.prepare(sql).all() as Record<string, T>[]).map((row) => Object.values(row)[0] as T);
  const serials = db
    .prepare('SELECT serialNumber, itemNumber, customerNumber, orderNumber FROM serialNumbers ORDER BY serialNumber LIMIT 8')
    .all() as { serialNumber: string; itemNumber: string; customerNumber: string; orderNumber: string }[];
  const orderLines = db
    .prepare(
      `SELECT o.number AS orderNumber, l.sequence, l.lineObjectNumber AS sku FROM salesOrderLines l
       JOIN salesOrders o ON o.id = l.documentId ORDER BY o.number, l.sequence LIMIT 8`,
    )
    .all() as { orderNumber: string; sequence: number; sku: string }[];

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

  let server: S4HanaServer;
  beforeAll(async () => {
    await embedded.createReturnOrder(newReturn('RET-SEED-1', 'CASE-1', 0));
    await embedded.createReturnOrder(newReturn('RET-SEED-2', 'CASE-1', 1));
    await embedded.createReturnOrder(newReturn('RET-SEED-3', 'CASE-2', 2));
    server = await startS4HanaServer({ erp: db, pageSize: 25 });
  });
  afterAll(async () => {
    await server.close();
  });
  beforeEach(() => server.faults.clear());

  function connect(policy: Partial<ResiliencePolicy> = {}) {
    const telemetry = countingTelemetry();
    const resilience = createResilience('erp', { ...TEST_POLICY, ...policy });
    const token = oauthTokenSource(
      { kind: 'client_credentials', tokenUrl: server.tokenUrl, clientId: server.clientId, clientSecret: server.clientSecret },
      'erp',
    );
    const connector = createS4HanaConnector({
      baseUrl: server.baseUrl,
      token,
      companyCurrency: server.companyCurrency,
      telemetry,
      resilience,
    });
    return { connector, telemetry, resilience };
  }
  const since = (mark: number) => server.requests.slice(mark).filter((r) => r.url !== '/oauth/token');

  describe('returns the same records as the embedded adapter over the same data', () => {
    const s4 = () => connect().connector;

    it('customers and products', async () => {
      const customers = [...column<string>('SELECT number FROM customers'), 'C99999'];
      const skus = [...column<string>('SELECT number FROM items'), 'NOPE-1'];
      const byId = sortBy<{ id: string }>((c) => c.id);
      const bySku = sortBy<{ sku: string }>((p) => p.sku);
      const viaS4 = await s4().customersByIds(customers);
      expect(byId(viaS4)).toEqual(byId(await embedded.customersByIds(customers)));
      expect(viaS4.filter((c) => c.creditHold)).toHaveLength(1);
      expect(new Set(viaS4.map((c) => c.taxArea))).toEqual(new Set(['ATLANTA, GA', 'CHICAGO, IL', null]));
      expect(bySku(await s4().productsBySkus(skus))).toEqual(bySku(await embedded.productsBySkus(skus)));
      expect(await s4().availableQuantities(skus)).toEqual(await embedded.availableQuantities(skus));
    });

    it('order graphs: orders with their items, products, deliveries and billing documents, each order and its items one read', async () => {
      const numbers = [...column<string>('SELECT DISTINCT orderNumber FROM salesInvoices WHERE orderNumber IS NOT NULL LIMIT 20'), 'SO-0'];
      const parts = { lines: true, products: true, shipments: true, invoices: true };
      const mark = server.requests.length;
      const graph = await s4().orderGraphsByNumbers(numbers, parts);
      expect(since(mark).filter((r) => r.entitySet === 'A_SalesOrder')).toHaveLength(1);
      const expected = await embedded.orderGraphsByNumbers(numbers, parts);
      const byNumber = sortBy<{ number: string }>((o) => o.number);
      const lines = sortBy<{ orderNumber: string; sequence: number }>(
        (l) => l.orderNumber,
        (l) => l.sequence,
      );
      expect(byNumber(graph.orders)).toEqual(byNumber(expected.orders.map(withOrderId)));
      expect(lines(graph.lines)).toEqual(lines(expected.lines));
      const bySku = sortBy<{ sku: string }>((p) => p.sku);
      expect(bySku(graph.products)).toEqual(bySku(expected.products));
      const byId = sortBy<{ id: string }>((s) => s.id);
      expect(byId(graph.shipments)).toEqual(byId(expected.shipments));
      expect(byNumber(graph.invoices)).toEqual(byNumber(expected.invoices));
      expect(graph.invoices.length).toBeGreaterThan(0);
    });

    it('customers by tax number, by name and postal code, and by CRM reference', async () => {
      const byId = sortBy<{ id: string }>((c) => c.id);
      const rows = db
        .prepare(
          'SELECT number, displayName, postalCode, taxRegistrationNumber FROM customers WHERE taxRegistrationNumber IS NOT NULL LIMIT 3',
        )
        .all() as { number: string; displayName: string; postalCode: string; taxRegistrationNumber: string }[];
      const taxIds = [...rows.map((r) => r.taxRegistrationNumber), rows[0]!.taxRegistrationNumber.toLowerCase(), 'XX000'];
      const viaS4 = await s4().customersByTaxRegistrationNumbers(taxIds);
      expect(viaS4.length).toBeGreaterThan(0);
      expect(byId(viaS4)).toEqual(byId(await embedded.customersByTaxRegistrationNumbers(taxIds)));
      const { displayName, postalCode } = rows[1]!;
      expect(byId(await s4().customersByNameAndPostalCode(displayName.toUpperCase(), postalCode))).toEqual(
        byId(await embedded.customersByNameAndPostalCode(displayName.toUpperCase(), postalCode)),
      );
      expect(await s4().customersByNameAndPostalCode(displayName, postalCode)).toHaveLength(1);
      const found = await s4().customerByReference('001Dn00000ACME1');
      expect(found?.id).toBe('C10003');
      expect(found).toEqual(await embedded.customerByReference('001Dn00000ACME1'));
      expect(await s4().customerByReference('001DN00000ACME1')).toBeNull();
      expect(await s4().customerByReference('no-such-account')).toBeNull();
    });

    it('orders, with every status, their lines, and the most recent of each customer', async () => {
      const numbers = [...column<string>('SELECT number FROM salesOrders'), 'SO-0'];
      const byNumber = sortBy<{ number: string }>((o) => o.number);
      const orders = await s4().ordersByNumbers(numbers);
      expect(byNumber(orders)).toEqual(byNumber((await embedded.ordersByNumbers(numbers)).map(withOrderId)));
      expect(new Set(orders.map((o) => o.status))).toEqual(new Set(['SHIPPED', 'OPEN', 'DRAFT', 'PARTIALLY_SHIPPED']));
      const lines = sortBy<{ orderNumber: string; sequence: number }>(
        (l) => l.orderNumber,
        (l) => l.sequence,
      );
      const some = numbers.slice(0, 120);
      expect(lines(await s4().orderLinesByOrderNumbers(some))).toEqual(lines(await embedded.orderLinesByOrderNumbers(some)));
      const customers = column<string>('SELECT number FROM customers');
      for (const limit of [1, 30]) {
        expect(byNumber(await s4().ordersByCustomerIds(customers, limit))).toEqual(
          byNumber((await embedded.ordersByCustomerIds(customers, limit)).map(withOrderId)),
        );
      }
      const external = column<string>("SELECT externalDocumentNumber FROM salesOrders WHERE externalDocumentNumber <> '' LIMIT 1")[0]!;
      expect(await s4().salesOrderByExternalDocument(external)).toEqual(
        withOrderId((await embedded.salesOrderByExternalDocument(external))!),
      );
    });

    it('shipments (outbound deliveries), their lines and serialized assets', async () => {
      const ids = column<string>('SELECT number FROM salesShipments');
      const orderNumbers = column<string>("SELECT DISTINCT orderNumber FROM salesShipments WHERE orderNumber > 'SO-100090' LIMIT 80");
      const byId = sortBy<{ id: string }>((s) => s.id);
      expect(byId(await s4().shipmentsByIds(ids))).toEqual(byId(await embedded.shipmentsByIds(ids)));
      expect(byId(await s4().shipmentsByOrderNumbers(orderNumbers))).toEqual(byId(await embedded.shipmentsByOrderNumbers(orderNumbers)));
      const lines = sortBy<{ shipmentId: string; sequence: number }>(
        (l) => l.shipmentId,
        (l) => l.sequence,
      );
      const some = ids.slice(0, 150);
      expect(lines(await s4().shipmentLinesByShipmentIds(some))).toEqual(lines(await embedded.shipmentLinesByShipmentIds(some)));
      const serialNumbers = [...column<string>('SELECT serialNumber FROM serialNumbers'), 'SN-NONE'];
      const bySerial = sortBy<{ serialNumber: string }>((a) => a.serialNumber);
      const assets = await s4().assetsBySerialNumbers(serialNumbers);
      expect(bySerial(assets)).toEqual(bySerial(await embedded.assetsBySerialNumbers(serialNumbers)));
      expect(new Set(assets.map((a) => a.warrantyCoverage))).toEqual(new Set(['STANDARD', 'EXTENDED', 'PARTS_ONLY']));
      expect(bySerial(await s4().assetsByShipmentIds(some))).toEqual(bySerial(await embedded.assetsByShipmentIds(some)));
    });

    it('invoices (billing documents) by number, by order and per customer with state and due-date filters', async () => {
      const numbers = column<string>('SELECT number FROM salesInvoices');
      const orderNumbers = column<string>('SELECT number FROM salesOrders LIMIT 100');
      const customers = column<string>('SELECT number FROM customers');
      const byNumber = sortBy<{ number: string }>((i) => i.number);
      expect(byNumber(await s4().invoicesByNumbers(numbers))).toEqual(byNumber(await embedded.invoicesByNumbers(numbers)));
      expect(byNumber(await s4().invoicesByOrderNumbers(orderNumbers))).toEqual(
        byNumber(await embedded.invoicesByOrderNumbers(orderNumbers)),
      );
      for (const query of [
        { limit: 5 },
        { limit: 30 },
        { limit: 3, status: 'PAID' as const },
        { limit: 10, status: 'OPEN' as const, dueBefore: AS_OF },
        { limit: 10, status: 'OPEN' as const, dueOnOrAfter: AS_OF },
        { limit: 10, status: 'DRAFT' as const },
      ]) {
        expect(byNumber(await s4().invoicesByCustomerIds(customers, query))).toEqual(
          byNumber(await embedded.invoicesByCustomerIds(customers, query)),
        );
      }
    });

    it('return orders (customer returns), their lines and the quantities already returned', async () => {
      const byNumber = sortBy<ReturnOrderRecord>((r) => r.number);
      const numbers = ['RMA-900001', 'RMA-900002', 'RMA-900003', 'RMA-1'];
      expect(byNumber(await s4().returnOrdersByNumbers(numbers))).toEqual(
        byNumber((await embedded.returnOrdersByNumbers(numbers)).map(toSecond)),
      );
      expect(byNumber(await s4().returnOrdersByCaseIds(['CASE-1', 'CASE-2', 'CASE-9']))).toEqual(
        byNumber((await embedded.returnOrdersByCaseIds(['CASE-1', 'CASE-2', 'CASE-9'])).map(toSecond)),
      );
      expect(await s4().returnOrderByExternalDocument('RET-SEED-2')).toEqual(
        toSecond((await embedded.returnOrderByExternalDocument('RET-SEED-2'))!),
      );
      expect(await s4().returnOrderByExternalDocument('RET-NONE')).toBeNull();
      const lines = sortBy<{ returnNumber: string; sequence: number }>(
        (l) => l.returnNumber,
        (l) => l.sequence,
      );
      expect(lines(await s4().returnLinesByReturnNumbers(numbers))).toEqual(lines(await embedded.returnLinesByReturnNumbers(numbers)));
      const query = {
        serialNumbers: serials.map((s) => s.serialNumber),
        orderLines: orderLines.map((l) => ({ orderNumber: l.orderNumber, sequence: l.sequence })),
      };
      const mark = server.requests.length;
      const returned = await s4().returnedQuantities(query);
      expect(returned).toEqual(await embedded.returnedQuantities(query));
      expect(returned.bySerialNumber.size).toBe(3);
      // Both reads in one $batch (after the CSRF token it needs, as a POST).
      expect(since(mark).map((r) => [r.method, r.entitySet, r.operations.length])).toEqual([
        ['GET', null, 0],
        ['POST', '$batch', 2],
      ]);
    });

    it('creates a return order as the embedded adapter does, idempotently', async () => {
      const { connector } = connect();
      const mark = server.requests.length;
      const viaS4 = await connector.createReturnOrder(newReturn('RET-NEW-1', 'CASE-3', 3));
      const viaEmbedded = await embedded.createReturnOrder(newReturn('RET-NEW-1', 'CASE-3', 3));
      // Look up (none), fetch the CSRF token, the deep insert in a changeset.
      expect(since(mark).map((r) => [r.method, r.entitySet])).toEqual([
        ['GET', 'A_CustomerReturn'],
        ['GET', null],
        ['POST', '$batch'],
      ]);
      expect(since(mark)[2]!.operations).toEqual(['POST A_CustomerReturn']);
      const { createdAt: _a, ...s4Rest } = viaS4;
      const { createdAt: _b, ...embeddedRest } = viaEmbedded;
      expect(s4Rest).toEqual(embeddedRest);
      expect(viaS4.createdAt).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);
      const lines = sortBy<{ sequence: number }>((l) => l.sequence);
      expect(lines(await connector.returnLinesByReturnNumbers([viaS4.number]))).toEqual(
        lines(await embedded.returnLinesByReturnNumbers([viaS4.number])),
      );
      const again = server.requests.length;
      expect(await connector.createReturnOrder(newReturn('RET-NEW-1', 'CASE-3', 3))).toEqual(viaS4);
      expect(since(again).map((r) => r.method)).toEqual(['GET']);
      expect(server.customerReturns('RET-NEW-1')).toHaveLength(1);
    });
  });

  describe('sales orders', () => {
    it('creates a sales order with its items in one deep insert, as the embedded adapter does, and once per external document number', async () => {
      const { connector } = connect();
      const key = 'CSO-NEW-1';
      const mark = server.requests.length;
      const viaS4 = await connector.createSalesOrder(newSalesOrder(key, 0));
      const viaEmbedded = await embedded.createSalesOrder(newSalesOrder(key, 0));
      // Look up (none), fetch the CSRF token, the deep insert in a changeset.
      const sent = since(mark);
      expect(sent.map((r) => [r.method, r.entitySet, r.status])).toEqual([
        ['GET', 'A_SalesOrder', 200],
        ['GET', null, 200],
        ['POST', '$batch', 200],
      ]);
      expect(sent[0]!.query.$filter).toBe(`PurchaseOrderByCustomer eq '${key}'`);
      expect(sent[2]!.operations).toEqual(['POST A_SalesOrder']);
      expect(sent[2]!.csrfToken).toBeTruthy();
      expect(withoutKeys(viaS4)).toEqual(withoutKeys(viaEmbedded));
      expect(viaS4).toMatchObject({ status: 'OPEN', totalIncludingTax: '336.85', customerPurchaseOrder: key });
      expect(viaS4.erpId).toBe(viaS4.number);

      const lines = await connector.orderLinesByOrderNumbers([viaS4.number]);
      expect(lines.map(withoutOrderNumber)).toEqual(
        (await embedded.orderLinesByOrderNumbers([viaEmbedded.number])).map(withoutOrderNumber),
      );
      expect(lines.map((l) => [l.sequence, l.sku, l.quantity, l.amount])).toEqual([
        [10000, salesItems[0], 2, '299.80'],
        [20000, salesItems[1], 3, '37.05'],
      ]);

      const again = server.requests.length;
      expect(await connector.createSalesOrder(newSalesOrder(key, 0))).toEqual(viaS4);
      expect(since(again).map((r) => r.method)).toEqual(['GET']);
      expect(server.salesOrders(key)).toHaveLength(1);
      expect(await connector.salesOrderByExternalDocument(key)).toEqual(viaS4);
      expect(withoutKeys((await embedded.salesOrderByExternalDocument(key))!)).toEqual(withoutKeys(viaS4));
      expect(await connector.ordersByNumbers([viaS4.number])).toEqual([viaS4]);
    });

    it('refuses an external document number that does not fit, and sends nothing for it', async () => {
      const { connector } = connect();
      const mark = server.requests.length;
      await expect(connector.createSalesOrder(newSalesOrder('X'.repeat(36), 2))).rejects.toBeInstanceOf(RangeError);
      await expect(connector.createSalesOrder(newSalesOrder('  ', 2))).rejects.toBeInstanceOf(RangeError);
      expect(since(mark)).toHaveLength(0);
    });

    it('cancels an unshipped order by deleting it under If-Match and the CSRF token, and then finds none to cancel', async () => {
      const { connector } = connect();
      const key = 'CSO-CANCEL-1';
      const created = await connector.createSalesOrder(newSalesOrder(key, 4));
      const mark = server.requests.length;
      expect(await connector.cancelSalesOrder(created.number)).toBe('cancelled');
      const sent = since(mark);
      expect(sent.map((r) => [r.method, r.entitySet, r.status])).toEqual([
        ['GET', 'A_SalesOrder', 200],
        ['DELETE', 'A_SalesOrder', 204],
      ]);
      expect(decodeURIComponent(sent[1]!.url)).toContain(`/A_SalesOrder('${created.number}')`);
      expect(sent[1]!.ifMatch).toMatch(/^W\/"/);
      expect(sent[1]!.csrfToken).toBeTruthy();
      expect(server.salesOrders(key)).toHaveLength(0);
      expect(await connector.ordersByNumbers([created.number])).toEqual([]);
      expect(await connector.orderLinesByOrderNumbers([created.number])).toEqual([]);
      expect(await connector.salesOrderByExternalDocument(key)).toBeNull();

      const again = server.requests.length;
      expect(await connector.cancelSalesOrder(created.number)).toBe('not_found');
      expect(since(again).map((r) => r.method)).toEqual(['GET']);

      // The embedded adapter answers the same.
      const local = await embedded.createSalesOrder(newSalesOrder(key, 4));
      expect(await embedded.cancelSalesOrder(local.number)).toBe('cancelled');
      expect(await embedded.cancelSalesOrder(local.number)).toBe('not_found');
      expect(await embedded.salesOrderByExternalDocument(key)).toBeNull();
    });

    it('answers shipped for an order with a delivered item (partly or fully) and sends no write', async () => {
      const { connector } = connect();
      const fullyShipped = column<string>('SELECT number FROM salesOrders WHERE fullyShipped = 1 LIMIT 1')[0]!;
      for (const number of ['SO-100397', fullyShipped]) {
        const mark = server.requests.length;
        expect(await connector.cancelSalesOrder(number)).toBe('shipped');
        expect(await embedded.cancelSalesOrder(number)).toBe('shipped');
        expect(since(mark).map((r) => r.method)).toEqual(['GET']);
        expect(server.salesOrders().some((row) => row.SalesOrder === number)).toBe(true);
      }
      expect(await connector.cancelSalesOrder('SO-0')).toBe('not_found');
      expect(await embedded.cancelSalesOrder('SO-0')).toBe('not_found');
    });
  });

  describe('customer onboarding', () => {
    it('creates a customer as the embedded adapter does, with its reference, and once per reference', async () => {
      const { connector } = connect();
      const customer = newCustomer('001ACC-NEW-1', 1);
      const mark = server.requests.length;
      const viaS4 = await connector.createCustomer(customer);
      const viaEmbedded = await embedded.createCustomer(customer);
      expect(withoutErpId(viaS4)).toEqual(withoutErpId(viaEmbedded));
      expect(viaS4).toMatchObject({
        name: customer.name,
        currency: 'EUR',
        paymentTerms: viaEmbedded.paymentTerms,
        taxRegistrationNumber: customer.taxRegistrationNumber,
        taxArea: 'NL',
        creditLimit: '0.00',
        creditHold: false,
        balanceDue: '0.00',
      });
      expect(viaS4.paymentTerms).toBeTruthy();
      const sent = since(mark);
      expect(sent.map((r) => [r.method, r.entitySet, r.status])).toEqual([
        ['GET', 'A_Customer', 200],
        ['GET', null, 200],
        ['POST', '$batch', 200],
      ]);
      expect(sent[0]!.query.$filter).toBe("YY1_CRMReference_cus eq '001ACC-NEW-1'");
      expect(sent[2]!.operations).toEqual(['POST A_BusinessPartner']);

      expect(await connector.customerByReference('001ACC-NEW-1')).toEqual(viaS4);
      expect(await connector.customersByIds([viaS4.id])).toEqual([viaS4]);
      expect(await connector.customersByNameAndPostalCode(customer.name, '1015 CJ')).toEqual([viaS4]);

      const again = server.requests.length;
      expect(await connector.createCustomer(customer)).toEqual(viaS4);
      // Found by its reference (then read), not made again.
      expect(since(again).every((r) => r.method === 'GET' || r.entitySet === '$batch')).toBe(true);
      expect(since(again).some((r) => r.operations.some((op) => op.startsWith('POST')))).toBe(false);
      expect(withoutErpId(await embedded.createCustomer(customer))).toEqual(withoutErpId(viaS4));
      await expect(connector.createCustomer({ ...customer, reference: ' ' })).rejects.toBeInstanceOf(RangeError);
    });
  });

  describe('the wire: CSRF, $batch, ETags, request counts', () => {
    it('reads an order with its lines in one request ($expand), and a hundred orders in one $batch', async () => {
      const { connector, telemetry } = connect();
      let mark = server.requests.length;
      const lines = await connector.orderLinesByOrderNumbers(['SO-100001']);
      expect(lines.length).toBeGreaterThan(0);
      const [read] = since(mark);
      expect(since(mark)).toHaveLength(1);
      expect(read!.query.$expand).toBe('to_Item,to_Item/to_ScheduleLine');
      mark = server.requests.length;
      const numbers = column<string>('SELECT number FROM salesOrders ORDER BY number LIMIT 100');
      expect(await connector.ordersByNumbers(numbers)).toHaveLength(100);
      // A CSRF token (a $batch is a POST), then one $batch of three GETs, then the pages past 25.
      const sent = since(mark);
      expect(sent.slice(0, 2).map((r) => [r.method, r.entitySet, r.operations.length])).toEqual([
        ['GET', null, 0],
        ['POST', '$batch', 3],
      ]);
      expect(sent.slice(2).every((r) => r.method === 'GET' && r.query.$skiptoken)).toBe(true);
      expect(telemetry.calls.length).toBe(1 + sent.length);
    });

    it('fetches a new CSRF token once when the session expired, and sends every cookie with it', async () => {
      const { connector } = connect();
      await connector.ping();
      await connector.returnedQuantities({ serialNumbers: ['SN-X'], orderLines: [] });
      server.faults.expireCsrf();
      const mark = server.requests.length;
      await connector.returnedQuantities({ serialNumbers: ['SN-X'], orderLines: [] });
      const sent = since(mark);
      expect(sent.map((r) => [r.method, r.status])).toEqual([
        ['POST', 403],
        ['GET', 200],
        ['POST', 200],
      ]);
      expect(sent[2]!.csrfToken).not.toBe(sent[0]!.csrfToken);
    });

    it('refetches the CSRF token only once: a second refusal is the answer', async () => {
      const { connector } = connect();
      await connector.ping();
      server.faults.failNext(2, { kind: 'csrfRejected' });
      const mark = server.requests.length;
      const error = await connector.returnedQuantities({ serialNumbers: ['SN-X'], orderLines: [] }).catch((e: unknown) => e);
      // A refused session is reported as the ERP refusing Concord's credentials.
      expect(error).toBeInstanceOf(ConnectorError);
      expect((error as Error).cause).toBeInstanceOf(S4HanaError);
      expect(((error as Error).cause as S4HanaError).details).toMatchObject({ status: 403, retryable: false });
      expect(since(mark).map((r) => [r.method, r.status])).toEqual([
        ['GET', 200],
        ['POST', 403],
        ['GET', 200],
        ['POST', 403],
      ]);
    });

    it('fails on an inner $batch error under an outer 200, with the inner error', async () => {
      const { connector } = connect();
      server.faults.failNext(1, { kind: 'innerError', status: 400, code: 'V1/302', message: 'Sales document is not in the database' });
      const customers = column<string>('SELECT number FROM customers LIMIT 5');
      const error = await connector.ordersByCustomerIds(customers, 2).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(S4HanaError);
      expect((error as S4HanaError).code).toBe('V1/302');
      expect((error as Error).message).toMatch(/in \$batch operation 1.*Sales document is not in the database/);
      const batch = server.requests.filter((r) => r.entitySet === '$batch').at(-1)!;
      expect(batch.status).toBe(200);
    });

    it('retries 429 after Retry-After and 5xx', async () => {
      const { connector } = connect();
      server.faults.failNext(1, { kind: 'rateLimit', retryAfterSeconds: 0 });
      expect(await connector.ordersByNumbers(['SO-100001'])).toHaveLength(1);
      server.faults.failNext(2, { kind: 'serverError', status: 503 });
      expect(await connector.customersByIds(['C10001'])).toHaveLength(1);
      const recent = server.requests.slice(-5).map((r) => r.status);
      expect(recent).toEqual([429, 200, 503, 503, 200]);
    });

    it('opens the breaker after consecutive failures and then fails fast', async () => {
      const { connector, resilience } = connect({ breakerThreshold: 2, retries: 0 });
      server.faults.failNext(2, { kind: 'serverError', status: 500 });
      await expect(connector.ordersByNumbers(['SO-100001'])).rejects.toThrow();
      await expect(connector.ordersByNumbers(['SO-100001'])).rejects.toThrow();
      expect(resilience.state()).toBe('open');
      const mark = server.requests.length;
      await expect(connector.ordersByNumbers(['SO-100001'])).rejects.toThrow();
      expect(server.requests.length).toBe(mark);
    });

    it('blocks a customer with a PATCH under If-Match and the CSRF token', async () => {
      const { connector } = connect();
      const number = column<string>("SELECT number FROM customers WHERE blocked = ' ' LIMIT 1")[0]!;
      const mark = server.requests.length;
      expect(await connector.blockCustomer(number)).toBe(true);
      const patch = since(mark).find((r) => r.method === 'PATCH')!;
      expect(patch.ifMatch).toMatch(/^W\/"/);
      expect(patch.csrfToken).toBeTruthy();
      expect(patch.status).toBe(204);
      expect(server.customer(number)?.OrderIsBlockedForCustomer).toBe('01');
      expect((await connector.customersByIds([number]))[0]?.creditHold).toBe(true);
      expect(await connector.blockCustomer('C99999')).toBe(false);
    });

    it('after a create that committed and timed out, finds the return instead of making a second', async () => {
      const { connector } = connect({ timeoutMs: 300 });
      server.faults.commitThenTimeout(1_000);
      const created = await connector.createReturnOrder(newReturn('RET-TIMEOUT-1', 'CASE-4', 4));
      expect(created.externalDocumentNumber).toBe('RET-TIMEOUT-1');
      expect(server.customerReturns('RET-TIMEOUT-1')).toHaveLength(1);
      // The create timed out after it committed; the retry's look-up found it.
      const tries = server.requests.filter((r) => r.url.includes('RET-TIMEOUT-1') || r.fault === 'commitThenTimeout');
      expect(tries.map((r) => [r.method, r.fault])).toEqual([
        ['GET', null],
        ['POST', 'commitThenTimeout'],
        ['GET', null],
      ]);
    });

    it('after a sales order create that committed and timed out, finds the order instead of making a second', async () => {
      const { connector } = connect({ timeoutMs: 300 });
      server.faults.commitThenTimeout(1_000);
      const key = 'CSO-TIMEOUT-1';
      const mark = server.requests.length;
      const created = await connector.createSalesOrder(newSalesOrder(key, 3));
      expect(server.salesOrders(key)).toHaveLength(1);
      expect(created.number).toBe(server.salesOrders(key)[0]!.SalesOrder);
      const tries = since(mark).filter((r) => r.url.includes(key) || r.fault === 'commitThenTimeout');
      expect(tries.map((r) => [r.method, r.fault])).toEqual([
        ['GET', null],
        ['POST', 'commitThenTimeout'],
        ['GET', null],
      ]);
      expect(await connector.orderLinesByOrderNumbers([created.number])).toHaveLength(2);
    });

    it('cancels once when the DELETE commits and its answer never comes in time', async () => {
      const { connector } = connect({ timeoutMs: 300 });
      const created = await connector.createSalesOrder(newSalesOrder('CSO-CANCEL-CTT', 5));
      server.faults.commitThenTimeout(1_000);
      const mark = server.requests.length;
      expect(await connector.cancelSalesOrder(created.number)).toBe('cancelled');
      expect(since(mark).map((r) => [r.method, r.fault])).toEqual([
        ['GET', null],
        ['DELETE', 'commitThenTimeout'],
        ['GET', null],
      ]);
      expect(server.salesOrders('CSO-CANCEL-CTT')).toHaveLength(0);
    });

    it('after a customer create that committed and timed out, finds the customer by its reference', async () => {
      const { connector } = connect({ timeoutMs: 300 });
      server.faults.commitThenTimeout(1_000);
      const mark = server.requests.length;
      const created = await connector.createCustomer(newCustomer('001ACC-TIMEOUT-1', 7));
      const holders = since(mark).filter((r) => r.url.includes('001ACC-TIMEOUT-1') || r.fault === 'commitThenTimeout');
      expect(holders.map((r) => [r.method, r.fault])).toEqual([
        ['GET', null],
        ['POST', 'commitThenTimeout'],
        ['GET', null],
      ]);
      expect(created).toMatchObject({ name: 'Onboarded Instruments 7 B.V.', taxArea: 'NL' });
      expect(await connector.customerByReference('001ACC-TIMEOUT-1')).toEqual(created);
    });

    it('rejects what S/4HANA does not serve with a ConnectorError', async () => {
      const { connector } = connect();
      await expect(connector.billingSchedulesByCustomerIds(['C10001'])).rejects.toBeInstanceOf(ConnectorError);
      await expect(connector.changedRecordsAfter('order', AS_OF)).rejects.toThrow(/not supported/);
      await expect(connector.applyBillingChange({} as never)).rejects.toThrow(/not supported/);
    });
  });
});
