import { randomUUID } from 'node:crypto';
import type { Statement } from 'better-sqlite3';
import type { ConnectorTelemetry } from '../../../../../platform/connector-telemetry.ts';
import { installChangeLog } from '../../../../../platform/events/sqlite-change-log.ts';
import { allRows, createInQuery, placeholders, type SqlValue } from '../../../../../platform/sql.ts';
import { probeDatabase, type Database } from '../../../../../platform/sqlite.ts';
import type {
  AgentRecord,
  CaseFilterInput,
  CasePriority,
  CaseRecord,
  CaseStatus,
  CaseType,
  CommentRecord,
  SlaPolicyRecord,
  SlaTargetRecord,
  SupportConnector,
  SupportTier,
} from '../types.ts';
import { EMBEDDED_FIELD_IDS, migrateSupport, SUPPORT_CHANGE_TABLES, SUPPORT_SCHEMA } from './tables.ts';
import {
  PRIORITY_FROM_DESK,
  PRIORITY_TO_DESK,
  STATUS_FROM_DESK,
  STATUS_TO_DESK,
  TIER_ORDER,
  TIER_TAG,
  TYPE_FROM_DESK,
} from '../vocabulary.ts';
import { composeCaseGraph } from '../graphs.ts';

interface TicketRow {
  id: number;
  subject: string;
  description: string | null;
  status: string;
  priority: string | null;
  type: string | null;
  tags: string;
  created_at: string;
  updated_at: string;
  due_at: string | null;
  assignee_id: number | null;
  requester_external_id: string | null;
  organization_external_id: string | null;
  order_number: string | null;
  serial_number: string | null;
}
interface CommentRow {
  id: number;
  ticket_id: number;
  body: string;
  public: number;
  author_name: string | null;
  created_at: string;
}
interface PolicyRow {
  title: string;
  filter_tag: string;
  policy_metrics: string;
}
interface PolicyMetric {
  priority: string;
  metric: string;
  target: number;
  business_hours: boolean;
}

const OPEN_DESK_STATUSES = ['new', 'open', 'pending', 'hold'];

// Field ids are numbers from our own constant, so they are inlined rather than bound: the join
// sits before the IN list, and bound parameters are positional.
const ORGANIZATION_JOIN = `
  LEFT JOIN organizations o ON o.id = t.organization_id`;
const TICKET_JOINS = `${ORGANIZATION_JOIN}
  LEFT JOIN users r ON r.id = t.requester_id
  LEFT JOIN ticket_custom_fields fo ON fo.ticket_id = t.id AND fo.field_id = ${Number(EMBEDDED_FIELD_IDS.orderNumber)}
  LEFT JOIN ticket_custom_fields fs ON fs.ticket_id = t.id AND fs.field_id = ${Number(EMBEDDED_FIELD_IDS.serialNumber)}`;
const TICKET_FROM = `FROM tickets t ${TICKET_JOINS}`;
const TICKET_COLUMNS = `t.id, t.subject, t.description, t.status, t.priority, t.type, t.tags, t.created_at, t.updated_at,
  t.due_at, t.assignee_id, r.external_id AS requester_external_id, o.external_id AS organization_external_id,
  fo.value AS order_number, fs.value AS serial_number`;

/**
 * The support desk adapter over the embedded SQLite desk (Zendesk-shaped tables). Like
 * Zendesk's sideloading (`include=users,organizations`), one statement returns tickets with the
 * organization and requester they refer to. One SQL statement is one call.
 */
