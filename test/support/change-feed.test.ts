import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EventBroker, StoredEvent } from '../../platform/events/broker.ts';
import type { CanonicalEvent } from '../../platform/events/cloudevent.ts';
import { embeddedBroker } from '../../platform/events/embedded-broker.ts';
import type { RunningService } from '../../platform/http-server.ts';
import { createInternalSigner } from '../../platform/internal-token.ts';
import { generateDevKeys, type DevKeys } from '../../platform/keys.ts';
import { createLogger } from '../../platform/logger.ts';
import { openDatabase, type Database } from '../../platform/sqlite.ts';
import { loadSupportConfig, type SupportConfig } from '../../subgraphs/support/src/config.ts';
import { installChangeLog } from '../../platform/events/sqlite-change-log.ts';
import { EMBEDDED_FIELD_IDS, SUPPORT_CHANGE_TABLES } from '../../subgraphs/support/src/connectors/embedded/tables.ts';
import { startSupport } from '../../subgraphs/support/src/index.ts';
import { seedDataDirectory } from '../../tools/seed/index.ts';
import { AS_OF, seededDatabases } from '../helpers/stack.ts';
import { INTEGRATION } from '../helpers/subgraph.ts';
import { loadZendeskData, startZendeskServer, type ZendeskServer } from '../vendors/zendesk/server.ts';

/**
 * The support desk's change feed, end to end: changes made in the desk (rows written into the
 * embedded desk's file, an agent's comment in Zendesk, Concord's own mutations) reach a real
 * embedded broker as canonical events, once each, across restarts and a broker that refuses
 * for a while.
 */

const logger = createLogger('test', 'silent');
const SECRET = 'zendesk-signing-secret-for-tests';
const CREDENTIALS = { email: 'integration@concord.example', apiToken: 'token-123' };

interface Published {
  readonly events: CanonicalEvent[];
  readonly at: number;
}

/** A broker that records each publish, and refuses them while `refusing` is set. */
function recordingBroker(inner: EventBroker): EventBroker & { refusing: boolean; refused: number; published: Published[] } {
  const broker = {
    ...inner,
    refusing: false,
    refused: 0,
    published: [] as Published[],
    async publish(events: readonly CanonicalEvent[]) {
      if (broker.refusing) {
        broker.refused += 1;
        throw new Error('the broker is not taking events (test)');
      }
      await inner.publish(events);
      broker.published.push({ events: [...events], at: performance.now() });
    },
  };
  return broker;
}

const memoryBroker = () => embeddedBroker({ file: ':memory:', logger, pollMs: 20 });

function config(env: NodeJS.ProcessEnv = {}): SupportConfig {
  return { ...loadSupportConfig({ SUPPORT_FEED_POLL_MS: '100', ...env }), host: '127.0.0.1', port: 0, logLevel: 'silent' };
}

