import { pagingGuard } from '../../../../platform/paging.ts';
import { createHash } from 'node:crypto';
import type { ConnectorTelemetry } from '../../../../platform/connector-telemetry.ts';
import { SystemCallError, type Resilience } from '../../../../platform/resilience.ts';
import { chunked } from '../../../../platform/chunks.ts';
import { createVendorHttp, nameOf, rateLimitHeaders, type StatusTable, type VendorRequest } from '../../../../platform/vendor-http.ts';
import type {
  AgentRecord,
  CaseFilterInput,
  CasePriority,
  CaseRecord,
  CaseStatus,
  CaseType,
  CaseUpdate,
  CommentRecord,
  EntitlementRecord,
  EntitlementUpdate,
  InstalledBaseUpdate,
  InstalledProductRecord,
  SlaPolicyRecord,
  SlaTargetRecord,
  SupportConnector,
  SupportTier,
} from './types.ts';
import {
  PRIORITY_FROM_DESK,
  PRIORITY_TO_DESK,
  STATUS_FROM_DESK,
  STATUS_TO_DESK,
  TIER_ORDER,
  TIER_TAG,
  TYPE_FROM_DESK,
} from './vocabulary.ts';
import { composeCaseGraph } from './graphs.ts';

export type ZendeskAuth = { kind: 'token'; email: string; apiToken: string } | { kind: 'bearer'; token: string };

export interface ZendeskConnectorOptions {
  /** The account's address, e.g. https://acme.zendesk.com (no trailing /api/v2). */
  baseUrl: string;
  auth: ZendeskAuth;
  /** Ids of the ticket fields that hold the order number and the serial number. */
  fieldIds: { orderNumber: number; serialNumber: number };
  telemetry: ConnectorTelemetry;
  resilience: Resilience;
}

// ---------------------------------------------------------------------------------------------
// Wire shapes: the parts of Zendesk's resources this adapter reads.
// ---------------------------------------------------------------------------------------------

interface ZendeskTicket {
  id: number;
  subject: string | null;
  description: string | null;
  status: string;
  priority: string | null;
  type: string | null;
  tags: string[];
  created_at: string;
  updated_at: string;
  due_at: string | null;
  assignee_id: number | null;
  requester_id: number | null;
  organization_id: number | null;
  custom_fields: { id: number; value: unknown }[];
}
interface ZendeskUser {
  id: number | null;
  name: string;
  email: string | null;
  role: string;
  external_id: string | null;
}
interface ZendeskOrganization {
  id: number;
  external_id: string | null;
  tags?: string[];
}
interface ZendeskComment {
  id: number;
  author_id: number | null;
  body: string;
  public: boolean;
  created_at: string;
}
interface ZendeskCondition {
  field: string;
  operator: string;
  value: unknown;
}
interface ZendeskPolicyMetric {
  priority: string;
  metric: string;
  target: number;
  business_hours: boolean;
}
interface ZendeskSlaPolicy {
  id: number;
  title: string;
  position: number;
  filter: { all?: ZendeskCondition[] | null; any?: ZendeskCondition[] | null } | null;
  policy_metrics: ZendeskPolicyMetric[];
}
interface Sideloads {
  users?: ZendeskUser[];
  organizations?: ZendeskOrganization[];
}
interface CursorMeta {
  meta: { has_more: boolean; after_cursor: string | null };
}
interface SearchPage {
  results: ZendeskTicket[];
  count: number;
  next_page: string | null;
}
/** A record of a custom object (Custom Objects API): its own fields live in custom_object_fields. */
interface ZendeskCustomObjectRecord {
  id: string;
  name: string;
  external_id: string | null;
  custom_object_key: string;
  custom_object_fields: Record<string, unknown>;
  created_at: string;
  updated_at: string;
}
interface CustomObjectRecordPage extends CursorMeta {
  custom_object_records: ZendeskCustomObjectRecord[];
}

// ---------------------------------------------------------------------------------------------
// Mapping between Zendesk and the canonical records. Kept in one place so the embedded adapter
// (same Zendesk-shaped data) and this one can be checked against each other line by line.
// ---------------------------------------------------------------------------------------------

const AGENT_ROLES = new Set(['agent', 'admin']);
const PRIORITY_ORDER: readonly CasePriority[] = ['URGENT', 'HIGH', 'NORMAL', 'LOW'];
// Conditions that select tickets by tag: organization tags are copied onto an organization's
// tickets, so a tier policy may name either.
const TAG_CONDITION_FIELDS = new Set(['current_tags', 'organization_tags']);

/** Tags this adapter writes for its own bookkeeping; they are not the case's tags. */
const IDEMPOTENCY_TAG_PREFIX = 'concord_';

/** Who a ticket's requester and organization are, from the users and organizations sideloaded with it. */
interface TicketParties {
  contactOf(userId: number | null): string | null;
  customerOf(organizationId: number | null): string | null;
}

function partiesFrom(sideloads: Sideloads): TicketParties {
  const contacts = new Map((sideloads.users ?? []).map((user) => [user.id, user.external_id]));
  const customers = new Map((sideloads.organizations ?? []).map((organization) => [organization.id, organization.external_id]));
  return {
    contactOf: (userId) => (userId === null ? null : (contacts.get(userId) ?? null)),
    customerOf: (organizationId) => (organizationId === null ? null : (customers.get(organizationId) ?? null)),
  };
}

function customFieldValue(ticket: ZendeskTicket, fieldId: number): string | null {
  const value = ticket.custom_fields.find((field) => field.id === fieldId)?.value;
  // Zendesk lists every field of the form, unset ones with null; an emptied text field is "".
  return value === null || value === undefined || value === '' ? null : String(value);
}

function toCase(ticket: ZendeskTicket, parties: TicketParties, fieldIds: ZendeskConnectorOptions['fieldIds']): CaseRecord {
  return {
    id: String(ticket.id),
    subject: ticket.subject ?? '',
    description: ticket.description,
    status: STATUS_FROM_DESK[ticket.status] ?? 'OPEN',
    // Zendesk allows a ticket without priority; its views treat one as normal.
    priority: (ticket.priority && PRIORITY_FROM_DESK[ticket.priority]) || 'NORMAL',
    type: (ticket.type && TYPE_FROM_DESK[ticket.type]) || null,
    tags: ticket.tags.filter((tag) => !tag.startsWith(IDEMPOTENCY_TAG_PREFIX)),
    createdAt: ticket.created_at,
    updatedAt: ticket.updated_at,
    dueAt: ticket.due_at,
    assigneeId: ticket.assignee_id === null ? null : String(ticket.assignee_id),
    requesterContactId: parties.contactOf(ticket.requester_id),
    customerId: parties.customerOf(ticket.organization_id),
    orderNumber: customFieldValue(ticket, fieldIds.orderNumber),
    serialNumber: customFieldValue(ticket, fieldIds.serialNumber),
  };
}

