import type { Database } from '../../platform/sqlite.ts';
import { EMBEDDED_FIELD_IDS } from '../../subgraphs/support/src/connectors/embedded/tables.ts';
import { subscriptionsOf } from './subscriptions.ts';
import type { TicketComment, World } from './world.ts';

/** Child tables first, so clearing respects the foreign keys. */
const SUPPORT_TABLES = [
  'custom_object_records',
  'ticket_comments',
  'ticket_custom_fields',
  'tickets',
  'users',
  'organizations',
  'sla_policies',
] as const;

/**
 * Writes the world's support desk in Zendesk's resource shapes (integer ids, snake_case fields,
 * custom fields one row per field), replacing whatever the tables held. Run it inside a
 * transaction. Returns the number of rows per table.
 */
export function writeSupport(db: Database, world: World): Record<string, number> {
  for (const table of SUPPORT_TABLES) db.prepare(`DELETE FROM ${table}`).run();
  const insertOrganization = db.prepare(
    'INSERT INTO organizations (id, name, external_id, domain_names, tags, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
  );
  const insertUser = db.prepare(
    'INSERT INTO users (id, name, email, role, organization_id, external_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
  );
  const insertTicket = db.prepare(
    `INSERT INTO tickets (id, external_id, type, subject, description, priority, status, requester_id, submitter_id, assignee_id,
       organization_id, group_id, tags, due_at, created_at, updated_at)
     VALUES (?, NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const insertField = db.prepare('INSERT INTO ticket_custom_fields (ticket_id, field_id, value) VALUES (?, ?, ?)');
  const insertComment = db.prepare(
    'INSERT INTO ticket_comments (id, ticket_id, author_id, body, public, created_at) VALUES (?, ?, ?, ?, ?, ?)',
  );
  const insertSla = db.prepare(
    'INSERT INTO sla_policies (id, title, description, position, filter_tag, policy_metrics) VALUES (?, ?, ?, ?, ?, ?)',
  );
  const counts = { organizations: 0, users: 0, tickets: 0, ticket_custom_fields: 0, ticket_comments: 0, sla_policies: 0 };
  for (const c of world.customers) {
    insertOrganization.run(
      c.orgId,
      c.name,
      c.number,
      JSON.stringify([c.domain]),
      JSON.stringify(c.deskTags),
      c.deskCreatedAt,
      c.deskUpdatedAt,
    );
    counts.organizations++;
  }
  for (const a of world.agents) {
    insertUser.run(a.id, a.name, a.email, 'agent', null, null, a.createdAt);
    counts.users++;
  }
  for (const c of world.customers) {
    for (const p of c.contacts) {
      insertUser.run(p.deskUserId, `${p.firstName} ${p.lastName}`, p.email, 'end-user', c.orgId, p.id, c.deskCreatedAt);
      counts.users++;
    }
  }
  const comments: { ticketId: number; c: TicketComment }[] = [];
  for (const t of world.tickets) {
    insertTicket.run(
      t.id,
      t.type,
      t.subject,
      t.description,
      t.priority,
      t.status,
      t.requester.deskUserId,
      t.submitterId,
      t.assignee?.id ?? null,
      t.customer.orgId,
      t.groupId,
      JSON.stringify(t.tags),
      t.dueAt,
      t.createdAt,
      t.updatedAt,
    );
    counts.tickets++;
    if (t.orderNumber !== null) {
      insertField.run(t.id, EMBEDDED_FIELD_IDS.orderNumber, t.orderNumber);
      counts.ticket_custom_fields++;
    }
    if (t.serialNumber !== null) {
      insertField.run(t.id, EMBEDDED_FIELD_IDS.serialNumber, t.serialNumber);
      counts.ticket_custom_fields++;
    }
    for (const c of t.comments) comments.push({ ticketId: t.id, c });
  }
  // In id order, which is the order they were written across the desk.
  comments.sort((a, b) => a.c.id - b.c.id);
  for (const { ticketId, c } of comments) {
    insertComment.run(c.id, ticketId, c.authorId, c.body, c.public ? 1 : 0, c.createdAt);
    counts.ticket_comments++;
  }
  for (const p of world.slaPolicies) {
    insertSla.run(p.id, p.title, p.description, p.position, p.filterTag, JSON.stringify(p.metrics));
    counts.sla_policies++;
  }
  // What each active subscription entitles its customer to (the organization's tier tag says the same).
  const insertEntitlement = db.prepare(
    `INSERT INTO custom_object_records (id, custom_object_key, external_id, name, organization_id, custom_object_fields, created_at, updated_at)
     VALUES (?, 'entitlement', ?, ?, ?, ?, ?, ?)`,
  );
  for (const sub of subscriptionsOf(world)) {
    if (sub.status !== 'Active') continue;
    const k = sub.contract;
    const tier = k.tier.toUpperCase();
    insertEntitlement.run(
      `seed-${sub.id}`,
      sub.id,
      `tier_${k.tier.toLowerCase()} ${sub.id}`,
      k.customer.orgId,
      JSON.stringify({ tier, active: true, until: k.endDate }),
      `${k.modifiedAt}`,
      `${k.modifiedAt}`,
    );
  }
  return counts;
}