export function createEmbeddedSupportConnector(db: Database, telemetry: ConnectorTelemetry): SupportConnector {
  migrateSupport(db);
  // Every change to the file, whoever makes it, is logged for the desk's change feed (feed/embedded.ts).
  installChangeLog(db, SUPPORT_CHANGE_TABLES);
  const inQuery = createInQuery(db);
  const selectIn = <Row>(operation: string, sql: (list: string) => string, keys: readonly SqlValue[], extra: readonly SqlValue[] = []) =>
    telemetry.call(operation, { keys: keys.length }, () => inQuery<Row>(sql, keys, extra));
  const statements = new Map<string, Statement<SqlValue[], unknown>>();
  const prepared = (sql: string) => {
    let statement = statements.get(sql);
    if (!statement) {
      statement = db.prepare<SqlValue[], unknown>(sql);
      statements.set(sql, statement);
    }
    return statement;
  };

  const connector: SupportConnector = {
    async casesByIds(ids) {
      const ticketIds = ids.map(Number).filter(Number.isSafeInteger);
      if (ticketIds.length === 0) return [];
      const rows = await selectIn<TicketRow>(
        'casesByIds',
        (list) => `SELECT ${TICKET_COLUMNS} ${TICKET_FROM} WHERE t.id IN (${list})`,
        ticketIds,
      );
      return rows.map(toCase);
    },
    async searchCases({ filter, limit, afterId }) {
      const { where, params } = filterClause(filter);
      if (afterId !== undefined) {
        where.push('t.id < ?');
        params.push(Number(afterId));
      }
      // With a status filter, the page's ids come first from the (status, id) index alone, and
      // only that page is joined: several statuses are several index ranges, and ordering them
      // otherwise sorts every matching ticket with all its joined columns. Without one, tickets
      // are read newest first and the scan stops at the page's end.
      const sql = filter.statuses?.length
        ? `SELECT ${TICKET_COLUMNS} FROM (
             SELECT t.id FROM tickets t${filter.customerId !== undefined ? ORGANIZATION_JOIN : ''} ${whereSql(where)}
             ORDER BY t.id DESC LIMIT ?
           ) page JOIN tickets t ON t.id = page.id ${TICKET_JOINS} ORDER BY t.id DESC`
        : `SELECT ${TICKET_COLUMNS} ${TICKET_FROM} ${whereSql(where)} ORDER BY t.id DESC LIMIT ?`;
      const rows = await telemetry.call('searchCases', { limit }, () => allRows<TicketRow>(prepared(sql), [...params, limit + 1]));
      return { records: rows.slice(0, limit).map(toCase), hasNextPage: rows.length > limit };
    },
    async countCases(filter) {
      const { where, params } = filterClause(filter);
      // The organization is joined only to filter on its customer number: a ticket has at most one.
      const sql = `SELECT COUNT(*) AS n FROM tickets t${filter.customerId !== undefined ? ORGANIZATION_JOIN : ''} ${whereSql(where)}`;
      const row = await telemetry.call('countCases', {}, () => prepared(sql).get(...params) as { n: number });
      return row.n;
    },
    async casesByCustomerIds(customerIds, { statuses, limit }) {
      const deskStatuses = [...new Set(statuses ?? [])].map((status) => STATUS_TO_DESK[status]).sort();
      const statusClause = deskStatuses.length ? ` AND t.status IN (${placeholders(deskStatuses.length)})` : '';
      const rows = await selectIn<TicketRow>(
        'casesByCustomerIds',
        (list) =>
          `SELECT * FROM (
             SELECT ${TICKET_COLUMNS}, ROW_NUMBER() OVER (PARTITION BY o.external_id ORDER BY t.id DESC) AS rank
             ${TICKET_FROM} WHERE o.external_id IN (${list})${statusClause}
           ) WHERE rank <= ? ORDER BY id DESC`,
        customerIds,
        [...deskStatuses, limit],
      );
      return rows.map(toCase);
    },
    async openCaseCounts(customerIds) {
      const rows = await selectIn<{ external_id: string; n: number }>(
        'openCaseCounts',
        (list) =>
          `SELECT o.external_id, COUNT(*) AS n FROM tickets t JOIN organizations o ON o.id = t.organization_id
           WHERE o.external_id IN (${list}) AND t.status IN (${OPEN_DESK_STATUSES.map((s) => `'${s}'`).join(', ')})
           GROUP BY o.external_id`,
        customerIds,
      );
      return new Map(rows.map((row) => [row.external_id, row.n]));
    },
    async casesByContactIds(contactIds, limit) {
      const rows = await selectIn<TicketRow>(
        'casesByContactIds',
        (list) =>
          `SELECT * FROM (
             SELECT ${TICKET_COLUMNS}, ROW_NUMBER() OVER (PARTITION BY r.external_id ORDER BY t.id DESC) AS rank
             ${TICKET_FROM} WHERE r.external_id IN (${list})
           ) WHERE rank <= ? ORDER BY id DESC`,
        contactIds,
        [limit],
      );
      return rows.map(toCase);
    },
    async casesByOrderNumbers(numbers) {
      const rows = await selectIn<TicketRow>(
        'casesByOrderNumbers',
        (list) => `SELECT ${TICKET_COLUMNS} ${TICKET_FROM} WHERE fo.value IN (${list}) ORDER BY t.id DESC`,
        numbers,
      );
      return rows.map(toCase);
    },
    async casesBySerialNumbers(serialNumbers) {
      const rows = await selectIn<TicketRow>(
        'casesBySerialNumbers',
        (list) => `SELECT ${TICKET_COLUMNS} ${TICKET_FROM} WHERE fs.value IN (${list}) ORDER BY t.id DESC`,
        serialNumbers,
      );
      return rows.map(toCase);
    },
    async commentsByCaseIds(caseIds) {
      const ticketIds = caseIds.map(Number).filter(Number.isSafeInteger);
      if (ticketIds.length === 0) return [];
      const rows = await selectIn<CommentRow>(
        'commentsByCaseIds',
        (list) =>
          `SELECT c.id, c.ticket_id, c.body, c.public, u.name AS author_name, c.created_at
           FROM ticket_comments c LEFT JOIN users u ON u.id = c.author_id
           WHERE c.ticket_id IN (${list}) ORDER BY c.ticket_id, c.created_at, c.id`,
        ticketIds,
      );
      return rows.map((row): CommentRecord => ({
        id: String(row.id),
        caseId: String(row.ticket_id),
        body: row.body,
        public: row.public === 1,
        authorName: row.author_name,
        createdAt: row.created_at,
      }));
    },
    // One call to the system (the statements run in-process).
    caseGraphsByIds(ids, parts) {
      return composeCaseGraph(this, ids, parts);
    },
    async agentsByIds(ids) {
      const userIds = ids.map(Number).filter(Number.isSafeInteger);
      if (userIds.length === 0) return [];
      const rows = await selectIn<{ id: number; name: string; email: string | null }>(
        'agentsByIds',
        (list) => `SELECT id, name, email FROM users WHERE role IN ('agent', 'admin') AND id IN (${list})`,
        userIds,
      );
      return rows.map((row): AgentRecord => ({ id: String(row.id), name: row.name, email: row.email }));
    },
    async slaPoliciesByTiers(tiers) {
      const rows = await selectIn<PolicyRow>(
        'slaPoliciesByTiers',
        (list) => `SELECT title, filter_tag, policy_metrics FROM sla_policies WHERE filter_tag IN (${list}) ORDER BY position`,
        tiers.map((tier) => TIER_TAG[tier]),
      );
      return rows.map(toSlaPolicy);
    },
    async applyCaseUpdate({ key, caseId, internalNote, status }) {
      const ticketId = Number(caseId);
      if (!Number.isSafeInteger(ticketId)) return null;
      const apply = db.transaction(() => {
        const exists = db.prepare<[number], { id: number }>('SELECT id FROM tickets WHERE id = ?').get(ticketId);
        if (!exists) return false;
        if (db.prepare<[string], { key: string }>('SELECT key FROM applied_updates WHERE key = ?').get(key)) return true;
        const now = new Date().toISOString();
        if (internalNote) {
          db.prepare('INSERT INTO ticket_comments (ticket_id, author_id, body, public, created_at) VALUES (?, NULL, ?, 0, ?)').run(
            ticketId,
            internalNote,
            now,
          );
        }
        if (status) db.prepare('UPDATE tickets SET status = ?, updated_at = ? WHERE id = ?').run(STATUS_TO_DESK[status], now, ticketId);
        else db.prepare('UPDATE tickets SET updated_at = ? WHERE id = ?').run(now, ticketId);
        db.prepare('INSERT INTO applied_updates (key, ticket_id, applied_at) VALUES (?, ?, ?)').run(key, ticketId, now);
        return true;
      });
      const found = await telemetry.call('applyCaseUpdate', {}, () => apply.immediate());
      if (!found) return null;
      const [record] = await connector.casesByIds([caseId]);
      return record ?? null;
    },
    async recordInstalledBase({ customerId, orderNumber, items }) {
      const record = db.transaction(() => {
        const organization = db.prepare<[string], { id: number }>('SELECT id FROM organizations WHERE external_id = ?').get(customerId);
        if (!organization) return false;
        const now = new Date().toISOString();
        const upsert = db.prepare(
          `INSERT INTO custom_object_records (id, custom_object_key, external_id, name, organization_id, custom_object_fields, created_at, updated_at)
           VALUES (?, 'installed_product', ?, ?, ?, ?, ?, ?)
           ON CONFLICT (custom_object_key, external_id) DO UPDATE SET
             name = excluded.name, organization_id = excluded.organization_id, custom_object_fields = excluded.custom_object_fields,
             updated_at = excluded.updated_at`,
        );
        for (const item of items)
          upsert.run(
            randomUUID(),
            `${orderNumber}:${item.sku}`,
            item.name ?? item.sku,
            organization.id,
            JSON.stringify({ order_number: orderNumber, sku: item.sku, quantity: item.quantity, warranty_months: item.warrantyMonths }),
            now,
            now,
          );
        return true;
      });
      if (!(await telemetry.call('recordInstalledBase', { items: items.length }, () => record.immediate()))) return null;
      return (await connector.installedBaseByCustomerIds([customerId])).filter((product) => product.orderNumber === orderNumber);
    },
    async setEntitlement({ customerId, subscriptionId, tier, active, until }) {
      const apply = db.transaction(() => {
        const organization = db
          .prepare<[string], { id: number; tags: string }>('SELECT id, tags FROM organizations WHERE external_id = ?')
          .get(customerId);
        if (!organization) return false;
        const now = new Date().toISOString();
        db.prepare(
          `INSERT INTO custom_object_records (id, custom_object_key, external_id, name, organization_id, custom_object_fields, created_at, updated_at)
           VALUES (?, 'entitlement', ?, ?, ?, ?, ?, ?)
           ON CONFLICT (custom_object_key, external_id) DO UPDATE SET
             name = excluded.name, organization_id = excluded.organization_id, custom_object_fields = excluded.custom_object_fields,
             updated_at = excluded.updated_at
           WHERE custom_object_records.custom_object_fields <> excluded.custom_object_fields`,
        ).run(
          randomUUID(),
          subscriptionId,
          `${TIER_TAG[tier]} ${subscriptionId}`,
          organization.id,
          JSON.stringify({ tier, active, until }),
          now,
          now,
        );
        // The organization's tier tag: the highest tier among its active entitlements.
        const active_ = db
          .prepare<[number], { custom_object_fields: string }>(
            `SELECT custom_object_fields FROM custom_object_records WHERE custom_object_key = 'entitlement' AND organization_id = ?`,
          )
          .all(organization.id)
          .map((row) => JSON.parse(row.custom_object_fields) as { tier: SupportTier; active: boolean })
          .filter((entitlement) => entitlement.active);
        const highest = TIER_ORDER.filter((candidate) => active_.some((entitlement) => entitlement.tier === candidate)).at(-1);
        const tags = (JSON.parse(organization.tags) as string[]).filter((tag) => !Object.values(TIER_TAG).includes(tag));
        if (highest) tags.push(TIER_TAG[highest]);
        if (JSON.stringify(tags) !== organization.tags)
          db.prepare('UPDATE organizations SET tags = ?, updated_at = ? WHERE id = ?').run(JSON.stringify(tags), now, organization.id);
        return true;
      });
      if (!(await telemetry.call('setEntitlement', {}, () => apply.immediate()))) return null;
      return connector.entitlementsByCustomerIds([customerId]);
    },
    async entitlementsByCustomerIds(customerIds) {
      const rows = await telemetry.call('entitlementsByCustomerIds', { keys: customerIds.length }, () =>
        inQuery<{ external_id: string; custom_object_fields: string; updated_at: string; customer_id: string }>(
          (list) =>
            `SELECT r.external_id, r.custom_object_fields, r.updated_at, o.external_id AS customer_id
             FROM custom_object_records r JOIN organizations o ON o.id = r.organization_id
             WHERE r.custom_object_key = 'entitlement' AND o.external_id IN (${list})
             ORDER BY o.external_id, r.external_id`,
          customerIds,
        ),
      );
      return rows.map((row) => {
        const fields = JSON.parse(row.custom_object_fields) as { tier: SupportTier; active: boolean; until: string | null };
        return {
          subscriptionId: row.external_id,
          customerId: row.customer_id,
          tier: fields.tier,
          active: fields.active,
          until: fields.until ?? null,
          updatedAt: row.updated_at,
        };
      });
    },
    async installedBaseByCustomerIds(customerIds) {
      const rows = await telemetry.call('installedBaseByCustomerIds', { keys: customerIds.length }, () =>
        inQuery<InstalledRow>(
          (list) =>
            `SELECT r.external_id, r.name, r.custom_object_fields, r.created_at, o.external_id AS customer_id
             FROM custom_object_records r JOIN organizations o ON o.id = r.organization_id
             WHERE r.custom_object_key = 'installed_product' AND o.external_id IN (${list})
             ORDER BY r.created_at DESC, r.external_id`,
          customerIds,
        ),
      );
      return rows.map((row) => {
        const fields = JSON.parse(row.custom_object_fields) as {
          order_number: string;
          sku: string;
          quantity: number;
          warranty_months: number | null;
        };
        return {
          id: row.external_id,
          customerId: row.customer_id,
          orderNumber: fields.order_number,
          sku: fields.sku,
          name: row.name,
          quantity: fields.quantity,
          warrantyMonths: fields.warranty_months ?? null,
          recordedAt: row.created_at,
        };
      });
    },
    async ping() {
      await telemetry.call('ping', {}, () => probeDatabase(db, SUPPORT_SCHEMA.rowsIn));
    },
    async close() {
      db.close();
    },
  };
  return connector;
}

