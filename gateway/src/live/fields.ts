/**
 * The subscriptions the gateway serves. Each is pushed when an event names its entity (the
 * event schemas' `x-invalidates`), and each push is the answer to a query the gateway derives
 * from the subscription: the same selection on the root query field that reads the entity, asked
 * through the supergraph as the subscriber, so field rules and portal scope apply to every
 * message exactly as to a query.
 */
export interface LiveField {
  /** The Subscription field. */
  readonly name: string;
  /** The graph type whose events push it. */
  readonly entity: string;
  /** The Query field that reads one entity, and its key argument. */
  readonly query: { readonly field: string; readonly argument: string; readonly keyType: string };
  /** The subscription argument naming the one entity followed; null: any entity of the type (filtered). */
  readonly keyArgument: string | null;
}

export const LIVE_FIELDS: readonly LiveField[] = [
  { name: 'caseUpdated', entity: 'Case', query: { field: 'case', argument: 'id', keyType: 'ID!' }, keyArgument: 'id' },
  { name: 'casesChanged', entity: 'Case', query: { field: 'case', argument: 'id', keyType: 'ID!' }, keyArgument: null },
  { name: 'workflowChanged', entity: 'Workflow', query: { field: 'workflow', argument: 'id', keyType: 'ID!' }, keyArgument: 'id' },
  { name: 'orderStatusChanged', entity: 'Order', query: { field: 'order', argument: 'number', keyType: 'ID!' }, keyArgument: 'number' },
];

/** The Subscription type added to the supergraph's API schema (its types are the supergraph's). */
export const LIVE_SDL = /* GraphQL */ `
  extend schema {
    subscription: Subscription
  }

  """
  Live updates, over graphql-ws (WebSocket, /graphql) or Server-Sent Events (/graphql/stream). Each
  message is the entity as a query would answer it now, for the subscriber: what its role may
  see, and for a portal customer only its own records. A message comes when a system or Concord
  changes the entity; two changes close together may come as one message.
  """
  type Subscription {
    "The case each time it changes: a comment, its status, its priority, its assignee."
    caseUpdated(id: ID!): Case
    """
    Every case that changes and matches the filter (status, priority and customer, as the case is
    after the change). A portal customer receives its own cases only.
    """
    casesChanged(filter: CaseFilter): Case
    "The workflow each time its state or one of its steps changes."
    workflowChanged(id: ID!): Workflow
    "The order each time its status changes (created, released, shipped, cancelled, ...)."
    orderStatusChanged(number: ID!): Order
  }
`;
