import { createHash } from 'node:crypto';
import type { ConnectorTelemetry } from '../../../../platform/connector-telemetry.ts';
import { chunked } from '../../../../platform/chunks.ts';
import { pagingGuard } from '../../../../platform/paging.ts';
import { SystemCallError, type Resilience } from '../../../../platform/resilience.ts';
import { createVendorHttp, nameOf, rateLimitHeaders, type StatusTable, type VendorRequest } from '../../../../platform/vendor-http.ts';
import type {
  AgentRecord,
  CaseFilterInput,
  CasePriority,
  CaseRecord,
  CaseStatus,
  CaseUpdate,
  CommentRecord,
  EntitlementRecord,
  EntitlementUpdate,
  InstalledProductRecord,
  SlaPolicyRecord,
  SlaTargetRecord,
  SupportConnector,
  SupportTier,
} from './types.ts';
import { OPEN_CASE_STATUSES } from './types.ts';
import { TIER_ORDER, TIER_TAG, TYPE_FROM_DESK } from './vocabulary.ts';
import { composeCaseGraph } from './graphs.ts';

export interface FreshdeskConnectorOptions {
  /** The account's address, e.g. https://acme.freshdesk.com (no trailing /api/v2). */
  baseUrl: string;
  /** An agent's API key; sent as the user name of basic auth, with the password X. */
  apiKey: string;
  /**
   * Names of the custom fields that hold the canonical keys: the ticket fields (with their
   * `cf_` prefix) of the order and serial number, the company field of the customer number and
   * the contact field of the CRM contact id.
   */
  fields?: Partial<FreshdeskFieldNames>;
  /**
   * The custom objects (Freshdesk's Custom Objects API) that hold the installed base and the
   * entitlements, each by its schema's name or id; default `installed_product` and `entitlement`.
   */
  customObjects?: Partial<FreshdeskCustomObjects>;
  /** The account's custom statuses (ids from 6 up) and the canonical status each stands for. */
  customStatuses?: Readonly<Record<number, CaseStatus>>;
  /** The SLA policy of each support tier: Freshdesk's policies apply to companies, not tags. */
  slaPolicyIds?: Readonly<Partial<Record<SupportTier, number>>>;
  /** Records per list page, at most 100 (the default). */
  pageSize?: number;
  /** The last page a list serves (Freshdesk: 300) and a filter search (Freshdesk: 10). */
  pageCeiling?: number;
  searchPageCeiling?: number;
  /**
   * How long a company's customer number, a contact's CRM id and the agent list are kept
   * (Freshdesk cannot embed them in a ticket); default 5 minutes, 0 reads them every time.
   */
  directoryTtlMs?: number;
  telemetry: ConnectorTelemetry;
  resilience: Resilience;
}

export interface FreshdeskFieldNames {
  orderNumber: string;
  serialNumber: string;
  customerNumber: string;
  crmContactId: string;
  /** The company field that holds the support tier (BASIC, STANDARD, PREMIUM) its entitlements give it. */
  supportTier: string;
}

export interface FreshdeskCustomObjects {
  installedBase: string;
  entitlements: string;
}

const DEFAULT_FIELDS: FreshdeskFieldNames = {
  orderNumber: 'cf_order_number',
  serialNumber: 'cf_serial_number',
  customerNumber: 'customer_number',
  crmContactId: 'crm_contact_id',
  supportTier: 'support_tier',
};

export const DEFAULT_CUSTOM_OBJECTS: FreshdeskCustomObjects = { installedBase: 'installed_product', entitlements: 'entitlement' };

// ---------------------------------------------------------------------------------------------
// Wire shapes: the parts of Freshdesk's resources this adapter reads.
// ---------------------------------------------------------------------------------------------

interface FreshdeskTicket {
  id: number;
  subject: string | null;
  description_text?: string | null;
  status: number;
  priority: number | null;
  type: string | null;
  tags: string[];
  created_at: string;
  updated_at: string;
  due_by: string | null;
  responder_id: number | null;
  requester_id: number | null;
  company_id: number | null;
  custom_fields: Record<string, unknown>;
}
interface FreshdeskCompany {
  id: number;
  custom_fields: Record<string, unknown>;
}
interface FreshdeskContact {
  id: number;
  name: string;
  custom_fields: Record<string, unknown>;
}
interface FreshdeskAgent {
  id: number;
  contact: { name: string; email: string | null };
}
interface FreshdeskConversation {
  id: number;
  user_id: number | null;
  body_text: string;
  private: boolean;
  created_at: string;
}
interface FreshdeskSlaPolicy {
  id: number;
  name: string;
  active: boolean;
  sla_target: Record<string, { respond_within: number; resolve_within: number; business_hours: boolean }>;
}
interface SearchPage<T> {
  results: T[];
  total: number;
}
interface CustomObjectSchema {
  id: string | number;
  name: string;
}
/** A custom object record: its fields in `data`, times in epoch milliseconds, `version` for optimistic updates. */
interface CustomObjectRecord<D> {
  display_id: string;
  version: number;
  created_time: number;
  updated_time: number;
  data: D;
}
interface RecordsPage<D> {
  records: CustomObjectRecord<D>[];
  /** The next page's link (relative to the account), absent on the last page. */
  _links?: { next?: { href?: string } | null } | null;
}
type FieldValue = string | number | boolean | null | undefined;
/** The installed base object's fields; `company` is a lookup of the company (its id). */
interface InstalledProductData {
  external_id?: FieldValue;
  product_name?: FieldValue;
  company?: FieldValue;
  order_number?: FieldValue;
  sku?: FieldValue;
  quantity?: FieldValue;
  warranty_months?: FieldValue;
  [field: string]: FieldValue;
}
/** The entitlement object's fields; `until` is a date (YYYY-MM-DD), `active` a checkbox. */
interface EntitlementData {
  subscription_id?: FieldValue;
  title?: FieldValue;
  company?: FieldValue;
  tier?: FieldValue;
  active?: FieldValue;
  until?: FieldValue;
  [field: string]: FieldValue;
}

// ---------------------------------------------------------------------------------------------
// Vocabulary: Freshdesk's numeric statuses and priorities.
// ---------------------------------------------------------------------------------------------

/** Freshdesk's own statuses; custom ones (6 and up) come from the options. */
export const FRESHDESK_STATUS_FROM_DESK: Readonly<Record<number, CaseStatus>> = { 2: 'OPEN', 3: 'PENDING', 4: 'SOLVED', 5: 'CLOSED' };
export const FRESHDESK_PRIORITY_FROM_DESK: Readonly<Record<number, CasePriority>> = { 1: 'LOW', 2: 'NORMAL', 3: 'HIGH', 4: 'URGENT' };
export const FRESHDESK_PRIORITY_TO_DESK: Readonly<Record<CasePriority, number>> = { LOW: 1, NORMAL: 2, HIGH: 3, URGENT: 4 };
/** Where an account has no custom status for it, a new case is open and one on hold pending. */
const STATUS_FALLBACK: Readonly<Record<CaseStatus, number>> = { NEW: 2, OPEN: 2, PENDING: 3, ON_HOLD: 3, SOLVED: 4, CLOSED: 5 };

interface Vocabulary {
  statusOf(deskStatus: number): CaseStatus;
  /** Every desk status that reads as one of these (empty: none does). */
  deskStatuses(statuses: readonly CaseStatus[]): number[];
  /** The desk status a case is set to. */
  deskStatus(status: CaseStatus): number;
}

