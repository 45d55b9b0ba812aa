import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { EventBroker } from '../../platform/events/broker.ts';
import type { CanonicalEvent } from '../../platform/events/cloudevent.ts';
import { embeddedBroker } from '../../platform/events/embedded-broker.ts';
import type { RunningService } from '../../platform/http-server.ts';
import { generateDevKeys, type DevKeys } from '../../platform/keys.ts';
import { silentTelemetry } from '../../platform/connector-telemetry.ts';
import { createLogger } from '../../platform/logger.ts';
import { createResilience } from '../../platform/resilience.ts';
import { openDatabase, type Database } from '../../platform/sqlite.ts';
import { loadErpConfig } from '../../subgraphs/erp/src/config.ts';
import { createBusinessCentralConnector } from '../../subgraphs/erp/src/connectors/businessCentral.ts';
import { createEmbeddedErpConnector } from '../../subgraphs/erp/src/connectors/embedded/index.ts';
import type { ErpChangeKind } from '../../subgraphs/erp/src/connectors/types.ts';
import { startErp } from '../../subgraphs/erp/src/index.ts';
import { seededDatabases } from '../helpers/stack.ts';
import { startBusinessCentralServer, type BusinessCentralServer, type WebhookNotification } from '../vendors/businessCentral/server.ts';

