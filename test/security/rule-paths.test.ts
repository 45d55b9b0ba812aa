import { buildSubgraphSchema, type GraphQLResolverMap } from '@apollo/subgraph';
import { execute, isIntrospectionType, isObjectType, parse, type GraphQLSchema } from 'graphql';
import { allow, deny, rule, shield } from 'graphql-shield';
import { applyMiddleware, type IMiddlewareTypeMap } from 'graphql-middleware';
import { describe, expect, it } from 'vitest';
import { silentTelemetry } from '../../platform/connector-telemetry.ts';
import {
  authorize,
  grantsFor,
  permits,
  type AuthorizedContext,
  type Owners,
  type PolicyTable,
  type SensitiveFields,
} from '../../platform/authorization.ts';
import { forbidden, type Identity } from '../../platform/identity.ts';
import { createLogger, type Logger } from '../../platform/logger.ts';
import { createEmbeddedCrmConnector } from '../../subgraphs/crm/src/connectors/embedded/index.ts';
import { createContextFactory as crmContext } from '../../subgraphs/crm/src/context.ts';
import { CRM_OWNERS, CRM_POLICY, CRM_SENSITIVE } from '../../subgraphs/crm/src/policy.ts';
import { resolvers as crmResolvers } from '../../subgraphs/crm/src/resolvers/index.ts';
import { CRM_SDL } from '../../subgraphs/crm/src/server.ts';
import { createEmbeddedErpConnector } from '../../subgraphs/erp/src/connectors/embedded/index.ts';
import { createContextFactory as erpContext } from '../../subgraphs/erp/src/context.ts';
import { ERP_OWNERS, ERP_POLICY, ERP_SENSITIVE } from '../../subgraphs/erp/src/policy.ts';
import { resolvers as erpResolvers } from '../../subgraphs/erp/src/resolvers/index.ts';
import { ERP_SDL } from '../../subgraphs/erp/src/server.ts';
import { createEmbeddedSupportConnector } from '../../subgraphs/support/src/connectors/embedded/index.ts';
import { createContextFactory as supportContext } from '../../subgraphs/support/src/context.ts';
import { SUPPORT_OWNERS, SUPPORT_POLICY } from '../../subgraphs/support/src/policy.ts';
import { resolvers as supportResolvers } from '../../subgraphs/support/src/resolvers/index.ts';
import { SUPPORT_SDL } from '../../subgraphs/support/src/server.ts';
import { clock, seededDatabases } from '../helpers/stack.ts';
import { ownRecords } from './fixtures.ts';

/**
 * The same policy table as graphql-shield rules (deny by default, federation fields allowed, one
 * rule per field, no rule cache, external errors passed through): an independent rule engine the
 * subgraphs' own field rules are compared with.
 */
function shieldReference(schema: GraphQLSchema, policy: PolicyTable, owners: Owners, sensitive: SensitiveFields): GraphQLSchema {
  const federation = ['Query._entities', 'Query._service', '_Service.sdl'];
  const tree: Record<string, Record<string, unknown>> = {};
  for (const type of Object.values(schema.getTypeMap())) {
    if (!isObjectType(type) || isIntrospectionType(type)) continue;
    const fields: Record<string, unknown> = {};
    for (const field of Object.keys(type.getFields())) {
      const coordinate = `${type.name}.${field}`;
      if (federation.includes(coordinate)) {
        fields[field] = allow;
        continue;
      }
      const grants = grantsFor(policy, type.name, field);
      if (grants.length === 0) continue;
      const owner = owners[type.name];
      const audited = sensitive[coordinate];
      fields[field] = rule(coordinate, { cache: 'no_cache' })((parent: unknown, _args: unknown, context: AuthorizedContext) => {
        const allowed = permits(context.identity, grants, owner?.(parent));
        if (audited) context.audit.record(coordinate, audited(parent) ?? null, allowed);
        return allowed || forbidden();
      });
    }
    tree[type.name] = fields;
  }
  const middleware = shield(tree as never, {
    fallbackRule: deny,
    fallbackError: () => forbidden(),
    allowExternalErrors: true,
    debug: false,
  }).generate(schema);
  return applyMiddleware(schema, middleware as IMiddlewareTypeMap);
}

type Answer = { data?: unknown; errors?: { path?: (string | number)[] }[] };

/** Whether a path leads through a value the answer holds as null (an ancestor nulled by an error). */
function underNull(data: unknown, path: readonly (string | number)[]): boolean {
  let value: unknown = data;
  for (const step of path.slice(0, -1)) {
    if (value === null) return true;
    if (typeof value !== 'object' || value === undefined) return false;
    value = (value as Record<string | number, unknown>)[step];
  }
  return value === null;
}