function filterClause(filter: CaseFilterInput): { where: string[]; params: SqlValue[] } {
  const where: string[] = [];
  const params: SqlValue[] = [];
  // Distinct and sorted, so the statement cache holds one statement per filter shape.
  const statuses = [...new Set(filter.statuses ?? [])].map((status) => STATUS_TO_DESK[status]).sort();
  const priorities = [...new Set(filter.priorities ?? [])].map((priority) => PRIORITY_TO_DESK[priority]).sort();
  if (statuses.length) {
    where.push(`t.status IN (${placeholders(statuses.length)})`);
    params.push(...statuses);
  }
  if (priorities.length) {
    where.push(`t.priority IN (${placeholders(priorities.length)})`);
    params.push(...priorities);
  }
  if (filter.customerId !== undefined) {
    where.push('o.external_id = ?');
    params.push(filter.customerId);
  }
  if (filter.assigneeId !== undefined) {
    where.push('t.assignee_id = ?');
    params.push(Number(filter.assigneeId));
  }
  return { where, params };
}

function whereSql(where: readonly string[]): string {
  return where.length ? `WHERE ${where.join(' AND ')}` : '';
}

function toCase(row: TicketRow): CaseRecord {
  return {
    id: String(row.id),
    subject: row.subject,
    description: row.description,
    status: STATUS_FROM_DESK[row.status] ?? 'OPEN',
    // Zendesk allows a ticket without priority; its views treat one as normal.
    priority: (row.priority && PRIORITY_FROM_DESK[row.priority]) || 'NORMAL',
    type: (row.type && TYPE_FROM_DESK[row.type]) || null,
    tags: JSON.parse(row.tags) as string[],
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    dueAt: row.due_at,
    assigneeId: row.assignee_id === null ? null : String(row.assignee_id),
    requesterContactId: row.requester_external_id,
    customerId: row.organization_external_id,
    orderNumber: row.order_number,
    serialNumber: row.serial_number,
  };
}

