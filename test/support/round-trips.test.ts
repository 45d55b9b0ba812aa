import { describe, expect, it } from 'vitest';
import { withLatency } from '../../platform/latency.ts';
import { createEmbeddedSupportConnector } from '../../subgraphs/support/src/connectors/embedded/index.ts';
import type { SupportConnector } from '../../subgraphs/support/src/connectors/types.ts';
import { createContextFactory } from '../../subgraphs/support/src/context.ts';
import { createServer } from '../../subgraphs/support/src/server.ts';
import { seededDatabases } from '../helpers/stack.ts';
import { useSubgraph } from '../helpers/subgraph.ts';
import { recordTrips, type TripRecorder } from '../helpers/trips.ts';

// What the gateway asks of the desk first for an agent's CaseContext.
const CASE_CONTEXT_FETCH = `query($id: ID!) { case(id: $id) {
  id subject status assignee { id name } requester { id } order { number } asset { serialNumber }
  comments { id body public authorName createdAt }
  customer { id openCaseCount }
} }`;

const LATENCY_MS = 40;

describe('support round trips', () => {
  const dbs = seededDatabases();
  let trips!: TripRecorder<SupportConnector>;
  const run = useSubgraph({
    database: dbs.support,
    createConnector: (db, telemetry) => {
      trips = recordTrips(withLatency(createEmbeddedSupportConnector(db, telemetry), LATENCY_MS));
      return trips.connector;
    },
    createServer,
    createContext: createContextFactory,
  });

  const ticket = dbs.support
    .prepare(
      `SELECT t.id, u.name AS assignee, o.external_id AS customerId FROM tickets t
       JOIN users u ON u.id = t.assignee_id JOIN organizations o ON o.id = t.organization_id
       WHERE EXISTS (SELECT 1 FROM ticket_comments c WHERE c.ticket_id = t.id) ORDER BY t.id LIMIT 1`,
    )
    .get() as { id: number; assignee: string; customerId: string };

  it('answers a case with its comments, assignee and customer open-case count in one trip', async () => {
    trips.reset();
    const result = await run(CASE_CONTEXT_FETCH, { id: String(ticket.id) });
    expect(result.errors).toBeUndefined();
    const answer = result.data.case;
    expect(answer.assignee.name).toBe(ticket.assignee);
    expect(answer.comments.length).toBeGreaterThan(0);
    expect(answer.customer.id).toBe(ticket.customerId);
    const open = dbs.support
      .prepare(
        `SELECT COUNT(*) AS n FROM tickets t JOIN organizations o ON o.id = t.organization_id
         WHERE o.external_id = ? AND t.status IN ('new', 'open', 'pending', 'hold')`,
      )
      .get(ticket.customerId) as { n: number };
    expect(answer.customer.openCaseCount).toBe(open.n);
    expect(trips.depth()).toBe(1);
  });

  it('reads cases asked for alone as entities in one call, and nothing of their parts', async () => {
    const ids = (dbs.support.prepare('SELECT id FROM tickets ORDER BY id LIMIT 40').all() as { id: number }[]).map((row) => String(row.id));
    trips.reset();
    const result = await run('query($r: [_Any!]!) { _entities(representations: $r) { ... on Case { id subject } } }', {
      r: ids.map((id) => ({ __typename: 'Case', id })),
    });
    expect(result.errors).toBeUndefined();
    expect(result.data._entities.map((record: any) => record.id)).toEqual(ids);
    expect(trips.calls().map((call) => call.method)).toEqual(['casesByIds']);
  });

  it('answers case entities with their comments and assignees in one trip', async () => {
    const ids = (
      dbs.support.prepare('SELECT id FROM tickets WHERE assignee_id IS NOT NULL ORDER BY id DESC LIMIT 20').all() as { id: number }[]
    ).map((row) => String(row.id));
    trips.reset();
    const result = await run(
      'query($r: [_Any!]!) { _entities(representations: $r) { ... on Case { id assignee { name } comments { id } } } }',
      { r: ids.map((id) => ({ __typename: 'Case', id })) },
    );
    expect(result.errors).toBeUndefined();
    expect(result.data._entities.every((record: any) => typeof record.assignee?.name === 'string')).toBe(true);
    expect(trips.calls().map((call) => call.method)).toEqual(['caseGraphsByIds']);
  });
});
