import { describe, expect, it } from 'vitest';
import { withLatency } from '../../platform/latency.ts';
import { createEmbeddedCrmConnector } from '../../subgraphs/crm/src/connectors/embedded/index.ts';
import type { CrmConnector } from '../../subgraphs/crm/src/connectors/types.ts';
import { createContextFactory } from '../../subgraphs/crm/src/context.ts';
import { createServer } from '../../subgraphs/crm/src/server.ts';
import { seededDatabases } from '../helpers/stack.ts';
import { useSubgraph } from '../helpers/subgraph.ts';
import { recordTrips, type TripRecorder } from '../helpers/trips.ts';

// What the gateway asks of the CRM for an agent's CaseContext: the case's customer and requester.
const CASE_CONTEXT_FETCH = `query($r: [_Any!]!) { _entities(representations: $r) {
  ... on Customer { id name segment accountOwner activeContract { id status endDate supportTier } contacts { id } }
  ... on Contact { id name email phone }
} }`;

const LATENCY_MS = 40;

describe('crm round trips', () => {
  const dbs = seededDatabases();
  let trips!: TripRecorder<CrmConnector>;
  const run = useSubgraph({
    database: dbs.crm,
    createConnector: (db, telemetry) => {
      trips = recordTrips(withLatency(createEmbeddedCrmConnector(db, telemetry), LATENCY_MS));
      return trips.connector;
    },
    createServer,
    createContext: createContextFactory,
  });

  const account = dbs.crm
    .prepare(
      `SELECT a.AccountNumber AS customerId, c.Id AS contactId FROM Account a JOIN Contact c ON c.AccountId = a.Id
       WHERE EXISTS (SELECT 1 FROM Contract k WHERE k.AccountId = a.Id AND k.Status = 'Activated') ORDER BY a.AccountNumber LIMIT 1`,
    )
    .get() as { customerId: string; contactId: string };

  it("answers a case's customer with its contract and contacts, and its requester, in one trip", async () => {
    trips.reset();
    const result = await run(CASE_CONTEXT_FETCH, {
      r: [
        { __typename: 'Customer', id: account.customerId },
        { __typename: 'Contact', id: account.contactId },
      ],
    });
    expect(result.errors).toBeUndefined();
    const [customer, contact] = result.data._entities;
    expect(customer.id).toBe(account.customerId);
    expect(customer.contacts.map((c: { id: string }) => c.id)).toContain(account.contactId);
    expect(contact.id).toBe(account.contactId);
    expect(trips.depth()).toBe(1);
  });

  it('reads a customer asked for alone with one call', async () => {
    trips.reset();
    const result = await run('query($r: [_Any!]!) { _entities(representations: $r) { ... on Customer { id name } } }', {
      r: [{ __typename: 'Customer', id: account.customerId }],
    });
    expect(result.errors).toBeUndefined();
    expect(trips.calls().map((call) => call.method)).toEqual(['customersByIds']);
  });
});
