import { createHash } from 'node:crypto';
import type { ConnectorTelemetry } from '../../../../platform/connector-telemetry.ts';
import type { ApiBudget } from '../../../../platform/metrics.ts';
import { pagingGuard } from '../../../../platform/paging.ts';
import { SystemCallError, type Resilience } from '../../../../platform/resilience.ts';
import { chunked } from '../../../../platform/chunks.ts';
import {
  createVendorHttp,
  nameOf,
  rateLimitHeaders,
  type StatusTable,
  type VendorAuth,
  type VendorRequest,
} from '../../../../platform/vendor-http.ts';
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
import { TIER_ORDER, TYPE_FROM_DESK } from './vocabulary.ts';
import { composeCaseGraph } from './graphs.ts';

/**
 * The support desk port over ServiceNow's Table API (`/api/now/table/...`).
 *
 * Mapping (custom fields, prefixed `u_`, are the integration's own columns on the instance):
 * - A case is an incident; its id is the digits of the incident number (`INC0001234` is case
 *   `1234`: the graph's case numbers are positive integers). Subject and description
 *   are short_description and description; the requester is caller_id, whose sys_user holds
 *   the CRM contact id in `u_crm_contact_id`; the customer is company, whose core_company holds
 *   the customer number in `u_customer_number`; the assignee is assigned_to (an agent's id is
 *   its sys_user sys_id). The case type, tags (comma-separated), order number and serial
 *   number live in `u_case_type`, `u_tags`, `u_order_number` and `u_serial_number`.
 * - Status from state and hold_reason: 1 New → NEW, 2 In Progress → OPEN, 3 On Hold awaiting
 *   the caller (hold_reason 1) → PENDING, 3 On Hold for any other reason → ON_HOLD,
 *   6 Resolved → SOLVED, 7 Closed and 8 Canceled → CLOSED. Priority 1 → URGENT, 2 → HIGH,
 *   3 → NORMAL, 4 and 5 → LOW.
 * - Comments are journal entries (sys_journal_field) of the incident: work notes are internal,
 *   additional comments public; the author is the sys_user whose user_name wrote the entry.
 * - Agents are users with the `itil` role.
 * - A support tier is the company's `u_support_tier` (BASIC, STANDARD, PREMIUM). SLA policies
 *   are SLA definitions (contract_sla) of incidents grouped by `u_sla_policy` (the policy's
 *   name), one per priority and target (`response`: first response, `resolution`), whose start
 *   condition names the tier (`company.u_support_tier=PREMIUM^priority=1`); a definition with a
 *   schedule counts business hours only.
 * - The installed base is the custom table `u_installed_product` (u_external_id
 *   `<order number>:<sku>`, u_name, u_company, u_order_number, u_sku, u_quantity,
 *   u_warranty_months), entitlements the custom table `u_entitlement` (u_subscription_id,
 *   u_name, u_company, u_tier, u_active, u_until). Both are upserted by their key: the record
 *   is read by it, then updated or created, and that read-then-write cycle is what a retry
 *   repeats, so an answer lost after a create finds the record and updates it (two writers
 *   creating one key at the same moment could still both create). The company's tier is the
 *   highest among its active entitlements, written only when it differs.
 *
 * Reads ask for the incident's fields with the caller's and company's keys dot-walked
 * (`caller_id.u_crm_contact_id`), so each case comes from one read; every listing orders by a
 * stable field and follows the `Link` header's next page. Every HTTP request goes through the
 * resilience layer and counts once in the connector telemetry.
 *
 * Updates are idempotent: the digests of the update keys applied to an incident are kept in its
 * `u_update_keys` field (the most recent UPDATE_KEYS_KEPT), so an update whose key is there is
 * not applied again, also when it is retried after its answer was lost. The Table API has no
 * conditional update: two deliveries of one key racing from this process are applied one after
 * the other (the second sees the key); deliveries from separate processes are not serialized.
 */

export type ServiceNowAuth =
  | { kind: 'basic'; user: string; password: string }
  /** An OAuth access token; with `renew`, a refused one is replaced once per request. */
  | { kind: 'oauth'; accessToken: string; renew?: () => Promise<string> };

export interface ServiceNowConnectorOptions {
  /** The instance's address, e.g. https://acme.service-now.com. */
  baseUrl: string;
  auth: ServiceNowAuth;
  telemetry: ConnectorTelemetry;
  resilience: Resilience;
}

// ---------------------------------------------------------------------------------------------
// Vocabulary.
// ---------------------------------------------------------------------------------------------

/** Incident states. */
export const SERVICENOW_STATE = { NEW: '1', IN_PROGRESS: '2', ON_HOLD: '3', RESOLVED: '6', CLOSED: '7', CANCELED: '8' } as const;
/** The hold reason that means the desk waits for the caller (Zendesk's "pending"). */
export const AWAITING_CALLER = '1';
/** The hold reason written for a case put on hold for anything else. */
export const AWAITING_VENDOR = '4';

/** The state (and hold reason) an incident is given for a status. */
export const SERVICENOW_STATE_OF: Readonly<Record<CaseStatus, { state: string; holdReason: string }>> = {
  NEW: { state: SERVICENOW_STATE.NEW, holdReason: '' },
  OPEN: { state: SERVICENOW_STATE.IN_PROGRESS, holdReason: '' },
  PENDING: { state: SERVICENOW_STATE.ON_HOLD, holdReason: AWAITING_CALLER },
  ON_HOLD: { state: SERVICENOW_STATE.ON_HOLD, holdReason: AWAITING_VENDOR },
  SOLVED: { state: SERVICENOW_STATE.RESOLVED, holdReason: '' },
  CLOSED: { state: SERVICENOW_STATE.CLOSED, holdReason: '' },
};

export function statusFromIncident(state: string, holdReason: string): CaseStatus {
  switch (state) {
    case SERVICENOW_STATE.NEW:
      return 'NEW';
    case SERVICENOW_STATE.ON_HOLD:
      return holdReason === AWAITING_CALLER ? 'PENDING' : 'ON_HOLD';
    case SERVICENOW_STATE.RESOLVED:
      return 'SOLVED';
    case SERVICENOW_STATE.CLOSED:
    case SERVICENOW_STATE.CANCELED:
      return 'CLOSED';
    default:
      return 'OPEN';
  }
}

