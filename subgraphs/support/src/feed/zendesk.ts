import type { EventBroker } from '../../../../platform/events/broker.ts';
import { inBackground } from '../../../../platform/api-budget.ts';
import type { CanonicalEvent } from '../../../../platform/events/cloudevent.ts';
import { InvalidEventError } from '../../../../platform/events/schemas.ts';
import type { ChangeFeed } from '../../../../platform/events/source.ts';
import type { RawRequest, RawResponse, RawRoute } from '../../../../platform/http-server.ts';
import type { Logger } from '../../../../platform/logger.ts';
import { openDatabase } from '../../../../platform/sqlite.ts';
import { accepted, badRequest, checkSignature, jsonBody, tryAgain } from '../../../../platform/webhooks.ts';
import type { ZendeskChangeReads } from '../connectors/zendesk.ts';
import type { CasePriority, CaseRecord, CaseStatus, SupportConnector } from '../connectors/types.ts';
import { PRIORITY_FROM_DESK, STATUS_FROM_DESK } from '../connectors/vocabulary.ts';
import { caseEvents, customerEvent, instantOf, type FeedCounter } from './events.ts';

export const ZENDESK_HOOK_PATH = '/hooks/zendesk';
export const SIGNATURE_HEADER = 'x-zendesk-webhook-signature';
export const TIMESTAMP_HEADER = 'x-zendesk-webhook-signature-timestamp';

export interface ZendeskFeedOptions {
  /** The port as the subgraph serves it: tickets a notice names are read through it (casesByIds). */
  readonly connector: SupportConnector;
  /** The incremental export and organization look-ups (the Zendesk adapter's own). */
  readonly reads: ZendeskChangeReads;
  readonly broker: EventBroker;
  readonly logger: Logger;
  readonly source: string;
  readonly counter?: FeedCounter | undefined;
  /** The webhook's signing secret; null: no endpoint. */
  readonly webhookSecret: string | null;
  /** The ticket fields that hold the order and the serial number (a custom_field_changed of either changes the case). */
  readonly fieldIds: { readonly orderNumber: number; readonly serialNumber: number };
  /** The incremental export's poll, off when null; its cursor lives in `cursorFile`. */
  readonly exportPoll: { readonly everyMs: number; readonly cursorFile: string } | null;
}

/** Zendesk's ticket event types (zen:event-type:ticket.<name>) and the Case fields each changes; others change nothing the graph shows. */
const TICKET_CHANGES: Readonly<Record<string, readonly string[]>> = {
  created: ['created'],
  comment_added: ['comment'],
  comment_made_private: ['comment'],
  comment_redacted: ['comment'],
  attachment_linked_to_comment: ['comment'],
  attachment_redacted_from_comment: ['comment'],
  status_changed: ['status'],
  custom_status_changed: ['status'],
  priority_changed: ['priority'],
  agent_assignment_changed: ['assignee'],
  subject_changed: ['subject'],
  description_changed: ['description'],
  ticket_type_changed: ['type'],
  tags_changed: ['tags'],
  task_due_at_changed: ['dueAt'],
  requester_changed: ['requester'],
  organization_changed: ['customer'],
  merged: ['status'],
  marked_as_spam: ['deleted'],
  soft_deleted: ['deleted'],
  permanently_deleted: ['deleted'],
  undeleted: ['created'],
};

/** Organization event types (zen:event-type:organization.<name>) and what each changes, in the desk's terms. */
const ORGANIZATION_CHANGES: Readonly<Record<string, string>> = {
  created: 'created',
  deleted: 'deleted',
  name_changed: 'name',
  tags_changed: 'tags',
  external_id_changed: 'external_id',
  custom_field_changed: 'organization_fields',
};

type Json = Record<string, unknown>;

const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);
const text = (value: unknown): string | null =>
  typeof value === 'string' && value !== '' ? value : typeof value === 'number' ? String(value) : null;