async function until<T>(find: () => T | undefined | Promise<T | undefined>, ms = 5_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const found = await find();
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/** The stored events of a type and subject. */
async function eventsOf(broker: EventBroker, type: string, subject: string): Promise<CanonicalEvent[]> {
  return (await broker.read({ types: type, limit: 10_000 }))
    .map((stored: StoredEvent) => stored.event)
    .filter((event) => event.subject === subject);
}

/** Waits for the stored events of a type and subject to be more than `count`, and returns the new ones. */
async function newEvents(broker: EventBroker, type: string, subject: string, count: number, ms = 5_000): Promise<CanonicalEvent[]> {
  return until(async () => {
    const events = await eventsOf(broker, type, subject);
    return events.length > count ? events.slice(count) : undefined;
  }, ms);
}

/** A GraphQL request to the subgraph as Concord's own integration identity, signed as the gateway signs it. */
function graphqlClient(keys: DevKeys) {
  const sign = createInternalSigner(keys.internal.privateKey);
  return async (service: RunningService, query: string, variables: Record<string, unknown> = {}) => {
    const response = await fetch(service.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${await sign(INTEGRATION, 'support')}` },
      body: JSON.stringify({ query, variables }),
    });
    return (await response.json()) as { data?: any; errors?: { message: string }[] };
  };
}

const RECORD_CASE_UPDATE = `mutation($input: RecordCaseUpdateInput!) { recordCaseUpdate(input: $input) { id status } }`;

const stats = (samples: readonly number[]) => {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!.toFixed(1);
  return `n=${sorted.length} min ${sorted[0]!.toFixed(1)} ms, median ${at(0.5)} ms, p90 ${at(0.9)} ms, max ${sorted.at(-1)!.toFixed(1)} ms`;
};

/** A ticket of the desk with an organization, and that organization's customer number. */
function ticketWithCustomer(db: Database, offset = 0): { id: number; customerId: string; status: string } {
  return db
    .prepare(
      `SELECT t.id, o.external_id AS customerId, t.status FROM tickets t JOIN organizations o ON o.id = t.organization_id
       WHERE t.status NOT IN ('closed', 'solved') ORDER BY t.id LIMIT 1 OFFSET ?`,
    )
    .get(offset) as { id: number; customerId: string; status: string };
}

const insertComment = (db: Database, ticketId: number, body: string) =>
  db
    .prepare('INSERT INTO ticket_comments (ticket_id, author_id, body, public, created_at) VALUES (?, NULL, ?, 1, ?)')
    .run(ticketId, body, new Date().toISOString());

describe("the embedded desk's change feed", () => {
  const db = seededDatabases().support;
  let keys: DevKeys;
  let broker: ReturnType<typeof recordingBroker>;
  let support: RunningService;
  let graphql: ReturnType<typeof graphqlClient>;
  let before: { id: number; customerId: string };

  beforeAll(async () => {
    keys = await generateDevKeys();
    graphql = graphqlClient(keys);
    broker = recordingBroker(memoryBroker());
    // Logged (the adapter installed the log) before the feed ever ran: its first start begins after it.
    installChangeLog(db, SUPPORT_CHANGE_TABLES);
    before = ticketWithCustomer(db, 40);
    insertComment(db, before.id, 'written before the service ever started');
    expect((db.prepare('SELECT count(*) AS n FROM concord_change_log').get() as { n: number }).n).toBe(1);
    support = await startSupport(config(), { database: db, broker, logger, internalPublicKey: keys.internal.publicKey });
  });
  afterAll(async () => {
    await support?.stop();
    await broker?.close();
  });

  it('publishes a comment written straight into the file as one concord.case.updated within a second', async () => {
    const latencies: number[] = [];
    for (let i = 0; i < 21; i += 1) {
      const ticket = ticketWithCustomer(db, i);
      const subject = `case/${ticket.id}`;
      const seen = (await eventsOf(broker, 'concord.case.updated', subject)).length;
      // At a random point of the poll interval, as changes come.
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 100));
      const written = performance.now();
      insertComment(db, ticket.id, `A note written by another tool (${i})`);
      const [event, ...more] = await newEvents(broker, 'concord.case.updated', subject, seen, 1_000);
      latencies.push(performance.now() - written);
      expect(more).toEqual([]);
      expect(event).toMatchObject({
        source: 'concord/support',
        subject,
        data: { caseId: String(ticket.id), customerId: ticket.customerId, changes: ['comment'] },
      });
      expect(['NEW', 'OPEN', 'PENDING', 'ON_HOLD']).toContain((event!.data as { status: string }).status);
      await new Promise((resolve) => setTimeout(resolve, 120));
      expect(await eventsOf(broker, 'concord.case.updated', subject)).toHaveLength(seen + 1);
    }
    // The first event after the start also pays for compiling the event schemas.
    console.log(
      `embedded desk, comment written -> event in the broker (SUPPORT_FEED_POLL_MS=100): first after start ${latencies[0]!.toFixed(1)} ms; then ${stats(latencies.slice(1))}`,
    );
  });

  it('did not publish what changed before its first start', async () => {
    expect(await eventsOf(broker, 'concord.case.updated', `case/${before.id}`)).toEqual([]);
  });

  it('publishes a status change made through recordCaseUpdate, the note and the status as one event', async () => {
    const ticket = ticketWithCustomer(db, 12);
    const subject = `case/${ticket.id}`;
    const seen = (await eventsOf(broker, 'concord.case.updated', subject)).length;
    const result = await graphql(support, RECORD_CASE_UPDATE, {
      input: { caseId: String(ticket.id), idempotencyKey: 'feed-test-1', internalNote: 'Refund issued', status: 'SOLVED' },
    });
    expect(result.errors).toBeUndefined();
    const [event, ...more] = await newEvents(broker, 'concord.case.updated', subject, seen, 1_000);
    expect(more).toEqual([]);
    expect(event!.data).toMatchObject({
      caseId: String(ticket.id),
      customerId: ticket.customerId,
      status: 'SOLVED',
      changes: ['comment', 'status'],
    });
    const updatedAt = (db.prepare('SELECT updated_at FROM tickets WHERE id = ?').get(ticket.id) as { updated_at: string }).updated_at;
    expect((event!.data as { updatedAt: string }).updatedAt).toBe(updatedAt);
  });

  it('tells a priority raised to urgent as concord.case.escalated too, and a lowered one not', async () => {
    const ticket = db.prepare(`SELECT id FROM tickets WHERE priority IN ('low', 'normal') AND status = 'open' LIMIT 1`).get() as {
      id: number;
    };
    const subject = `case/${ticket.id}`;
    db.prepare(`UPDATE tickets SET priority = 'urgent', updated_at = ? WHERE id = ?`).run(new Date().toISOString(), ticket.id);
    const [escalated] = await newEvents(broker, 'concord.case.escalated', subject, 0, 1_000);
    expect(escalated!.data).toMatchObject({ caseId: String(ticket.id), priority: 'URGENT', changes: ['priority'] });
    // Beside the concord.case.updated of the same change: the same version, the same data.
    const updated = (await eventsOf(broker, 'concord.case.updated', subject)).find((event) => event.sequence === escalated!.sequence);
    expect(updated!.data).toEqual(escalated!.data);
    const seen = (await eventsOf(broker, 'concord.case.updated', subject)).length;
    db.prepare(`UPDATE tickets SET priority = 'high' WHERE id = ?`).run(ticket.id);
    const [lowered] = await newEvents(broker, 'concord.case.updated', subject, seen, 1_000);
    expect(lowered!.data).toMatchObject({ priority: 'HIGH', changes: ['priority'] });
    expect(await eventsOf(broker, 'concord.case.escalated', subject)).toHaveLength(1);
  });

  it("tells a customer's organization, entitlements and installed base as concord.customer.updated", async () => {
    const { customerId } = ticketWithCustomer(db, 20);
    const subject = `customer/${customerId}`;
    const result = await graphql(
      support,
      `
        mutation ($input: SetEntitlementInput!) {
          setEntitlement(input: $input) {
            subscriptionId
          }
        }
      `,
      { input: { customerId, subscriptionId: 'SUB-FEED-1', tier: 'PREMIUM', active: true } },
    );
    expect(result.errors).toBeUndefined();
    const [entitled] = await newEvents(broker, 'concord.customer.updated', subject, 0, 1_000);
    // The organization's tier tag changes with it, unless it had that tier's already.
    expect(entitled!.data).toMatchObject({ customerId, changes: expect.arrayContaining(['entitlement']) });
    db.prepare(`UPDATE organizations SET name = name || ' GmbH' WHERE external_id = ?`).run(customerId);
    const [renamed] = await newEvents(broker, 'concord.customer.updated', subject, 1, 1_000);
    expect(renamed!.data).toEqual({ customerId, changes: ['name'] });
  });

  it('tells a deleted ticket by its last state', async () => {
    const ticket = ticketWithCustomer(db, 30);
    const last = db.prepare('SELECT status, priority FROM tickets WHERE id = ?').get(ticket.id) as { status: string; priority: string };
    db.transaction(() => {
      for (const table of ['ticket_comments', 'ticket_custom_fields'])
        db.prepare(`DELETE FROM ${table} WHERE ticket_id = ?`).run(ticket.id);
      db.prepare('DELETE FROM tickets WHERE id = ?').run(ticket.id);
    })();
    const [event] = await newEvents(broker, 'concord.case.updated', `case/${ticket.id}`, 0, 1_000);
    expect(event!.data).toMatchObject({
      caseId: String(ticket.id),
      customerId: ticket.customerId,
      status: last.status === 'hold' ? 'ON_HOLD' : last.status.toUpperCase(),
      priority: last.priority.toUpperCase(),
    });
    expect((event!.data as { changes: string[] }).changes).toContain('deleted');
  });
});

describe('the embedded feed across a restart', () => {
  const dir = mkdtempSync(join(tmpdir(), 'concord-support-feed-'));
  const file = join(dir, 'support.sqlite');
  const inner = memoryBroker();
  const broker = recordingBroker(inner);
  let keys: DevKeys;
  const start = () => startSupport(config(), { database: openDatabase(file), broker, logger, internalPublicKey: keys.internal.publicKey });

  beforeAll(async () => {
    seedDataDirectory(
      { crm: join(dir, 'crm.sqlite'), erp: join(dir, 'erp.sqlite'), support: file },
      {
        customers: 10,
        orders: 20,
        cases: 60,
        seed: 7,
        asOf: AS_OF,
      },
    );
    keys = await generateDevKeys();
  });
  afterAll(async () => {
    await inner.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('publishes what changed while it was down, and nothing it published before', async () => {
    const first = await start();
    const writer = openDatabase(file);
    const [a, b] = [ticketWithCustomer(writer, 0), ticketWithCustomer(writer, 1)];
    insertComment(writer, a.id, 'while the feed runs');
    await newEvents(broker, 'concord.case.updated', `case/${a.id}`, 0, 1_000);
    await first.stop();

    insertComment(writer, b.id, 'while the support subgraph is down');
    writer.close();
    const publishedBefore = broker.published.length;
    const second = await start();
    try {
      const [event] = await newEvents(broker, 'concord.case.updated', `case/${b.id}`, 0, 1_000);
      expect(event!.data).toMatchObject({ caseId: String(b.id), customerId: b.customerId, changes: ['comment'] });
      await new Promise((resolve) => setTimeout(resolve, 300));
      const again = broker.published.slice(publishedBefore).flatMap((batch) => batch.events.map((each) => each.subject));
      expect(again).toEqual([`case/${b.id}`]);
      // Pruned behind the cursor: the log holds nothing already published.
      const log = openDatabase(file);
      expect((log.prepare('SELECT count(*) AS n FROM concord_change_log').get() as { n: number }).n).toBe(0);
      log.close();
    } finally {
      await second.stop();
    }
  });
});

describe('the embedded feed while the broker refuses', () => {
  const db = seededDatabases().support;
  const inner = memoryBroker();
  const broker = recordingBroker(inner);
  let support: RunningService;

  beforeAll(async () => {
    const keys = await generateDevKeys();
    support = await startSupport(config({ SUPPORT_FEED_POLL_MS: '20' }), {
      database: db,
      broker,
      logger,
      internalPublicKey: keys.internal.publicKey,
    });
  });
  afterAll(async () => {
    await support?.stop();
    await inner.close();
  });

  it('loses nothing: what changed meanwhile is published once, when the broker takes events again', async () => {
    broker.refusing = true;
    const tickets = [0, 1, 2].map((i) => ticketWithCustomer(db, i));
    for (const ticket of tickets) insertComment(db, ticket.id, 'written while the broker refuses');
    db.prepare(`UPDATE tickets SET status = 'pending' WHERE id = ?`).run(tickets[0]!.id);
    await until(() => (broker.refused >= 3 ? true : undefined), 2_000);
    expect(await inner.read({ types: 'concord.case.*' })).toEqual([]);

    broker.refusing = false;
    for (const ticket of tickets) await newEvents(broker, 'concord.case.updated', `case/${ticket.id}`, 0, 1_000);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const stored = (await inner.read({ types: 'concord.case.updated' })).map((each) => each.event);
    expect(stored.map((event) => event.subject).sort()).toEqual(tickets.map((ticket) => `case/${ticket.id}`).sort());
    expect(stored.find((event) => event.subject === `case/${tickets[0]!.id}`)!.data).toMatchObject({
      status: 'PENDING',
      changes: ['comment', 'status'],
    });
  });
});

describe("Zendesk's change feed", () => {
  const dbs = seededDatabases();
  const inner = memoryBroker();
  const broker = recordingBroker(inner);
  let server: ZendeskServer;
  let support: RunningService;
  let hookUrl: string;
  let graphql: ReturnType<typeof graphqlClient>;

  const zendeskEnv = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({
    SUPPORT_CONNECTOR: 'zendesk',
    ZENDESK_BASE_URL: server.url,
    ZENDESK_EMAIL: CREDENTIALS.email,
    ZENDESK_API_TOKEN: CREDENTIALS.apiToken,
    ZENDESK_ORDER_FIELD_ID: String(EMBEDDED_FIELD_IDS.orderNumber),
    ZENDESK_SERIAL_FIELD_ID: String(EMBEDDED_FIELD_IDS.serialNumber),
    SUPPORT_RETRIES: '1',
    ...extra,
  });
  /** An open ticket of the desk with an organization, and its customer number. */
  const deskTicket = (offset: number) => {
    const tickets = [...server.data.tickets.values()].filter(
      (ticket) => ticket.organization_id !== null && !['closed', 'solved'].includes(ticket.status),
    );
    const ticket = tickets[offset]!;
    return { ticket, customerId: server.data.organizations.get(ticket.organization_id!)!.external_id! };
  };
  const signed = (body: string, timestamp = new Date().toISOString(), secret = SECRET) => ({
    'x-zendesk-webhook-signature': createHmac('sha256', secret).update(timestamp).update(body).digest('base64'),
    'x-zendesk-webhook-signature-timestamp': timestamp,
  });
  const postHook = async (body: string, headers: Record<string, string>) => {
    const response = await fetch(hookUrl, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };
  const storedCount = async () => (await inner.read({ limit: 10_000 })).length;

  beforeAll(async () => {
    server = await startZendeskServer({ data: loadZendeskData(dbs.support), credentials: CREDENTIALS, incrementalLagMs: 0 });
    server.webhookRetryDelayMs = 100;
    const keys = await generateDevKeys();
    graphql = graphqlClient(keys);
    support = await startSupport(config(zendeskEnv({ ZENDESK_WEBHOOK_SECRET: SECRET })), {
      broker,
      logger,
      internalPublicKey: keys.internal.publicKey,
    });
    hookUrl = support.url.replace(/\/graphql$/, '/hooks/zendesk');
    server.webhook = { url: hookUrl, secret: SECRET };
  });
  afterAll(async () => {
    await support?.stop();
    await server?.close();
    await inner.close();
  });

  it("publishes an agent's comment in Zendesk, told by its webhook, with the case's customer", async () => {
    const latencies: number[] = [];
    for (let i = 0; i < 10; i += 1) {
      const { ticket, customerId } = deskTicket(i);
      const subject = `case/${ticket.id}`;
      const written = performance.now();
      server.agentComment(ticket.id, { body: `Called the customer back (${i})` });
      const [event] = await newEvents(broker, 'concord.case.updated', subject, 0, 1_000);
      latencies.push(performance.now() - written);
      expect(event!.data).toEqual({
        caseId: String(ticket.id),
        customerId,
        status: ticket.status === 'hold' ? 'ON_HOLD' : ticket.status.toUpperCase(),
        priority: (ticket.priority ?? 'normal').toUpperCase(),
        assigneeId: ticket.assignee_id === null || ticket.assignee_id === undefined ? null : String(ticket.assignee_id),
        changes: ['comment'],
        updatedAt: ticket.updated_at,
      });
      expect(event!.sequence).toBe(String(Date.parse(ticket.updated_at)));
    }
    await server.webhooksSettled();
    expect(server.deliveries.slice(-10).map((delivery) => delivery.attempts)).toEqual(Array(10).fill([202]));
    console.log(`Zendesk, agent's comment -> webhook -> event in the broker: ${stats(latencies)}`);
  });

  it('tells a priority raised to urgent as concord.case.escalated', async () => {
    const { ticket } = deskTicket(11);
    if (ticket.priority === 'urgent') server.agentUpdate(ticket.id, { priority: 'high' });
    await server.webhooksSettled();
    const seen = (await eventsOf(broker, 'concord.case.updated', `case/${ticket.id}`)).length;
    server.agentUpdate(ticket.id, { priority: 'urgent' });
    const [escalated] = await newEvents(broker, 'concord.case.escalated', `case/${ticket.id}`, 0, 1_000);
    expect(escalated!.data).toMatchObject({ caseId: String(ticket.id), priority: 'URGENT', changes: ['priority'] });
    await newEvents(broker, 'concord.case.updated', `case/${ticket.id}`, seen, 1_000);
  });

  it('refuses a notice with a bad signature or an old timestamp (401), publishing nothing, and an unreadable one (400)', async () => {
    const { ticket } = deskTicket(12);
    const body = JSON.stringify({
      type: 'zen:event-type:ticket.status_changed',
      subject: `zen:ticket:${ticket.id}`,
      detail: { id: String(ticket.id) },
    });
    const count = await storedCount();
    expect((await postHook(body, {})).status).toBe(401);
    expect((await postHook(body, signed(body, undefined, 'another-secret-of-sixteen'))).status).toBe(401);
    expect((await postHook(body.replace('status', 'priority'), signed(body))).status).toBe(401);
    expect((await postHook(body, signed(body, new Date(Date.now() - 6 * 60_000).toISOString()))).status).toBe(401);
    expect((await postHook('not json', signed('not json'))).status).toBe(400);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(await storedCount()).toBe(count);
  });

  it('stores a notice sent twice (a resend) once', async () => {
    const { ticket } = deskTicket(13);
    server.agentUpdate(ticket.id, { status: 'pending' });
    await server.webhooksSettled();
    const delivery = server.deliveries.at(-1)!;
    expect(delivery.type).toBe('zen:event-type:ticket.status_changed');
    const count = await storedCount();
    expect(await server.redeliver(delivery)).toBe(202);
    expect(await server.redeliver(delivery)).toBe(202);
    expect(await storedCount()).toBe(count);
    expect(await eventsOf(broker, 'concord.case.updated', `case/${ticket.id}`)).toHaveLength(1);
  });

  it('answers 503 while the broker refuses, and the event is stored when Zendesk sends the notice again', async () => {
    const { ticket } = deskTicket(14);
    broker.refusing = true;
    server.agentComment(ticket.id, { body: 'Sent while the broker is down' });
    const delivery = server.deliveries.at(-1)!;
    await until(() => (delivery.attempts.length >= 2 ? true : undefined), 2_000);
    expect(delivery.attempts.slice(0, 2)).toEqual([503, 503]);
    broker.refusing = false;
    await server.webhooksSettled();
    expect(delivery.attempts.at(-1)).toBe(202);
    expect(await eventsOf(broker, 'concord.case.updated', `case/${ticket.id}`)).toHaveLength(1);
  });

  it("publishes Concord's own write as soon as Zendesk confirmed it; the webhook of the same change adds nothing", async () => {
    const { ticket, customerId } = deskTicket(15);
    const subject = `case/${ticket.id}`;
    const result = await graphql(support, RECORD_CASE_UPDATE, {
      input: { caseId: String(ticket.id), idempotencyKey: 'feed-zendesk-1', internalNote: 'Replacement shipped', status: 'SOLVED' },
    });
    expect(result.errors).toBeUndefined();
    // Published before the mutation answered: no wait for the webhook.
    const [event, ...more] = await eventsOf(broker, 'concord.case.updated', subject);
    expect(more).toEqual([]);
    expect(event!.data).toMatchObject({ caseId: String(ticket.id), customerId, status: 'SOLVED', changes: ['comment', 'status'] });
    await server.webhooksSettled();
    const hooks = server.deliveries.filter((delivery) => delivery.body.includes(`"zen:ticket:${ticket.id}"`));
    expect(hooks.map((delivery) => delivery.type).sort()).toEqual([
      'zen:event-type:ticket.comment_added',
      'zen:event-type:ticket.status_changed',
      'zen:event-type:ticket.tags_changed',
    ]);
    expect(hooks.every((delivery) => delivery.attempts.at(-1) === 202)).toBe(true);
    expect(await eventsOf(broker, 'concord.case.updated', subject)).toHaveLength(1);
  });

  it('reads the customer number of an organization whose event does not carry it', async () => {
    const organization = [...server.data.organizations.values()].find((each) => each.external_id)!;
    const body = JSON.stringify({
      type: 'zen:event-type:organization.name_changed',
      subject: `zen:organization:${organization.id}`,
      time: new Date().toISOString(),
      detail: { id: String(organization.id), name: 'Renamed', updated_at: '2026-12-01T10:00:00Z' },
      event: { current: 'Renamed', previous: organization.name },
    });
    expect(await postHook(body, signed(body))).toEqual({ status: 202, body: { accepted: 1 } });
    const [event] = await eventsOf(broker, 'concord.customer.updated', `customer/${organization.external_id}`);
    expect(event).toMatchObject({
      data: { customerId: organization.external_id, changes: ['name'] },
      sequence: String(Date.parse('2026-12-01T10:00:00Z')),
    });
    // What the graph does not show is acknowledged, and tells nothing.
    const other = JSON.stringify({ type: 'zen:event-type:ticket.followers_changed', subject: 'zen:ticket:1', detail: { id: '1' } });
    expect(await postHook(other, signed(other))).toEqual({ status: 202, body: { accepted: 0 } });
  });

  it("publishes an organization's change as concord.customer.updated", async () => {
    const { customerId } = deskTicket(16);
    const result = await graphql(
      support,
      `
        mutation ($input: SetEntitlementInput!) {
          setEntitlement(input: $input) {
            subscriptionId
          }
        }
      `,
      { input: { customerId, subscriptionId: 'SUB-FEED-2', tier: 'PREMIUM', active: true } },
    );
    expect(result.errors).toBeUndefined();
    await server.webhooksSettled();
    await new Promise((resolve) => setTimeout(resolve, 100));
    const events = await eventsOf(broker, 'concord.customer.updated', `customer/${customerId}`);
    // Its entitlement record, told by Concord as Zendesk confirmed it, and the organization's tier
    // tag, told by Zendesk's webhooks (one per tag request).
    const told = events.map((event) => (event.data as { changes: string[] }).changes);
    expect(told).toContainEqual(['entitlement']);
    expect(told.filter((changes) => changes[0] !== 'entitlement').every((changes) => changes.join() === 'tags')).toBe(true);
    expect(told.length).toBeGreaterThanOrEqual(2);
  });
});

