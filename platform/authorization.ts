import { isObjectType, isIntrospectionType, type GraphQLSchema } from 'graphql';
import { applyMiddleware } from 'graphql-middleware';
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

/**
 * Wraps a subgraph schema in graphql-shield rules built from its policy table: deny by default
 * (fallbackRule), federation fields allowed explicitly, one rule per field so `_entities` cannot
 * bypass them, no rule cache (rules read `parent`, and a cached answer would leak one record's
 * verdict to another), and external errors passed through so an outage reads as an outage.
 * Throws when the table names a field the schema does not have, or grants `:own` on a type
 * with no owner function.
 */
export function authorize(schema: GraphQLSchema, policy: PolicyTable, owners: Owners, sensitive: SensitiveFields = {}): GraphQLSchema {
  const known = new Set<string>(FEDERATION_FIELDS);
  const ruleTree: Record<string, Record<string, unknown>> = {};
  for (const type of Object.values(schema.getTypeMap())) {
    if (!isObjectType(type) || isIntrospectionType(type)) continue;
    const fields: Record<string, unknown> = {};
    for (const field of Object.keys(type.getFields())) {
      const coordinate = `${type.name}.${field}`;
      known.add(coordinate);
      if (FEDERATION_FIELDS.includes(coordinate)) {
        fields[field] = allow;
        continue;
      }
      const grants = grantsFor(policy, type.name, field);
      if (grants.length === 0) continue; // fallbackRule: deny
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
    }
    ruleTree[type.name] = fields;
  }
  for (const key of Object.keys(policy)) {
    const [type, field] = key.split('.');
    if (field === '*' ? !schema.getType(type ?? '') : !known.has(key))
      throw new Error(`policy names ${key}, which the schema does not have`);
  }
  const middleware = shield(ruleTree as never, {
    fallbackRule: deny,
    fallbackError: () => forbidden(),
    allowExternalErrors: true,
    debug: false,
  });
  return applyMiddleware(schema, middleware);
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
