import {
  getNamedType,
  isAbstractType,
  isCompositeType,
  isIntrospectionType,
  isObjectType,
  Kind,
  type FragmentDefinitionNode,
  type GraphQLCompositeType,
  type GraphQLObjectType,
  type GraphQLResolveInfo,
  type GraphQLSchema,
  type OperationDefinitionNode,
  type SelectionSetNode,
} from 'graphql';
import { applyMiddleware, type IMiddlewareTypeMap } from 'graphql-middleware';
import { allow, deny, rule, shield } from 'graphql-shield';
import type { Logger } from './logger.ts';
import { forbidden, type Identity, type Role } from './identity.ts';

/**
 * A grant in a policy table: a role that may see the field, or `portal_customer:own`: a portal
 * customer may see it on records of its own customer (the type's owner function says whose a
 * record is). `integration`, Concord's own service identity, is granted everything.
 */
export type Grant = Role | 'portal_customer:own';

/**
 * One subgraph's policy: `Type.field` (or `Type.*` for every field of a type) → who may see
 * it. A field the table does not name is visible to no one.
 */
export type PolicyTable = Readonly<Record<string, readonly Grant[]>>;

/** Whose record a parent object is (a customer number), per type, for `portal_customer:own`. */
export type Owners = Readonly<Record<string, (parent: any) => string | null | undefined>>;

/** Fields whose reads are audited, with the key of the record read. */
export type SensitiveFields = Readonly<Record<string, (parent: any) => string | null | undefined>>;

/** What a subgraph context must carry for the rules. */
export interface AuthorizedContext {
  readonly identity: Identity;
  readonly audit: AuditTrail;
}

/** Federation's own fields: the gateway, already authenticated, needs them on every request. */
const FEDERATION_FIELDS = ['Query._entities', 'Query._service', '_Service.sdl'];

/** The grants for one coordinate: its own entry, else its type's `*` entry, else none. */
export function grantsFor(policy: PolicyTable, type: string, field: string): readonly Grant[] {
  return policy[`${type}.${field}`] ?? policy[`${type}.*`] ?? [];
}

/** Whether `identity` may see a field granted to `grants` on `parent`. */
export function permits(identity: Identity, grants: readonly Grant[], owner: string | null | undefined): boolean {
  for (const role of identity.roles) {
    if (role === 'integration' || grants.includes(role)) return true;
    if (role === 'portal_customer' && grants.includes('portal_customer:own') && owner != null && owner === identity.customerId) return true;
  }
  return false;
}

export interface AuthorizeOptions {
  /** False: every request is served by graphql-shield's rules (the reference the tests compare with). */
  readonly synchronousRules?: boolean;
}

/** A resolver as graphql-middleware hands it to a field's middleware. */
type Resolve = (parent: unknown, args: unknown, context: unknown, info: GraphQLResolveInfo) => unknown;
type FieldMiddleware = (resolve: Resolve, parent: unknown, args: unknown, context: AuthorizedContext, info: GraphQLResolveInfo) => unknown;
/** A field's middleware as graphql-shield generates it. */
type ShieldMiddleware = FieldMiddleware | { fragment?: string; fragments?: string[]; resolve?: FieldMiddleware };

/**
 * Wraps a subgraph schema in graphql-shield rules built from its policy table: deny by default
 * (fallbackRule), federation fields allowed explicitly, one rule per field so `_entities` cannot
 * bypass them, no rule cache (rules read `parent`, and a cached answer would leak one record's
 * verdict to another), and external errors passed through so an outage reads as an outage.
 * Throws when the table names a field the schema does not have, or grants `:own` on a type
 * with no owner function.
 *
 * graphql-shield evaluates each rule asynchronously, which makes every field of every record a
 * promise. A request in which no rule can deny anything does not need that: when every field
 * its operation selects is granted outright to one of the identity's roles (no `:own` grant
 * to weigh against a record's owner), its rules run synchronously, before each resolver, with
 * the same verdicts and audit records. Any other request (a field that may be denied, an `own`
 * grant, no identity) is served by graphql-shield's rules as they are, so that denials and the
 * errors they raise come out exactly as before.
 */