const logger = createLogger('test', process.env.TEST_LOG === '1' ? 'warn' : 'silent');
const dir = mkdtempSync(join(tmpdir(), 'concord-erp-feed-'));
let keys: DevKeys;
beforeAll(async () => {
  keys = await generateDevKeys();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const newBroker = () => embeddedBroker({ file: ':memory:', logger, pollMs: 20 });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The events of `broker` that `match`, waited for (up to `ms`) until there are `count`. */
async function eventsOf(broker: EventBroker, match: (event: CanonicalEvent<any>) => boolean, count = 1, ms = 2_000) {
  const until = Date.now() + ms;
  for (;;) {
    const found = (await broker.read({ limit: 10_000 })).map((stored) => stored.event as CanonicalEvent<any>).filter(match);
    if (found.length >= count || Date.now() > until) return found;
    await sleep(5);
  }
}

/** A broker that refuses every publish while `refusing` is set. */
function flaky(broker: EventBroker) {
  const control = { refusing: false, refused: 0 };
  const wrapped: EventBroker = {
    ...broker,
    async publish(events) {
      if (control.refusing) {
        control.refused += 1;
        throw new Error('broker unavailable');
      }
      return broker.publish(events);
    },
  };
  return { broker: wrapped, control };
}

const latencies: Record<string, number[]> = {};
const measured = (name: string, ms: number) => (latencies[name] ??= []).push(ms);
afterAll(() => {
  for (const [name, values] of Object.entries(latencies)) {
    const sorted = [...values].sort((a, b) => a - b);
    console.log(
      `erp change feed, ${name}: n=${sorted.length} median ${sorted[Math.floor(sorted.length / 2)]!.toFixed(1)} ms, max ${sorted[sorted.length - 1]!.toFixed(1)} ms`,
    );
  }
});

interface OrderRow {
  id: string;
  number: string;
  customerNumber: string;
}

describe('the embedded ERP change feed', () => {
  const file = join(dir, 'erp.sqlite');
  let writer: Database;
  let erp: RunningService | null = null;

  beforeAll(() => {
    writeFileSync(file, seededDatabases().erp.serialize());
    writer = openDatabase(file);
  });
  afterEach(async () => {
    await erp?.stop();
    erp = null;
  });
  afterAll(() => writer.close());

  const start = (broker: EventBroker) =>
    startErp(
      { ...loadErpConfig({ DATA_DIR: dir, HOST: '127.0.0.1', LOG_LEVEL: 'silent' }), port: 0 },
      { database: openDatabase(file), broker, logger, internalPublicKey: keys.internal.publicKey },
    );
  /** Open orders nothing of which has shipped. */
  const openOrders = () =>
    writer
      .prepare(
        `SELECT o.id, o.number, o.customerNumber FROM salesOrders o WHERE o.status = 'Open' AND o.fullyShipped = 0
         AND NOT EXISTS (SELECT 1 FROM salesOrderLines l WHERE l.documentId = o.id AND l.shippedQuantity > 0) ORDER BY o.number`,
      )
      .all() as OrderRow[];

  it('publishes order, shipment and invoice changes written to the file, in the graph’s terms, within a second', async () => {
    const broker = newBroker();
    erp = await start(broker);
    const [first, second, third] = openOrders();
    const customers = writer.prepare('SELECT number FROM customers ORDER BY number LIMIT 20').all() as { number: string }[];
    for (const [i, { number }] of customers.entries()) {
      // Writes land anywhere in the poll's period, as they would in use.
      await sleep(Math.random() * 100);
      const began = performance.now();
      writer
        .prepare('UPDATE customers SET creditLimit = ?, lastModifiedDateTime = ? WHERE number = ?')
        .run(50_000 + i, new Date().toISOString(), number);
      const [event] = await eventsOf(broker, (e) => e.subject === `customer/${number}`);
      measured('a row written to the file → its event stored', performance.now() - began);
      expect(event!.data).toEqual({ customerId: number, changes: ['creditLimit', 'lastModifiedDateTime'] });
    }

    writer
      .prepare(`UPDATE salesOrders SET status = 'In Review', lastModifiedDateTime = ? WHERE id = ?`)
      .run(new Date().toISOString(), third!.id);
    const [review] = await eventsOf(broker, (e) => e.subject === `order/${third!.number}`);
    expect(review!.data).toEqual({
      orderNumber: third!.number,
      customerId: third!.customerNumber,
      status: 'IN_REVIEW',
      changes: ['status', 'lastModifiedDateTime'],
    });

    // A line shipped: its order is now partly shipped, as the graph says.
    writer
      .prepare(
        'UPDATE salesOrderLines SET shippedQuantity = 1 WHERE documentId = ? AND sequence = (SELECT MIN(sequence) FROM salesOrderLines WHERE documentId = ?)',
      )
      .run(first!.id, first!.id);
    const [partly] = await eventsOf(broker, (e) => e.subject === `order/${first!.number}`);
    expect(partly!.data).toEqual({
      orderNumber: first!.number,
      customerId: first!.customerNumber,
      status: 'PARTIALLY_SHIPPED',
      changes: ['salesOrderLines'],
    });

    writer
      .prepare(
        `INSERT INTO salesShipments (id, number, orderNumber, customerNumber, postingDate, shippingAgentCode, packageTrackingNumber)
         VALUES ('6b1f0c8e-0000-4000-8000-000000000001', 'SH-TEST-1', ?, ?, '2026-11-02', 'UPS', '1Z999AA10123456784')`,
      )
      .run(first!.number, first!.customerNumber);
    const [shipped] = await eventsOf(broker, (e) => e.type === 'concord.shipment.confirmed');
    expect(shipped!.data).toEqual({
      shipmentId: 'SH-TEST-1',
      orderNumber: first!.number,
      customerId: first!.customerNumber,
      shippedDate: '2026-11-02',
      carrier: 'UPS',
      trackingNumber: '1Z999AA10123456784',
      deliveredDate: null,
      status: 'IN_TRANSIT',
    });

    const invoice = writer.prepare(`SELECT number, customerNumber, orderNumber FROM salesInvoices WHERE status = 'Open' LIMIT 1`).get() as {
      number: string;
      customerNumber: string;
      orderNumber: string | null;
    };
    writer
      .prepare(`UPDATE salesInvoices SET status = 'Paid', remainingAmount = 0, closedDate = '2026-11-03' WHERE number = ?`)
      .run(invoice.number);
    const [paid] = await eventsOf(broker, (e) => e.type === 'concord.invoice.posted');
    expect(paid!.data).toMatchObject({
      invoiceNumber: invoice.number,
      customerId: invoice.customerNumber,
      status: 'PAID',
      balance: '0.00',
      changes: expect.arrayContaining(['status', 'remainingAmount', 'closedDate']),
    });

    // A cancelled order (Business Central deletes it with its lines) is told once, as deleted.
    writer.transaction(() => {
      writer.prepare('DELETE FROM salesOrderLines WHERE documentId = ?').run(second!.id);
      writer.prepare('DELETE FROM salesOrders WHERE id = ?').run(second!.id);
    })();
    const cancelled = await eventsOf(broker, (e) => e.subject === `order/${second!.number}`);
    expect(cancelled.map((e) => e.data)).toEqual([
      { orderNumber: second!.number, customerId: second!.customerNumber, status: 'OPEN', deleted: true },
    ]);

    // An order created with its lines in one transaction is told once, as created.
    const created = { id: '6b1f0c8e-0000-4000-8000-0000000000aa', number: 'SO-TEST-1' };
    writer.transaction(() => {
      writer
        .prepare(
          `INSERT INTO salesOrders (id, number, orderDate, customerId, customerNumber, customerName, currencyCode, totalAmountExcludingTax,
             totalTaxAmount, totalAmountIncludingTax, status, lastModifiedDateTime)
           SELECT ?, ?, '2026-11-04', id, number, displayName, currencyCode, 20, 0, 20, 'Open', '2026-11-04T10:00:00Z' FROM customers WHERE number = ?`,
        )
        .run(created.id, created.number, first!.customerNumber);
      for (const sequence of [10000, 20000])
        writer
          .prepare(
            `INSERT INTO salesOrderLines (id, documentId, sequence, lineObjectNumber, quantity, unitPrice, amountExcludingTax)
             VALUES (?, ?, ?, 'SPR-9012', 1, 10, 10)`,
          )
          .run(`6b1f0c8e-0000-4000-8000-0000000${sequence}`, created.id, sequence);
    })();
    await sleep(300);
    const told = await eventsOf(broker, (e) => e.subject === `order/${created.number}`);
    expect(told.map((e) => e.data)).toEqual([{ orderNumber: created.number, customerId: first!.customerNumber, status: 'OPEN' }]);
    await broker.close();
  });

  it('publishes after a restart what changed while it was down, nothing old, and loses nothing while the broker refuses', async () => {
    const customer = writer.prepare('SELECT number FROM customers ORDER BY number DESC LIMIT 1').get() as { number: string };
    // Changed while the ERP subgraph is down.
    writer.prepare('UPDATE customers SET creditLimit = creditLimit + 1000 WHERE number = ?').run(customer.number);
    const { broker: refusing, control } = flaky(newBroker());
    control.refusing = true;
    erp = await start(refusing);
    const until = Date.now() + 2_000;
    while (control.refused < 3 && Date.now() < until) await sleep(10);
    expect(control.refused).toBeGreaterThanOrEqual(3);
    control.refusing = false;
    const events = await eventsOf(refusing, (e) => e.type === 'concord.customer.updated');
    expect(events.map((e) => e.data)).toEqual([{ customerId: customer.number, changes: ['creditLimit'] }]);
    await sleep(300);
    // Only the change made while it was down: what it published before the restart is not told again.
    expect((await refusing.read({})).map((stored) => stored.event.subject)).toEqual([`customer/${customer.number}`]);
    await refusing.close();
  });
});

describe('Business Central webhook notifications and the ERP poller', () => {
  const CLIENT_STATE = 'business-central-client-state-for-tests';
  let bc: BusinessCentralServer;
  let erp: RunningService | null = null;
  const db = seededDatabases().erp;
  const orders = db
    .prepare(`SELECT id, number, customerNumber FROM salesOrders WHERE status = 'Open' AND fullyShipped = 0 ORDER BY number`)
    .all() as OrderRow[];

  beforeAll(async () => {
    bc = await startBusinessCentralServer({ erp: db });
  });
  afterEach(async () => {
    await erp?.stop();
    erp = null;
  });
  afterAll(() => bc.close());

  const start = (broker: EventBroker, env: Record<string, string>, dataDir = join(dir, 'bc')) =>
    startErp(
      {
        ...loadErpConfig({
          DATA_DIR: dataDir,
          HOST: '127.0.0.1',
          LOG_LEVEL: 'silent',
          ERP_CONNECTOR: 'business-central',
          BC_BASE_URL: bc.baseUrl,
          BC_COMPANY_ID: bc.companyId,
          BC_ACCESS_TOKEN: bc.token,
          BC_EXTENSION_PUBLISHER: bc.extension.publisher,
          BC_EXTENSION_GROUP: bc.extension.group,
          BC_EXTENSION_VERSION: bc.extension.version,
          ERP_RETRIES: '1',
          ...env,
        }),
        port: 0,
      },
      { broker, logger, internalPublicKey: keys.internal.publicKey },
    );
  const subscription = (notification: WebhookNotification, changes: Record<string, unknown> = {}) => ({
    subscriptionId: 'concord-sales-orders',
    clientState: CLIENT_STATE,
    expirationDateTime: new Date(Date.now() + 3 * 24 * 3_600_000).toISOString(),
    ...notification,
    ...changes,
  });
  const notify = async (service: RunningService, value: unknown[], query = '') => {
    const response = await fetch(`http://127.0.0.1:${service.port}/hooks/business-central${query}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ value }),
    });
    return { status: response.status, type: response.headers.get('content-type'), text: await response.text() };
  };

  it('reads changed records by systemId and by modification time as the embedded adapter reads them', async () => {
    const fresh = seededDatabases().erp;
    const server = await startBusinessCentralServer({ erp: fresh });
    try {
      const embedded = createEmbeddedErpConnector(fresh, silentTelemetry('erp'));
      const connector = createBusinessCentralConnector({
        baseUrl: server.baseUrl,
        companyId: server.companyId,
        extension: server.extension,
        token: async () => server.token,
        telemetry: silentTelemetry('erp'),
        resilience: createResilience('erp', {
          timeoutMs: 2_000,
          retries: 1,
          baseDelayMs: 2,
          maxDelayMs: 10,
          maxConcurrent: 8,
          breakerThreshold: 5,
          breakerOpenMs: 60_000,
        }),
        maxPageSize: 50,
      });
      const tables: Record<ErpChangeKind, string> = {
        customer: 'customers',
        order: 'salesOrders',
        shipment: 'salesShipments',
        invoice: 'salesInvoices',
      };
      const byErpId = <T extends { erpId: string }>(records: T[]) => [...records].sort((x, y) => (x.erpId < y.erpId ? -1 : 1));
      for (const [kind, table] of Object.entries(tables) as [ErpChangeKind, string][]) {
        const ids = (fresh.prepare(`SELECT id FROM ${table} ORDER BY id LIMIT 5`).all() as { id: string }[]).map((row) => row.id);
        const wanted = [...ids, '00000000-0000-4000-8000-00000000dead', 'not-a-guid'];
        const fromBc = await connector.changedRecordsByErpIds(kind, wanted);
        expect(fromBc, kind).toHaveLength(5);
        expect(byErpId(fromBc), kind).toEqual(byErpId(await embedded.changedRecordsByErpIds(kind, wanted)));
        const since = '2026-10-15T00:00:00Z';
        const changed = await connector.changedRecordsAfter(kind, since);
        expect(changed.length, kind).toBeGreaterThan(0);
        expect(
          changed.every((record) => Date.parse(record.lastModified!) > Date.parse(since)),
          kind,
        ).toBe(true);
        expect(byErpId(changed), kind).toEqual(byErpId(await embedded.changedRecordsAfter(kind, since)));
      }
    } finally {
      await server.close();
    }
  });

  it('answers the subscription handshake with its validation token', async () => {
    erp = await start(newBroker(), { BC_WEBHOOK_CLIENT_STATE: CLIENT_STATE });
    const answer = await fetch(`http://127.0.0.1:${erp.port}/hooks/business-central?validationToken=token-1234`, { method: 'POST' });
    expect(answer.status).toBe(200);
    expect(answer.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(await answer.text()).toBe('token-1234');
  });

  it('turns a sales order status change into concord.order.updated with the number and status read from Business Central', async () => {
    const { broker, control } = flaky(newBroker());
    erp = await start(broker, { BC_WEBHOOK_CLIENT_STATE: CLIENT_STATE });
    const order = orders[0]!;
    const { row, notification } = bc.change('salesOrders', order.id, { status: 'In Review' });
    const began = performance.now();
    const answer = await notify(erp, [subscription(notification)]);
    measured('a webhook notification → 202 with its event stored', performance.now() - began);
    expect(answer).toMatchObject({ status: 202, text: JSON.stringify({ accepted: 1 }) });
    const [event] = await eventsOf(broker, (e) => e.subject === `order/${order.number}`);
    expect(event).toMatchObject({
      type: 'concord.order.updated',
      source: 'concord/erp',
      sequence: String(Date.parse(String(row.lastModifiedDateTime))),
      data: { orderNumber: order.number, customerId: order.customerNumber, status: 'IN_REVIEW' },
    });

    // Told twice (Business Central's retry), it is stored once.
    expect((await notify(erp, [subscription(notification)])).status).toBe(202);
    await sleep(100);
    expect(await eventsOf(broker, (e) => e.subject === `order/${order.number}`, 2, 200)).toHaveLength(1);

    // Wrong clientState, an expired subscription: refused, nothing published.
    const other = bc.change('salesOrders', orders[1]!.id, { status: 'Draft' }).notification;
    expect((await notify(erp, [subscription(other, { clientState: 'someone-elses-state-value' })])).status).toBe(401);
    expect((await notify(erp, [subscription(other, { expirationDateTime: new Date(Date.now() - 1_000).toISOString() })])).status).toBe(401);
    expect((await notify(erp, [subscription(other), subscription(other, { clientState: undefined })])).status).toBe(401);
    expect((await notify(erp, [])).status).toBe(202);
    const malformed = await fetch(`http://127.0.0.1:${erp.port}/hooks/business-central`, { method: 'POST', body: 'nope' });
    expect(malformed.status).toBe(400);
    await sleep(100);
    expect(await eventsOf(broker, (e) => e.subject === `order/${orders[1]!.number}`, 1, 100)).toEqual([]);

    // A broker that refuses: 503, and Business Central sends it again.
    control.refusing = true;
    expect((await notify(erp, [subscription(other)])).status).toBe(503);
    control.refusing = false;
    expect((await notify(erp, [subscription(other)])).status).toBe(202);
    const [draft] = await eventsOf(broker, (e) => e.subject === `order/${orders[1]!.number}`);
    expect(draft!.data).toMatchObject({ status: 'DRAFT' });

    // A shipment through the extension's page, and the deletion of an order seen before.
    const shipment = db.prepare('SELECT id, number, orderNumber FROM salesShipments LIMIT 1').get() as {
      id: string;
      number: string;
      orderNumber: string;
    };
    const tracked = bc.change('salesShipments', shipment.id, { packageTrackingNumber: '1Z999AA10123456784' }).notification;
    const removed = bc.remove('salesOrders', orders[1]!.id);
    expect((await notify(erp, [subscription(tracked), subscription(removed)])).status).toBe(202);
    const [confirmed] = await eventsOf(broker, (e) => e.type === 'concord.shipment.confirmed');
    expect(confirmed!.data).toMatchObject({
      shipmentId: shipment.number,
      orderNumber: shipment.orderNumber,
      trackingNumber: '1Z999AA10123456784',
    });
    const [deleted] = await eventsOf(broker, (e) => e.subject === `order/${orders[1]!.number}` && e.data.deleted === true);
    expect(deleted!.data).toEqual({ orderNumber: orders[1]!.number, customerId: orders[1]!.customerNumber, deleted: true });
    await broker.close();
  });

  it('polls Business Central for what changed after its cursor, and publishes each change once across a restart', async () => {
    const broker = newBroker();
    const dataDir = join(dir, 'poller');
    const poll = { ERP_POLL_SECONDS: '0.1' };
    erp = await start(broker, poll, dataDir);
    const [a, b] = db
      .prepare('SELECT id, number, customerNumber FROM salesOrders WHERE fullyShipped = 1 ORDER BY number LIMIT 2')
      .all() as OrderRow[];
    await sleep(150);
    const began = performance.now();
    bc.change('salesOrders', a!.id, { requestedDeliveryDate: '2026-12-24' });
    const [first] = await eventsOf(broker, (e) => e.subject === `order/${a!.number}`);
    measured('a Business Central change → its event stored by the poller (ERP_POLL_SECONDS=0.1)', performance.now() - began);
    expect(first!.data).toEqual({ orderNumber: a!.number, customerId: a!.customerNumber, status: 'SHIPPED' });
    await erp.stop();
    erp = null;

    // Changed while the ERP subgraph is down.
    bc.change('salesOrders', b!.id, { requestedDeliveryDate: '2026-12-24' });
    erp = await start(broker, poll, dataDir);
    const [second] = await eventsOf(broker, (e) => e.subject === `order/${b!.number}`);
    expect(second!.data).toEqual({ orderNumber: b!.number, customerId: b!.customerNumber, status: 'SHIPPED' });
    await sleep(300);
    const told = (await broker.read({})).map((stored) => stored.event.subject);
    expect(told.filter((subject) => subject === `order/${a!.number}`)).toHaveLength(1);
    expect(told.filter((subject) => subject === `order/${b!.number}`)).toHaveLength(1);
    await broker.close();
  });

  it('needs the Business Central connector for the webhook and the poller', () => {
    expect(() => loadErpConfig({ BC_WEBHOOK_CLIENT_STATE: CLIENT_STATE })).toThrow(
      /BC_WEBHOOK_CLIENT_STATE: needs ERP_CONNECTOR=business-central/,
    );
    expect(() => loadErpConfig({ ERP_POLL_SECONDS: '30' })).toThrow(/ERP_POLL_SECONDS: needs ERP_CONNECTOR=business-central/);
  });
});