export const SERVICENOW_PRIORITY_FROM: Readonly<Record<string, CasePriority>> = {
  '1': 'URGENT',
  '2': 'HIGH',
  '3': 'NORMAL',
  '4': 'LOW',
  '5': 'LOW',
};
/** The priorities a case priority reads from (a filter matches each of them). */
const PRIORITIES_OF: Readonly<Record<CasePriority, readonly string[]>> = { URGENT: ['1'], HIGH: ['2'], NORMAL: ['3'], LOW: ['4', '5'] };
/** The states a case status reads from. */
const STATES_OF: Readonly<Record<CaseStatus, readonly string[]>> = {
  NEW: ['1'],
  OPEN: ['2'],
  PENDING: ['3'],
  ON_HOLD: ['3'],
  SOLVED: ['6'],
  CLOSED: ['7', '8'],
};

/** The resolution code written when a case is solved or closed and the incident has none. */
const CLOSE_CODE = 'Solution provided';
const AGENT_ROLE = 'itil';

// ---------------------------------------------------------------------------------------------
// Wire shapes.
// ---------------------------------------------------------------------------------------------

/** A field as the Table API gives it: a string, or for a reference `{value, link}` (`{display_value, value}` with display values). */
type Field = string | { value?: string; link?: string; display_value?: string } | null | undefined;

const INCIDENT_FIELDS = [
  'sys_id',
  'number',
  'short_description',
  'description',
  'state',
  'hold_reason',
  'priority',
  'u_case_type',
  'u_tags',
  'sys_created_on',
  'sys_updated_on',
  'due_date',
  'assigned_to',
  'caller_id.u_crm_contact_id',
  'company.u_customer_number',
  'u_order_number',
  'u_serial_number',
  'u_update_keys',
  'close_code',
  'close_notes',
] as const;

type IncidentRow = Partial<Record<(typeof INCIDENT_FIELDS)[number], Field>>;

/** A field's value: a reference's sys_id, a plain field's string; '' when empty or absent. */
function valueOf(field: Field): string {
  if (field === null || field === undefined) return '';
  if (typeof field === 'string') return field;
  return field.value ?? '';
}

/** `YYYY-MM-DD HH:MM:SS` (UTC, as the Table API gives values) as an ISO timestamp; null when empty. */
export function isoFromGlide(value: string): string | null {
  if (!value) return null;
  const match = /^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})/.exec(value);
  return match ? `${match[1]}T${match[2]}Z` : value;
}

function orNull(value: string): string | null {
  return value === '' ? null : value;
}

function toCase(row: IncidentRow): CaseRecord {
  const type = valueOf(row.u_case_type);
  return {
    id: caseIdOf(valueOf(row.number)),
    subject: valueOf(row.short_description),
    description: orNull(valueOf(row.description)),
    status: statusFromIncident(valueOf(row.state), valueOf(row.hold_reason)),
    priority: SERVICENOW_PRIORITY_FROM[valueOf(row.priority)] ?? 'NORMAL',
    type: (type && TYPE_FROM_DESK[type]) || null,
    tags: valueOf(row.u_tags)
      .split(',')
      .map((tag) => tag.trim())
      .filter(Boolean),
    createdAt: isoFromGlide(valueOf(row.sys_created_on)) ?? '',
    updatedAt: isoFromGlide(valueOf(row.sys_updated_on)) ?? '',
    dueAt: isoFromGlide(valueOf(row.due_date)),
    assigneeId: orNull(valueOf(row.assigned_to)),
    requesterContactId: orNull(valueOf(row['caller_id.u_crm_contact_id'])),
    customerId: orNull(valueOf(row['company.u_customer_number'])),
    orderNumber: orNull(valueOf(row.u_order_number)),
    serialNumber: orNull(valueOf(row.u_serial_number)),
  };
}

/** Incident numbers: a prefix and digits (INC0001234); anything else names no incident. */
function isIncidentNumber(value: string): boolean {
  return /^INC\d{7,}$/.test(value);
}

/** The graph's case id of an incident number: its digits, without leading zeros. */
export function caseIdOf(number: string): string {
  return isIncidentNumber(number) ? String(Number(number.slice(3))) : number;
}

/** The incident number of a case id (a positive integer), or null for an id that names no incident. */
export function incidentNumberOf(caseId: string): string | null {
  if (!/^[1-9]\d*$/.test(caseId) || !Number.isSafeInteger(Number(caseId))) return null;
  return `INC${caseId.padStart(7, '0')}`;
}

/** The incident numbers of the ids that name one. */
const incidentNumbersOf = (ids: readonly string[]) => ids.map(incidentNumberOf).filter((number): number is string => number !== null);

const isSysId = (value: string) => /^[0-9a-f]{32}$/.test(value);

/** Newest first: by the number's digits (incident numbers grow with creation). */
function newestFirst(records: CaseRecord[]): CaseRecord[] {
  return records.sort((a, b) => Number(b.id) - Number(a.id));
}

/**
 * Whether a value can stand in an encoded query: `^` separates conditions and has no escape,
 * and a line break ends the query. A value that cannot is not asked for (no record of ours
 * holds one as a key).
 */
function queryable(value: string): boolean {
  return value !== '' && !/[\^\r\n]/.test(value);
}

/** Values that can travel in an `IN` list: queryable, and no comma (which would split one into two). */
function listable(values: readonly string[]): string[] {
  return values.filter((value) => queryable(value) && !value.includes(','));
}

/** Distinct values in batches for `IN` lists: at most IN_LIST_LIMIT values and about IN_LIST_CHARS characters each. */
function inBatches(values: readonly string[]): string[][] {
  return chunked(values, IN_LIST_LIMIT).flatMap((batch) => {
    const batches: string[][] = [];
    let current: string[] = [];
    let length = 0;
    for (const value of batch) {
      const size = encodeURIComponent(value).length + 3;
      if (current.length > 0 && length + size > IN_LIST_CHARS) {
        batches.push(current);
        current = [];
        length = 0;
      }
      current.push(value);
      length += size;
    }
    if (current.length > 0) batches.push(current);
    return batches;
  });
}

/** The digest of an update key, as kept in `u_update_keys`: fixed length, no separators. */
export function updateKeyDigest(key: string): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 32);
}

/** Update keys kept per incident (most recent last); older ones are dropped to bound the field. */
const UPDATE_KEYS_KEPT = 100;

