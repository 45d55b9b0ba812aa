import type { EventBroker } from '../../../../platform/events/broker.ts';
import { changeLogFeed, type ChangeDraft, type ChangeLogFeed, type LoggedChange } from '../../../../platform/events/sqlite-change-log.ts';
import type { Logger } from '../../../../platform/logger.ts';
import { createInQuery, type SqlValue } from '../../../../platform/sql.ts';
import type { Database } from '../../../../platform/sqlite.ts';
import { EMBEDDED_FIELD_IDS } from '../connectors/embedded/tables.ts';
import { PRIORITY_FROM_DESK, STATUS_FROM_DESK } from '../connectors/vocabulary.ts';
import { caseDrafts, countedBroker, customerDraft, type CaseState, type FeedCounter } from './events.ts';

export interface EmbeddedFeedOptions {
  /** The embedded desk's database, its change log installed (SUPPORT_CHANGE_TABLES). */
  readonly db: Database;
  readonly broker: EventBroker;
  readonly logger: Logger;
  /** The CloudEvents source, `concord/support`. */
  readonly source: string;
  /** How often the change log is read (SUPPORT_FEED_POLL_MS). */
  readonly pollMs: number;
  readonly counter?: FeedCounter | undefined;
}

/** The ticket columns whose change the graph shows, and the Case field each is. */
const TICKET_FIELDS: Readonly<Record<string, string>> = {
  status: 'status',
  priority: 'priority',
  assignee_id: 'assignee',
  subject: 'subject',
  description: 'description',
  type: 'type',
  tags: 'tags',
  due_at: 'dueAt',
  requester_id: 'requester',
  organization_id: 'customer',
  updated_at: 'updatedAt',
};

/** The organization columns whose change the desk's view of a customer shows. */
const ORGANIZATION_FIELDS: ReadonlySet<string> = new Set(['name', 'tags', 'domain_names', 'external_id']);

const CUSTOM_FIELDS: Readonly<Record<string, string>> = {
  [EMBEDDED_FIELD_IDS.orderNumber]: 'order',
  [EMBEDDED_FIELD_IDS.serialNumber]: 'asset',
};

/** The changes of one entity in a batch, told as one event, by the last of them (its version). */
interface Group {
  readonly changes: string[];
  last: LoggedChange;
  escalated: boolean;
}

interface TicketStateRow {
  id: number;
  status: string;
  priority: string | null;
  updated_at: string;
  customer_id: string | null;
  assignee_id: number | null;
}

const str = (value: unknown): string | null => (value === null || value === undefined ? null : String(value));

/** A ticket's state as the graph shows it (as connectors/embedded/index.ts maps it). */
const caseStateOf = (
  caseId: string,
  row: { readonly status?: unknown; readonly priority?: unknown; readonly updated_at?: unknown; readonly assignee_id?: unknown },
  customerId: string | null,
): CaseState => ({
  caseId,
  customerId,
  ...(row.assignee_id !== undefined ? { assigneeId: str(row.assignee_id) } : {}),
  status: STATUS_FROM_DESK[String(row.status)] ?? 'OPEN',
  priority: PRIORITY_FROM_DESK[String(row.priority)] ?? 'NORMAL',
  updatedAt: String(row.updated_at),
});

/**
 * The embedded desk's change feed: the desk's change log (written by triggers, whoever changes
 * the file: Concord's own writes, the seed tool, a test writing rows) read every `pollMs` after
 * a cursor kept in the same database, by platform/events/sqlite-change-log.ts, which publishes
 * and only then moves the cursor (a refusing broker gets the same changes again at the next
 * poll) and, on its first start, begins at the end of the log.
 *
 * Each poll's changes become one event per entity: a case (concord.case.updated, with
 * concord.case.escalated beside it when its priority was raised to urgent) or a customer
 * (concord.customer.updated, for its organization, entitlements or installed base), naming
 * every change of the batch, its version the sequence of the last. A case is told as it is when
 * its batch is published (read in one statement for the batch); a deleted one by the last state
 * its log row kept.
 */
