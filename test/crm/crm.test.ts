import { describe, expect, it } from 'vitest';
import { createEmbeddedCrmConnector } from '../../subgraphs/crm/src/connectors/embedded/index.ts';
import { createContextFactory } from '../../subgraphs/crm/src/context.ts';
import { createServer } from '../../subgraphs/crm/src/server.ts';
import { AS_OF, seededDatabases } from '../helpers/stack.ts';
import { useSubgraph } from '../helpers/subgraph.ts';

describe('crm subgraph', () => {
  const dbs = seededDatabases();
  const run = useSubgraph({
    database: dbs.crm,
    createConnector: createEmbeddedCrmConnector,
    createServer,
    createContext: createContextFactory,
  });

  it('resolves customers by customer number (Account.AccountNumber), not by Salesforce Id', async () => {
    const accounts = dbs.crm
      .prepare('SELECT Id, Name, AccountNumber FROM Account WHERE AccountNumber IS NOT NULL ORDER BY AccountNumber LIMIT 5')
      .all() as {
      Id: string;
      Name: string;
      AccountNumber: string;
    }[];
    const result = await run('query($r: [_Any!]!) { _entities(representations: $r) { ... on Customer { id name } } }', {
      r: [...accounts.map((a) => ({ __typename: 'Customer', id: a.AccountNumber })), { __typename: 'Customer', id: accounts[0]!.Id }],
    });
    expect(result.errors).toBeUndefined();
    expect(result.data._entities).toEqual([...accounts.map((a) => ({ id: a.AccountNumber, name: a.Name })), null]);
  });

  it("gives a customer's contacts and the contract in force today", async () => {
    const row = dbs.crm
      .prepare(
        `SELECT a.AccountNumber, k.ContractNumber FROM Contract k JOIN Account a ON a.Id = k.AccountId
      WHERE k.Status = 'Activated' AND k.StartDate <= ? AND k.EndDate >= ? LIMIT 1`,
      )
      .get(AS_OF, AS_OF) as { AccountNumber: string; ContractNumber: string };
    const contacts = dbs.crm
      .prepare('SELECT c.Id FROM Contact c JOIN Account a ON a.Id = c.AccountId WHERE a.AccountNumber = ?')
      .all(row.AccountNumber) as { Id: string }[];
    const result = await run(
      'query($id: ID!) { customer(id: $id) { contacts { id customer { id } } activeContract { id status } contracts { id } } }',
      {
        id: row.AccountNumber,
      },
    );
    expect(result.errors).toBeUndefined();
    const customer = result.data.customer;
    expect(customer.contacts.map((c: any) => c.id).sort()).toEqual(contacts.map((c) => c.Id).sort());
    expect(customer.contacts.every((c: any) => c.customer.id === row.AccountNumber)).toBe(true);
    expect(customer.activeContract).toEqual({ id: row.ContractNumber, status: 'ACTIVATED' });
    expect(customer.contracts.map((c: any) => c.id)).toContain(row.ContractNumber);
  });

  it('resolves contacts by their 18-character CRM id', async () => {
    const contact = dbs.crm.prepare('SELECT Id, FirstName, LastName, Email FROM Contact LIMIT 1').get() as {
      Id: string;
      FirstName: string;
      LastName: string;
      Email: string;
    };
    const result = await run('query($r: [_Any!]!) { _entities(representations: $r) { ... on Contact { id name email } } }', {
      r: [{ __typename: 'Contact', id: contact.Id }],
    });
    expect(result.data._entities[0]).toEqual({ id: contact.Id, name: `${contact.FirstName} ${contact.LastName}`, email: contact.Email });
  });

  it('gives null for an unknown customer and BAD_USER_INPUT for an empty id', async () => {
    const unknown = await run('{ customer(id: "C99999") { id } }');
    expect(unknown.errors).toBeUndefined();
    expect(unknown.data.customer).toBeNull();
    const empty = await run('{ customer(id: "") { id } }');
    expect(empty.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  });
});