/** The encoded query terms for a set of statuses (state, and hold reason where PENDING and ON_HOLD differ). */
function statusTerms(statuses: readonly CaseStatus[] | undefined): string[] {
  const wanted = new Set(statuses ?? []);
  if (wanted.size === 0) return [];
  const states = [...new Set([...wanted].flatMap((status) => STATES_OF[status]))].sort();
  const terms = [`stateIN${states.join(',')}`];
  // ^OR binds tighter than ^: "on hold only when awaiting the caller", or the reverse.
  if (wanted.has('PENDING') && !wanted.has('ON_HOLD')) terms.push(`hold_reason=${AWAITING_CALLER}^ORstate!=${SERVICENOW_STATE.ON_HOLD}`);
  if (wanted.has('ON_HOLD') && !wanted.has('PENDING')) {
    terms.push(`hold_reason!=${AWAITING_CALLER}^ORhold_reasonISEMPTY^ORstate!=${SERVICENOW_STATE.ON_HOLD}`);
  }
  return terms;
}

function priorityTerms(priorities: readonly CasePriority[] | undefined): string[] {
  const values = [...new Set((priorities ?? []).flatMap((priority) => PRIORITIES_OF[priority]))].sort();
  return values.length ? [`priorityIN${values.join(',')}`] : [];
}

const PRIORITY_ORDER: readonly CasePriority[] = ['URGENT', 'HIGH', 'NORMAL', 'LOW'];

interface SlaDefinitionRow {
  target?: Field;
  duration?: Field;
  schedule?: Field;
  start_condition?: Field;
  u_sla_policy?: Field;
}
const SLA_FIELDS = ['target', 'duration', 'schedule', 'start_condition', 'u_sla_policy'] as const;

/** The tier and priority an SLA definition's start condition names (`company.u_support_tier=PREMIUM^priority=1`). */
function slaConditionOf(condition: string): { tier: SupportTier | null; priority: CasePriority | null } {
  let tier: SupportTier | null = null;
  let priority: CasePriority | null = null;
  for (const term of condition.split('^')) {
    const tierMatch = /^company\.u_support_tier=(.+)$/.exec(term);
    if (tierMatch) tier = TIER_ORDER.find((candidate) => candidate === tierMatch[1]!.toUpperCase()) ?? null;
    const priorityMatch = /^priority=(\d)$/.exec(term);
    if (priorityMatch) priority = SERVICENOW_PRIORITY_FROM[priorityMatch[1]!] ?? null;
  }
  return { tier, priority };
}

/** A glide_duration's value (`1970-01-01 04:00:00`: the time since the epoch) in hours. */
function durationHours(value: string): number {
  const at = Date.parse(`${value.replace(' ', 'T')}Z`);
  return Number.isNaN(at) ? 0 : at / 3_600_000;
}

function toSlaPolicy(tier: SupportTier, name: string, definitions: readonly SlaDefinitionRow[]): SlaPolicyRecord {
  const targets = new Map<CasePriority, SlaTargetRecord>();
  for (const definition of definitions) {
    const { priority } = slaConditionOf(valueOf(definition.start_condition));
    if (!priority) continue;
    const target = targets.get(priority) ?? { priority, firstResponseHours: 0, resolutionHours: 0 };
    const hours = durationHours(valueOf(definition.duration));
    if (valueOf(definition.target) === 'response') target.firstResponseHours = hours;
    if (valueOf(definition.target) === 'resolution') target.resolutionHours = hours;
    targets.set(priority, target);
  }
  return {
    tier,
    name,
    businessHoursOnly: definitions.some((definition) => valueOf(definition.schedule) !== ''),
    targets: [...targets.values()].sort((a, b) => PRIORITY_ORDER.indexOf(a.priority) - PRIORITY_ORDER.indexOf(b.priority)),
  };
}

const INSTALLED_PRODUCT_TABLE = 'u_installed_product';
const INSTALLED_PRODUCT_FIELDS = [
  'sys_id',
  'u_external_id',
  'u_name',
  'u_company',
  'u_order_number',
  'u_sku',
  'u_quantity',
  'u_warranty_months',
  'sys_created_on',
] as const;
type InstalledProductRow = Partial<Record<(typeof INSTALLED_PRODUCT_FIELDS)[number], Field>>;

const ENTITLEMENT_TABLE = 'u_entitlement';
const ENTITLEMENT_FIELDS = ['sys_id', 'u_subscription_id', 'u_company', 'u_tier', 'u_active', 'u_until', 'sys_updated_on'] as const;
type EntitlementRow = Partial<Record<(typeof ENTITLEMENT_FIELDS)[number], Field>>;

/** Tier names as the entitlement records' names start (`tier_premium SUB-1`). */
const TIER_NAME: Readonly<Record<SupportTier, string>> = { BASIC: 'tier_basic', STANDARD: 'tier_standard', PREMIUM: 'tier_premium' };

function integerOrNull(value: string): number | null {
  if (value === '') return null;
  const number = Number(value);
  return Number.isFinite(number) ? number : null;
}

function toInstalledProduct(row: InstalledProductRow, customerOf: ReadonlyMap<string, string>): InstalledProductRecord | null {
  const customerId = customerOf.get(valueOf(row.u_company));
  if (customerId === undefined) return null;
  const orderNumber = valueOf(row.u_order_number);
  const sku = valueOf(row.u_sku);
  return {
    id: valueOf(row.u_external_id) || `${orderNumber}:${sku}`,
    customerId,
    orderNumber,
    sku,
    name: orNull(valueOf(row.u_name)),
    quantity: integerOrNull(valueOf(row.u_quantity)) ?? 0,
    warrantyMonths: integerOrNull(valueOf(row.u_warranty_months)),
    recordedAt: isoFromGlide(valueOf(row.sys_created_on)) ?? '',
  };
}

function toEntitlement(row: EntitlementRow, customerOf: ReadonlyMap<string, string>): EntitlementRecord | null {
  const customerId = customerOf.get(valueOf(row.u_company));
  const tier = TIER_ORDER.find((candidate) => candidate === valueOf(row.u_tier)) ?? null;
  const subscriptionId = valueOf(row.u_subscription_id);
  if (customerId === undefined || tier === null || subscriptionId === '') return null;
  return {
    subscriptionId,
    customerId,
    tier,
    active: valueOf(row.u_active) === 'true',
    until: orNull(valueOf(row.u_until)),
    updatedAt: isoFromGlide(valueOf(row.sys_updated_on)) ?? '',
  };
}