/** Zendesk ids come as strings in event payloads; `0` or empty is none. */
const deskId = (value: unknown): number | null => {
  const id = Number(text(value));
  return Number.isSafeInteger(id) && id > 0 ? id : null;
};
/** Event payloads spell statuses and priorities in capitals (OPEN, HOLD, URGENT); the API in lower case. */
const statusOf = (value: unknown): CaseStatus | undefined => STATUS_FROM_DESK[String(value ?? '').toLowerCase()];
const priorityOf = (value: unknown): CasePriority | undefined => PRIORITY_FROM_DESK[String(value ?? '').toLowerCase()];
const millisOf = (value: unknown): number | null => {
  const at = typeof value === 'string' ? Date.parse(value) : Number.NaN;
  return Number.isNaN(at) ? null : at;
};

/** What a ticket notice says; what it lacks is read from the ticket. */
interface TicketNotice {
  readonly caseId: string;
  readonly changes: string[];
  readonly status?: CaseStatus | undefined;
  readonly priority?: CasePriority | undefined;
  readonly updatedAt?: string | undefined;
  /** The ticket's organization id as the payload gives it: null when it has none, undefined when the payload does not say. */
  readonly organizationId?: number | null | undefined;
  readonly escalated: boolean;
  readonly deleted: boolean;
}

interface OrganizationNotice {
  readonly organizationId: number | null;
  /** Customer numbers the payload names (the external id, before and after a change of it). */
  readonly customerIds: string[];
  readonly changes: string[];
  readonly version: number | null;
}

/** Reads a Zendesk event webhook (`type`, `detail`, `event`, `subject`) or a trigger's own body with a `ticket_id`. */
function noticeOf(body: Json, fieldIds: ZendeskFeedOptions['fieldIds']): TicketNotice | OrganizationNotice | null {
  const type = typeof body.type === 'string' ? body.type : '';
  const detail = isObject(body.detail) ? body.detail : {};
  const event = isObject(body.event) ? body.event : {};
  const subject = typeof body.subject === 'string' ? body.subject : '';
  const ticketEvent = /^zen:event-type:ticket\.([a-z_]+)$/.exec(type)?.[1];
  if (ticketEvent !== undefined) {
    const caseId = deskId(detail.id ?? /^zen:ticket:(\d+)$/.exec(subject)?.[1]);
    if (caseId === null) return null;
    let changes = [...(TICKET_CHANGES[ticketEvent] ?? [])];
    if (ticketEvent === 'custom_field_changed') {
      const field = deskId(isObject(event.custom_field) ? event.custom_field.id : undefined);
      // A field the payload does not name could be either.
      if (field === null) changes = ['order', 'asset'];
      else if (field === fieldIds.orderNumber) changes = ['order'];
      else if (field === fieldIds.serialNumber) changes = ['asset'];
    }
    if (changes.length === 0) return null;
    const current = ticketEvent === 'status_changed' ? statusOf(event.current) : undefined;
    const raised = ticketEvent === 'priority_changed' ? priorityOf(event.current) : undefined;
    return {
      caseId: String(caseId),
      changes,
      status: current ?? statusOf(detail.status),
      priority: raised ?? priorityOf(detail.priority),
      updatedAt: instantOf(text(detail.updated_at)) ?? instantOf(text(body.time)) ?? undefined,
      organizationId: 'organization_id' in detail ? deskId(detail.organization_id) : undefined,
      escalated: raised === 'URGENT' && priorityOf(event.previous) !== 'URGENT',
      deleted: changes.includes('deleted'),
    };
  }
  const organizationEvent = /^zen:event-type:organization\.([a-z_]+)$/.exec(type)?.[1];
  if (organizationEvent !== undefined) {
    const change = ORGANIZATION_CHANGES[organizationEvent];
    if (!change) return null;
    const customerIds = [text(detail.external_id)];
    if (organizationEvent === 'external_id_changed') customerIds.push(text(event.previous), text(event.current));
    return {
      organizationId: deskId(detail.id ?? /^zen:organization:(\d+)$/.exec(subject)?.[1]),
      customerIds: [...new Set(customerIds.filter((id): id is string => id !== null))],
      changes: [change],
      version: millisOf(detail.updated_at) ?? millisOf(body.time),
    };
  }
  // A trigger or automation posting its own body: it names the ticket, nothing else is known.
  const ticketId = deskId(body.ticket_id);
  if (ticketId !== null) return { caseId: String(ticketId), changes: [], escalated: false, deleted: false };
  return null;
}