function vocabularyOf(customStatuses: Readonly<Record<number, CaseStatus>>): Vocabulary {
  const fromDesk = new Map<number, CaseStatus>(
    [...Object.entries(FRESHDESK_STATUS_FROM_DESK), ...Object.entries(customStatuses)].map(([id, status]) => [Number(id), status]),
  );
  return {
    // A custom status the options do not name is still a ticket someone works on.
    statusOf: (deskStatus) => fromDesk.get(deskStatus) ?? 'OPEN',
    deskStatuses: (statuses) => [...fromDesk].filter(([, status]) => statuses.includes(status)).map(([id]) => id),
    deskStatus: (status) => [...fromDesk].find(([, candidate]) => candidate === status)?.[0] ?? STATUS_FALLBACK[status],
  };
}

const PRIORITY_ORDER: readonly CasePriority[] = ['URGENT', 'HIGH', 'NORMAL', 'LOW'];

/** Tags this adapter writes for its own bookkeeping; they are not the case's tags. */
const IDEMPOTENCY_TAG_PREFIX = 'concord_';

/**
 * The tag that marks an update key as applied. Freshdesk keeps tags as given but compares them
 * without case, so a key that is not already lower-case tag text gets a hash of itself
 * appended: two keys must never share a tag, or the second update would be skipped.
 */
export function freshdeskIdempotencyTag(key: string): string {
  const sanitized = key.toLowerCase().replace(/[^a-z0-9_-]+/g, '_');
  if (sanitized === key && key.length <= 64) return IDEMPOTENCY_TAG_PREFIX + key;
  const digest = createHash('sha256').update(key).digest('hex').slice(0, 16);
  return `${IDEMPOTENCY_TAG_PREFIX}${sanitized.slice(0, 40)}_${digest}`;
}

// ---------------------------------------------------------------------------------------------
// Queries.
// ---------------------------------------------------------------------------------------------

/** Ticket, company, contact and agent ids are positive integers; anything else names no record. */
function deskId(value: string): number | null {
  const id = Number(value);
  return /^\d+$/.test(value) && Number.isSafeInteger(id) && id > 0 ? id : null;
}

function newestFirst(records: CaseRecord[]): CaseRecord[] {
  return records.sort((a, b) => Number(b.id) - Number(a.id));
}