const TIER_FROM_TAG: Record<string, SupportTier> = { tier_basic: 'BASIC', tier_standard: 'STANDARD', tier_premium: 'PREMIUM' };

function toSlaPolicy(row: PolicyRow): SlaPolicyRecord {
  const metrics = JSON.parse(row.policy_metrics) as PolicyMetric[];
  const targets = new Map<string, SlaTargetRecord>();
  for (const metric of metrics) {
    const priority = metric.priority.toUpperCase() as CasePriority;
    const target = targets.get(priority) ?? { priority, firstResponseHours: 0, resolutionHours: 0 };
    if (metric.metric === 'first_reply_time') target.firstResponseHours = metric.target / 60;
    if (metric.metric === 'requester_wait_time' || metric.metric === 'resolution_time') target.resolutionHours = metric.target / 60;
    targets.set(priority, target);
  }
  const order: CasePriority[] = ['URGENT', 'HIGH', 'NORMAL', 'LOW'];
  return {
    tier: TIER_FROM_TAG[row.filter_tag] ?? 'BASIC',
    name: row.title,
    businessHoursOnly: metrics.some((metric) => metric.business_hours),
    targets: [...targets.values()].sort((a, b) => order.indexOf(a.priority) - order.indexOf(b.priority)),
  };
}

interface InstalledRow {
  external_id: string;
  name: string;
  custom_object_fields: string;
  created_at: string;
  customer_id: string;
}