function toComment(comment: ZendeskComment, caseId: string, authors: ReadonlyMap<number | null, string>): CommentRecord {
  return {
    id: String(comment.id),
    caseId,
    body: comment.body,
    public: comment.public,
    authorName: comment.author_id === null ? null : (authors.get(comment.author_id) ?? null),
    createdAt: comment.created_at,
  };
}

function toAgent(user: ZendeskUser): AgentRecord {
  return { id: String(user.id), name: user.name, email: user.email };
}

/** The support tiers a policy applies to: the tier tags its tag conditions include. */
function tiersOf(policy: ZendeskSlaPolicy): SupportTier[] {
  const conditions = [...(policy.filter?.all ?? []), ...(policy.filter?.any ?? [])];
  const tags = new Set<string>();
  for (const condition of conditions) {
    if (!TAG_CONDITION_FIELDS.has(condition.field) || condition.operator !== 'includes') continue;
    // "includes" takes a space-separated list of tags (or, from some clients, an array).
    const values = Array.isArray(condition.value) ? condition.value.map(String) : String(condition.value ?? '').split(/\s+/);
    for (const tag of values) tags.add(tag.toLowerCase());
  }
  return (Object.keys(TIER_TAG) as SupportTier[]).filter((tier) => tags.has(TIER_TAG[tier]));
}

function toSlaPolicy(policy: ZendeskSlaPolicy, tier: SupportTier): SlaPolicyRecord {
  const targets = new Map<CasePriority, SlaTargetRecord>();
  for (const metric of policy.policy_metrics) {
    const priority = PRIORITY_FROM_DESK[metric.priority];
    if (!priority) continue;
    const target = targets.get(priority) ?? { priority, firstResponseHours: 0, resolutionHours: 0 };
    // Targets are minutes. The requester's total wait is what customers feel as time to
    // resolution, so it counts as the resolution target, as in the embedded adapter.
    if (metric.metric === 'first_reply_time') target.firstResponseHours = metric.target / 60;
    if (metric.metric === 'requester_wait_time' || metric.metric === 'resolution_time') target.resolutionHours = metric.target / 60;
    targets.set(priority, target);
  }
  return {
    tier,
    name: policy.title,
    businessHoursOnly: policy.policy_metrics.some((metric) => metric.business_hours),
    targets: [...targets.values()].sort((a, b) => PRIORITY_ORDER.indexOf(a.priority) - PRIORITY_ORDER.indexOf(b.priority)),
  };
}

/** Whether a case (as read now) still matches a filter the search index answered. */
function matchesFilter(record: CaseRecord, filter: CaseFilterInput): boolean {
  return (
    (!filter.statuses?.length || filter.statuses.includes(record.status)) &&
    (!filter.priorities?.length || filter.priorities.includes(record.priority)) &&
    (filter.customerId === undefined || record.customerId === filter.customerId) &&
    (filter.assigneeId === undefined || record.assigneeId === filter.assigneeId)
  );
}

/**
 * The tag that marks an update key as applied. Zendesk lower-cases tags and splits them at
 * spaces, so a key that would not survive as a tag verbatim gets a hash of itself appended:
 * two keys must never share a tag, or the second update would be skipped.
 */
export function idempotencyTag(key: string): string {
  const sanitized = key.toLowerCase().replace(/[^a-z0-9_-]+/g, '_');
  if (sanitized === key && key.length <= 64) return IDEMPOTENCY_TAG_PREFIX + key;
  const digest = createHash('sha256').update(key).digest('hex').slice(0, 16);
  return `${IDEMPOTENCY_TAG_PREFIX}${sanitized.slice(0, 40)}_${digest}`;
}

/**
 * The custom object that holds the installed base: one record per product of an order, its
 * external id `<order number>:<sku>`, its fields order_number and sku (text), quantity and
 * warranty_months (integer), and organization, a lookup field to the customer's organization.
 */
const INSTALLED_PRODUCT_OBJECT = 'installed_product';

function installedProductExternalId(orderNumber: string, sku: string): string {
  return `${orderNumber}:${sku}`;
}

/** A lookup field holds the related record's id, set as a string; read as whatever JSON type it comes in. */
function lookupId(value: unknown): string | null {
  return value === null || value === undefined || value === '' ? null : String(value);
}

function integerOrNull(value: unknown): number | null {
  if (value === null || value === undefined || value === '') return null;
  const number = Number(value);
  return Number.isFinite(number) ? number : null;
}

/**
 * An installed product from its record, with the customer number of the organization its lookup
 * field names; null when that organization is not among `customerOf` (not a customer asked for).
 */
function toInstalledProduct(record: ZendeskCustomObjectRecord, customerOf: ReadonlyMap<string, string>): InstalledProductRecord | null {
  const fields = record.custom_object_fields;
  const organizationId = lookupId(fields.organization);
  const customerId = organizationId === null ? undefined : customerOf.get(organizationId);
  if (customerId === undefined) return null;
  const orderNumber = String(fields.order_number ?? '');
  const sku = String(fields.sku ?? '');
  return {
    id: record.external_id ?? installedProductExternalId(orderNumber, sku),
    customerId,
    orderNumber,
    sku,
    name: record.name,
    quantity: integerOrNull(fields.quantity) ?? 0,
    warrantyMonths: integerOrNull(fields.warranty_months),
    recordedAt: record.created_at,
  };
}

/**
 * The custom object that holds entitlements: one record per subscription, its external id the
 * subscription id, its name the tier tag and the subscription id, its fields tier (text:
 * BASIC, STANDARD or PREMIUM), active (checkbox), until (date, YYYY-MM-DD) and organization, a
 * lookup field to the customer's organization.
 */
const ENTITLEMENT_OBJECT = 'entitlement';

const TIER_TAGS: ReadonlySet<string> = new Set(Object.values(TIER_TAG));

function entitlementName(tier: SupportTier, subscriptionId: string): string {
  return `${TIER_TAG[tier]} ${subscriptionId}`;
}

function tierOrNull(value: unknown): SupportTier | null {
  return TIER_ORDER.find((tier) => tier === value) ?? null;
}

function dateOrNull(value: unknown): string | null {
  return typeof value === 'string' && value !== '' ? value : null;
}

/** Whether the record already holds this state (what the embedded desk compares before it writes). */
function holdsEntitlement(record: ZendeskCustomObjectRecord, update: EntitlementUpdate): boolean {
  const fields = record.custom_object_fields;
  return tierOrNull(fields.tier) === update.tier && (fields.active === true) === update.active && dateOrNull(fields.until) === update.until;
}