/**
 * Every field rule runs synchronously in the subgraph, by one mechanism. Its answers (data and
 * its order), its errors and its audit events must be graphql-shield's for the same policy: the
 * same data, every error graphql-shield reports, and beyond those only errors of fields under a
 * value already nulled (graphql-shield, evaluating each rule a tick later, answers before those
 * come in).
 */
describe('field rules, against graphql-shield as the reference', () => {
  const dbs = seededDatabases();
  const mine = ownRecords(dbs);
  const theirs = ownRecords(dbs, { notOf: mine.customerId });
  const logger = createLogger('test', 'silent');

  type Subgraph = {
    sdl: string;
    resolvers: unknown;
    policy: PolicyTable;
    owners: Owners;
    sensitive: SensitiveFields;
    context: (identity: Identity) => Promise<AuthorizedContext>;
  };
  const subgraphs: Record<'crm' | 'erp' | 'support', Subgraph> = {
    crm: {
      sdl: CRM_SDL,
      resolvers: crmResolvers,
      policy: CRM_POLICY,
      owners: CRM_OWNERS,
      sensitive: CRM_SENSITIVE,
      context: (identity) =>
        crmContext({ connector: createEmbeddedCrmConnector(dbs.crm, silentTelemetry('crm')), logger, clock })(
          null,
          { correlationId: 't' },
          identity,
        ),
    },
    erp: {
      sdl: ERP_SDL,
      resolvers: erpResolvers,
      policy: ERP_POLICY,
      owners: ERP_OWNERS,
      sensitive: ERP_SENSITIVE,
      context: (identity) =>
        erpContext({ connector: createEmbeddedErpConnector(dbs.erp, silentTelemetry('erp')), logger, clock })(
          null,
          { correlationId: 't' },
          identity,
        ),
    },
    support: {
      sdl: SUPPORT_SDL,
      resolvers: supportResolvers,
      policy: SUPPORT_POLICY,
      owners: SUPPORT_OWNERS,
      sensitive: {},
      context: (identity) =>
        supportContext({ connector: createEmbeddedSupportConnector(dbs.support, silentTelemetry('support')), logger, clock })(
          null,
          { correlationId: 't' },
          identity,
        ),
    },
  };

  const schemas = (subgraph: Subgraph, reference: boolean): GraphQLSchema => {
    const schema = buildSubgraphSchema([{ typeDefs: parse(subgraph.sdl), resolvers: subgraph.resolvers as GraphQLResolverMap<unknown> }]);
    return (reference ? shieldReference : authorize)(schema, subgraph.policy, subgraph.owners, subgraph.sensitive);
  };

  /** The answer, the audit events and whether graphql-shield served the request. */
  async function run(schema: GraphQLSchema, subgraph: Subgraph, identity: Identity, query: string, variables: Record<string, unknown>) {
    const contextValue = await subgraph.context(identity);
    const result = await execute({ schema, document: parse(query), contextValue, variableValues: variables });
    const events: unknown[] = [];
    contextValue.audit.flush({ info: (event: unknown) => events.push(event) } as unknown as Logger);
    return { answer: JSON.parse(JSON.stringify(result)) as unknown, events, shielded: '_shield' in contextValue };
  }

  const entities = (selection: string) => `query($r: [_Any!]!) { _entities(representations: $r) { __typename ${selection} } }`;
  const staff = (role: Identity['roles'][number]): Identity => ({ subject: role, roles: [role], customerId: null });
  const identities: Identity[] = [
    staff('support_agent'),
    staff('support_lead'),
    staff('sales_rep'),
    staff('finance'),
    staff('integration'),
    { subject: 'both', roles: ['support_agent', 'finance'], customerId: null },
    { subject: 'portal', roles: ['portal_customer'], customerId: mine.customerId },
    { subject: 'nobody', roles: [], customerId: null },
  ];
  const customers = [mine.customerId, theirs.customerId, 'C99999'].map((id) => ({ __typename: 'Customer', id }));
  const cases: [keyof typeof subgraphs, string, Record<string, unknown>][] = [
    // What the gateway asks for CaseQueue and CaseContext.
    [
      'support',
      '{ cases(filter: { status: [NEW, OPEN] }, first: 30) { totalCount pageInfo { hasNextPage endCursor } nodes { id subject status priority createdAt assignee { name } customer { id } order { number } } } }',
      {},
    ],
    ['erp', entities('... on Customer { openBalance { amount currency } }'), { r: customers }],
    ['crm', entities('... on Customer { name }'), { r: customers }],
    [
      'erp',
      entities('... on Order { status }'),
      { r: [mine.orderNumber, theirs.orderNumber, 'SO-0'].map((number) => ({ __typename: 'Order', number })) },
    ],
    [
      'support',
      `{ case(id: "${mine.caseId}") { id subject description status priority type createdAt updatedAt assignee { id name } requester { id }
         comments { id body public authorName createdAt } customer { id openCaseCount } order { number } asset { serialNumber } } }`,
      {},
    ],
    [
      'erp',
      entities(
        `... on Customer { billing { currency paymentTerms creditHold creditLimit { amount } taxRegistrationNumber } openBalance { amount currency } }
         ... on Order { orderDate status total { amount currency } lines { sequence quantity product { sku name } }
           shipments { id carrier status } invoices { number status dueDate amount { amount } balance { amount currency } paidDate } }
         ... on Asset { product { sku name } warranty { status startDate endDate coverage daysRemaining } }`,
      ),
      {
        r: [
          ...customers,
          { __typename: 'Order', number: mine.orderNumber },
          { __typename: 'Order', number: theirs.orderNumber },
          { __typename: 'Asset', serialNumber: mine.serialNumber },
          { __typename: 'Asset', serialNumber: theirs.serialNumber },
        ],
      },
    ],
    [
      'support',
      entities('... on Contract { sla { name businessHoursOnly targets { priority firstResponseHours resolutionHours } } }'),
      { r: [{ __typename: 'Contract', id: mine.contractId, supportTier: 'PREMIUM' }] },
    ],
    // Denied fields, nullable and not, behind aliases and fragments.
    [
      'erp',
      `{ invoice(number: "${mine.invoiceNumber}") { number amount { amount } balance { amount } paidDate status customer { id } }
         other: invoice(number: "${theirs.invoiceNumber}") { ...I } } fragment I on Invoice { number paidDate amount { amount } }`,
      {},
    ],
    [
      'support',
      entities(
        '... on Case { id subject comments { id body public } asset { serialNumber } } ... on Customer { id openCaseCount cases(first: 3) { id } }',
      ),
      {
        r: [{ __typename: 'Case', id: mine.caseId }, { __typename: 'Case', id: theirs.caseId }, ...customers],
      },
    ],
    [
      'crm',
      `{ customer(id: "${mine.customerId}") { id name segment contacts { id name email phone title } contracts { id status } activeContract { id } } }`,
      {},
    ],
    // Errors of the resolvers themselves.
    ['support', '{ cases(first: 500) { totalCount } }', {}],
    ['support', entities('... on Customer { a: cases(first: 0) { id } b: cases(first: 1000) { id } openCaseCount }'), { r: customers }],
  ];

  const built = Object.fromEntries(
    Object.entries(subgraphs).map(([name, subgraph]) => [name, { fast: schemas(subgraph, false), reference: schemas(subgraph, true) }]),
  ) as Record<keyof typeof subgraphs, { fast: GraphQLSchema; reference: GraphQLSchema }>;

  it.each(cases.map((c, i) => [i, ...c] as const))(
    'answers and audits as graphql-shield does (%i: %s)',
    async (_i, name, query, variables) => {
      for (const identity of identities) {
        const subgraph = subgraphs[name];
        const expected = await run(built[name].reference, subgraph, identity, query, variables);
        const actual = await run(built[name].fast, subgraph, identity, query, variables);
        const mineAnswer = actual.answer as Answer;
        const theirAnswer = expected.answer as Answer;
        expect(JSON.stringify(mineAnswer.data), identity.subject).toBe(JSON.stringify(theirAnswer.data));
        expect(actual.events, identity.subject).toEqual(expected.events);
        const errors = (mineAnswer.errors ?? []).map((error) => JSON.stringify(error));
        const reference = (theirAnswer.errors ?? []).map((error) => JSON.stringify(error));
        for (const error of reference) expect(errors, identity.subject).toContain(error);
        const extra = (mineAnswer.errors ?? []).filter((error) => !reference.includes(JSON.stringify(error)));
        for (const error of extra) expect(underNull(mineAnswer.data, error.path ?? []), JSON.stringify(error)).toBe(true);
        expect(expected.shielded).toBe(true);
        expect(actual.shielded).toBe(false);
      }
    },
  );

  it('denies what graphql-shield denies, for every identity, with FORBIDDEN', async () => {
    // The reference must be able to tell: some of the requests above are refused for some identities.
    let denials = 0;
    for (const [name, query, variables] of cases) {
      for (const identity of identities) {
        const { answer } = await run(built[name].fast, subgraphs[name], identity, query, variables);
        denials += ((answer as Answer).errors ?? []).filter((error) => JSON.stringify(error).includes('FORBIDDEN')).length;
      }
    }
    expect(denials).toBeGreaterThan(20);
  });
});