describe("Zendesk's incremental export", () => {
  const dir = mkdtempSync(join(tmpdir(), 'concord-support-export-'));
  const dbs = seededDatabases();
  const inner = memoryBroker();
  const broker = recordingBroker(inner);
  let server: ZendeskServer;
  let keys: DevKeys;

  const start = () =>
    startSupport(
      config({
        SUPPORT_CONNECTOR: 'zendesk',
        ZENDESK_BASE_URL: server.url,
        ZENDESK_EMAIL: CREDENTIALS.email,
        ZENDESK_API_TOKEN: CREDENTIALS.apiToken,
        ZENDESK_ORDER_FIELD_ID: String(EMBEDDED_FIELD_IDS.orderNumber),
        ZENDESK_SERIAL_FIELD_ID: String(EMBEDDED_FIELD_IDS.serialNumber),
        ZENDESK_POLL_SECONDS: '1',
        DATA_DIR: dir,
      }),
      { broker, logger, internalPublicKey: keys.internal.publicKey },
    );
  const publishedFor = (subject: string) => broker.published.flatMap((batch) => batch.events).filter((event) => event.subject === subject);

  beforeAll(async () => {
    // No webhook: what the export finds is all the feed hears.
    server = await startZendeskServer({ data: loadZendeskData(dbs.support), credentials: CREDENTIALS, incrementalLagMs: 0 });
    keys = await generateDevKeys();
  });
  afterAll(async () => {
    await server?.close();
    await inner.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('publishes the changes after its cursor once, across a restart, within the endpoint limit', async () => {
    const tickets = [...server.data.tickets.values()].filter((ticket) => ticket.status === 'open').slice(0, 2);
    const [a, b] = tickets as [(typeof tickets)[0], (typeof tickets)[0]];
    const first = await start();
    server.agentUpdate(a.id, { status: 'pending' });
    const [event] = await newEvents(broker, 'concord.case.updated', `case/${a.id}`, 0, 3_000);
    expect(event!.data).toMatchObject({ caseId: String(a.id), status: 'PENDING', changes: [], updatedAt: a.updated_at });
    await first.stop();

    server.agentUpdate(b.id, { priority: 'low' });
    const second = await start();
    try {
      await newEvents(broker, 'concord.case.updated', `case/${b.id}`, 0, 3_000);
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      expect(publishedFor(`case/${a.id}`)).toHaveLength(1);
      expect(publishedFor(`case/${b.id}`)).toHaveLength(1);
      // Every second at most, and never more than Zendesk's 10 a minute.
      const exports = server.requestsTo('/api/v2/incremental/tickets/cursor');
      expect(exports.length).toBeGreaterThanOrEqual(2);
      expect(exports.length).toBeLessThanOrEqual(10);
      expect(exports[0]!.query.start_time).toBeDefined();
      expect(exports.slice(1).every((request) => request.query.cursor)).toBe(true);
    } finally {
      await second.stop();
    }
  });
});