/** Whether the record already holds this state (then nothing is written). */
function holdsEntitlement(row: EntitlementRow, update: EntitlementUpdate, company: string): boolean {
  return (
    valueOf(row.u_company) === company &&
    valueOf(row.u_tier) === update.tier &&
    (valueOf(row.u_active) === 'true') === update.active &&
    orNull(valueOf(row.u_until)) === update.until
  );
}

const binary = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** By customer number, then subscription id (binary), as the embedded desk orders them. */
function byCustomerAndSubscription(entitlements: EntitlementRecord[]): EntitlementRecord[] {
  return entitlements.sort((a, b) => binary(a.customerId, b.customerId) || binary(a.subscriptionId, b.subscriptionId));
}

/** Newest first; records of one moment by external id (binary). */
function newestRecordedFirst(records: InstalledProductRecord[]): InstalledProductRecord[] {
  return records.sort((a, b) => Date.parse(b.recordedAt) - Date.parse(a.recordedAt) || binary(a.id, b.id));
}

/** Upserts of one order's products in flight at once. */
const UPSERTS_IN_FLIGHT = 4;

// ---------------------------------------------------------------------------------------------
// HTTP.
// ---------------------------------------------------------------------------------------------

/** Records per page asked for; the instance may cap it lower (then the Link header pages on). */
const PAGE_LIMIT = 1000;
/** Values in one `IN` list. */
const IN_LIST_LIMIT = 100;
/**
 * Characters of one `IN` list. The instance repeats the whole query in each of the Link
 * header's four links, so a long list makes a header larger than clients accept (16 KiB in
 * Node's fetch) besides a long URL.
 */
const IN_LIST_CHARS = 2_000;
/** Companies or users OR-ed into one query of incidents. */
const REFERENCES_PER_QUERY = 50;

type QueryParams = Record<string, string | number | undefined>;

/** `{"error":{"message","detail"},"status":"failure"}`. */
function errorSummary(body: unknown): string {
  if (typeof body === 'string') return body.trim().slice(0, 200);
  const error = (body as { error?: { message?: unknown; detail?: unknown } } | null)?.error;
  if (!error) return JSON.stringify(body);
  const message = typeof error.message === 'string' ? error.message : 'error';
  return typeof error.detail === 'string' && error.detail ? `${message}: ${error.detail}` : message;
}

/**
 * What each failed answer means: 429 (a rate limit rule) and 5xx pass, after Retry-After; a
 * refused OAuth token is renewed once when a renewal is configured; any other 4xx (a refused
 * credential, an ACL or data policy) is this request's fault.
 */
function statusTable(canRenew: boolean): StatusTable {
  return [
    { status: 401, verdict: canRenew ? 'refresh-auth' : 'fail' },
    { status: 429, verdict: 'rate-limited', retryAfter: true },
    { status: { from: 500, to: 599 }, verdict: 'retry', retryAfter: true },
    { verdict: 'fail' },
  ];
}

function vendorAuth(auth: ServiceNowAuth): VendorAuth {
  if (auth.kind === 'basic') {
    const header = `Basic ${Buffer.from(`${auth.user}:${auth.password}`).toString('base64')}`;
    return { authorization: () => header };
  }
  let token = auth.accessToken;
  const renewal = auth.renew;
  if (!renewal) return { authorization: () => `Bearer ${token}` };
  // Requests refused together share one renewal.
  let renewing: Promise<string> | null = null;
  return {
    authorization: () => `Bearer ${token}`,
    renew: () => {
      renewing ??= renewal()
        .then((renewed) => {
          token = renewed;
          return `Bearer ${renewed}`;
        })
        .finally(() => {
          renewing = null;
        });
      return renewing;
    },
  };
}

/** The next page's URL from a Link header (`<url>;rel="next",…`), or null. */
export function nextLink(header: string | null): string | null {
  if (!header) return null;
  for (const match of header.matchAll(/<([^>]*)>\s*;\s*rel="?([a-z]+)"?/g)) if (match[2] === 'next') return match[1]!;
  return null;
}

interface TablePage<T> {
  rows: T[];
  next: string | null;
  total: number | null;
}

export type ServiceNowConnector = SupportConnector & { apiBudget(): ApiBudget | null };