const isTicketNotice = (notice: TicketNotice | OrganizationNotice): notice is TicketNotice => 'caseId' in notice;

/**
 * Zendesk's change feed in the support subgraph:
 *
 * - `POST /hooks/zendesk` (when ZENDESK_WEBHOOK_SECRET is set): a Zendesk webhook, signed
 *   (`X-Zendesk-Webhook-Signature` = base64(HMAC-SHA256(secret, timestamp + body)), the
 *   timestamp in `X-Zendesk-Webhook-Signature-Timestamp`, at most 5 minutes off). Ticket
 *   events become concord.case.updated (and concord.case.escalated for a priority raised to
 *   urgent), organization events concord.customer.updated; the ticket is read through the
 *   connector for what the payload lacks (its customer number, always: event payloads name the
 *   organization by its Zendesk id). The version is the ticket's updated_at from the payload,
 *   so Zendesk's resend of a notice, the export's report of the same update and Concord's own
 *   publication after its write are one event, which the broker stores once. Answers: 401 for
 *   a bad signature or timestamp (nothing published), 400 for a body that is not JSON, 503
 *   when the desk could not be read or the broker did not take the events (Zendesk sends the
 *   notice again), else 202 with the number of events published (0 for events the graph does
 *   not show).
 * - The incremental ticket export (when ZENDESK_POLL_SECONDS > 0), for changes whose webhook was
 *   lost: every interval it reads the pages after its cursor, at most 10 requests a minute
 *   (Zendesk's limit), publishes a concord.case.updated per ticket (version: its updated_at in
 *   ms; what changed is not told, so `changes` is empty) and only then stores the page's cursor,
 *   in a small SQLite file. Its first start begins a minute back (what the export holds back
 *   anyway), not at the account's history.
 */
