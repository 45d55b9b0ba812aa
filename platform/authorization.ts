import { isIntrospectionType, isObjectType, type GraphQLResolveInfo, type GraphQLSchema } from 'graphql';
import { applyMiddleware, type IMiddlewareTypeMap } from 'graphql-middleware';
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

/** A resolver as graphql-middleware hands it to a field's middleware. */
type Resolve = (parent: unknown, args: unknown, context: unknown, info: GraphQLResolveInfo) => unknown;
type FieldMiddleware = (resolve: Resolve, parent: unknown, args: unknown, context: AuthorizedContext, info: GraphQLResolveInfo) => unknown;

/**
 * Wraps a subgraph schema in field rules built from its policy table, one mechanism for every
 * request: deny by default (a field no grant names is visible to no one), federation fields
 * allowed explicitly, one rule per field so `_entities` cannot bypass them, each rule evaluated
 * before its resolver against that field's own parent (no verdict is reused for another record).
 * Throws when the table names a field the schema does not have, or grants `:own` on a type with
 * no owner function.
 *
 * A rule that allows costs a few comparisons and lets its resolver run as it would: a field of
 * a record stays a plain value, not a promise. A rule that denies answers FORBIDDEN as a
 * rejected promise, so the other fields of the same record still run and report theirs, as a
 * rule engine that evaluates every rule asynchronously (graphql-shield, the reference the tests
 * compare with) does. A rule whose owner function fails denies.
 */
export function authorize(schema: GraphQLSchema, policy: PolicyTable, owners: Owners, sensitive: SensitiveFields = {}): GraphQLSchema {
  const known = new Set<string>(FEDERATION_FIELDS);
  const middleware: Record<string, Record<string, FieldMiddleware>> = {};
  for (const type of Object.values(schema.getTypeMap())) {
    if (!isObjectType(type) || isIntrospectionType(type)) continue;
    const fields: Record<string, FieldMiddleware> = {};
    for (const field of Object.keys(type.getFields())) {
      const coordinate = `${type.name}.${field}`;
      known.add(coordinate);
      if (FEDERATION_FIELDS.includes(coordinate)) {
        fields[field] = allowField;
        continue;
      }
      const grants = grantsFor(policy, type.name, field);
      if (grants.length === 0) {
        fields[field] = denyField;
        continue;
      }
      const owner = owners[type.name];
      if (grants.includes('portal_customer:own') && !owner) {
        throw new Error(`policy grants ${coordinate} to portal_customer:own, but ${type.name} has no owner function`);
      }
      fields[field] = fieldRule(coordinate, grants, owner, sensitive[coordinate]);
    }
    middleware[type.name] = fields;
  }
  for (const key of Object.keys(policy)) {
    const [type, field] = key.split('.');
    if (field === '*' ? !schema.getType(type ?? '') : !known.has(key))
      throw new Error(`policy names ${key}, which the schema does not have`);
  }
  return applyMiddleware(schema, middleware as IMiddlewareTypeMap);
}

const allowField: FieldMiddleware = (resolve, parent, args, context, info) => resolve(parent, args, context, info);

/** A field no grant names: visible to no one (deny by default). */
const denyField: FieldMiddleware = () => Promise.reject(forbidden());

/**
 * A field's rule: the verdict of permits for this parent, the audit record of a sensitive
 * field, a failing rule denies, and a denied field is FORBIDDEN.
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
    if (!allowed) return Promise.reject(forbidden());
    return resolve(parent, args, context, info);
  };
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