/**
 * An entitlement from its record, with the customer number of the organization its lookup field
 * names; null when that organization is not among `customerOf`, or the record names no tier.
 */
function toEntitlement(record: ZendeskCustomObjectRecord, customerOf: ReadonlyMap<string, string>): EntitlementRecord | null {
  const fields = record.custom_object_fields;
  const organizationId = lookupId(fields.organization);
  const customerId = organizationId === null ? undefined : customerOf.get(organizationId);
  const tier = tierOrNull(fields.tier);
  if (customerId === undefined || tier === null || record.external_id === null) return null;
  return {
    subscriptionId: record.external_id,
    customerId,
    tier,
    active: fields.active === true,
    until: dateOrNull(fields.until),
    updatedAt: record.updated_at,
  };
}

/** By customer number, then subscription id, compared as the embedded desk's SQL does (binary). */
function byCustomerAndSubscription(entitlements: EntitlementRecord[]): EntitlementRecord[] {
  const binary = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  return entitlements.sort((a, b) => binary(a.customerId, b.customerId) || binary(a.subscriptionId, b.subscriptionId));
}

/** The highest tier among the active entitlements; null when none is active. */
function highestActiveTier(entitlements: readonly EntitlementRecord[]): SupportTier | null {
  return TIER_ORDER.filter((tier) => entitlements.some((entitlement) => entitlement.active && entitlement.tier === tier)).at(-1) ?? null;
}

/** Newest first; records of one moment by external id, compared as the embedded desk's SQL does (binary). */
function newestRecordedFirst(records: InstalledProductRecord[]): InstalledProductRecord[] {
  const binary = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  return records.sort((a, b) => Date.parse(b.recordedAt) - Date.parse(a.recordedAt) || binary(a.id, b.id));
}

// ---------------------------------------------------------------------------------------------
// Queries and batches.
// ---------------------------------------------------------------------------------------------

/** Ticket and user ids are positive integers; anything else names no record in the desk. */
function deskId(value: string): number | null {
  const id = Number(value);
  return /^\d+$/.test(value) && Number.isSafeInteger(id) && id > 0 ? id : null;
}

function newestFirst(records: CaseRecord[]): CaseRecord[] {
  return records.sort((a, b) => Number(b.id) - Number(a.id));
}

/** Search terms: one keyword repeated matches any of its values. */
function anyOf(keyword: string, values: Iterable<string>): string[] {
  return [...new Set(values)].map((value) => `${keyword}:${value}`);
}

/** A value as a search phrase, so punctuation in it does not split it into several words. */
function phrase(value: string): string {
  return `"${value.replace(/"/g, ' ')}"`;
}

/** Zendesk's search compares whole seconds; "before the next second" includes the cursor's own second. */
function nextSecond(timestamp: string): string {
  const next = new Date(Math.floor(Date.parse(timestamp) / 1000) * 1000 + 1000);
  return next.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

// ---------------------------------------------------------------------------------------------
// HTTP: one request per telemetry call, classified for the resilience layer.
// ---------------------------------------------------------------------------------------------

/** show_many and users/organizations look-ups take at most 100 ids. */
const SHOW_MANY_LIMIT = 100;
/** Search pages hold at most 100 results. */
const SEARCH_PAGE_LIMIT = 100;
/** Values OR-ed into one search query; keeps the URL far below proxies' limits. */
const SEARCH_TERMS_PER_QUERY = 50;
/** Tries of a read-check-update cycle when another writer changed the ticket in between. */
const UPDATE_CONFLICT_TRIES = 3;
/** Custom object record pages hold at most 100 records. */
const RECORD_PAGE_LIMIT = 100;
/** Organizations OR-ed into one filtered search of custom object records. */
const ORGANIZATIONS_PER_RECORD_SEARCH = 50;
/** Upserts of one order's products in flight at once: an order may have many lines. */
const UPSERTS_IN_FLIGHT = 4;

type QueryParams = Record<string, string | number | undefined>;

interface HttpRequest {
  method: 'GET' | 'PUT' | 'PATCH' | 'POST' | 'DELETE';
  path: string;
  query?: QueryParams;
  body?: unknown;
}

/** Statuses some requests expect as an answer rather than a failure. */
type ExpectedStatus = 404 | 409;
type Answer<T> = { status: 200; body: T } | { status: ExpectedStatus };

function authorization(auth: ZendeskAuth): string {
  if (auth.kind === 'bearer') return `Bearer ${auth.token}`;
  return `Basic ${Buffer.from(`${auth.email}/token:${auth.apiToken}`).toString('base64')}`;
}

/**
 * Zendesk's error bodies name the error ({"error","description"}; the Custom Objects API lists
 * them as {"errors":[{"code","title","detail"}]}); 429s may be text/plain.
 */
function errorSummary(body: unknown): string {
  if (typeof body === 'string') return body.trim().slice(0, 200);
  if (!body || typeof body !== 'object') return JSON.stringify(body);
  const { error: named, description, errors } = body as { error?: unknown; description?: unknown; errors?: unknown };
  if (named === undefined && Array.isArray(errors)) {
    return (errors as { code?: unknown; title?: unknown; detail?: unknown }[])
      .map((entry) => [entry.code ?? entry.title, entry.detail].filter((part) => typeof part === 'string').join(': '))
      .join('; ');
  }
  const error = typeof named === 'string' ? named : JSON.stringify(named ?? null);
  return typeof description === 'string' ? `${error}: ${description}` : error;
}

/**
 * What each failed answer means: 429 and 5xx are the desk's own trouble and pass (after its
 * Retry-After); 4xx are this request's, and would fail again. The API token does not expire, so
 * a refused one (401, 403) is refused again.
 */
const ZENDESK_STATUSES: StatusTable = [
  { status: 429, verdict: 'rate-limited', retryAfter: true },
  { status: { from: 500, to: 599 }, verdict: 'retry', retryAfter: true },
  { verdict: 'fail' },
];

function urlOf(baseUrl: string, request: HttpRequest): string {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(request.query ?? {})) if (value !== undefined) params.set(name, String(value));
  const query = params.toString();
  return `${baseUrl.replace(/\/+$/, '')}${request.path}${query ? `?${query}` : ''}`;
}

interface ZendeskHttp {
  /** One HTTP request, counted once by telemetry; failures are classified SystemCallErrors. */
  exchange<T>(operation: string, request: HttpRequest, signal: AbortSignal, expected?: readonly ExpectedStatus[]): Promise<Answer<T>>;
  /** One GET through the resilience layer (reads are safe to repeat). */
  get<T>(operation: string, path: string, query?: QueryParams): Promise<T>;
  /** A GET of one record: null when the desk does not know it. */
  find<T>(operation: string, path: string, query?: QueryParams): Promise<T | null>;
  /**
   * One request of any method through the resilience layer, sent again on failure: only for
   * requests that are safe to repeat (searches sent as POST, upserts by external id, adding or
   * removing given tags).
   */
  repeatable<T>(operation: string, request: HttpRequest): Promise<T>;
}