export function zendeskFeed(options: ZendeskFeedOptions): ChangeFeed {
  const { connector, reads, broker, logger, source } = options;
  const routes = new Map<string, RawRoute>();
  const secret = options.webhookSecret;
  if (secret) routes.set(ZENDESK_HOOK_PATH, (request) => receive(secret, request));
  const exporter = options.exportPoll ? exportPoller(options, options.exportPoll) : null;

  async function receive(secret: string, request: RawRequest): Promise<RawResponse> {
    const checked = checkSignature(secret, request, SIGNATURE_HEADER, TIMESTAMP_HEADER);
    if ('status' in checked) {
      logger.warn({ path: ZENDESK_HOOK_PATH, answer: checked.body }, 'Zendesk webhook refused');
      return checked;
    }
    const body = jsonBody(request.body);
    if (!body) return badRequest('the body is not JSON');
    const bodies = Array.isArray(body) ? body : [body];
    if (!bodies.every(isObject)) return badRequest('expected a Zendesk event (a JSON object) or a list of them');
    let events: CanonicalEvent[];
    try {
      events = await eventsOf(bodies.map((each) => noticeOf(each, options.fieldIds)).filter((notice) => notice !== null));
    } catch (error) {
      logger.warn({ err: error }, 'Zendesk webhook not applied: the desk could not be read; Zendesk sends it again');
      return tryAgain('the desk could not be read; send the notice again');
    }
    if (events.length === 0) return accepted(0);
    try {
      await broker.publish(events);
    } catch (error) {
      options.counter?.inc({ feed: 'webhook', outcome: 'refused' }, events.length);
      logger.warn(
        { err: error, events: events.length },
        'Zendesk webhook not applied: the broker did not take its events; Zendesk sends it again',
      );
      return tryAgain('the event broker did not take the events; send the notice again');
    }
    options.counter?.inc({ feed: 'webhook', outcome: 'published' }, events.length);
    logger.debug({ events: events.map((event) => `${event.type} ${event.subject}`) }, 'Zendesk webhook published');
    return accepted(events.length);
  }

  /** The events of the notices; reads the tickets whose payload lacks what their events need. */
  async function eventsOf(notices: readonly (TicketNotice | OrganizationNotice)[]): Promise<CanonicalEvent[]> {
    const tickets = notices.filter(isTicketNotice);
    const complete = (notice: TicketNotice) =>
      notice.status !== undefined && notice.priority !== undefined && notice.updatedAt !== undefined && notice.organizationId === null;
    const toRead = tickets.filter((notice) => !complete(notice)).map((notice) => notice.caseId);
    const read = new Map<string, CaseRecord>(
      toRead.length ? (await connector.casesByIds([...new Set(toRead)])).map((record) => [record.id, record]) : [],
    );
    const events: CanonicalEvent[] = [];
    for (const notice of notices) {
      if (!isTicketNotice(notice)) {
        events.push(...told(notice, await organizationEvents(notice)));
        continue;
      }
      const record = read.get(notice.caseId);
      // A deleted ticket is not read any more, and its payload says DELETED: the graph shows no case then.
      const status = notice.status ?? record?.status ?? (notice.deleted ? 'CLOSED' : undefined);
      const priority = notice.priority ?? record?.priority ?? (notice.deleted ? 'NORMAL' : undefined);
      const updatedAt = notice.updatedAt ?? record?.updatedAt;
      if (!status || !priority || !updatedAt) {
        logger.warn({ caseId: notice.caseId }, 'Zendesk webhook: the ticket it names could not be read; nothing to tell');
        continue;
      }
      const state = {
        caseId: notice.caseId,
        customerId: record?.customerId ?? null,
        status,
        priority,
        updatedAt,
        ...(record ? { assigneeId: record.assigneeId } : {}),
      };
      events.push(
        ...told(notice, () => caseEvents(state, notice.changes, { source, version: Date.parse(updatedAt), escalated: notice.escalated })),
      );
    }
    return events;
  }

  /** The events built, or none (logged) when the schemas refuse them: a record Concord cannot name must not make Zendesk resend forever. */
  function told(notice: TicketNotice | OrganizationNotice, build: () => CanonicalEvent[]): CanonicalEvent[] {
    try {
      return build();
    } catch (error) {
      if (!(error instanceof InvalidEventError)) throw error;
      logger.error({ err: error, notice }, 'Zendesk webhook: a change could not be told as an event; left out');
      return [];
    }
  }

  async function organizationEvents(notice: OrganizationNotice): Promise<() => CanonicalEvent[]> {
    let customerIds = notice.customerIds;
    // Its payload names no customer number: the organization is read, if it is still there.
    if (customerIds.length === 0 && notice.organizationId !== null) {
      const found = await reads.customerIdOfOrganization(notice.organizationId);
      customerIds = found ? [found] : [];
    }
    const version = notice.version ?? Date.now();
    return () => customerIds.map((customerId) => customerEvent(customerId, notice.changes, { source, version }));
  }

  return {
    routes,
    async start() {
      if (routes.size > 0) logger.info({ path: ZENDESK_HOOK_PATH }, 'change feed: serving the Zendesk webhook');
      else if (!exporter)
        logger.warn(
          "change feed: changes made in Zendesk are not published (neither ZENDESK_WEBHOOK_SECRET nor ZENDESK_POLL_SECONDS is set); only Concord's own writes are",
        );
      await exporter?.start();
    },
    async stop() {
      await exporter?.stop();
    },
  };
}