export function authorize(
  schema: GraphQLSchema,
  policy: PolicyTable,
  owners: Owners,
  sensitive: SensitiveFields = {},
  options: AuthorizeOptions = {},
): GraphQLSchema {
  const known = new Set<string>(FEDERATION_FIELDS);
  const ruleTree: Record<string, Record<string, unknown>> = {};
  const fast: Record<string, Record<string, FieldMiddleware>> = {};
  for (const type of Object.values(schema.getTypeMap())) {
    if (!isObjectType(type) || isIntrospectionType(type)) continue;
    const fields: Record<string, unknown> = {};
    const fastFields: Record<string, FieldMiddleware> = {};
    for (const field of Object.keys(type.getFields())) {
      const coordinate = `${type.name}.${field}`;
      known.add(coordinate);
      if (FEDERATION_FIELDS.includes(coordinate)) {
        fields[field] = allow;
        fastFields[field] = allowField;
        continue;
      }
      const grants = grantsFor(policy, type.name, field);
      if (grants.length === 0) {
        fastFields[field] = denyField; // fallbackRule: deny
        continue;
      }
      const owner = owners[type.name];
      if (grants.includes('portal_customer:own') && !owner) {
        throw new Error(`policy grants ${coordinate} to portal_customer:own, but ${type.name} has no owner function`);
      }
      const audited = sensitive[coordinate];
      fields[field] = rule(`${coordinate}`, { cache: 'no_cache' })((parent: unknown, _args: unknown, context: AuthorizedContext) => {
        const allowed = permits(context.identity, grants, owner?.(parent));
        if (audited) context.audit.record(coordinate, audited(parent) ?? null, allowed);
        return allowed || forbidden();
      });
      fastFields[field] = fieldRule(coordinate, grants, owner, audited);
    }
    ruleTree[type.name] = fields;
    fast[type.name] = fastFields;
  }
  for (const key of Object.keys(policy)) {
    const [type, field] = key.split('.');
    if (field === '*' ? !schema.getType(type ?? '') : !known.has(key))
      throw new Error(`policy names ${key}, which the schema does not have`);
  }
  const shielded = shield(ruleTree as never, {
    fallbackRule: deny,
    fallbackError: () => forbidden(),
    allowExternalErrors: true,
    debug: false,
  }).generate(schema) as Record<string, Record<string, ShieldMiddleware>>;

  const undeniable = options.synchronousRules === false ? () => false : undeniableRequests(schema, policy);
  const middleware: Record<string, Record<string, ShieldMiddleware>> = {};
  for (const [typeName, fields] of Object.entries(shielded)) {
    middleware[typeName] = {};
    for (const [field, shieldRule] of Object.entries(fields)) {
      const fastRule = fast[typeName]?.[field];
      // A rule is a middleware function; allow and deny (logic rules) come with their fragments.
      const shieldResolve = typeof shieldRule === 'function' ? shieldRule : shieldRule.resolve;
      if (!fastRule || typeof shieldResolve !== 'function') throw new Error(`no rule for ${typeName}.${field}`);
      const resolve: FieldMiddleware = (next, parent, args, context, info) =>
        undeniable(context, info) ? fastRule(next, parent, args, context, info) : shieldResolve(next, parent, args, context, info);
      middleware[typeName][field] = typeof shieldRule === 'function' ? resolve : { ...shieldRule, resolve };
    }
  }
  return applyMiddleware(schema, middleware as IMiddlewareTypeMap);
}

const allowField: FieldMiddleware = (resolve, parent, args, context, info) => resolve(parent, args, context, info);

/** A field no grant names: visible to no one (deny by default). */
const denyField: FieldMiddleware = () => {
  throw forbidden();
};

/**
 * The synchronous form of a field's rule: the same verdict (see permits), the same audit record,
 * a failing rule denies, and a denied field is FORBIDDEN.
 */
function fieldRule(
  coordinate: string,
  grants: readonly Grant[],
  owner: ((parent: any) => string | null | undefined) | undefined,
  audited: ((parent: any) => string | null | undefined) | undefined,
): FieldMiddleware {
  return (resolve, parent, args, context, info) => {
    let allowed: boolean;
    try {
      allowed = permits(context.identity, grants, owner?.(parent));
      if (audited) context.audit.record(coordinate, audited(parent) ?? null, allowed);
    } catch {
      allowed = false;
    }
    if (!allowed) throw forbidden();
    return resolve(parent, args, context, info);
  };
}

/**
 * Tells, per request, whether no rule can deny any field its operation selects to its identity.
 * Decided once per request (its context) from the operation's selections, and remembered per
 * operation (Apollo Server reuses the parsed document of a query it has seen) and set of roles.
 */