function createZendeskHttp(options: ZendeskConnectorOptions): ZendeskHttp & { budget(): RateBudget | null } {
  const http = createVendorHttp({
    baseUrl: options.baseUrl,
    auth: { authorization: () => authorization(options.auth) },
    statuses: ZENDESK_STATUSES,
    errorOf: (body) => ({ code: null, message: errorSummary(body) }),
    failure: (request, answer, error, details) =>
      new SystemCallError(`${nameOf(request)} answered ${answer.status} (${error.message})`, details),
    // The account's rate limit per minute, and what is left of it: exported as a gauge.
    budget: rateLimitHeaders('x-rate-limit', 'x-rate-limit-remaining'),
    telemetry: options.telemetry,
    resilience: options.resilience,
  });

  function exchange<T>(
    operation: string,
    request: HttpRequest,
    signal: AbortSignal,
    expected: readonly ExpectedStatus[] = [],
  ): Promise<Answer<T>> {
    const name = `${request.method} ${request.path}`;
    const outgoing: VendorRequest = { method: request.method, url: urlOf(options.baseUrl, request), body: request.body, name };
    return http.counted(operation, { request: name }, async () => {
      const answer = await http.send(outgoing, signal);
      if (isExpected(answer.status, expected)) return { status: answer.status };
      if (answer.status < 200 || answer.status >= 300) throw http.fail(outgoing, answer);
      if (typeof answer.body !== 'object' || answer.body === null)
        throw new SystemCallError(`${name} answered ${answer.status} without JSON`, { retryable: false, status: answer.status });
      return { status: 200, body: answer.body as T };
    });
  }

  async function find<T>(operation: string, path: string, query?: QueryParams): Promise<T | null> {
    const answer = await http.call(operation, { idempotent: true }, (signal) =>
      exchange<T>(operation, { method: 'GET', path, query }, signal, [404]),
    );
    return answer.status === 200 ? answer.body : null;
  }

  async function repeatable<T>(operation: string, request: HttpRequest): Promise<T> {
    const answer = await http.call(operation, { idempotent: true }, (signal) => exchange<T>(operation, request, signal));
    // No status was expected, so anything but 200 has already been thrown.
    if (answer.status !== 200)
      throw new SystemCallError(`${request.method} ${request.path} answered ${answer.status}`, { retryable: false, status: answer.status });
    return answer.body;
  }

  function get<T>(operation: string, path: string, query?: QueryParams): Promise<T> {
    return repeatable<T>(operation, { method: 'GET', path, query });
  }

  return { exchange, get, find, repeatable, budget: () => http.budget() as RateBudget | null };
}

function isExpected(status: number, expected: readonly ExpectedStatus[]): status is ExpectedStatus {
  return (expected as readonly number[]).includes(status);
}

// ---------------------------------------------------------------------------------------------
// The adapter.
// ---------------------------------------------------------------------------------------------

/**
 * The support desk port over the Zendesk Support API. Tickets are always read through
 * `tickets/show_many` with their users and organizations sideloaded, since only those carry the
 * CRM contact id and the customer number; searches find ticket ids, which are then read that
 * way, so every record comes from one mapping and from the ticket as it is now rather than as
 * the search index last saw it. Every HTTP request goes through the resilience layer and counts
 * once in the connector telemetry.
 */
/** What Zendesk says is left of the account's rate limit (X-Rate-Limit, X-Rate-Limit-Remaining). */
export interface RateBudget {
  limit: number;
  remaining: number;
}

/**
 * External ids that can travel in a comma-separated `external_ids` list: one holding a comma
 * would split into several, so it is left out (no desk record has it as our key anyway).
 */
function listable(ids: readonly string[]): string[] {
  return ids.filter((id) => id !== '' && !id.includes(','));
}

/**
 * What the support subgraph's change feed (feed/zendesk.ts) reads from Zendesk besides the
 * port: the incremental ticket export, and the customer number of an organization a webhook
 * names only by its Zendesk id.
 */
export interface ZendeskChangeReads {
  /**
   * One page of the cursor-based incremental ticket export
   * (`GET /api/v2/incremental/tickets/cursor.json`), from a Unix time on the first read, after
   * the previous page's `after_cursor` afterwards. Zendesk allows 10 requests a minute on it.
   */
  incrementalTickets(from: { readonly cursor: string } | { readonly startTime: number }): Promise<IncrementalTicketPage>;
  /** The organization's external id (its customer number); null when it has none or is gone. */
  customerIdOfOrganization(organizationId: number): Promise<string | null>;
}

export interface IncrementalTicketPage {
  /** The tickets changed, as cases; a deleted ticket (status `deleted`) is flagged. */
  readonly cases: readonly { readonly record: CaseRecord; readonly deleted: boolean }[];
  /** Where the next read continues (Zendesk gives one also at the end of the stream). */
  readonly afterCursor: string | null;
  /** True when the page reached the present (less the last minute, which Zendesk holds back). */
  readonly endOfStream: boolean;
}

interface IncrementalTicketExport extends Sideloads {
  tickets: (Omit<ZendeskTicket, 'tags' | 'custom_fields'> & { tags?: string[]; custom_fields?: ZendeskTicket['custom_fields'] })[];
  after_cursor?: string | null;
  end_of_stream?: boolean;
}

export type ZendeskConnector = SupportConnector & { apiBudget(): RateBudget | null; readonly changeReads: ZendeskChangeReads };