export function createServiceNowConnector(options: ServiceNowConnectorOptions): ServiceNowConnector {
  const base = options.baseUrl.replace(/\/+$/, '');
  const auth = vendorAuth(options.auth);
  const http = createVendorHttp({
    baseUrl: base,
    auth,
    statuses: statusTable(auth.renew !== undefined),
    errorOf: (body) => ({ code: null, message: errorSummary(body) }),
    // A 403 "Operation Failed" is a record's ACL or a data policy turning this change down
    // (a closed incident, a missing mandatory field), not the credentials: the resilience layer
    // reads 401 and 403 as credentials refused, so it is reported as unprocessable (422).
    failure: (request, answer, error, details) =>
      new SystemCallError(`${nameOf(request)} answered ${answer.status} (${error.message})`, {
        ...details,
        status: answer.status === 403 && error.message.startsWith('Operation Failed') ? 422 : details.status,
      }),
    // The rate limit rule's allowance for the window, and what is left of it.
    budget: rateLimitHeaders('x-ratelimit-limit', 'x-ratelimit-remaining'),
    telemetry: options.telemetry,
    resilience: options.resilience,
  });

  function tableUrl(table: string, params: QueryParams, sysId?: string): string {
    const search = new URLSearchParams();
    for (const [name, value] of Object.entries(params)) if (value !== undefined) search.set(name, String(value));
    const query = search.toString();
    return `${base}/api/now/table/${table}${sysId ? `/${sysId}` : ''}${query ? `?${query}` : ''}`;
  }

  /** One request counted once; the answer's JSON `result` (and paging headers), or the expected status. */
  async function exchange<T>(
    operation: string,
    request: VendorRequest,
    signal: AbortSignal,
    expect: readonly number[] = [],
  ): Promise<{ status: number; result: T; next: string | null; total: number | null }> {
    const answer = await http.exchange(operation, { request: nameOf(request) }, request, signal, expect);
    if (expect.includes(answer.status)) return { status: answer.status, result: undefined as T, next: null, total: null };
    const result = (answer.body as { result?: unknown } | null)?.result;
    if (result === undefined) {
      throw new SystemCallError(`${nameOf(request)} answered ${answer.status} without a result`, {
        retryable: false,
        status: answer.status,
      });
    }
    const total = answer.header('x-total-count');
    return {
      status: answer.status,
      result: result as T,
      next: nextLink(answer.header('link')),
      total: total === null ? null : Number(total),
    };
  }

  /** One page of a table listing, through the resilience layer (reads are safe to repeat). */
  function page<T>(operation: string, url: string): Promise<TablePage<T>> {
    const name = `GET ${new URL(url).pathname}`;
    return http.call(operation, { idempotent: true }, async (signal) => {
      const answer = await exchange<T[]>(operation, { method: 'GET', url, name }, signal);
      if (!Array.isArray(answer.result)) throw new SystemCallError(`${name} answered without a list`, { retryable: false });
      return { rows: answer.result, next: answer.next, total: answer.total };
    });
  }

  /**
   * The records of a table matching the query, up to `want` of them, following the Link
   * header's next page. The query must end in a stable order (an ORDERBY of a unique field or
   * one the listing ties by sys_id) or pages may repeat rows.
   */
  async function rows<T>(
    operation: string,
    table: string,
    query: string,
    fields: readonly string[],
    want = Number.POSITIVE_INFINITY,
  ): Promise<{ rows: T[]; total: number | null }> {
    let url: string | null = tableUrl(table, {
      sysparm_query: query,
      sysparm_fields: fields.join(','),
      sysparm_limit: Math.max(1, Math.min(PAGE_LIMIT, want)),
      sysparm_display_value: 'false',
      sysparm_exclude_reference_link: 'true',
    });
    const found: T[] = [];
    let total: number | null = null;
    const guard = pagingGuard('support', operation);
    for (let first = true; url !== null && found.length < want; first = false) {
      if (!first) guard.next(url);
      const result: TablePage<T> = await page<T>(operation, url);
      total ??= result.total;
      found.push(...result.rows);
      url = result.rows.length === 0 || result.next === null ? null : http.followable(result.next, url);
    }
    return { rows: found.slice(0, want), total };
  }

  /** Incidents by a query, mapped. */
  async function incidents(operation: string, query: string, want?: number): Promise<CaseRecord[]> {
    return (await rows<IncidentRow>(operation, 'incident', query, INCIDENT_FIELDS, want)).rows.map(toCase);
  }

  /** Incidents whose field holds one of the values, in IN-list batches. */
  async function incidentsIn(operation: string, field: string, values: readonly string[]): Promise<CaseRecord[]> {
    const batches = await Promise.all(
      inBatches(listable(values)).map((batch) => incidents(operation, `${field}IN${batch.join(',')}^ORDERBYDESCnumber`)),
    );
    return [...new Map(batches.flat().map((record) => [record.id, record])).values()];
  }

  /** Companies by customer number: sys_id → customer number, exact matches only (queries ignore case). */
  async function companiesByCustomerIds(operation: string, customerIds: readonly string[]): Promise<Map<string, string>> {
    const wanted = new Set(customerIds);
    const batches = await Promise.all(
      inBatches(listable(customerIds)).map((batch) =>
        rows<{ sys_id: Field; u_customer_number: Field }>(
          operation,
          'core_company',
          `u_customer_numberIN${batch.join(',')}^ORDERBYsys_id`,
          ['sys_id', 'u_customer_number'],
        ),
      ),
    );
    const companies = new Map<string, string>();
    for (const row of batches.flatMap((batch) => batch.rows)) {
      const customerId = valueOf(row.u_customer_number);
      if (wanted.has(customerId)) companies.set(valueOf(row.sys_id), customerId);
    }
    return companies;
  }

  /** Users by CRM contact id: sys_id → contact id, exact matches only. */
  async function usersByContactIds(operation: string, contactIds: readonly string[]): Promise<Map<string, string>> {
    const wanted = new Set(contactIds);
    const batches = await Promise.all(
      inBatches(listable(contactIds)).map((batch) =>
        rows<{ sys_id: Field; u_crm_contact_id: Field }>(operation, 'sys_user', `u_crm_contact_idIN${batch.join(',')}^ORDERBYsys_id`, [
          'sys_id',
          'u_crm_contact_id',
        ]),
      ),
    );
    const users = new Map<string, string>();
    for (const row of batches.flatMap((batch) => batch.rows)) {
      const contactId = valueOf(row.u_crm_contact_id);
      if (wanted.has(contactId)) users.set(valueOf(row.sys_id), contactId);
    }
    return users;
  }

  /** Encoded query terms for a case filter; null when it names a customer or an agent the desk cannot have. */
  async function filterTerms(operation: string, filter: CaseFilterInput): Promise<string[] | null> {
    const terms = [...statusTerms(filter.statuses), ...priorityTerms(filter.priorities)];
    if (filter.assigneeId !== undefined) {
      if (!isSysId(filter.assigneeId)) return null;
      terms.push(`assigned_to=${filter.assigneeId}`);
    }
    if (filter.customerId !== undefined) {
      const [company] = (await companiesByCustomerIds(operation, [filter.customerId])).keys();
      if (company === undefined) return null;
      terms.push(`company=${company}`);
    }
    return terms;
  }

  /** Incidents by number, with their sys_ids. */
  async function incidentIdsByNumbers(operation: string, numbers: readonly string[]): Promise<Map<string, string>> {
    const batches = await Promise.all(
      inBatches(incidentNumbersOf(numbers)).map((batch) =>
        rows<{ sys_id: Field; number: Field }>(operation, 'incident', `numberIN${batch.join(',')}^ORDERBYnumber`, ['sys_id', 'number']),
      ),
    );
    const wanted = new Set(incidentNumbersOf(numbers));
    const found = new Map<string, string>();
    for (const row of batches.flatMap((batch) => batch.rows)) {
      if (wanted.has(valueOf(row.number))) found.set(valueOf(row.sys_id), caseIdOf(valueOf(row.number)));
    }
    return found;
  }

  /** User names → display names, for journal authors. */
  async function namesOfUsers(operation: string, userNames: readonly string[]): Promise<Map<string, string>> {
    const batches = await Promise.all(
      inBatches(listable(userNames)).map((batch) =>
        rows<{ user_name: Field; name: Field }>(operation, 'sys_user', `user_nameIN${batch.join(',')}^ORDERBYsys_id`, [
          'user_name',
          'name',
        ]),
      ),
    );
    return new Map(batches.flatMap((batch) => batch.rows).map((row) => [valueOf(row.user_name), valueOf(row.name)]));
  }

  // Updates of one incident from this process run one after the other, so the second delivery
  // of a key sees the first one's mark.
  const updating = new Map<string, Promise<unknown>>();
  function serialized<T>(caseId: string, fn: () => Promise<T>): Promise<T> {
    const previous = updating.get(caseId) ?? Promise.resolve();
    const next = previous.then(fn, fn);
    const settled = next.catch(() => undefined);
    updating.set(caseId, settled);
    void settled.then(() => {
      if (updating.get(caseId) === settled) updating.delete(caseId);
    });
    return next;
  }

  /**
   * Reads the incident, and unless its `u_update_keys` holds the key's digest, writes the
   * change, the work note and the digest in one PATCH. Retrying this whole cycle (not just the
   * PATCH) is what makes a lost answer safe to repeat: the retry reads the digest and stops.
   */
  async function applyOnce(caseId: string, update: Omit<CaseUpdate, 'caseId'>, signal: AbortSignal): Promise<CaseRecord | null> {
    const url = tableUrl('incident', {
      sysparm_query: `number=${caseId}`,
      sysparm_fields: INCIDENT_FIELDS.join(','),
      sysparm_limit: 1,
      sysparm_display_value: 'false',
      sysparm_exclude_reference_link: 'true',
    });
    const read = await exchange<IncidentRow[]>('applyCaseUpdate', { method: 'GET', url, name: 'GET /api/now/table/incident' }, signal);
    const row = read.result.find((candidate) => valueOf(candidate.number) === caseId);
    if (!row) return null;
    const digest = updateKeyDigest(update.key);
    const keys = valueOf(row.u_update_keys).split('\n').filter(Boolean);
    if (keys.includes(digest)) return toCase(row);
    const body: Record<string, string> = { u_update_keys: [...keys, digest].slice(-UPDATE_KEYS_KEPT).join('\n') };
    if (update.status) {
      const { state, holdReason } = SERVICENOW_STATE_OF[update.status];
      body.state = state;
      body.hold_reason = holdReason;
      // Resolving and closing need a resolution code and notes (the incident's data policy).
      if (update.status === 'SOLVED' || update.status === 'CLOSED') {
        if (!valueOf(row.close_code)) body.close_code = CLOSE_CODE;
        if (!valueOf(row.close_notes)) body.close_notes = update.internalNote || 'Resolved';
      }
    }
    if (update.internalNote) body.work_notes = update.internalNote;
    const sysId = valueOf(row.sys_id);
    const written = await exchange<IncidentRow>(
      'applyCaseUpdate',
      {
        method: 'PATCH',
        url: tableUrl(
          'incident',
          { sysparm_fields: INCIDENT_FIELDS.join(','), sysparm_display_value: 'false', sysparm_exclude_reference_link: 'true' },
          sysId,
        ),
        body,
        name: 'PATCH /api/now/table/incident',
      },
      signal,
      [404],
    );
    if (written.status === 404) return null;
    return toCase(written.result);
  }

  /** The company of a customer number, with its support tier; null when none has it. */
  async function companyOf(operation: string, customerId: string): Promise<{ sysId: string; tier: string } | null> {
    if (!queryable(customerId)) return null;
    const { rows: found } = await rows<{ sys_id: Field; u_customer_number: Field; u_support_tier: Field }>(
      operation,
      'core_company',
      `u_customer_number=${customerId}^ORDERBYsys_id`,
      ['sys_id', 'u_customer_number', 'u_support_tier'],
    );
    const company = found.find((row) => valueOf(row.u_customer_number) === customerId);
    return company ? { sysId: valueOf(company.sys_id), tier: valueOf(company.u_support_tier) } : null;
  }

  /** The records of a table linked to the companies (u_company), in batches of companies. */
  async function linkedTo<T>(operation: string, table: string, companies: readonly string[], order: string, fields: readonly string[]) {
    const batches = await Promise.all(
      chunked(companies, REFERENCES_PER_QUERY).map((batch) => rows<T>(operation, table, `u_companyIN${batch.join(',')}^${order}`, fields)),
    );
    return batches.flatMap((batch) => batch.rows);
  }

  /**
   * Creates or updates the record whose key field holds the key: read by the key, then PATCHed
   * or POSTed. The whole cycle is what the resilience layer repeats, so a create whose answer
   * was lost is found by the retry's read and updated rather than created twice.
   */
  function upsert<T extends { sys_id?: Field }>(
    operation: string,
    table: string,
    keyField: string,
    key: string,
    fields: readonly string[],
    body: Record<string, string>,
  ): Promise<T> {
    const shape = { sysparm_fields: fields.join(','), sysparm_display_value: 'false', sysparm_exclude_reference_link: 'true' };
    // A key that cannot be looked up could not be found again: writing it would not be safe to repeat.
    if (!queryable(key)) {
      return Promise.reject(
        new SystemCallError(`${operation}: ${JSON.stringify(key)} cannot be looked up in ${table}`, { retryable: false }),
      );
    }
    return http.call(operation, { idempotent: true }, async (signal) => {
      const read = await exchange<T[]>(
        operation,
        {
          method: 'GET',
          url: tableUrl(table, { ...shape, sysparm_query: `${keyField}=${key}^ORDERBYsys_created_on`, sysparm_limit: 10 }),
          name: `GET /api/now/table/${table}`,
        },
        signal,
      );
      const existing = read.result.find((row) => valueOf((row as Record<string, Field>)[keyField]) === key);
      const written = existing
        ? await exchange<T>(
            operation,
            { method: 'PATCH', url: tableUrl(table, shape, valueOf(existing.sys_id)), body, name: `PATCH /api/now/table/${table}` },
            signal,
          )
        : await exchange<T>(operation, { method: 'POST', url: tableUrl(table, shape), body, name: `POST /api/now/table/${table}` }, signal);
      return written.result;
    });
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
      return incidentsIn('casesByIds', 'number', incidentNumbersOf(ids));
    },

    async searchCases({ filter, limit, afterId }) {
      const after = afterId === undefined ? undefined : incidentNumberOf(afterId);
      if (after === null) return { records: [], hasNextPage: false };
      const terms = await filterTerms('searchCases', filter);
      if (terms === null) return { records: [], hasNextPage: false };
      if (after !== undefined) terms.push(`number<${after}`);
      // One more than the page: whether there is a next page without counting.
      const found = await incidents('searchCases', [...terms, 'ORDERBYDESCnumber'].join('^'), limit + 1);
      return { records: found.slice(0, limit), hasNextPage: found.length > limit };
    },

    async countCases(filter) {
      const terms = await filterTerms('countCases', filter);
      if (terms === null) return 0;
      const { rows: found, total } = await rows<{ sys_id: Field }>(
        'countCases',
        'incident',
        [...terms, 'ORDERBYnumber'].join('^'),
        ['sys_id'],
        1,
      );
      return total ?? found.length;
    },

    // One query per customer: a page of `limit` costs the same whatever the customer's history.
    async casesByCustomerIds(customerIds, { statuses, limit }) {
      const companies = await companiesByCustomerIds('casesByCustomerIds', customerIds);
      const found = await Promise.all(
        [...companies.keys()].map((company) =>
          incidents('casesByCustomerIds', [`company=${company}`, ...statusTerms(statuses), 'ORDERBYDESCnumber'].join('^'), limit),
        ),
      );
      return newestFirst(found.flat());
    },

    // Open incidents are few per customer: one query for a batch of companies, reading only the company.
    async openCaseCounts(customerIds) {
      const companies = await companiesByCustomerIds('openCaseCounts', customerIds);
      const counts = new Map<string, number>();
      const batches = await Promise.all(
        chunked([...companies.keys()], REFERENCES_PER_QUERY).map((batch) =>
          rows<{ company: Field }>(
            'openCaseCounts',
            'incident',
            [`companyIN${batch.join(',')}`, ...statusTerms(OPEN_CASE_STATUSES), 'ORDERBYnumber'].join('^'),
            ['company'],
          ),
        ),
      );
      for (const row of batches.flatMap((batch) => batch.rows)) {
        const customerId = companies.get(valueOf(row.company));
        if (customerId !== undefined) counts.set(customerId, (counts.get(customerId) ?? 0) + 1);
      }
      return counts;
    },

    async casesByContactIds(contactIds, limit) {
      const users = await usersByContactIds('casesByContactIds', contactIds);
      const found = await Promise.all(
        [...users.keys()].map((user) => incidents('casesByContactIds', `caller_id=${user}^ORDERBYDESCnumber`, limit)),
      );
      return newestFirst(found.flat());
    },

    // The queries ignore case: the values are checked exactly.
    async casesByOrderNumbers(numbers) {
      const wanted = new Set(numbers);
      const found = await incidentsIn('casesByOrderNumbers', 'u_order_number', numbers);
      return newestFirst(found.filter((record) => record.orderNumber !== null && wanted.has(record.orderNumber)));
    },

    async casesBySerialNumbers(serialNumbers) {
      const wanted = new Set(serialNumbers);
      const found = await incidentsIn('casesBySerialNumbers', 'u_serial_number', serialNumbers);
      return newestFirst(found.filter((record) => record.serialNumber !== null && wanted.has(record.serialNumber)));
    },

    // The incidents' sys_ids, then their journal entries in batches, then the authors' names.
    async commentsByCaseIds(caseIds) {
      const numbers = await incidentIdsByNumbers('commentsByCaseIds', caseIds);
      if (numbers.size === 0) return [];
      type JournalRow = { sys_id: Field; element: Field; element_id: Field; value: Field; sys_created_on: Field; sys_created_by: Field };
      const batches = await Promise.all(
        inBatches([...numbers.keys()]).map((batch) =>
          rows<JournalRow>(
            'commentsByCaseIds',
            'sys_journal_field',
            `name=incident^elementINcomments,work_notes^element_idIN${batch.join(',')}^ORDERBYsys_created_on^ORDERBYsys_id`,
            ['sys_id', 'element', 'element_id', 'value', 'sys_created_on', 'sys_created_by'],
          ),
        ),
      );
      const entries = batches.flatMap((batch) => batch.rows);
      const authors = await namesOfUsers('commentsByCaseIds', [...new Set(entries.map((entry) => valueOf(entry.sys_created_by)))]);
      const comments = entries
        .filter((entry) => numbers.has(valueOf(entry.element_id)))
        .map((entry): CommentRecord => ({
          id: valueOf(entry.sys_id),
          caseId: numbers.get(valueOf(entry.element_id))!,
          body: valueOf(entry.value),
          public: valueOf(entry.element) === 'comments',
          authorName: authors.get(valueOf(entry.sys_created_by)) ?? null,
          createdAt: isoFromGlide(valueOf(entry.sys_created_on)) ?? '',
        }));
      return comments.sort((a, b) => binary(a.caseId, b.caseId) || binary(a.createdAt, b.createdAt) || binary(a.id, b.id));
    },
    caseGraphsByIds(ids, parts) {
      return composeCaseGraph(this, ids, parts);
    },

    async agentsByIds(ids) {
      const batches = await Promise.all(
        inBatches(ids.filter(isSysId)).map((batch) =>
          rows<{ sys_id: Field; name: Field; email: Field; roles: Field }>(
            'agentsByIds',
            'sys_user',
            `sys_idIN${batch.join(',')}^rolesLIKE${AGENT_ROLE}^ORDERBYsys_id`,
            ['sys_id', 'name', 'email', 'roles'],
          ),
        ),
      );
      return batches
        .flatMap((batch) => batch.rows)
        .filter((row) =>
          valueOf(row.roles)
            .split(',')
            .map((role) => role.trim())
            .includes(AGENT_ROLE),
        )
        .map((row): AgentRecord => ({ id: valueOf(row.sys_id), name: valueOf(row.name), email: orNull(valueOf(row.email)) }));
    },

    // A tier gets the first policy (by name) whose definitions name it.
    async slaPoliciesByTiers(tiers) {
      if (tiers.length === 0) return [];
      const { rows: definitions } = await rows<SlaDefinitionRow>(
        'slaPoliciesByTiers',
        'contract_sla',
        'collection=incident^active=true^u_sla_policyISNOTEMPTY^ORDERBYu_sla_policy^ORDERBYsys_id',
        SLA_FIELDS,
      );
      const wanted = new Set(tiers);
      const chosen = new Map<SupportTier, { name: string; definitions: SlaDefinitionRow[] }>();
      for (const definition of definitions) {
        const { tier } = slaConditionOf(valueOf(definition.start_condition));
        if (tier === null || !wanted.has(tier)) continue;
        const name = valueOf(definition.u_sla_policy);
        const policy = chosen.get(tier) ?? { name, definitions: [] };
        if (policy.name !== name) continue;
        policy.definitions.push(definition);
        chosen.set(tier, policy);
      }
      return [...chosen].map(([tier, policy]) => toSlaPolicy(tier, policy.name, policy.definitions));
    },

    async applyCaseUpdate({ key, caseId: id, internalNote, status }) {
      const caseId = incidentNumberOf(id);
      if (caseId === null) return null;
      return serialized(caseId, () =>
        options.resilience.call('applyCaseUpdate', { idempotent: true }, (signal) =>
          applyOnce(caseId, { key, internalNote, status }, signal),
        ),
      );
    },

    // The answer is the order's records afterwards: the ones just written, as their writes
    // answered, and any other product of the order an earlier recording left.
    async recordInstalledBase({ customerId, orderNumber, items }) {
      const company = await companyOf('recordInstalledBase', customerId);
      if (!company) return null;
      // One upsert per SKU: the last line of a SKU is what writing them in turn would leave.
      const products = [...new Map(items.map((item) => [item.sku, item])).values()];
      const written = await inTurns(products, UPSERTS_IN_FLIGHT, (item) =>
        upsert<InstalledProductRow>(
          'recordInstalledBase',
          INSTALLED_PRODUCT_TABLE,
          'u_external_id',
          `${orderNumber}:${item.sku}`,
          INSTALLED_PRODUCT_FIELDS,
          {
            u_external_id: `${orderNumber}:${item.sku}`,
            // A product without a name is known by its SKU.
            u_name: item.name ?? item.sku,
            u_company: company.sysId,
            u_order_number: orderNumber,
            u_sku: item.sku,
            u_quantity: String(item.quantity),
            u_warranty_months: item.warrantyMonths === null ? '' : String(item.warrantyMonths),
          },
        ),
      );
      const { rows: found } = await rows<InstalledProductRow>(
        'recordInstalledBase',
        INSTALLED_PRODUCT_TABLE,
        `u_company=${company.sysId}^u_order_number=${orderNumber}^ORDERBYDESCsys_created_on^ORDERBYu_external_id`,
        INSTALLED_PRODUCT_FIELDS,
      );
      const records = new Map(found.map((row) => [valueOf(row.sys_id), row]));
      for (const row of written) records.set(valueOf(row.sys_id), row);
      const customerOf = new Map([[company.sysId, customerId]]);
      return newestRecordedFirst(
        [...records.values()]
          .map((row) => toInstalledProduct(row, customerOf))
          .filter((product): product is InstalledProductRecord => product !== null && product.orderNumber === orderNumber),
      );
    },

    // The company and its entitlement records are read first; the subscription's record is
    // written only when it holds another state, the company's tier only when it differs, so
    // setting the same state again writes nothing.
    async setEntitlement(update) {
      const company = await companyOf('setEntitlement', update.customerId);
      if (!company) return null;
      const { rows: found } = await rows<EntitlementRow>(
        'setEntitlement',
        ENTITLEMENT_TABLE,
        `u_company=${company.sysId}^ORu_subscription_id=${update.subscriptionId}^ORDERBYu_subscription_id^ORDERBYsys_id`,
        ENTITLEMENT_FIELDS,
      );
      const records = new Map(found.map((row) => [valueOf(row.sys_id), row]));
      const existing = found.find((row) => valueOf(row.u_subscription_id) === update.subscriptionId);
      if (!existing || !holdsEntitlement(existing, update, company.sysId)) {
        const written = await upsert<EntitlementRow>(
          'setEntitlement',
          ENTITLEMENT_TABLE,
          'u_subscription_id',
          update.subscriptionId,
          ENTITLEMENT_FIELDS,
          {
            u_subscription_id: update.subscriptionId,
            u_name: `${TIER_NAME[update.tier]} ${update.subscriptionId}`,
            u_company: company.sysId,
            u_tier: update.tier,
            u_active: String(update.active),
            u_until: update.until ?? '',
          },
        );
        records.set(valueOf(written.sys_id), written);
      }
      const customerOf = new Map([[company.sysId, update.customerId]]);
      const entitlements = byCustomerAndSubscription(
        [...records.values()]
          .map((row) => toEntitlement(row, customerOf))
          .filter((entitlement): entitlement is EntitlementRecord => entitlement !== null),
      );
      const tier =
        TIER_ORDER.filter((candidate) => entitlements.some((entitlement) => entitlement.active && entitlement.tier === candidate)).at(-1) ??
        '';
      if (tier !== company.tier) {
        // Setting a value is safe to repeat.
        await http.call('setEntitlement', { idempotent: true }, (signal) =>
          exchange(
            'setEntitlement',
            {
              method: 'PATCH',
              url: tableUrl('core_company', { sysparm_fields: 'sys_id,u_support_tier' }, company.sysId),
              body: { u_support_tier: tier },
              name: 'PATCH /api/now/table/core_company',
            },
            signal,
          ),
        );
      }
      return entitlements;
    },

    async entitlementsByCustomerIds(customerIds) {
      const companies = await companiesByCustomerIds('entitlementsByCustomerIds', customerIds);
      if (companies.size === 0) return [];
      const found = await linkedTo<EntitlementRow>(
        'entitlementsByCustomerIds',
        ENTITLEMENT_TABLE,
        [...companies.keys()],
        'ORDERBYu_subscription_id^ORDERBYsys_id',
        ENTITLEMENT_FIELDS,
      );
      return byCustomerAndSubscription(
        found.map((row) => toEntitlement(row, companies)).filter((entitlement): entitlement is EntitlementRecord => entitlement !== null),
      );
    },

    async installedBaseByCustomerIds(customerIds) {
      const companies = await companiesByCustomerIds('installedBaseByCustomerIds', customerIds);
      if (companies.size === 0) return [];
      const found = await linkedTo<InstalledProductRow>(
        'installedBaseByCustomerIds',
        INSTALLED_PRODUCT_TABLE,
        [...companies.keys()],
        'ORDERBYDESCsys_created_on^ORDERBYu_external_id^ORDERBYsys_id',
        INSTALLED_PRODUCT_FIELDS,
      );
      return newestRecordedFirst(
        found.map((row) => toInstalledProduct(row, companies)).filter((product): product is InstalledProductRecord => product !== null),
      );
    },

    async ping() {
      await rows('ping', 'sys_user', 'ORDERBYsys_id', ['sys_id'], 1);
    },

    // Node's global fetch pools connections process-wide; there is nothing of ours to release.
    async close() {},
    apiBudget: () => http.budget(),
  };
}