export function embeddedDeskFeed(options: EmbeddedFeedOptions): ChangeLogFeed {
  const { db, logger, source, counter } = options;
  const inQuery = createInQuery(db);
  const select = <Row>(sql: (list: string) => string, keys: readonly SqlValue[]) => (keys.length ? inQuery<Row>(sql, keys) : []);

  function toDrafts(changes: readonly LoggedChange[]): ChangeDraft[] {
    const cases = new Map<string, Group>();
    const byOrganization: { organizationId: number; change: LoggedChange; name: string }[] = [];
    const customers = new Map<string, Group>();
    const add = (groups: Map<string, Group>, key: string | null, change: LoggedChange, names: readonly string[], escalated = false) => {
      if (key === null || names.length === 0) return;
      const group = groups.get(key) ?? { changes: [], last: change, escalated: false };
      group.changes.push(...names);
      group.last = change;
      group.escalated ||= escalated;
      groups.set(key, group);
    };
    const toCustomer = (organizationId: unknown, change: LoggedChange, name: string) => {
      const id = Number(organizationId);
      if (organizationId !== null && Number.isSafeInteger(id)) byOrganization.push({ organizationId: id, change, name });
    };

    for (const change of changes) {
      const { row, previous, operation } = change;
      switch (change.table) {
        case 'tickets': {
          const names =
            operation === 'INSERT'
              ? ['created']
              : operation === 'DELETE'
                ? ['deleted']
                : change.changed.flatMap((column) => (TICKET_FIELDS[column] ? [TICKET_FIELDS[column]] : []));
          const raised = operation === 'UPDATE' && row.priority === 'urgent' && previous?.priority !== 'urgent';
          add(cases, str(row.id), change, names, raised);
          // The organization it left: that customer's cases changed too.
          if (operation === 'UPDATE' && previous && previous.organization_id !== row.organization_id)
            toCustomer(previous.organization_id, change, 'tickets');
          break;
        }
        case 'ticket_comments':
          add(cases, str(row.ticket_id), change, ['comment']);
          if (previous && previous.ticket_id !== row.ticket_id) add(cases, str(previous.ticket_id), change, ['comment']);
          break;
        case 'ticket_custom_fields': {
          const name = CUSTOM_FIELDS[String(row.field_id)];
          if (name) add(cases, str(row.ticket_id), change, [name]);
          break;
        }
        case 'organizations': {
          const names =
            operation === 'INSERT'
              ? ['created']
              : operation === 'DELETE'
                ? ['deleted']
                : change.changed.filter((column) => ORGANIZATION_FIELDS.has(column));
          add(customers, str(row.external_id), change, names);
          // A customer number taken off the organization: that customer lost its desk records.
          if (previous && previous.external_id !== row.external_id) add(customers, str(previous.external_id), change, ['external_id']);
          break;
        }
        case 'custom_object_records':
          toCustomer(row.organization_id, change, String(row.custom_object_key));
          if (previous && previous.organization_id !== row.organization_id)
            toCustomer(previous.organization_id, change, String(previous.custom_object_key));
          break;
      }
    }

    const caseIds = [...cases.keys()].map(Number);
    const tickets = new Map(
      select<TicketStateRow>(
        (list) =>
          `SELECT t.id, t.status, t.priority, t.updated_at, t.assignee_id, o.external_id AS customer_id
           FROM tickets t LEFT JOIN organizations o ON o.id = t.organization_id WHERE t.id IN (${list})`,
        caseIds,
      ).map((ticket) => [String(ticket.id), ticket]),
    );
    // Organizations named by id (a record's, a deleted ticket's, the one a ticket left): their customer numbers.
    const deletedOrganizations = [...cases.entries()]
      .filter(([caseId, group]) => !tickets.has(caseId) && group.last.operation === 'DELETE')
      .map(([, group]) => Number(group.last.row.organization_id));
    const customerOf = new Map(
      select<{ id: number; external_id: string | null }>(
        (list) => `SELECT id, external_id FROM organizations WHERE id IN (${list})`,
        [...new Set([...byOrganization.map((entry) => entry.organizationId), ...deletedOrganizations.filter(Number.isSafeInteger)])],
      ).map((organization) => [organization.id, organization.external_id]),
    );
    for (const entry of byOrganization) add(customers, customerOf.get(entry.organizationId) ?? null, entry.change, [entry.name]);

    const drafts: ChangeDraft[] = [];
    for (const [caseId, group] of cases) {
      const ticket = tickets.get(caseId);
      const { last } = group;
      let state: CaseState;
      if (ticket) state = caseStateOf(caseId, ticket, ticket.customer_id);
      // Deleted: told by the state its log row kept.
      else if (last.table === 'tickets' && last.operation === 'DELETE')
        state = caseStateOf(caseId, last.row, customerOf.get(Number(last.row.organization_id)) ?? null);
      // Gone, and nothing kept of it (a comment of a ticket deleted since, in an earlier batch).
      else continue;
      drafts.push(...caseDrafts(state, group.changes, { escalated: group.escalated }).map((draft) => ({ ...draft, change: last })));
    }
    for (const [customerId, group] of customers) drafts.push({ ...customerDraft(customerId, group.changes), change: group.last });
    return drafts;
  }

  const broker = countedBroker(options.broker, counter, 'embedded');
  const feed = changeLogFeed({ db, broker, source, logger, toDrafts, pollMs: options.pollMs });
  return {
    ...feed,
    async start() {
      await feed.start?.();
      logger.info({ pollMs: options.pollMs }, "change feed: publishing the embedded desk's changes");
    },
  };
}
