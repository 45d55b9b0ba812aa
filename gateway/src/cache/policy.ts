import {
  getNamedType,
  isInterfaceType,
  isObjectType,
  Kind,
  type DocumentNode,
  type FragmentDefinitionNode,
  type GraphQLNamedType,
  type GraphQLSchema,
  type SelectionSetNode,
} from 'graphql';
import type { Tier, TierTtls } from './tiers.ts';

/**
 * How long what a subgraph answers may be served again, by type and field. Each type has a
 * tier; a field may have a shorter one than its type (an invoice's number never changes, its
 * balance does). A subgraph fetch is cached for the shortest tier among the fields it selects,
 * so one volatile field makes the whole entity volatile for that fetch.
 *
 * - reference: data that changes with a catalogue or a reorganisation (products, agents, SLAs, units)
 * - profile: a customer's master data and contracts
 * - record: business documents that change rarely once issued (orders, shipments, invoices)
 * - volatile: what people act on (case status, balances, new cases, new shipments), served stale
 *   for at most the configured bound
 * - never: results of mutations
 *
 * Value types (Money, Address, order lines, …) have no tier of their own: the field that reaches
 * them decides. A type or field missing here is never cached: a new type must be placed in a
 * tier (a test checks that every type of the supergraph is).
 */
export { DEFAULT_TIER_TTLS_S, parseTierTtls, type Tier, type TierTtls } from './tiers.ts';

export const TYPE_TIERS: Readonly<Record<string, Tier | 'value'>> = {
  Query: 'value',
  Mutation: 'never',
  Product: 'reference',
  Agent: 'reference',
  SlaPolicy: 'reference',
  SlaTarget: 'reference',
  Asset: 'reference',
  Customer: 'profile',
  Contact: 'profile',
  Contract: 'profile',
  Order: 'record',
  Shipment: 'record',
  Invoice: 'record',
  Case: 'volatile',
  CaseConnection: 'volatile',
  CaseEdge: 'volatile',
  PageInfo: 'volatile',
  ReturnAuthorization: 'volatile',
  // The process layer writes the ERP order back onto the opportunity: seconds, not minutes.
  Opportunity: 'volatile',
  OpportunityLine: 'volatile',
  InstalledProduct: 'volatile',
  Entitlement: 'volatile',
  BillingSchedule: 'volatile',
  ServiceSubscription: 'volatile',
  ApplyBillingChangePayload: 'never',
  BillingChangeError: 'never',
  ApplySubscriptionChangePayload: 'never',
  SubscriptionChangeError: 'never',
  ReturnAuthorizationLine: 'volatile',
  CustomerActivity: 'never',
  CreateReturnAuthorizationPayload: 'never',
  ReturnAuthorizationError: 'never',
  CreateReturnOrderPayload: 'never',
  ReturnOrderError: 'never',
  CreateSalesOrderPayload: 'never',
  SalesOrderError: 'never',
  CancelSalesOrderPayload: 'never',
  ConvertOpportunityToOrderPayload: 'never',
  OnboardCustomerPayload: 'never',
  OnboardingError: 'never',
  BlockCustomerPayload: 'never',
  OnboardAccountPayload: 'never',
  AccountOnboardingError: 'never',
  Account: 'volatile',
  QuoteToOrderError: 'never',
  // A workflow changes as its steps run, and an operator acts on what it is now: never cached.
  Workflow: 'never',
  WorkflowConnection: 'never',
  WorkflowPageInfo: 'never',
  WorkflowStep: 'never',
  WorkflowEvent: 'never',
  ResolveWorkflowPayload: 'never',
  ResolveWorkflowError: 'never',
  Address: 'value',
  BillingProfile: 'value',
  Money: 'value',
  OrderLine: 'value',
  ShipmentLine: 'value',
  CaseComment: 'value',
  Warranty: 'value',
};

export const FIELD_TIERS: Readonly<Record<string, Tier>> = {
  'Query.cases': 'volatile',
  'Customer.openBalance': 'volatile',
  'Customer.openCaseCount': 'volatile',
  'Customer.cases': 'volatile',
  'Customer.invoices': 'volatile',
  'Customer.orders': 'record',
  'Customer.billing': 'record',
  'Contact.requestedCases': 'volatile',
  'Order.status': 'volatile',
  'Order.shipments': 'volatile',
  'Order.invoices': 'volatile',
  'Order.cases': 'volatile',
  'Shipment.status': 'volatile',
  'Shipment.deliveredDate': 'volatile',
  'Invoice.balance': 'volatile',
  'Invoice.status': 'volatile',
  'Invoice.paidDate': 'volatile',
  'Asset.cases': 'volatile',
  'Asset.warranty': 'record',
};