function undeniableRequests(schema: GraphQLSchema, policy: PolicyTable) {
  const byOperation = new WeakMap<OperationDefinitionNode, Map<string, boolean>>();
  const byRequest = new WeakMap<object, { operation: OperationDefinitionNode; undeniable: boolean }>();
  return (context: AuthorizedContext, info: GraphQLResolveInfo): boolean => {
    if (typeof context !== 'object' || context === null) return false;
    const known = byRequest.get(context);
    if (known?.operation === info.operation) return known.undeniable;
    const roles: readonly Role[] | undefined = context.identity?.roles;
    let undeniable = false;
    if (Array.isArray(roles) && roles.length > 0) {
      const key = [...roles].sort().join(' ');
      let verdicts = byOperation.get(info.operation);
      if (!verdicts) byOperation.set(info.operation, (verdicts = new Map()));
      const cached = verdicts.get(key);
      undeniable = cached ?? !selectsDeniable(schema, policy, roles, info.operation, info.fragments);
      if (cached === undefined) verdicts.set(key, undeniable);
    }
    byRequest.set(context, { operation: info.operation, undeniable });
    return undeniable;
  };
}

/**
 * Whether an operation selects, on any type a selection may meet at run time, a field that
 * `roles` are not all granted outright: a field no role of theirs is granted, or one they see
 * only on their own customer's records. Conservative: @skip and @include are not read.
 */
function selectsDeniable(
  schema: GraphQLSchema,
  policy: PolicyTable,
  roles: readonly Role[],
  operation: OperationDefinitionNode,
  fragments: Readonly<Record<string, FragmentDefinitionNode>>,
): boolean {
  const granted = (type: string, field: string): boolean => {
    if (FEDERATION_FIELDS.includes(`${type}.${field}`)) return true;
    const grants = grantsFor(policy, type, field);
    return roles.some((role) => role === 'integration' || grants.includes(role));
  };
  const spread = new Set<string>();
  const visit = (selectionSet: SelectionSetNode, parent: GraphQLCompositeType): boolean => {
    for (const selection of selectionSet.selections) {
      if (selection.kind === Kind.FIELD) {
        const name = selection.name.value;
        if (name.startsWith('__')) continue; // __typename and introspection: no rule applies
        const types: readonly GraphQLObjectType[] = isAbstractType(parent) ? schema.getPossibleTypes(parent) : [parent];
        for (const type of types) {
          const field = type.getFields()[name];
          if (!field) continue;
          if (!granted(type.name, name)) return true;
          const named = getNamedType(field.type);
          if (selection.selectionSet && isCompositeType(named) && visit(selection.selectionSet, named)) return true;
        }
      } else if (selection.kind === Kind.INLINE_FRAGMENT) {
        const condition = selection.typeCondition ? schema.getType(selection.typeCondition.name.value) : parent;
        if (!isCompositeType(condition)) return true;
        if (visit(selection.selectionSet, condition)) return true;
      } else {
        const name = selection.name.value;
        if (spread.has(name)) continue;
        spread.add(name);
        const fragment = fragments[name];
        const condition = fragment ? schema.getType(fragment.typeCondition.name.value) : undefined;
        if (!fragment || !isCompositeType(condition)) return true;
        if (visit(fragment.selectionSet, condition)) return true;
      }
    }
    return false;
  };
  const root = schema.getRootType(operation.operation);
  return !root || visit(operation.selectionSet, root);
}

/**
 * The audit events of one request: every read of a sensitive field (who, role, what, which
 * record, outcome), gathered per field and written as one structured line each at the end.
 */
export class AuditTrail {
  private readonly reads = new Map<string, { records: Set<string>; allowed: boolean }>();

  constructor(
    private readonly identity: Identity,
    private readonly correlationId: string,
  ) {}

  record(what: string, record: string | null, allowed: boolean): void {
    const key = `${what}\u0000${allowed}`;
    const entry = this.reads.get(key) ?? { records: new Set<string>(), allowed };
    if (record !== null) entry.records.add(record);
    this.reads.set(key, entry);
  }

  /** Writes the request's events to `audit` (an auditLogger, made once per service). */
  flush(audit: Logger): void {
    for (const [key, entry] of this.reads) {
      audit.info(
        {
          audit: true,
          event: 'sensitive_read',
          who: this.identity.subject,
          roles: this.identity.roles,
          customer: this.identity.customerId,
          what: key.split('\u0000')[0],
          records: [...entry.records],
          outcome: entry.allowed ? 'allowed' : 'denied',
          correlationId: this.correlationId,
        },
        'audit',
      );
    }
    this.reads.clear();
  }
}