export function createZendeskConnector(options: ZendeskConnectorOptions): ZendeskConnector {
  const http = createZendeskHttp(options);
  const { fieldIds } = options;

  /** Tickets by id, mapped; unknown ids are left out (as show_many does). */
  async function readCases(operation: string, ids: readonly number[]): Promise<CaseRecord[]> {
    return (await readCasesWithAgents(operation, ids)).cases;
  }

  /** Tickets by id with their users sideloaded: the cases, and the agents among those users. */
  async function readCasesWithAgents(operation: string, ids: readonly number[]): Promise<{ cases: CaseRecord[]; agents: AgentRecord[] }> {
    const pages = await Promise.all(
      chunked(ids, SHOW_MANY_LIMIT).map((batch) =>
        http.get<{ tickets: ZendeskTicket[] } & Sideloads>(operation, '/api/v2/tickets/show_many.json', {
          ids: batch.join(','),
          include: 'users,organizations',
        }),
      ),
    );
    return {
      cases: pages.flatMap((page) => {
        const parties = partiesFrom(page);
        return page.tickets.map((ticket) => toCase(ticket, parties, fieldIds));
      }),
      agents: pages.flatMap((page) => (page.users ?? []).filter((user) => AGENT_ROLES.has(user.role)).map(toAgent)),
    };
  }

  async function organizationsByCustomerIds(operation: string, customerIds: readonly string[]): Promise<ZendeskOrganization[]> {
    const pages = await Promise.all(
      chunked(listable(customerIds), SHOW_MANY_LIMIT).map((batch) =>
        http.get<{ organizations: ZendeskOrganization[] }>(operation, '/api/v2/organizations/show_many.json', {
          external_ids: batch.join(','),
        }),
      ),
    );
    const wanted = new Set(customerIds);
    return pages
      .flatMap((page) => page.organizations)
      .filter((organization) => organization.external_id !== null && wanted.has(organization.external_id));
  }

  async function usersByContactIds(operation: string, contactIds: readonly string[]): Promise<ZendeskUser[]> {
    const pages = await Promise.all(
      chunked(listable(contactIds), SHOW_MANY_LIMIT).map((batch) =>
        http.get<{ users: ZendeskUser[] }>(operation, '/api/v2/users/show_many.json', { external_ids: batch.join(',') }),
      ),
    );
    const wanted = new Set(contactIds);
    return pages
      .flatMap((page) => page.users)
      .filter((user) => user.id !== null && user.external_id !== null && wanted.has(user.external_id));
  }

  /**
   * Search terms for a case filter, or null when the filter names a customer or an agent the
   * desk cannot have (then nothing matches, and nothing needs to be asked).
   */
  async function filterTerms(operation: string, filter: CaseFilterInput): Promise<string[] | null> {
    const terms = [
      ...anyOf(
        'status',
        (filter.statuses ?? []).map((status) => STATUS_TO_DESK[status]),
      ),
      ...anyOf(
        'priority',
        (filter.priorities ?? []).map((priority) => PRIORITY_TO_DESK[priority]),
      ),
    ];
    if (filter.assigneeId !== undefined) {
      const assignee = deskId(filter.assigneeId);
      if (assignee === null) return null;
      terms.push(`assignee:${assignee}`);
    }
    if (filter.customerId !== undefined) {
      const [organization] = await organizationsByCustomerIds(operation, [filter.customerId]);
      if (!organization) return null;
      terms.push(`organization:${organization.id}`);
    }
    return terms;
  }

  /**
   * The newest tickets matching the terms, `limit` of them that pass `accept`, and whether the
   * search holds more. The count Zendesk returns with the first page answers "is there more"
   * without reading another page. `rejects` is how many results `accept` is expected to turn
   * down, so that one page usually holds enough.
   */
  async function searchNewest(
    operation: string,
    terms: readonly string[],
    limit: number,
    { accept = () => true, rejects = 0 }: { accept?: (ticket: ZendeskTicket) => boolean; rejects?: number } = {},
  ): Promise<{ ids: number[]; hasMore: boolean }> {
    const perPage = Math.max(1, Math.min(SEARCH_PAGE_LIMIT, limit + rejects));
    const ids: number[] = [];
    let rejected = 0;
    let count = 0;
    for (let page = 1; ids.length < limit; page += 1) {
      const result = await http.get<SearchPage>(operation, '/api/v2/search.json', {
        query: ['type:ticket', ...terms].join(' '),
        sort_by: 'created_at',
        sort_order: 'desc',
        per_page: perPage,
        page,
      });
      count = result.count;
      for (const ticket of result.results) {
        if (!accept(ticket)) rejected += 1;
        else if (ids.length < limit) ids.push(ticket.id);
      }
      if (!result.next_page || result.results.length === 0) break;
    }
    return { ids, hasMore: count - rejected > ids.length };
  }

  /** Every ticket matching the terms, through the export endpoint (cursor paging, no 1,000-result cap). */
  async function exportTickets(operation: string, terms: readonly string[]): Promise<ZendeskTicket[]> {
    const tickets: ZendeskTicket[] = [];
    let after: string | undefined;
    const guard = pagingGuard('support', operation);
    for (;;) {
      const page = await http.get<{ results: ZendeskTicket[] } & CursorMeta>(operation, '/api/v2/search/export.json', {
        query: ['type:ticket', ...terms].join(' '),
        'filter[type]': 'ticket',
        'page[size]': SEARCH_PAGE_LIMIT,
        'page[after]': after,
      });
      tickets.push(...page.results);
      if (!page.meta.has_more || !page.meta.after_cursor) return tickets;
      guard.next(page.meta.after_cursor);
      after = page.meta.after_cursor;
    }
  }

  /** Tickets whose field holds one of the values; the search matches loosely, so the values are checked exactly. */
  async function casesByField(
    operation: string,
    fieldId: number,
    values: readonly string[],
    valueOf: (record: CaseRecord) => string | null,
  ) {
    const wanted = new Set(values);
    const batches = await Promise.all(
      chunked(values, SEARCH_TERMS_PER_QUERY).map((batch) => exportTickets(operation, anyOf(`custom_field_${fieldId}`, batch.map(phrase)))),
    );
    const ids = batches
      .flat()
      .filter((ticket) => wanted.has(customFieldValue(ticket, fieldId) ?? ''))
      .map((ticket) => ticket.id);
    const records = await readCases(operation, ids);
    return newestFirst(records.filter((record) => wanted.has(valueOf(record) ?? '')));
  }

  async function commentsOf(caseId: string): Promise<CommentRecord[]> {
    const ticketId = deskId(caseId);
    if (ticketId === null) return [];
    const comments: CommentRecord[] = [];
    let after: string | undefined;
    const guard = pagingGuard('support', 'commentsByCaseIds');
    for (;;) {
      const page = await http.find<{ comments: ZendeskComment[] } & Sideloads & CursorMeta>(
        'commentsByCaseIds',
        `/api/v2/tickets/${ticketId}/comments.json`,
        { 'page[size]': 100, 'page[after]': after, include: 'users' },
      );
      if (!page) return comments;
      const authors = new Map((page.users ?? []).map((user) => [user.id, user.name]));
      comments.push(...page.comments.map((comment) => toComment(comment, String(ticketId), authors)));
      if (!page.meta.has_more || !page.meta.after_cursor) return comments;
      guard.next(page.meta.after_cursor);
      after = page.meta.after_cursor;
    }
  }

  type TicketWithParties = { ticket: ZendeskTicket } & Sideloads;

  /**
   * Reads the ticket, and unless its tags show the key applied, updates it and tags it in one PUT.
   * `safe_update` makes the PUT fail with 409 if anyone changed the ticket since the read, so
   * two deliveries of one key cannot both pass the check; the loser reads again and sees the tag.
   * Retrying this whole cycle (not just the PUT) is what makes a lost answer safe to repeat.
   */
  async function applyOnce(ticketId: number, update: Omit<CaseUpdate, 'caseId'>, signal: AbortSignal): Promise<CaseRecord | null> {
    const tag = idempotencyTag(update.key);
    const path = `/api/v2/tickets/${ticketId}.json`;
    for (let attempt = 1; ; attempt += 1) {
      const read = await http.exchange<TicketWithParties>(
        'applyCaseUpdate',
        { method: 'GET', path, query: { include: 'users,organizations' } },
        signal,
        [404],
      );
      if (read.status !== 200) return null;
      const parties = partiesFrom(read.body);
      if (read.body.ticket.tags.includes(tag)) return toCase(read.body.ticket, parties, fieldIds);
      const ticket = {
        ...(update.status ? { status: STATUS_TO_DESK[update.status] } : {}),
        ...(update.internalNote ? { comment: { body: update.internalNote, public: false } } : {}),
        additional_tags: [tag],
        safe_update: true,
        updated_stamp: read.body.ticket.updated_at,
      };
      const written = await http.exchange<{ ticket: ZendeskTicket }>(
        'applyCaseUpdate',
        { method: 'PUT', path, body: { ticket } },
        signal,
        [404, 409],
      );
      if (written.status === 200) return toCase(written.body.ticket, parties, fieldIds);
      if (written.status === 404) return null;
      if (attempt >= UPDATE_CONFLICT_TRIES) {
        throw new SystemCallError(`PUT ${path} kept conflicting with other updates`, { retryable: false, status: 409 });
      }
    }
  }

  const installedProductRecords = `/api/v2/custom_objects/${INSTALLED_PRODUCT_OBJECT}/records`;

  /**
   * Creates or updates the record of one product by its external id. Zendesk updates only the
   * attributes sent and creates the record when the external id names none, so sending a
   * product again (a retry, a second recording of the order) leaves one record for it.
   */
  function upsertInstalledProduct(
    organizationId: number,
    orderNumber: string,
    item: InstalledBaseUpdate['items'][number],
  ): Promise<{ custom_object_record: ZendeskCustomObjectRecord }> {
    return http.repeatable('recordInstalledBase', {
      method: 'PATCH',
      path: installedProductRecords,
      query: { external_id: installedProductExternalId(orderNumber, item.sku) },
      body: {
        custom_object_record: {
          // The name is required; a product without one is known by its SKU.
          name: item.name ?? item.sku,
          custom_object_fields: {
            order_number: orderNumber,
            sku: item.sku,
            quantity: item.quantity,
            warranty_months: item.warrantyMonths,
            organization: String(organizationId),
          },
        },
      },
    });
  }

  /** A filter matching the records whose organization lookup field names one of the organizations. */
  function linkedTo(organizationIds: readonly number[]): Record<string, unknown> {
    const linked = organizationIds.map((id) => ({ 'custom_object_fields.organization': { $eq: String(id) } }));
    return linked.length === 1 ? linked[0]! : { $or: linked };
  }

  /**
   * Every record of the object matching the filter, through the filtered search. Sorted, the
   * search returns every match rather than the first 10,000; the cursor walks its pages.
   */
  async function searchRecords(operation: string, object: string, filter: unknown, sort: string): Promise<ZendeskCustomObjectRecord[]> {
    const records: ZendeskCustomObjectRecord[] = [];
    let after: string | undefined;
    const guard = pagingGuard('support', operation);
    for (;;) {
      const page = await http.repeatable<CustomObjectRecordPage>(operation, {
        method: 'POST',
        path: `/api/v2/custom_objects/${object}/records/search`,
        query: { sort, 'page[size]': RECORD_PAGE_LIMIT, 'page[after]': after },
        body: { filter },
      });
      records.push(...page.custom_object_records);
      if (!page.meta.has_more || !page.meta.after_cursor) break;
      guard.next(page.meta.after_cursor);
      after = page.meta.after_cursor;
    }
    // A record changed while the pages were read may appear on two of them.
    return [...new Map(records.map((record) => [record.id, record])).values()];
  }

  /** The records of the object linked to the organizations, one search per batch of them. */
  async function linkedRecords(
    operation: string,
    object: string,
    organizationIds: readonly number[],
    sort: string,
    narrow: (byOrganization: Record<string, unknown>) => unknown = (byOrganization) => byOrganization,
  ): Promise<ZendeskCustomObjectRecord[]> {
    const batches = await Promise.all(
      chunked(organizationIds, ORGANIZATIONS_PER_RECORD_SEARCH).map((batch) =>
        searchRecords(operation, object, narrow(linkedTo(batch)), sort),
      ),
    );
    return [...new Map(batches.flat().map((record) => [record.id, record])).values()];
  }

  /** The installed product records linked to the organizations (and of one order, if given), newest first. */
  function installedProductsOf(
    operation: string,
    organizationIds: readonly number[],
    orderNumber?: string,
  ): Promise<ZendeskCustomObjectRecord[]> {
    return linkedRecords(operation, INSTALLED_PRODUCT_OBJECT, organizationIds, '-created_at', (byOrganization) =>
      orderNumber === undefined
        ? byOrganization
        : { $and: [byOrganization, { 'custom_object_fields.order_number': { $eq: orderNumber } }] },
    );
  }

  /** Creates or updates the entitlement record of a subscription by its external id, linked to the organization. */
  function upsertEntitlement(
    organizationId: number,
    update: EntitlementUpdate,
  ): Promise<{ custom_object_record: ZendeskCustomObjectRecord }> {
    return http.repeatable('setEntitlement', {
      method: 'PATCH',
      path: `/api/v2/custom_objects/${ENTITLEMENT_OBJECT}/records`,
      query: { external_id: update.subscriptionId },
      body: {
        custom_object_record: {
          name: entitlementName(update.tier, update.subscriptionId),
          custom_object_fields: {
            tier: update.tier,
            active: update.active,
            until: update.until,
            organization: String(organizationId),
          },
        },
      },
    });
  }

  /**
   * Gives the organization the tier's tag and takes the other tier tags off, through the Tags
   * API: adding and removing the tags named leaves every other tag as it is, also one another
   * writer sets meanwhile (Zendesk offers no safe update for organizations, so rewriting the
   * whole list could drop such a tag). Both are safe to repeat. The tag is added before the
   * others are removed, so the organization is never without a tier tag in between. Tags the
   * organization already has as they should be are not written.
   */
  async function applyTierTag(organization: ZendeskOrganization, tier: SupportTier | null): Promise<void> {
    const tags = organization.tags ?? [];
    const wanted = tier === null ? null : TIER_TAG[tier];
    const stale = tags.filter((tag) => TIER_TAGS.has(tag) && tag !== wanted);
    const path = `/api/v2/organizations/${organization.id}/tags.json`;
    if (wanted !== null && !tags.includes(wanted)) {
      await http.repeatable('setEntitlement', { method: 'PUT', path, body: { tags: [wanted] } });
    }
    if (stale.length > 0) await http.repeatable('setEntitlement', { method: 'DELETE', path, body: { tags: stale } });
  }

  /** Runs `fn` over the values, at most `limit` at a time, and returns the results in order. */
  async function inTurns<T, R>(values: readonly T[], limit: number, fn: (value: T) => Promise<R>): Promise<R[]> {
    const results: R[] = new Array<R>(values.length);
    let next = 0;
    const worker = async () => {
      for (let index = next++; index < values.length; index = next++) results[index] = await fn(values[index]!);
    };
    await Promise.all(Array.from({ length: Math.min(limit, values.length) }, worker));
    return results;
  }

  return {
    async casesByIds(ids) {
      const ticketIds = ids.map(deskId).filter((id): id is number => id !== null);
      return readCases('casesByIds', ticketIds);
    },

    async searchCases({ filter, limit, afterId }) {
      const terms = await filterTerms('searchCases', filter);
      if (terms === null) return { records: [], hasNextPage: false };
      let before: number | null = null;
      if (afterId !== undefined) {
        before = deskId(afterId);
        if (before === null) return { records: [], hasNextPage: false };
        // Search cannot compare ticket ids, but ids grow with creation time: the cursor's
        // creation time bounds the search, and the id decides within its second.
        const cursor = await http.find<{ ticket: ZendeskTicket }>('searchCases', `/api/v2/tickets/${before}.json`);
        // A cursor whose ticket is gone (deleted since) leaves no place to continue from.
        if (!cursor) return { records: [], hasNextPage: false };
        terms.push(`created<${nextSecond(cursor.ticket.created_at)}`);
      }
      // The cursor's own ticket is within the bound and turned down: one more result per page.
      const found = await searchNewest('searchCases', terms, limit, {
        accept: (ticket) => before === null || ticket.id < before,
        rejects: before === null ? 0 : 1,
      });
      const records = newestFirst(await readCases('searchCases', found.ids)).filter((record) => matchesFilter(record, filter));
      return { records, hasNextPage: found.hasMore };
    },

    async countCases(filter) {
      const terms = await filterTerms('countCases', filter);
      if (terms === null) return 0;
      const result = await http.get<{ count: number }>('countCases', '/api/v2/search/count.json', {
        query: ['type:ticket', ...terms].join(' '),
      });
      return result.count;
    },

    // One search per customer rather than one for all: a page of `limit` costs the same
    // whatever the customer's history, where a joint search would read all of it.
    async casesByCustomerIds(customerIds, { statuses, limit }) {
      const organizations = await organizationsByCustomerIds('casesByCustomerIds', customerIds);
      const statusTerms = anyOf(
        'status',
        (statuses ?? []).map((status) => STATUS_TO_DESK[status]),
      );
      const found = await Promise.all(
        organizations.map((organization) => searchNewest('casesByCustomerIds', [`organization:${organization.id}`, ...statusTerms], limit)),
      );
      const records = await readCases(
        'casesByCustomerIds',
        found.flatMap((result) => result.ids),
      );
      const wanted = new Set(customerIds);
      return newestFirst(
        records.filter((record) => record.customerId !== null && wanted.has(record.customerId) && matchesFilter(record, { statuses })),
      );
    },

    // Open cases are few per customer, so one search for a batch of customers reads little
    // and costs one call where counting per customer would cost one each.
    async openCaseCounts(customerIds) {
      const organizations = await organizationsByCustomerIds('openCaseCounts', customerIds);
      const customerOf = new Map(organizations.map((organization) => [organization.id, organization.external_id ?? '']));
      const counts = new Map<string, number>();
      const batches = await Promise.all(
        chunked([...customerOf.keys()], SEARCH_TERMS_PER_QUERY).map((batch) =>
          exportTickets('openCaseCounts', ['status<solved', ...anyOf('organization', batch.map(String))]),
        ),
      );
      for (const ticket of batches.flat()) {
        const customerId = ticket.organization_id === null ? undefined : customerOf.get(ticket.organization_id);
        if (customerId) counts.set(customerId, (counts.get(customerId) ?? 0) + 1);
      }
      return counts;
    },

    // Per contact, for the same reason as per customer above.
    async casesByContactIds(contactIds, limit) {
      const users = await usersByContactIds('casesByContactIds', contactIds);
      const found = await Promise.all(users.map((user) => searchNewest('casesByContactIds', [`requester:${user.id}`], limit)));
      const records = await readCases(
        'casesByContactIds',
        found.flatMap((result) => result.ids),
      );
      const wanted = new Set(contactIds);
      return newestFirst(records.filter((record) => record.requesterContactId !== null && wanted.has(record.requesterContactId)));
    },

    casesByOrderNumbers(numbers) {
      return casesByField('casesByOrderNumbers', fieldIds.orderNumber, numbers, (record) => record.orderNumber);
    },

    casesBySerialNumbers(serialNumbers) {
      return casesByField('casesBySerialNumbers', fieldIds.serialNumber, serialNumbers, (record) => record.serialNumber);
    },

    // Zendesk has no comments endpoint for several tickets: one listing (or more, past 100
    // comments) per case. The loaders ask for the cases a response shows, so this stays small.
    async commentsByCaseIds(caseIds) {
      const lists = await Promise.all([...new Set(caseIds)].map(commentsOf));
      return lists
        .flat()
        .sort((a, b) => Number(a.caseId) - Number(b.caseId) || a.createdAt.localeCompare(b.createdAt) || Number(a.id) - Number(b.id));
    },
    // The tickets come with their users sideloaded: the assignees are among them.
    caseGraphsByIds(ids, parts) {
      return composeCaseGraph(this, ids, parts, async (ids) => {
        const ticketIds = ids.map(deskId).filter((id): id is number => id !== null);
        return readCasesWithAgents('caseGraphsByIds', ticketIds);
      });
    },

    async agentsByIds(ids) {
      const userIds = ids.map(deskId).filter((id): id is number => id !== null);
      const pages = await Promise.all(
        chunked(userIds, SHOW_MANY_LIMIT).map((batch) =>
          http.get<{ users: ZendeskUser[] }>('agentsByIds', '/api/v2/users/show_many.json', { ids: batch.join(',') }),
        ),
      );
      return pages.flatMap((page) => page.users.filter((user) => AGENT_ROLES.has(user.role)).map(toAgent));
    },

    // Zendesk applies the first policy (by position) whose conditions a ticket meets, so a
    // tier gets the first policy that names its tag.
    async slaPoliciesByTiers(tiers) {
      if (tiers.length === 0) return [];
      const { sla_policies: policies } = await http.get<{ sla_policies: ZendeskSlaPolicy[] }>(
        'slaPoliciesByTiers',
        '/api/v2/slas/policies.json',
      );
      const wanted = new Set(tiers);
      const chosen = new Map<SupportTier, ZendeskSlaPolicy>();
      for (const policy of [...policies].sort((a, b) => a.position - b.position)) {
        for (const tier of tiersOf(policy)) if (wanted.has(tier) && !chosen.has(tier)) chosen.set(tier, policy);
      }
      return [...chosen].map(([tier, policy]) => toSlaPolicy(policy, tier));
    },

    async applyCaseUpdate({ key, caseId, internalNote, status }) {
      const ticketId = deskId(caseId);
      if (ticketId === null) return null;
      return options.resilience.call('applyCaseUpdate', { idempotent: true }, (signal) =>
        applyOnce(ticketId, { key, internalNote, status }, signal),
      );
    },

    // The answer is the order's records as the desk has them afterwards: the ones just written,
    // as their upserts answered (the search index may not show them yet), and any other product
    // of the order an earlier recording left.
    async recordInstalledBase({ customerId, orderNumber, items }) {
      const [organization] = await organizationsByCustomerIds('recordInstalledBase', [customerId]);
      if (!organization) return null;
      // One upsert per SKU: the last line of a SKU is what writing them in turn would leave.
      const products = [...new Map(items.map((item) => [item.sku, item])).values()];
      const written = await inTurns(products, UPSERTS_IN_FLIGHT, (item) => upsertInstalledProduct(organization.id, orderNumber, item));
      const records = new Map(
        (await installedProductsOf('recordInstalledBase', [organization.id], orderNumber)).map((record) => [record.id, record]),
      );
      for (const { custom_object_record: record } of written) records.set(record.id, record);
      const customerOf = new Map([[String(organization.id), customerId]]);
      return newestRecordedFirst(
        [...records.values()]
          .map((record) => toInstalledProduct(record, customerOf))
          .filter((product): product is InstalledProductRecord => product !== null && product.orderNumber === orderNumber),
      );
    },

    // The organization (and its tags) is read first, then its entitlement records. The record of
    // the subscription is written only when it holds another state, the tags only when they
    // differ, so setting the same state again writes nothing. The answer is the organization's
    // records as the search found them, with the one just written as its upsert answered.
    async setEntitlement(update) {
      const [organization] = await organizationsByCustomerIds('setEntitlement', [update.customerId]);
      if (!organization) return null;
      // The subscription's record is found wherever it is linked: one whose state is unchanged
      // stays where it is, as in the embedded desk.
      const found = await searchRecords(
        'setEntitlement',
        ENTITLEMENT_OBJECT,
        { $or: [linkedTo([organization.id]), { external_id: { $eq: update.subscriptionId } }] },
        'created_at',
      );
      const records = new Map(found.map((record) => [record.id, record]));
      const existing = found.find((record) => record.external_id === update.subscriptionId);
      if (!existing || !holdsEntitlement(existing, update)) {
        const { custom_object_record: written } = await upsertEntitlement(organization.id, update);
        records.set(written.id, written);
      }
      const customerOf = new Map([[String(organization.id), update.customerId]]);
      const entitlements = byCustomerAndSubscription(
        [...records.values()]
          .map((record) => toEntitlement(record, customerOf))
          .filter((entitlement): entitlement is EntitlementRecord => entitlement !== null),
      );
      await applyTierTag(organization, highestActiveTier(entitlements));
      return entitlements;
    },

    async entitlementsByCustomerIds(customerIds) {
      const organizations = await organizationsByCustomerIds('entitlementsByCustomerIds', customerIds);
      if (organizations.length === 0) return [];
      const customerOf = new Map(organizations.map((organization) => [String(organization.id), organization.external_id ?? '']));
      const records = await linkedRecords(
        'entitlementsByCustomerIds',
        ENTITLEMENT_OBJECT,
        organizations.map((organization) => organization.id),
        'created_at',
      );
      return byCustomerAndSubscription(
        records
          .map((record) => toEntitlement(record, customerOf))
          .filter((entitlement): entitlement is EntitlementRecord => entitlement !== null),
      );
    },

    async installedBaseByCustomerIds(customerIds) {
      const organizations = await organizationsByCustomerIds('installedBaseByCustomerIds', customerIds);
      if (organizations.length === 0) return [];
      const customerOf = new Map(organizations.map((organization) => [String(organization.id), organization.external_id ?? '']));
      const records = await installedProductsOf(
        'installedBaseByCustomerIds',
        organizations.map((organization) => organization.id),
      );
      return newestRecordedFirst(
        records
          .map((record) => toInstalledProduct(record, customerOf))
          .filter((product): product is InstalledProductRecord => product !== null),
      );
    },

    async ping() {
      // Zendesk answers /users/me for a missing credential too, as the anonymous user (id null).
      const { user } = await http.get<{ user: ZendeskUser }>('ping', '/api/v2/users/me.json');
      if (user.id === null) throw new SystemCallError('the desk did not accept the credentials', { retryable: false, status: 401 });
    },

    // Node's global fetch pools connections process-wide; there is nothing of ours to release.
    async close() {},
    apiBudget: () => http.budget(),

    changeReads: {
      async incrementalTickets(from) {
        const page = await http.get<IncrementalTicketExport>('incrementalTickets', '/api/v2/incremental/tickets/cursor.json', {
          ...('cursor' in from ? { cursor: from.cursor } : { start_time: from.startTime }),
          include: 'organizations',
        });
        const parties = partiesFrom(page);
        return {
          cases: page.tickets.map((ticket) => ({
            // A deleted ticket may come without its lists.
            record: toCase({ ...ticket, tags: ticket.tags ?? [], custom_fields: ticket.custom_fields ?? [] }, parties, fieldIds),
            deleted: ticket.status === 'deleted',
          })),
          afterCursor: page.after_cursor ?? null,
          endOfStream: page.end_of_stream === true,
        };
      },
      async customerIdOfOrganization(organizationId) {
        const found = await http.find<{ organization: ZendeskOrganization }>(
          'customerIdOfOrganization',
          `/api/v2/organizations/${organizationId}.json`,
        );
        return found?.organization.external_id || null;
      },
    },
  };
}