/** A string value in a filter search query: single-quoted, its quotes and backslashes escaped. */
function quoted(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/** Terms OR-ed together as one group. */
function anyOf(terms: readonly string[]): string {
  return terms.length === 1 ? terms[0]! : `(${terms.join(' OR ')})`;
}

/** The day of a timestamp, as filter search compares dates (UTC). */
const dayOf = (timestamp: string) => new Date(Date.parse(timestamp)).toISOString().slice(0, 10);

/** Filter search takes at most 512 characters; a created_at bound and parentheses may be added. */
const QUERY_LIMIT = 512;
const QUERY_BOUND_ROOM = 48;
/** Every ticket: filter search wants at least one condition. */
const ALL_TICKETS = "created_at:>'1970-01-01'";
/** The list's lower bound on updated_at that includes every ticket (without one it shows 30 days). */
const SINCE_EVER = '1970-01-01T00:00:00Z';
const SEARCH_PAGE_SIZE = 30;
/** Requests one batch sends at once: the bulkhead queues a few callers per slot, not hundreds. */
const IN_FLIGHT = 8;
/** Directory entries kept at most; past this the directory starts over. */
const DIRECTORY_LIMIT = 10_000;

/** Terms OR-ed in groups that each fit one query. */
function orBatches(terms: readonly string[], room = QUERY_LIMIT - QUERY_BOUND_ROOM): string[] {
  const batches: string[][] = [];
  let length = 0;
  for (const term of new Set(terms)) {
    const current = batches.at(-1);
    if (current && length + term.length + 4 <= room - 2) {
      current.push(term);
      length += term.length + 4;
    } else {
      batches.push([term]);
      length = term.length;
    }
  }
  return batches.map(anyOf);
}

/**
 * Queries for records whose field holds one of the keys: at most a search page of keys each (a
 * key names one record, so each query's results fit its first page), and within 512 characters.
 */
function keyQueries(keys: readonly string[], field: string): string[] {
  return chunked(keys, SEARCH_PAGE_SIZE).flatMap((batch) =>
    orBatches(
      batch.map((key) => `${field}:${quoted(key)}`),
      QUERY_LIMIT,
    ),
  );
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

/** Text as a note's HTML body (Freshdesk derives the note's body_text from it). */
function htmlOf(text: string): string {
  const escaped = text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
  return `<div>${escaped.replace(/\n/g, '<br>')}</div>`;
}

// ---------------------------------------------------------------------------------------------
// Custom object records: the installed base and entitlements.
// ---------------------------------------------------------------------------------------------

/** Upserts of one order's products in flight at once. */
const UPSERTS_IN_FLIGHT = 4;
/** Times a write refused for a stale version (another writer changed the record) reads again. */
const VERSION_RETRIES = 3;

/** A field's value as text; null when empty. */
function fieldText(value: FieldValue): string | null {
  return value === null || value === undefined || value === '' ? null : String(value);
}

function integerOrNull(value: FieldValue): number | null {
  const text = fieldText(value);
  if (text === null) return null;
  const number = Number(text);
  return Number.isFinite(number) ? number : null;
}

/** Whether the record's fields already hold every value of `data` (then nothing is written). */
function holdsData(record: Readonly<Record<string, FieldValue>>, data: Readonly<Record<string, FieldValue>>): boolean {
  return Object.entries(data).every(([field, value]) => fieldText(record[field]) === fieldText(value));
}

const isoOfMillis = (millis: number) => (Number.isFinite(millis) ? new Date(millis).toISOString() : '');

const binary = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

function toInstalledProduct(
  record: CustomObjectRecord<InstalledProductData>,
  customerOf: ReadonlyMap<number, string>,
): InstalledProductRecord | null {
  const company = integerOrNull(record.data.company);
  const customerId = company === null ? undefined : customerOf.get(company);
  if (customerId === undefined) return null;
  const orderNumber = fieldText(record.data.order_number) ?? '';
  const sku = fieldText(record.data.sku) ?? '';
  return {
    id: fieldText(record.data.external_id) ?? `${orderNumber}:${sku}`,
    customerId,
    orderNumber,
    sku,
    name: fieldText(record.data.product_name),
    quantity: integerOrNull(record.data.quantity) ?? 0,
    warrantyMonths: integerOrNull(record.data.warranty_months),
    recordedAt: isoOfMillis(record.created_time),
  };
}

function toEntitlement(record: CustomObjectRecord<EntitlementData>, customerOf: ReadonlyMap<number, string>): EntitlementRecord | null {
  const company = integerOrNull(record.data.company);
  const customerId = company === null ? undefined : customerOf.get(company);
  const tier = TIER_ORDER.find((candidate) => candidate === fieldText(record.data.tier)) ?? null;
  const subscriptionId = fieldText(record.data.subscription_id);
  if (customerId === undefined || tier === null || subscriptionId === null) return null;
  return {
    subscriptionId,
    customerId,
    tier,
    active: record.data.active === true || record.data.active === 'true',
    until: fieldText(record.data.until),
    updatedAt: isoOfMillis(record.updated_time),
  };
}

/** By customer number, then subscription id (binary), as the embedded desk orders them. */
function byCustomerAndSubscription(entitlements: EntitlementRecord[]): EntitlementRecord[] {
  return entitlements.sort((a, b) => binary(a.customerId, b.customerId) || binary(a.subscriptionId, b.subscriptionId));
}

/** Newest first; records of one moment by external id (binary). */
function newestRecordedFirst(records: InstalledProductRecord[]): InstalledProductRecord[] {
  return records.sort((a, b) => Date.parse(b.recordedAt) - Date.parse(a.recordedAt) || binary(a.id, b.id));
}

// ---------------------------------------------------------------------------------------------
// HTTP: one request per telemetry call, classified for the resilience layer.
// ---------------------------------------------------------------------------------------------

type QueryParams = Record<string, string | number | undefined>;

interface HttpRequest {
  method: 'GET' | 'PUT' | 'POST';
  path: string;
  query?: QueryParams;
  body?: unknown;
  /** An absolute next link to follow instead of path and query. */
  url?: string;
}

interface Answer<T> {
  status: number;
  body: T;
  /** The `Link` header's rel="next" target, if any. */
  next: string | null;
}

/**
 * Freshdesk's error bodies: `{"code","message"}`, or for invalid requests
 * `{"description":"Validation failed","errors":[{"field","message","code"}]}`.
 */
function errorOf(body: unknown): { code: string | null; message: string } {
  if (typeof body === 'string') return { code: null, message: body.trim().slice(0, 200) };
  if (!body || typeof body !== 'object') return { code: null, message: JSON.stringify(body) };
  const { code, message, description, errors } = body as { code?: unknown; message?: unknown; description?: unknown; errors?: unknown };
  if (Array.isArray(errors)) {
    const details = (errors as { field?: unknown; message?: unknown; code?: unknown }[])
      .map((entry) => [entry.field, entry.message].filter((part) => typeof part === 'string').join(': '))
      .join('; ');
    const first = (errors as { code?: unknown }[])[0]?.code;
    return {
      code: typeof first === 'string' ? first : null,
      message: `${typeof description === 'string' ? description : 'Invalid'}: ${details}`,
    };
  }
  return {
    code: typeof code === 'string' ? code : null,
    message: typeof message === 'string' ? message : JSON.stringify(body),
  };
}

/**
 * What each failed answer means: 429 (after its Retry-After) and 5xx are the desk's own
 * trouble and pass; other 4xx are this request's and would fail again. API keys do not expire,
 * so a refused one (401, 403) is refused again.
 */
const FRESHDESK_STATUSES: StatusTable = [
  { status: 429, verdict: 'rate-limited', retryAfter: true },
  { status: { from: 500, to: 599 }, verdict: 'retry', retryAfter: true },
  { verdict: 'fail' },
];

function nextLink(header: string | null): string | null {
  if (!header) return null;
  for (const part of header.split(',')) {
    const match = /<([^>]+)>\s*;\s*rel="?next"?/i.exec(part);
    if (match) return match[1]!;
  }
  return null;
}

function createFreshdeskHttp(options: FreshdeskConnectorOptions) {
  const baseUrl = options.baseUrl.replace(/\/+$/, '');
  const authorization = `Basic ${Buffer.from(`${options.apiKey}:X`).toString('base64')}`;
  const http = createVendorHttp({
    baseUrl,
    auth: { authorization: () => authorization },
    statuses: FRESHDESK_STATUSES,
    errorOf,
    failure: (request, answer, error, details) =>
      new SystemCallError(`${nameOf(request)} answered ${answer.status} (${error.message})`, details),
    // The account's requests per period (minute or hour by plan), and what is left of them.
    budget: rateLimitHeaders('x-ratelimit-total', 'x-ratelimit-remaining'),
    telemetry: options.telemetry,
    resilience: options.resilience,
  });

  function urlOf(request: HttpRequest): string {
    if (request.url) return http.followable(request.url, baseUrl);
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(request.query ?? {})) if (value !== undefined) params.set(name, String(value));
    const query = params.toString();
    return `${baseUrl}${request.path}${query ? `?${query}` : ''}`;
  }

  /** One HTTP request, counted once by telemetry; failures (but the expected statuses) are classified SystemCallErrors. */
  function exchange<T>(operation: string, request: HttpRequest, signal: AbortSignal, expected: readonly number[] = []): Promise<Answer<T>> {
    const name = `${request.method} ${request.path}`;
    const outgoing: VendorRequest = { method: request.method, url: urlOf(request), body: request.body, name };
    return http.counted(operation, { request: name }, async () => {
      const answer = await http.send(outgoing, signal);
      const next = nextLink(answer.header('link'));
      if (expected.includes(answer.status)) return { status: answer.status, body: answer.body as T, next };
      if (answer.status < 200 || answer.status >= 300) throw http.fail(outgoing, answer);
      if (typeof answer.body !== 'object' || answer.body === null)
        throw new SystemCallError(`${name} answered ${answer.status} without JSON`, { retryable: false, status: answer.status });
      return { status: answer.status, body: answer.body as T, next };
    });
  }

  /** One GET through the resilience layer (reads are safe to repeat); null for the expected 404. */
  function read<T>(operation: string, request: Omit<HttpRequest, 'method'>, notFound: true): Promise<Answer<T> | null>;
  function read<T>(operation: string, request: Omit<HttpRequest, 'method'>, notFound?: false): Promise<Answer<T>>;
  async function read<T>(operation: string, request: Omit<HttpRequest, 'method'>, notFound = false): Promise<Answer<T> | null> {
    const answer = await http.call(operation, { idempotent: true }, (signal) =>
      exchange<T>(operation, { method: 'GET', ...request }, signal, notFound ? [404] : []),
    );
    return answer.status === 404 ? null : answer;
  }

  return { exchange, read, call: http.call, budget: () => http.budget() };
}

// ---------------------------------------------------------------------------------------------
// The adapter.
// ---------------------------------------------------------------------------------------------

/** What Freshdesk says is left of the account's rate limit (X-RateLimit-Total, X-RateLimit-Remaining). */
export interface FreshdeskRateBudget {
  limit: number;
  remaining: number;
}

export type FreshdeskConnector = SupportConnector & { apiBudget(): FreshdeskRateBudget | null };

/** A ticket's people, as the desk's directory knows them. */
interface Parties {
  customerOf(companyId: number | null): string | null;
  contactOf(requesterId: number | null): string | null;
}

/** Remembers each id's value for a while (one look-up in flight per id); a failed look-up is not remembered. */
function createDirectory<V>(
  ttlMs: number,
  load: (id: number, operation: string) => Promise<V>,
): (operation: string) => (id: number) => Promise<V> {
  const entries = new Map<number, { value: Promise<V>; expiresAt: number }>();
  // A look-up counts for the port operation that asked first.
  return (operation) => (id) => {
    const entry = entries.get(id);
    if (entry && entry.expiresAt > Date.now()) return entry.value;
    if (entries.size >= DIRECTORY_LIMIT) entries.clear();
    const value = load(id, operation);
    const created = { value, expiresAt: Number.POSITIVE_INFINITY };
    entries.set(id, created);
    value.then(
      () => {
        created.expiresAt = Date.now() + ttlMs;
      },
      () => {
        if (entries.get(id) === created) entries.delete(id);
      },
    );
    return value;
  };
}

/**
 * The support desk port over the Freshdesk API v2. Freshdesk has no endpoint that reads several
 * tickets by id, and its ticket filter search indexes neither the company nor the requester, so:
 * tickets by id are read one request each; searches without a customer go through filter search
 * (30 results a page, 10 pages at most, newest first, walked in created_at windows past that);
 * a customer's or a contact's tickets through the ticket list (`company_id` / `requester_id`,
 * newest first, in `updated_since` windows past the page ceiling). A ticket names its company
 * and requester by Freshdesk id only, so their customer number and CRM contact id are read from
 * the company and contact (kept for `directoryTtlMs`). Every HTTP request goes through the
 * resilience layer and counts once in the connector telemetry.
 *
 * The installed base and entitlements are records of two custom objects (the Custom Objects
 * API, `/api/v2/custom_objects/schemas/{id}/records`, schemas named by `customObjects`):
 * `installed_product` (external_id `<order number>:<sku>`, product_name, company: a lookup of
 * the company, order_number, sku, quantity, warranty_months) and `entitlement`
 * (subscription_id, title, company, tier, active, until). Records are listed by one field
 * (`?company=<id>`, `?order_number=…`), `page_size` at a time, following `_links.next`. Both
 * are upserted by their key, as read-then-write cycles the resilience layer repeats whole
 * (see `upsert`). The company's tier (the highest among its active entitlements) is written to
 * its `support_tier` field, only when it differs; which SLA policy a tier gets is the account's
 * configuration (`slaPolicyIds`).
 */
export function createFreshdeskConnector(options: FreshdeskConnectorOptions): FreshdeskConnector {
  const http = createFreshdeskHttp(options);
  const fields: FreshdeskFieldNames = { ...DEFAULT_FIELDS, ...options.fields };
  const customObjects: FreshdeskCustomObjects = { ...DEFAULT_CUSTOM_OBJECTS, ...options.customObjects };
  const vocabulary = vocabularyOf(options.customStatuses ?? {});
  const pageSize = Math.max(1, Math.min(100, options.pageSize ?? 100));
  const pageCeiling = options.pageCeiling ?? 300;
  const searchPageCeiling = options.searchPageCeiling ?? 10;
  const ttlMs = options.directoryTtlMs ?? 300_000;

  const textField = (record: { custom_fields: Record<string, unknown> }, name: string): string | null => {
    const value = record.custom_fields?.[name];
    // An emptied text field comes back as null or "".
    return value === null || value === undefined || value === '' ? null : String(value);
  };

  const companyCustomer = createDirectory(ttlMs, async (id, operation) => {
    const found = await http.read<FreshdeskCompany>(operation, { path: `/api/v2/companies/${id}` }, true);
    return found ? textField(found.body, fields.customerNumber) : null;
  });
  const contactDirectory = createDirectory(ttlMs, async (id, operation) => {
    // An agent who raised a ticket is no contact: 404, and no CRM contact id.
    const found = await http.read<FreshdeskContact>(operation, { path: `/api/v2/contacts/${id}` }, true);
    return found ? { name: found.body.name, contactId: textField(found.body, fields.crmContactId) } : null;
  });
  // The agents are one list (a few pages), kept as one entry.
  const agentDirectory = createDirectory(ttlMs, async (_, operation) => {
    const list = await listAll<FreshdeskAgent>(operation, '/api/v2/agents', {});
    return new Map(list.map((agent) => [agent.id, agent]));
  });
  const agents = (operation: string) => agentDirectory(operation)(0);

  function toCase(ticket: FreshdeskTicket, parties: Parties): CaseRecord {
    return {
      id: String(ticket.id),
      subject: ticket.subject ?? '',
      description: ticket.description_text ?? null,
      status: vocabulary.statusOf(ticket.status),
      priority: (ticket.priority !== null && FRESHDESK_PRIORITY_FROM_DESK[ticket.priority]) || 'NORMAL',
      type: (ticket.type && TYPE_FROM_DESK[ticket.type.toLowerCase()]) || null,
      tags: (ticket.tags ?? []).filter((tag) => !tag.startsWith(IDEMPOTENCY_TAG_PREFIX)),
      createdAt: ticket.created_at,
      updatedAt: ticket.updated_at,
      dueAt: ticket.due_by ?? null,
      assigneeId: ticket.responder_id === null ? null : String(ticket.responder_id),
      requesterContactId: parties.contactOf(ticket.requester_id),
      customerId: parties.customerOf(ticket.company_id),
      orderNumber: textField(ticket, fields.orderNumber),
      serialNumber: textField(ticket, fields.serialNumber),
    };
  }

  /** The tickets as cases, their companies' and requesters' keys read from the directory. */
  async function casesOf(operation: string, tickets: readonly FreshdeskTicket[]): Promise<CaseRecord[]> {
    const companyIds = [...new Set(tickets.map((ticket) => ticket.company_id).filter((id): id is number => id !== null))];
    const requesterIds = [...new Set(tickets.map((ticket) => ticket.requester_id).filter((id): id is number => id !== null))];
    const [customers, contacts] = await Promise.all([
      inTurns(companyIds, IN_FLIGHT, companyCustomer(operation)),
      inTurns(requesterIds, IN_FLIGHT, contactDirectory(operation)),
    ]);
    const customerOf = new Map(companyIds.map((id, index) => [id, customers[index] ?? null]));
    const contactOf = new Map(requesterIds.map((id, index) => [id, contacts[index]?.contactId ?? null]));
    const parties: Parties = {
      customerOf: (id) => (id === null ? null : (customerOf.get(id) ?? null)),
      contactOf: (id) => (id === null ? null : (contactOf.get(id) ?? null)),
    };
    return tickets.map((ticket) => toCase(ticket, parties));
  }

  /** Every record of a plain list, following its next links. */
  async function listAll<T>(operation: string, path: string, query: QueryParams): Promise<T[]> {
    const records: T[] = [];
    const guard = pagingGuard('support', operation);
    let answer = await http.read<T[]>(operation, { path, query: { ...query, per_page: pageSize } });
    for (;;) {
      records.push(...answer.body);
      if (!answer.next) return records;
      guard.next(answer.next);
      answer = await http.read<T[]>(operation, { path, url: answer.next });
    }
  }

  /**
   * Walks the ticket list (of a company or requester), calling `visit` with each page until it
   * returns true; resolves to whether the walk stopped short of the list's end at the page
   * ceiling (the list holds more than it serves).
   */
  async function walkList(
    operation: string,
    query: QueryParams,
    visit: (tickets: FreshdeskTicket[]) => boolean,
  ): Promise<{ ceilingReached: boolean }> {
    const path = '/api/v2/tickets';
    const guard = pagingGuard('support', operation);
    let answer = await http.read<FreshdeskTicket[]>(operation, {
      path,
      query: { ...query, include: 'description', per_page: pageSize, page: 1 },
    });
    for (let page = 1; ; page += 1) {
      if (visit(answer.body)) return { ceilingReached: false };
      if (!answer.next) return { ceilingReached: page >= pageCeiling && answer.body.length === pageSize };
      guard.next(answer.next);
      answer = await http.read<FreshdeskTicket[]>(operation, { path, url: answer.next });
    }
  }

  /**
   * Every ticket of the list, past the page ceiling too: oldest change first, each window
   * starting (`updated_since`, inclusive) at the last change the previous one reached.
   */
  async function allTickets(operation: string, scope: QueryParams): Promise<FreshdeskTicket[]> {
    const found = new Map<number, FreshdeskTicket>();
    let since = SINCE_EVER;
    for (;;) {
      let last: string | null = null;
      const { ceilingReached } = await walkList(
        operation,
        { ...scope, updated_since: since, order_by: 'updated_at', order_type: 'asc' },
        (tickets) => {
          for (const ticket of tickets) found.set(ticket.id, ticket);
          last = tickets.at(-1)?.updated_at ?? last;
          return false;
        },
      );
      if (!ceilingReached) return [...found.values()];
      if (last === null || Date.parse(last) <= Date.parse(since)) {
        throw new SystemCallError(`support ${operation}: more tickets changed at ${since} than the list serves`, { retryable: false });
      }
      since = last;
    }
  }

  /**
   * The newest `want` tickets of the list that pass `accept`, newest first. Past the page
   * ceiling the whole list is read in windows and sorted here.
   */
  async function newestTickets(
    operation: string,
    scope: QueryParams,
    accept: (ticket: FreshdeskTicket) => boolean,
    want: number,
  ): Promise<FreshdeskTicket[]> {
    const found: FreshdeskTicket[] = [];
    const { ceilingReached } = await walkList(
      operation,
      { ...scope, updated_since: SINCE_EVER, order_by: 'created_at', order_type: 'desc' },
      (tickets) => {
        for (const ticket of tickets) if (accept(ticket) && found.length < want) found.push(ticket);
        return found.length >= want;
      },
    );
    if (!ceilingReached) return found;
    return (await allTickets(operation, scope))
      .filter(accept)
      .sort((a, b) => b.id - a.id)
      .slice(0, want);
  }

  /** One page of a filter search. */
  function searchPage<T>(operation: string, resource: string, query: string, page: number): Promise<Answer<SearchPage<T>>> {
    return http.read<SearchPage<T>>(operation, { path: `/api/v2/search/${resource}`, query: { query: `"${query}"`, page } });
  }

  /** Every result of a search of companies or contacts (a batch of keys finds few). */
  async function searchRecords<T>(operation: string, resource: string, query: string): Promise<T[]> {
    const results: T[] = [];
    for (let page = 1; page <= searchPageCeiling; page += 1) {
      const { body } = await searchPage<T>(operation, resource, query, page);
      results.push(...body.results);
      if (body.results.length < SEARCH_PAGE_SIZE || results.length >= body.total) break;
    }
    return results;
  }

  /**
   * The newest tickets matching the query, `limit` of them that pass `accept`, and whether the
   * search holds more. Results come newest first, so those `accept` turns down (newer than a
   * cursor) come first; the total returned with each page answers "is there more".
   */
  async function searchNewest(
    operation: string,
    query: string,
    limit: number,
    accept: (ticket: FreshdeskTicket) => boolean = () => true,
  ): Promise<{ tickets: FreshdeskTicket[]; hasMore: boolean }> {
    const tickets: FreshdeskTicket[] = [];
    let rejected = 0;
    let total = 0;
    for (let page = 1; tickets.length < limit && page <= searchPageCeiling; page += 1) {
      const { body } = await searchPage<FreshdeskTicket>(operation, 'tickets', query, page);
      total = body.total;
      for (const ticket of body.results) {
        if (!accept(ticket)) rejected += 1;
        else if (tickets.length < limit) tickets.push(ticket);
      }
      if (body.results.length < SEARCH_PAGE_SIZE) break;
    }
    // Every result the search serves turned down (one day holds more than it serves): no way on.
    if (limit > 0 && tickets.length === 0 && total - rejected > 0) {
      throw new SystemCallError(`support ${operation}: more tickets of one day than filter search serves`, { retryable: false });
    }
    return { tickets, hasMore: total - rejected > tickets.length };
  }

  /**
   * Every ticket matching the query. Past the search's last page, the next window holds the
   * tickets created on or before the oldest day reached (days are what search compares), so
   * windows overlap by a day and results are kept by id.
   */
  async function searchAll(operation: string, query: string): Promise<FreshdeskTicket[]> {
    const found = new Map<number, FreshdeskTicket>();
    let bound: string | null = null;
    for (;;) {
      const windowed: string = bound === null ? query : `(${query}) AND created_at:<'${bound}'`;
      let read = 0;
      let total = 0;
      let oldest: string | null = null;
      for (let page = 1; page <= searchPageCeiling; page += 1) {
        const { body } = await searchPage<FreshdeskTicket>(operation, 'tickets', windowed, page);
        total = body.total;
        read += body.results.length;
        for (const ticket of body.results) found.set(ticket.id, ticket);
        oldest = body.results.at(-1)?.created_at ?? oldest;
        if (body.results.length < SEARCH_PAGE_SIZE || read >= total) break;
      }
      if (read >= total || oldest === null) return [...found.values()];
      const day = dayOf(oldest);
      if (day === bound) {
        throw new SystemCallError(`support ${operation}: more tickets created on ${day} than filter search serves`, { retryable: false });
      }
      bound = day;
    }
  }

  async function companiesByCustomerIds(operation: string, customerIds: readonly string[]): Promise<Map<number, string>> {
    const queries = keyQueries(customerIds, fields.customerNumber);
    const batches = await inTurns(queries, IN_FLIGHT, (query) => searchRecords<FreshdeskCompany>(operation, 'companies', query));
    const wanted = new Set(customerIds);
    const companies = new Map<number, string>();
    // Search matches text loosely (case aside): only the exact customer number counts.
    for (const company of batches.flat()) {
      const customerId = textField(company, fields.customerNumber);
      if (customerId !== null && wanted.has(customerId)) companies.set(company.id, customerId);
    }
    return companies;
  }

  async function contactsByCrmIds(operation: string, contactIds: readonly string[]): Promise<Map<number, string>> {
    const queries = keyQueries(contactIds, fields.crmContactId);
    const batches = await inTurns(queries, IN_FLIGHT, (query) => searchRecords<FreshdeskContact>(operation, 'contacts', query));
    const wanted = new Set(contactIds);
    const contacts = new Map<number, string>();
    for (const contact of batches.flat()) {
      const contactId = textField(contact, fields.crmContactId);
      if (contactId !== null && wanted.has(contactId)) contacts.set(contact.id, contactId);
    }
    return contacts;
  }

  /** Whether a ticket (as read) matches the filter's status, priority and assignee. */
  function matches(ticket: FreshdeskTicket, filter: CaseFilterInput): boolean {
    const priority = (ticket.priority !== null && FRESHDESK_PRIORITY_FROM_DESK[ticket.priority]) || 'NORMAL';
    return (
      (!filter.statuses?.length || filter.statuses.includes(vocabulary.statusOf(ticket.status))) &&
      (!filter.priorities?.length || filter.priorities.includes(priority)) &&
      (filter.assigneeId === undefined || (ticket.responder_id !== null && ticket.responder_id === deskId(filter.assigneeId)))
    );
  }

  /**
   * Search conditions for the filter's status, priority and assignee, or null when the filter
   * can match nothing (a status the account has no status for, an agent id that is none).
   */
  function filterTerms(filter: CaseFilterInput): string[] | null {
    const terms: string[] = [];
    if (filter.statuses?.length) {
      const statuses = vocabulary.deskStatuses(filter.statuses);
      if (statuses.length === 0) return null;
      terms.push(anyOf(statuses.map((status) => `status:${status}`)));
    }
    if (filter.priorities?.length) {
      terms.push(anyOf([...new Set(filter.priorities)].map((priority) => `priority:${FRESHDESK_PRIORITY_TO_DESK[priority]}`)));
    }
    if (filter.assigneeId !== undefined) {
      const agent = deskId(filter.assigneeId);
      if (agent === null) return null;
      terms.push(`agent_id:${agent}`);
    }
    return terms;
  }

  /** Tickets whose text field holds one of the values exactly (search matches case aside). */
  async function casesByField(operation: string, field: string, values: readonly string[]): Promise<CaseRecord[]> {
    const wanted = new Set(values);
    const terms = [...wanted].map((value) => `${field}:${quoted(value)}`);
    const batches = await inTurns(orBatches(terms), IN_FLIGHT, (query) => searchAll(operation, query));
    const tickets = new Map<number, FreshdeskTicket>();
    for (const ticket of batches.flat()) if (wanted.has(textField(ticket, field) ?? '')) tickets.set(ticket.id, ticket);
    return newestFirst(await casesOf(operation, [...tickets.values()]));
  }

  /** Every conversation of a ticket (replies and notes), oldest first; null when the ticket is unknown. */
  async function conversationsOf(operation: string, ticketId: number, signal?: AbortSignal): Promise<FreshdeskConversation[] | null> {
    const path = `/api/v2/tickets/${ticketId}/conversations`;
    const guard = pagingGuard('support', operation);
    const get = (request: Omit<HttpRequest, 'method'>) =>
      signal
        ? http.exchange<FreshdeskConversation[]>(operation, { method: 'GET', ...request }, signal, [404])
        : http.read<FreshdeskConversation[]>(operation, request, true);
    let answer = await get({ path, query: { per_page: pageSize } });
    const conversations: FreshdeskConversation[] = [];
    for (;;) {
      if (!answer || answer.status === 404) return conversations.length ? conversations : null;
      conversations.push(...answer.body);
      if (!answer.next) return conversations;
      guard.next(answer.next);
      answer = await get({ path, url: answer.next });
    }
  }

  async function commentsOf(caseId: string): Promise<CommentRecord[]> {
    const ticketId = deskId(caseId);
    if (ticketId === null) return [];
    const conversations = (await conversationsOf('commentsByCaseIds', ticketId)) ?? [];
    const authorIds = [...new Set(conversations.map((conversation) => conversation.user_id).filter((id): id is number => id !== null))];
    const agentsById = authorIds.length ? await agents('commentsByCaseIds') : new Map<number, FreshdeskAgent>();
    const contactIds = authorIds.filter((id) => !agentsById.has(id));
    const contacts = await inTurns(contactIds, IN_FLIGHT, contactDirectory('commentsByCaseIds'));
    const names = new Map<number, string>();
    for (const [id, agent] of agentsById) names.set(id, agent.contact.name);
    contactIds.forEach((id, index) => {
      const contact = contacts[index];
      if (contact) names.set(id, contact.name);
    });
    return conversations.map((conversation) => ({
      id: String(conversation.id),
      caseId: String(ticketId),
      body: conversation.body_text,
      public: !conversation.private,
      authorName: conversation.user_id === null ? null : (names.get(conversation.user_id) ?? null),
      createdAt: conversation.created_at,
    }));
  }

  function toSlaPolicy(policy: FreshdeskSlaPolicy, tier: SupportTier): SlaPolicyRecord {
    const targets: SlaTargetRecord[] = [];
    for (const [key, target] of Object.entries(policy.sla_target ?? {})) {
      const priority = FRESHDESK_PRIORITY_FROM_DESK[Number(key.replace(/^priority_/, ''))];
      if (!priority) continue;
      // Targets are seconds.
      targets.push({ priority, firstResponseHours: target.respond_within / 3600, resolutionHours: target.resolve_within / 3600 });
    }
    return {
      tier,
      name: policy.name,
      businessHoursOnly: Object.values(policy.sla_target ?? {}).some((target) => target.business_hours),
      targets: targets.sort((a, b) => PRIORITY_ORDER.indexOf(a.priority) - PRIORITY_ORDER.indexOf(b.priority)),
    };
  }

  /**
   * Reads the ticket and, unless its tags show the key applied, adds the note (unless a private
   * note with the same text is already there: an earlier try added it and lost the answer), then
   * sets the status and the key's tag in one PUT. Freshdesk replaces a ticket's tags with the
   * list sent, so the list is the one just read plus the tag. Retrying this whole cycle, not one
   * request, is what makes a lost answer safe to repeat.
   *
   * Freshdesk has no conditional update (Zendesk's safe_update): two deliveries of one key at
   * the same moment can both pass the check and both add the note, and a tag another writer adds
   * between the read and the PUT is dropped. Deliveries of one key are expected one at a time.
   */
  async function applyOnce(ticketId: number, update: Omit<CaseUpdate, 'caseId'>, signal: AbortSignal): Promise<FreshdeskTicket | null> {
    const tag = freshdeskIdempotencyTag(update.key);
    const path = `/api/v2/tickets/${ticketId}`;
    const read = await http.exchange<FreshdeskTicket>('applyCaseUpdate', { method: 'GET', path }, signal, [404]);
    if (read.status === 404) return null;
    if (read.body.tags.some((existing) => existing.toLowerCase() === tag)) return read.body;
    if (update.internalNote) {
      const conversations = (await conversationsOf('applyCaseUpdate', ticketId, signal)) ?? [];
      const noted = conversations.some((conversation) => conversation.private && conversation.body_text === update.internalNote);
      if (!noted) {
        await http.exchange(
          'applyCaseUpdate',
          { method: 'POST', path: `${path}/notes`, body: { body: htmlOf(update.internalNote), private: true } },
          signal,
        );
      }
    }
    const written = await http.exchange<FreshdeskTicket>(
      'applyCaseUpdate',
      {
        method: 'PUT',
        path,
        body: { ...(update.status ? { status: vocabulary.deskStatus(update.status) } : {}), tags: [...read.body.tags, tag] },
      },
      signal,
      [404],
    );
    return written.status === 404 ? null : written.body;
  }

  // The custom objects' schemas, by name and id: one list, kept like the directory.
  const schemaDirectory = createDirectory(ttlMs, async (_, operation) => {
    const answer = await http.read<{ schemas?: CustomObjectSchema[] }>(operation, { path: '/api/v2/custom_objects/schemas' });
    return answer.body.schemas ?? [];
  });

  /** The schema id of the custom object configured for `which`: an id as given, a name looked up. */
  async function schemaIdOf(operation: string, which: keyof FreshdeskCustomObjects): Promise<string> {
    const wanted = customObjects[which];
    if (/^\d+$/.test(wanted)) return wanted;
    const schemas = await schemaDirectory(operation)(0);
    const schema = schemas.find((candidate) => candidate.name === wanted) ?? schemas.find((candidate) => String(candidate.id) === wanted);
    if (!schema) {
      throw new SystemCallError(`support ${operation}: the Freshdesk account has no custom object ${JSON.stringify(wanted)}`, {
        retryable: false,
      });
    }
    return String(schema.id);
  }

  const recordsPath = (schemaId: string) => `/api/v2/custom_objects/schemas/${encodeURIComponent(schemaId)}/records`;

  /** Every record of the custom object whose field holds the value, following the `_links.next` pages. */
  async function recordsWhere<D>(operation: string, schemaId: string, field: string, value: string | number) {
    const path = recordsPath(schemaId);
    const guard = pagingGuard('support', operation);
    const found: CustomObjectRecord<D>[] = [];
    let answer = await http.read<RecordsPage<D>>(operation, { path, query: { [field]: value, page_size: pageSize } });
    for (;;) {
      const records = answer.body.records ?? [];
      found.push(...records);
      const next = answer.body._links?.next?.href;
      if (!next || records.length === 0) return found;
      guard.next(next);
      answer = await http.read<RecordsPage<D>>(operation, { path, url: next });
    }
  }

  /**
   * Creates or updates the record whose key field holds the key: read by the key, then written
   * only when it does not hold the data already (PUT with the version read, or POST). The whole
   * cycle is what the resilience layer repeats, so a create whose answer was lost is found by the
   * retry's read and not created twice; a PUT refused for a stale version (409: another writer
   * changed the record) reads again. Two writers creating one key at the same moment could
   * still both create.
   */
  function upsert<D extends Record<string, FieldValue>>(
    operation: string,
    schemaId: string,
    keyField: string,
    key: string,
    data: D,
  ): Promise<CustomObjectRecord<D>> {
    const path = recordsPath(schemaId);
    return http.call(operation, { idempotent: true }, async (signal) => {
      for (let attempt = 0; ; attempt += 1) {
        const read = await http.exchange<RecordsPage<D>>(
          operation,
          { method: 'GET', path, query: { [keyField]: key, page_size: pageSize } },
          signal,
        );
        const existing = (read.body.records ?? []).find((record) => fieldText(record.data[keyField]) === key);
        if (existing && holdsData(existing.data, data)) return existing;
        const written = existing
          ? await http.exchange<CustomObjectRecord<D>>(
              operation,
              {
                method: 'PUT',
                path: `${path}/${encodeURIComponent(existing.display_id)}`,
                body: { display_id: existing.display_id, version: existing.version, data },
              },
              signal,
              [409],
            )
          : await http.exchange<CustomObjectRecord<D>>(operation, { method: 'POST', path, body: { data } }, signal);
        if (written.status !== 409) return written.body;
        if (attempt >= VERSION_RETRIES) {
          throw new SystemCallError(`support ${operation}: the record ${JSON.stringify(key)} keeps changing under the write`, {
            retryable: false,
            status: 409,
          });
        }
      }
    });
  }

  /** The company of a customer number with its support tier, read now (not from the directory); null when none has it. */
  async function companyOf(operation: string, customerId: string): Promise<{ id: number; tier: string | null } | null> {
    const [query] = keyQueries([customerId], fields.customerNumber);
    if (query === undefined) return null;
    const found = await searchRecords<FreshdeskCompany>(operation, 'companies', query);
    const company = found.find((candidate) => textField(candidate, fields.customerNumber) === customerId);
    return company ? { id: company.id, tier: textField(company, fields.supportTier) } : null;
  }

  /** The records of a custom object linked to each company, one listing per company. */
  async function linkedTo<D>(operation: string, schemaId: string, companies: readonly number[]): Promise<CustomObjectRecord<D>[]> {
    const lists = await inTurns(companies, IN_FLIGHT, (company) => recordsWhere<D>(operation, schemaId, 'company', company));
    return lists.flat();
  }

  return {
    async casesByIds(ids) {
      const ticketIds = [...new Set(ids.map(deskId).filter((id): id is number => id !== null))];
      const answers = await inTurns(ticketIds, IN_FLIGHT, (id) =>
        http.read<FreshdeskTicket>('casesByIds', { path: `/api/v2/tickets/${id}` }, true),
      );
      return casesOf(
        'casesByIds',
        answers.filter((answer) => answer !== null).map((answer) => answer.body),
      );
    },

    async searchCases({ filter, limit, afterId }) {
      const none = { records: [], hasNextPage: false };
      const terms = filterTerms(filter);
      if (terms === null) return none;
      let before: number | null = null;
      let cursor: FreshdeskTicket | null = null;
      if (afterId !== undefined) {
        before = deskId(afterId);
        if (before === null) return none;
        // A cursor whose ticket is gone (deleted since) leaves no place to continue from.
        cursor = (await http.read<FreshdeskTicket>('searchCases', { path: `/api/v2/tickets/${before}` }, true))?.body ?? null;
        if (!cursor) return none;
      }
      const older = (ticket: FreshdeskTicket) => before === null || ticket.id < before;
      if (filter.customerId !== undefined) {
        const [companyId] = (await companiesByCustomerIds('searchCases', [filter.customerId])).keys();
        if (companyId === undefined) return none;
        const found = await newestTickets(
          'searchCases',
          { company_id: companyId },
          (ticket) => older(ticket) && matches(ticket, filter),
          limit + 1,
        );
        return { records: await casesOf('searchCases', found.slice(0, limit)), hasNextPage: found.length > limit };
      }
      // Search compares days: the cursor's day bounds it, and the id decides within the day.
      if (cursor) terms.push(`created_at:<'${dayOf(cursor.created_at)}'`);
      const found = await searchNewest('searchCases', terms.length ? terms.join(' AND ') : ALL_TICKETS, limit, older);
      const records = newestFirst(
        await casesOf(
          'searchCases',
          found.tickets.filter((ticket) => matches(ticket, filter)),
        ),
      );
      return { records, hasNextPage: found.hasMore };
    },

    async countCases(filter) {
      const terms = filterTerms(filter);
      if (terms === null) return 0;
      if (filter.customerId !== undefined) {
        const [companyId] = (await companiesByCustomerIds('countCases', [filter.customerId])).keys();
        if (companyId === undefined) return 0;
        return (await allTickets('countCases', { company_id: companyId })).filter((ticket) => matches(ticket, filter)).length;
      }
      const { body } = await searchPage<FreshdeskTicket>('countCases', 'tickets', terms.length ? terms.join(' AND ') : ALL_TICKETS, 1);
      return body.total;
    },

    // One list walk per customer: a page of `limit` costs the same whatever the customer's history.
    async casesByCustomerIds(customerIds, { statuses, limit }) {
      const companies = await companiesByCustomerIds('casesByCustomerIds', customerIds);
      const filter = { statuses };
      const found = await inTurns([...companies.keys()], IN_FLIGHT, (companyId) =>
        newestTickets('casesByCustomerIds', { company_id: companyId }, (ticket) => matches(ticket, filter), limit),
      );
      const records = await casesOf('casesByCustomerIds', found.flat());
      const wanted = new Set(customerIds);
      return newestFirst(records.filter((record) => record.customerId !== null && wanted.has(record.customerId)));
    },

    // Open tickets are few: one search (in windows past its last page) counts them all.
    async openCaseCounts(customerIds) {
      const companies = await companiesByCustomerIds('openCaseCounts', customerIds);
      const counts = new Map<string, number>();
      if (companies.size === 0) return counts;
      const statuses = vocabulary.deskStatuses(OPEN_CASE_STATUSES);
      const tickets = await searchAll('openCaseCounts', anyOf(statuses.map((status) => `status:${status}`)));
      for (const ticket of tickets) {
        const customerId = ticket.company_id === null ? undefined : companies.get(ticket.company_id);
        if (customerId !== undefined && OPEN_CASE_STATUSES.includes(vocabulary.statusOf(ticket.status))) {
          counts.set(customerId, (counts.get(customerId) ?? 0) + 1);
        }
      }
      return counts;
    },

    async casesByContactIds(contactIds, limit) {
      const contacts = await contactsByCrmIds('casesByContactIds', contactIds);
      const found = await inTurns([...contacts.keys()], IN_FLIGHT, (requesterId) =>
        newestTickets('casesByContactIds', { requester_id: requesterId }, () => true, limit),
      );
      const records = await casesOf('casesByContactIds', found.flat());
      const wanted = new Set(contactIds);
      return newestFirst(records.filter((record) => record.requesterContactId !== null && wanted.has(record.requesterContactId)));
    },

    casesByOrderNumbers(numbers) {
      return casesByField('casesByOrderNumbers', fields.orderNumber, numbers);
    },

    casesBySerialNumbers(serialNumbers) {
      return casesByField('casesBySerialNumbers', fields.serialNumber, serialNumbers);
    },

    // No endpoint lists the conversations of several tickets: one listing (or more, past a page) per case.
    async commentsByCaseIds(caseIds) {
      const lists = await inTurns([...new Set(caseIds)], IN_FLIGHT, commentsOf);
      return lists
        .flat()
        .sort((a, b) => Number(a.caseId) - Number(b.caseId) || a.createdAt.localeCompare(b.createdAt) || Number(a.id) - Number(b.id));
    },
    caseGraphsByIds(ids, parts) {
      return composeCaseGraph(this, ids, parts);
    },

    // The agents are one list (few pages), kept like the directory: cheaper than one read per id.
    async agentsByIds(ids) {
      const wanted = [...new Set(ids.map(deskId).filter((id): id is number => id !== null))];
      if (wanted.length === 0) return [];
      const byId = await agents('agentsByIds');
      return wanted
        .map((id) => byId.get(id))
        .filter((agent): agent is FreshdeskAgent => agent !== undefined)
        .map((agent): AgentRecord => ({ id: String(agent.id), name: agent.contact.name, email: agent.contact.email }));
    },

    async slaPoliciesByTiers(tiers) {
      const configured = [...new Set(tiers)].filter((tier) => options.slaPolicyIds?.[tier] !== undefined);
      if (configured.length === 0) return [];
      const policies = await listAll<FreshdeskSlaPolicy>('slaPoliciesByTiers', '/api/v2/sla_policies', {});
      const byId = new Map(policies.map((policy) => [policy.id, policy]));
      return configured.flatMap((tier) => {
        const policy = byId.get(options.slaPolicyIds![tier]!);
        return policy && policy.active !== false ? [toSlaPolicy(policy, tier)] : [];
      });
    },

    async applyCaseUpdate({ key, caseId, internalNote, status }) {
      const ticketId = deskId(caseId);
      if (ticketId === null) return null;
      // The cycle is one call; the company and requester are read after it, as calls of their own.
      const ticket = await http.call('applyCaseUpdate', { idempotent: true }, (signal) =>
        applyOnce(ticketId, { key, internalNote, status }, signal),
      );
      return ticket ? ((await casesOf('applyCaseUpdate', [ticket]))[0] ?? null) : null;
    },

    // The answer is the order's records afterwards: the ones just written, as their writes
    // answered, and any other product of the order an earlier recording left.
    async recordInstalledBase({ customerId, orderNumber, items }) {
      const company = await companyOf('recordInstalledBase', customerId);
      if (!company) return null;
      const schemaId = await schemaIdOf('recordInstalledBase', 'installedBase');
      // One upsert per SKU: the last line of a SKU is what writing them in turn would leave.
      const products = [...new Map(items.map((item) => [item.sku, item])).values()];
      const written = await inTurns(products, UPSERTS_IN_FLIGHT, (item) =>
        upsert<InstalledProductData>('recordInstalledBase', schemaId, 'external_id', `${orderNumber}:${item.sku}`, {
          external_id: `${orderNumber}:${item.sku}`,
          // A product without a name is known by its SKU.
          product_name: item.name ?? item.sku,
          company: company.id,
          order_number: orderNumber,
          sku: item.sku,
          quantity: item.quantity,
          warranty_months: item.warrantyMonths,
        }),
      );
      const found = await recordsWhere<InstalledProductData>('recordInstalledBase', schemaId, 'order_number', orderNumber);
      const records = new Map(found.map((record) => [record.display_id, record]));
      for (const record of written) records.set(record.display_id, record);
      const customerOf = new Map([[company.id, customerId]]);
      return newestRecordedFirst(
        [...records.values()]
          .map((record) => toInstalledProduct(record, customerOf))
          .filter((product): product is InstalledProductRecord => product !== null && product.orderNumber === orderNumber),
      );
    },

    // The company and its entitlement records are read first; the subscription's record is
    // written only when it holds another state, the company's tier only when it differs, so
    // setting the same state again writes nothing.
    async setEntitlement(update: EntitlementUpdate) {
      const company = await companyOf('setEntitlement', update.customerId);
      if (!company) return null;
      const schemaId = await schemaIdOf('setEntitlement', 'entitlements');
      const found = await recordsWhere<EntitlementData>('setEntitlement', schemaId, 'company', company.id);
      const records = new Map(found.map((record) => [record.display_id, record]));
      const data: EntitlementData = {
        subscription_id: update.subscriptionId,
        title: `${TIER_TAG[update.tier]} ${update.subscriptionId}`,
        company: company.id,
        tier: update.tier,
        active: update.active,
        until: update.until,
      };
      const existing = found.find((record) => fieldText(record.data.subscription_id) === update.subscriptionId);
      if (!existing || !holdsData(existing.data, data)) {
        const written = await upsert<EntitlementData>('setEntitlement', schemaId, 'subscription_id', update.subscriptionId, data);
        records.set(written.display_id, written);
      }
      const customerOf = new Map([[company.id, update.customerId]]);
      const entitlements = byCustomerAndSubscription(
        [...records.values()]
          .map((record) => toEntitlement(record, customerOf))
          .filter((entitlement): entitlement is EntitlementRecord => entitlement !== null),
      );
      const tier =
        TIER_ORDER.filter((candidate) => entitlements.some((entitlement) => entitlement.active && entitlement.tier === candidate)).at(-1) ??
        null;
      if (tier !== company.tier) {
        // Setting a value is safe to repeat.
        await http.call('setEntitlement', { idempotent: true }, (signal) =>
          http.exchange(
            'setEntitlement',
            { method: 'PUT', path: `/api/v2/companies/${company.id}`, body: { custom_fields: { [fields.supportTier]: tier } } },
            signal,
          ),
        );
      }
      return entitlements;
    },

    async entitlementsByCustomerIds(customerIds) {
      const companies = await companiesByCustomerIds('entitlementsByCustomerIds', customerIds);
      if (companies.size === 0) return [];
      const schemaId = await schemaIdOf('entitlementsByCustomerIds', 'entitlements');
      const found = await linkedTo<EntitlementData>('entitlementsByCustomerIds', schemaId, [...companies.keys()]);
      const unique = new Map(found.map((record) => [record.display_id, record]));
      return byCustomerAndSubscription(
        [...unique.values()]
          .map((record) => toEntitlement(record, companies))
          .filter((entitlement): entitlement is EntitlementRecord => entitlement !== null),
      );
    },

    async installedBaseByCustomerIds(customerIds) {
      const companies = await companiesByCustomerIds('installedBaseByCustomerIds', customerIds);
      if (companies.size === 0) return [];
      const schemaId = await schemaIdOf('installedBaseByCustomerIds', 'installedBase');
      const found = await linkedTo<InstalledProductData>('installedBaseByCustomerIds', schemaId, [...companies.keys()]);
      const unique = new Map(found.map((record) => [record.display_id, record]));
      return newestRecordedFirst(
        [...unique.values()]
          .map((record) => toInstalledProduct(record, companies))
          .filter((product): product is InstalledProductRecord => product !== null),
      );
    },

    async ping() {
      await http.read<FreshdeskAgent>('ping', { path: '/api/v2/agents/me' });
    },

    // Node's global fetch pools connections process-wide; there is nothing of ours to release.
    async close() {},
    apiBudget: () => http.budget() as FreshdeskRateBudget | null,
  };
}