/** Zendesk's limit on the incremental export endpoints: requests per minute. */
const EXPORT_REQUESTS_PER_MINUTE = 10;
/** Changes of the last minute are held back by the export; a first read starts that far back. */
const EXPORT_HOLDS_BACK_S = 60;

function exportPoller(options: ZendeskFeedOptions, poll: { everyMs: number; cursorFile: string }) {
  const { reads, broker, logger, source } = options;
  const db = openDatabase(poll.cursorFile);
  db.exec(`CREATE TABLE IF NOT EXISTS zendesk_export_cursor (
    name TEXT PRIMARY KEY,
    cursor TEXT,            -- after_cursor of the last page published; null before the first
    start_time INTEGER NOT NULL,
    updated_at TEXT NOT NULL
  )`);
  const stateRow = db.prepare<[], { cursor: string | null; start_time: number }>(
    `SELECT cursor, start_time FROM zendesk_export_cursor WHERE name = 'tickets'`,
  );
  const begin = db.prepare<[number, string]>(
    `INSERT OR IGNORE INTO zendesk_export_cursor (name, cursor, start_time, updated_at) VALUES ('tickets', NULL, ?, ?)`,
  );
  const save = db.prepare<[string, string]>(`UPDATE zendesk_export_cursor SET cursor = ?, updated_at = ? WHERE name = 'tickets'`);
  /** When the last requests were sent, to stay within Zendesk's limit. */
  const sent: number[] = [];
  let stopped = true;
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<void> | null = null;

  const mayRequest = (): boolean => {
    const now = Date.now();
    while (sent.length > 0 && sent[0]! <= now - 60_000) sent.shift();
    if (sent.length >= EXPORT_REQUESTS_PER_MINUTE) return false;
    sent.push(now);
    return true;
  };

  async function readPages(): Promise<void> {
    while (!stopped && mayRequest()) {
      const state = stateRow.get()!;
      const page = await reads.incrementalTickets(state.cursor ? { cursor: state.cursor } : { startTime: state.start_time });
      const events = page.cases.flatMap(({ record, deleted }) => {
        try {
          // A deleted ticket's status is `deleted`, which the graph does not know: it shows no case then.
          const state = {
            caseId: record.id,
            customerId: record.customerId,
            status: deleted ? ('CLOSED' as const) : record.status,
            priority: record.priority,
            assigneeId: record.assigneeId,
            updatedAt: record.updatedAt,
          };
          return caseEvents(state, deleted ? ['deleted'] : [], { source, version: Date.parse(record.updatedAt) });
        } catch (error) {
          logger.error({ err: error, caseId: record.id }, 'Zendesk export: a ticket could not be told as an event; skipped');
          return [];
        }
      });
      if (events.length > 0) {
        try {
          await broker.publish(events);
        } catch (error) {
          options.counter?.inc({ feed: 'export', outcome: 'refused' }, events.length);
          throw error;
        }
        options.counter?.inc({ feed: 'export', outcome: 'published' }, events.length);
      }
      if (page.afterCursor) save.run(page.afterCursor, new Date().toISOString());
      if (page.endOfStream) return;
    }
  }

  function schedule(ms: number): void {
    if (stopped) return;
    timer = setTimeout(() => {
      timer = null;
      running = inBackground(readPages)
        .catch((error: unknown) => {
          if (!stopped) logger.warn({ err: error }, 'Zendesk export: not read or not published; the same pages are read again next time');
        })
        .finally(() => {
          running = null;
          schedule(poll.everyMs);
        });
    }, ms);
  }

  return {
    async start() {
      begin.run(Math.floor(Date.now() / 1000) - EXPORT_HOLDS_BACK_S, new Date().toISOString());
      stopped = false;
      logger.info({ everyMs: poll.everyMs, file: poll.cursorFile }, "change feed: reading Zendesk's incremental ticket export");
      schedule(0);
    },
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      timer = null;
      await running;
      db.close();
    },
  };
}
