import { GraphQLError } from 'graphql';
import { ErrorCode } from './errors.ts';

/** The roles a bearer token can carry (../docs/security.md has what each may see). */
export const ROLES = [
  'support_agent',
  'support_lead',
  'sales_rep',
  'finance',
  'portal_customer',
  'integration',
  'integration_operator',
] as const;
export type Role = (typeof ROLES)[number];

/** Who is asking: verified at the gateway, carried to each subgraph in a signed internal token. */
export interface Identity {
  /** The token's subject: a user, or a service for `integration`. */
  readonly subject: string;
  readonly roles: readonly Role[];
  /** For portal_customer: the one customer (customer number) it may see. */
  readonly customerId: string | null;
}

export function isRole(value: unknown): value is Role {
  return typeof value === 'string' && (ROLES as readonly string[]).includes(value);
}

/**
 * True when every record this identity reads must belong to its customer: it holds the
 * portal_customer role and no role that sees all customers.
 */
export function isCustomerScoped(identity: Identity): boolean {
  return identity.roles.includes('portal_customer') && identity.roles.every((role) => role === 'portal_customer');
}

/** The error for a record or field this identity may not see; it names neither. */
export function forbidden(): GraphQLError {
  return new GraphQLError('Not allowed for this identity', { extensions: { code: ErrorCode.Forbidden } });
}

/**
 * A record a root field found, as a customer-scoped identity may see it: its own records pass;
 * another customer's, and a missing one, are FORBIDDEN alike, so that an error never tells a
 * portal user whether someone else's record exists.
 */
export function withinScope<T>(identity: Identity, record: T | null, ownerOf: (record: T) => string | null): T | null {
  if (!isCustomerScoped(identity)) return record;
  if (record === null || identity.customerId === null || ownerOf(record) !== identity.customerId) throw forbidden();
  return record;
}

/**
 * A record an entity reference resolved to, as a customer-scoped identity may see it: another
 * customer's record is null, exactly like one that does not exist, so that no reference (a
 * case's order number, say) can probe whether someone else's record exists.
 */
export function ownOrNull<T>(identity: Identity, record: T | null, ownerOf: (record: T) => string | null | undefined): T | null {
  if (!isCustomerScoped(identity) || record === null) return record;
  return identity.customerId !== null && ownerOf(record) === identity.customerId ? record : null;
}

/** Role groups the policy tables are written with. */
export const AGENTS = ['support_agent', 'support_lead'] as const satisfies readonly Role[];
export const STAFF = [...AGENTS, 'sales_rep', 'finance'] as const satisfies readonly Role[];