/** What one subgraph fetch may be cached for: per entity type for `_entities`, or as a whole. */
export type FetchCachePlan =
  | { readonly kind: 'entities'; readonly ttlMsByType: ReadonlyMap<string, number> }
  | { readonly kind: 'root'; readonly ttlMs: number }
  | { readonly kind: 'none' };

export class CachePolicy {
  private readonly tierMs: Record<Tier, number>;

  constructor(ttls: TierTtls) {
    this.tierMs = {
      reference: ttls.reference * 1000,
      profile: ttls.profile * 1000,
      record: ttls.record * 1000,
      volatile: ttls.volatile * 1000,
      never: 0,
    };
  }

  /** The cache plan of a fetch the query planner built, against the served API schema. */
  planFetch(schema: GraphQLSchema, document: DocumentNode): FetchCachePlan {
    const operations = document.definitions.filter((definition) => definition.kind === Kind.OPERATION_DEFINITION);
    if (operations.length !== 1 || operations[0]!.operation !== 'query') return { kind: 'none' };
    const fragments = new Map<string, FragmentDefinitionNode>();
    for (const definition of document.definitions) {
      if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.set(definition.name.value, definition);
    }
    const walk = new SelectionWalk(schema, fragments, (type, field) => this.fieldMs(type, field));
    const selections = operations[0]!.selectionSet.selections;
    const entities = selections.length === 1 && selections[0]!.kind === Kind.FIELD && selections[0]!.name.value === '_entities';
    if (entities) {
      const ttlMsByType = new Map<string, number>();
      for (const selection of (selections[0] as { selectionSet?: SelectionSetNode }).selectionSet?.selections ?? []) {
        if (selection.kind === Kind.FIELD && selection.name.value === '__typename') continue;
        if (selection.kind !== Kind.INLINE_FRAGMENT || !selection.typeCondition) return { kind: 'none' };
        const typeName = selection.typeCondition.name.value;
        const type = schema.getType(typeName);
        const entityMs = this.typeMs(typeName);
        const ms = type ? Math.min(entityMs, walk.selectionMs(type, selection.selectionSet)) : 0;
        ttlMsByType.set(typeName, Math.min(ttlMsByType.get(typeName) ?? Infinity, finite(ms)));
      }
      return { kind: 'entities', ttlMsByType };
    }
    const query = schema.getQueryType();
    const ms = query ? finite(walk.selectionMs(query, operations[0]!.selectionSet)) : 0;
    return ms > 0 ? { kind: 'root', ttlMs: ms } : { kind: 'none' };
  }

  /** A type's own lifetime (Infinity for value types, which inherit the field's). */
  private typeMs(typeName: string): number {
    const tier = TYPE_TIERS[typeName];
    if (tier === undefined) return 0;
    return tier === 'value' ? Infinity : this.tierMs[tier];
  }

  private fieldMs(typeName: string, fieldName: string): number {
    const tier = FIELD_TIERS[`${typeName}.${fieldName}`];
    return tier ? this.tierMs[tier] : this.typeMs(typeName);
  }
}

/** Nothing selected that bounds the lifetime tells nothing: not cached. */
const finite = (ms: number) => (Number.isFinite(ms) ? ms : 0);

class SelectionWalk {
  constructor(
    private readonly schema: GraphQLSchema,
    private readonly fragments: ReadonlyMap<string, FragmentDefinitionNode>,
    private readonly fieldMs: (type: string, field: string) => number,
  ) {}

  /** The shortest lifetime of anything selected under `type` (0 for anything unknown). */
  selectionMs(type: GraphQLNamedType, selectionSet: SelectionSetNode, depth = 0): number {
    if (depth > 32) return 0;
    let ms = Infinity;
    for (const selection of selectionSet.selections) {
      if (selection.kind === Kind.FIELD) {
        const name = selection.name.value;
        if (name === '__typename') continue;
        const field = isObjectType(type) || isInterfaceType(type) ? type.getFields()[name] : undefined;
        if (!field) return 0;
        ms = Math.min(ms, this.fieldMs(type.name, name));
        if (selection.selectionSet) ms = Math.min(ms, this.selectionMs(getNamedType(field.type), selection.selectionSet, depth + 1));
      } else {
        const fragment = selection.kind === Kind.INLINE_FRAGMENT ? selection : this.fragments.get(selection.name.value);
        if (!fragment) return 0;
        const condition = fragment.typeCondition ? this.schema.getType(fragment.typeCondition.name.value) : type;
        if (!condition) return 0;
        ms = Math.min(ms, this.selectionMs(condition, fragment.selectionSet, depth + 1));
      }
      if (ms === 0) return 0;
    }
    return ms;
  }
}
