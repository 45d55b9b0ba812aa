import { describe, expect, it } from 'vitest';
import { createEmbeddedSupportConnector } from '../../subgraphs/support/src/connectors/embedded/index.ts';
import { createContextFactory } from '../../subgraphs/support/src/context.ts';
import { createServer } from '../../subgraphs/support/src/server.ts';
import { seededDatabases } from '../helpers/stack.ts';
import { useSubgraph } from '../helpers/subgraph.ts';

describe('support subgraph', () => {
  const dbs = seededDatabases();
  const run = useSubgraph({
    database: dbs.support,
    createConnector: createEmbeddedSupportConnector,
    createServer,
    createContext: createContextFactory,
  });

  it('resolves Case references through _entities, null for unknown ones', async () => {
    const tickets = dbs.support.prepare('SELECT id, subject, status FROM tickets ORDER BY id LIMIT 3').all() as {
      id: number;
      subject: string;
      status: string;
    }[];
    const result = await run('query($r: [_Any!]!) { _entities(representations: $r) { ... on Case { id subject status } } }', {
      r: [...tickets.map((t) => ({ __typename: 'Case', id: String(t.id) })), { __typename: 'Case', id: '99999999' }],
    });
    expect(result.errors).toBeUndefined();
    expect(result.data._entities).toEqual([
      ...tickets.map((t) => ({ id: String(t.id), subject: t.subject, status: t.status === 'hold' ? 'ON_HOLD' : t.status.toUpperCase() })),
      null,
    ]);
  });

  it("adds the desk's cases and open case count to customers from other systems", async () => {
    const org = dbs.support
      .prepare(
        `SELECT o.external_id AS id, COUNT(*) AS n FROM tickets t JOIN organizations o ON o.id = t.organization_id
      WHERE t.status IN ('new','open','pending','hold') GROUP BY o.external_id ORDER BY n DESC LIMIT 1`,
      )
      .get() as { id: string; n: number };
    const result = await run(
      'query($r: [_Any!]!) { _entities(representations: $r) { ... on Customer { id openCaseCount cases(first: 3) { id } } } }',
      {
        r: [
          { __typename: 'Customer', id: org.id },
          { __typename: 'Customer', id: 'C99999' },
        ],
      },
    );
    expect(result.errors).toBeUndefined();
    expect(result.data._entities[0].openCaseCount).toBe(org.n);
    expect(result.data._entities[0].cases).toHaveLength(3);
    expect(result.data._entities[1]).toEqual({ id: 'C99999', openCaseCount: 0, cases: [] });
  });

  it('gives the SLA policy of a contract from the support tier the CRM provides (@requires)', async () => {
    const result = await run(
      'query($r: [_Any!]!) { _entities(representations: $r) { ... on Contract { sla { name targets { priority firstResponseHours } } } } }',
      {
        r: [{ __typename: 'Contract', id: '00000101', supportTier: 'PREMIUM' }],
      },
    );
    const policy = dbs.support.prepare(`SELECT title FROM sla_policies WHERE filter_tag = 'tier_premium'`).get() as { title: string };
    expect(result.errors).toBeUndefined();
    expect(result.data._entities[0].sla.name).toBe(policy.title);
    expect(result.data._entities[0].sla.targets.map((t: any) => t.priority)).toContain('URGENT');
  });

  it('filters cases by customer, priority and assignee, with a total count', async () => {
    const row = dbs.support
      .prepare(
        `SELECT o.external_id AS customerId, t.assignee_id AS assignee FROM tickets t JOIN organizations o ON o.id = t.organization_id
      WHERE t.assignee_id IS NOT NULL AND t.priority = 'high' LIMIT 1`,
      )
      .get() as { customerId: string; assignee: number };
    const expected = dbs.support
      .prepare(
        `SELECT t.id FROM tickets t JOIN organizations o ON o.id = t.organization_id
      WHERE o.external_id = ? AND t.priority = 'high' AND t.assignee_id = ? ORDER BY t.id DESC`,
      )
      .all(row.customerId, row.assignee) as { id: number }[];
    const result = await run(
      `query($f: CaseFilter) { cases(filter: $f, first: 100) { totalCount nodes { id priority customer { id } assignee { id } } } }`,
      {
        f: { customerId: row.customerId, priority: ['HIGH'], assignee: String(row.assignee) },
      },
    );
    expect(result.errors).toBeUndefined();
    expect(result.data.cases.nodes.map((n: any) => Number(n.id))).toEqual(expected.map((t) => t.id));
    expect(result.data.cases.totalCount).toBe(expected.length);
    for (const node of result.data.cases.nodes) {
      expect(node).toMatchObject({ priority: 'HIGH', customer: { id: row.customerId }, assignee: { id: String(row.assignee) } });
    }
  });

  it('keeps internal notes apart from public comments', async () => {
    const ticket = dbs.support.prepare('SELECT ticket_id AS id FROM ticket_comments WHERE public = 0 LIMIT 1').get() as { id: number };
    const result = await run('query($id: ID!) { case(id: $id) { comments { body public authorName } } }', {
      id: String(ticket.id),
    });
    const comments = result.data.case.comments as { public: boolean }[];
    expect(comments.some((c) => !c.public)).toBe(true);
    expect(comments[0]?.public).toBe(true);
  });

  it('rejects a page size out of range and a malformed case id, naming the argument', async () => {
    for (const [query, argument] of [
      ['{ cases(first: 0) { totalCount } }', 'first'],
      ['{ cases(first: 101) { totalCount } }', 'first'],
      ['{ case(id: "12x") { id } }', 'id'],
      ['{ cases(filter: { assignee: "bob" }) { totalCount } }', 'filter.assignee'],
      // case:9999999999999999, above the largest integer a JavaScript number holds exactly
      ['{ cases(after: "Y2FzZTo5OTk5OTk5OTk5OTk5OTk5") { totalCount } }', 'after'],
    ] as const) {
      const result = await run(query);
      expect(result.errors?.[0]?.extensions?.code, query).toBe('BAD_USER_INPUT');
      expect(result.errors?.[0]?.message, query).toContain(`"${argument}"`);
    }
  });

  it("adds the desk's cases to contacts, orders and assets from other systems", async () => {
    const row = dbs.support
      .prepare(
        `SELECT r.external_id AS contactId, fo.value AS orderNumber, fs.value AS serialNumber FROM tickets t
        JOIN users r ON r.id = t.requester_id
        JOIN ticket_custom_fields fo ON fo.ticket_id = t.id AND fo.field_id = 360000000101
        JOIN ticket_custom_fields fs ON fs.ticket_id = t.id AND fs.field_id = 360000000102 LIMIT 1`,
      )
      .get() as { contactId: string; orderNumber: string; serialNumber: string };
    const ids = (sql: string, value: string) => (dbs.support.prepare(sql).all(value) as { id: number }[]).map((t) => String(t.id));
    const result = await run(
      `query($r: [_Any!]!) { _entities(representations: $r) {
        ... on Contact { requestedCases(first: 100) { id } } ... on Order { cases { id } } ... on Asset { cases { id } } } }`,
      {
        r: [
          { __typename: 'Contact', id: row.contactId },
          { __typename: 'Order', number: row.orderNumber },
          { __typename: 'Asset', serialNumber: row.serialNumber },
        ],
      },
    );
    expect(result.errors).toBeUndefined();
    const [contact, order, asset] = result.data._entities;
    expect(contact.requestedCases.map((c: any) => c.id)).toEqual(
      ids('SELECT t.id FROM tickets t JOIN users r ON r.id = t.requester_id WHERE r.external_id = ? ORDER BY t.id DESC', row.contactId),
    );
    expect(order.cases.map((c: any) => c.id)).toEqual(
      ids(
        'SELECT ticket_id AS id FROM ticket_custom_fields WHERE field_id = 360000000101 AND value = ? ORDER BY ticket_id DESC',
        row.orderNumber,
      ),
    );
    expect(asset.cases.map((c: any) => c.id)).toEqual(
      ids(
        'SELECT ticket_id AS id FROM ticket_custom_fields WHERE field_id = 360000000102 AND value = ? ORDER BY ticket_id DESC',
        row.serialNumber,
      ),
    );
  });

  it('never widens a search when a filter is present but empty', async () => {
    for (const [filter, argument] of [
      ['{ customerId: "" }', 'filter.customerId'],
      ['{ assignee: "" }', 'filter.assignee'],
      ['{ status: [] }', 'filter.status'],
    ] as const) {
      const result = await run(`{ cases(filter: ${filter}) { totalCount nodes { id } } }`);
      expect(result.data, filter).toBeNull();
      expect(result.errors?.[0]?.message, filter).toContain(`"${argument}"`);
    }
    const emptyCursor = await run('{ cases(after: "") { nodes { id } } }');
    expect(emptyCursor.errors?.[0]?.message).toContain('"after"');
  });
});
