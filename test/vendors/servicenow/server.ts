import { createHash, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Database } from '../../../platform/sqlite.ts';
import { EMBEDDED_FIELD_IDS } from '../../../subgraphs/support/src/connectors/embedded/tables.ts';
import { readBody } from '../http.ts';

/**
 * A local stand-in for ServiceNow's Table API (`/api/now/table/{table}`, also under `/api/now/v1`
 * and `/api/now/v2`), for the tables the support desk adapter reads and writes, answering in
 * ServiceNow's wire format: `{"result": ...}` bodies whose values are all strings, reference
 * fields as `{"link", "value"}` (or plain sys_ids with `sysparm_exclude_reference_link=true`,
 * display values with `sysparm_display_value=true`, both with `all`), dot-walked fields
 * (`company.u_customer_number`) in `sysparm_fields` and in `sysparm_query`, offset paging with
 * `sysparm_limit` (capped at `maxLimit`) and `sysparm_offset`, a `Link` header (rel first, prev,
 * next, last) and `X-Total-Count`, errors as `{"error":{"message","detail"},"status":"failure"}`,
 * basic auth and OAuth bearer tokens, and a rate limit rule reported in `X-RateLimit-Limit`,
 * `X-RateLimit-Remaining` and `X-RateLimit-Reset` (429 with Retry-After once exhausted). Tests
 * switch faults on (latency, 429s, 5xx, dropped connections) and read the request log.
 *
 * Encoded queries (`sysparm_query`): conditions joined by `^` (AND) and `^OR` (OR, binding
 * tighter than AND, as in ServiceNow), `ORDERBY<field>` / `ORDERBYDESC<field>` (several allowed,
 * then sys_id), operators `=`, `!=`, `IN`, `NOT IN`, `LIKE`, `NOTLIKE`, `STARTSWITH`,
 * `ENDSWITH`, `ISEMPTY`, `ISNOTEMPTY`, `<`, `<=`, `>`, `>=`. String comparisons ignore case, as
 * ServiceNow's database collation does; `!=` and `NOT IN` do not match empty values, as in
 * ServiceNow. The instance behaves as with `glide.invalid_query.returns_no_rows=true`: a
 * condition on a field the table lacks matches nothing (rather than being ignored).
 *
 * Tables and the fields the seed fills (custom fields, prefixed `u_`, are this integration's):
 * - core_company: name, `u_customer_number` (the customer number: the embedded desk's
 *   organization external id).
 * - sys_user: user_name (the e-mail address), name, email, roles (`itil` for agents), company,
 *   `u_crm_contact_id` (the CRM contact id: the embedded desk's user external id).
 * - incident: number (`INC` and the embedded ticket id, seven digits), short_description,
 *   description, state (1 New, 2 In Progress, 3 On Hold, 6 Resolved, 7 Closed, 8 Canceled),
 *   hold_reason (1 Awaiting Caller, 3 Awaiting Problem, 4 Awaiting Vendor, 5 Awaiting Change),
 *   priority (1 Critical … 5 Planning), caller_id, assigned_to, company, due_date, opened_at,
 *   close_code, close_notes, active, and the custom fields `u_case_type` (question, incident,
 *   problem, task), `u_tags` (comma-separated), `u_order_number`, `u_serial_number` and
 *   `u_update_keys` (digests of the update keys applied, one a line).
 * - sys_journal_field: element (`work_notes` internal, `comments` public), element_id (the
 *   incident's sys_id), name (`incident`), value, sys_created_on, sys_created_by (a user_name).
 * - core_company also holds `u_support_tier` (BASIC, STANDARD, PREMIUM: from the organization's
 *   tier tag), which the SLA definitions' start conditions name.
 * - contract_sla (SLA definitions): one per policy, priority and target (`response` from the
 *   first reply time, `resolution` from the requester wait time), collection `incident`,
 *   duration (a glide_duration), schedule (a cmn_schedule for business hours, empty around the
 *   clock), start_condition `company.u_support_tier=<TIER>^priority=<n>^active=true`, and
 *   `u_sla_policy` (the policy's title, which groups a policy's definitions).
 * - u_installed_product (a custom table): u_external_id (`<order number>:<sku>`), u_name,
 *   u_company, u_order_number, u_sku, u_quantity, u_warranty_months (empty: none).
 * - u_entitlement (a custom table): u_subscription_id, u_name, u_company, u_tier, u_active
 *   (true or false), u_until (YYYY-MM-DD, empty: none).
 *
 * Writing `work_notes` or `comments` on an incident (PATCH, PUT or POST) adds a journal entry
 * instead of setting a field, as ServiceNow does. A closed incident refuses changes (403, as its
 * write ACL does), and data policies ask for close_code and close_notes when an incident is
 * resolved or closed and for hold_reason when it is put on hold.
 *
 * Dates are `YYYY-MM-DD HH:MM:SS` in UTC, as the Table API gives them without display values.
 */

// ---------------------------------------------------------------------------------------------
// The in-memory instance.
// ---------------------------------------------------------------------------------------------

/** A record as the Table API holds it: every value a string, a reference its record's sys_id. */
export type SnRecord = Record<string, string>;

interface TableSchema {
  fields: readonly string[];
  /** Reference fields and the table each refers to. */
  references: Readonly<Record<string, string>>;
  /** The field a reference to this table displays. */
  display: string;
  /** Choice fields: value → label. */
  choices?: Readonly<Record<string, Readonly<Record<string, string>>>>;
}

const SYSTEM_FIELDS = ['sys_id', 'sys_created_on', 'sys_created_by', 'sys_updated_on', 'sys_updated_by', 'sys_mod_count'];

export const SCHEMAS: Readonly<Record<string, TableSchema>> = {
  core_company: { fields: [...SYSTEM_FIELDS, 'name', 'u_customer_number', 'u_support_tier'], references: {}, display: 'name' },
  cmn_schedule: { fields: [...SYSTEM_FIELDS, 'name', 'time_zone'], references: {}, display: 'name' },
  contract_sla: {
    fields: [...SYSTEM_FIELDS, 'name', 'collection', 'type', 'target', 'duration', 'schedule', 'start_condition', 'active', 'u_sla_policy'],
    references: { schedule: 'cmn_schedule' },
    display: 'name',
  },
  u_installed_product: {
    fields: [...SYSTEM_FIELDS, 'u_external_id', 'u_name', 'u_company', 'u_order_number', 'u_sku', 'u_quantity', 'u_warranty_months'],
    references: { u_company: 'core_company' },
    display: 'u_name',
  },
  u_entitlement: {
    fields: [...SYSTEM_FIELDS, 'u_subscription_id', 'u_name', 'u_company', 'u_tier', 'u_active', 'u_until'],
    references: { u_company: 'core_company' },
    display: 'u_name',
  },
  sys_user: {
    fields: [...SYSTEM_FIELDS, 'user_name', 'name', 'email', 'roles', 'company', 'u_crm_contact_id', 'active'],
    references: { company: 'core_company' },
    display: 'name',
  },
  incident: {
    fields: [
      ...SYSTEM_FIELDS,
      'number',
      'short_description',
      'description',
      'state',
      'hold_reason',
      'priority',
      'caller_id',
      'assigned_to',
      'company',
      'due_date',
      'opened_at',
      'close_code',
      'close_notes',
      'active',
      'u_case_type',
      'u_tags',
      'u_order_number',
      'u_serial_number',
      'u_update_keys',
    ],
    references: { caller_id: 'sys_user', assigned_to: 'sys_user', company: 'core_company' },
    display: 'number',
    choices: {
      state: { '1': 'New', '2': 'In Progress', '3': 'On Hold', '6': 'Resolved', '7': 'Closed', '8': 'Canceled' },
      hold_reason: { '1': 'Awaiting Caller', '3': 'Awaiting Problem', '4': 'Awaiting Vendor', '5': 'Awaiting Change' },
      priority: { '1': '1 - Critical', '2': '2 - High', '3': '3 - Moderate', '4': '4 - Low', '5': '5 - Planning' },
    },
  },
  sys_journal_field: {
    fields: [...SYSTEM_FIELDS, 'element', 'element_id', 'name', 'value'],
    references: {},
    display: 'value',
  },
};

export interface ServiceNowData {
  /** Records by table, then sys_id, in the order they were written. */
  tables: Map<string, Map<string, SnRecord>>;
}

/** The sys_id the seed gives a record of the embedded desk: stable, 32 hex digits. */
export function sysIdOf(table: string, id: number | string): string {
  return createHash('md5').update(`${table}:${id}`).digest('hex');
}

/** The incident number of an embedded ticket id. */
export function incidentNumber(ticketId: number | string): string {
  return `INC${String(ticketId).padStart(7, '0')}`;
}

/** ServiceNow's date-time format (UTC) for an ISO timestamp. */
export function glideDateTime(iso: string | null): string {
  if (!iso) return '';
  return new Date(iso).toISOString().slice(0, 19).replace('T', ' ');
}

const STATE_OF: Record<string, { state: string; hold_reason: string }> = {
  new: { state: '1', hold_reason: '' },
  open: { state: '2', hold_reason: '' },
  pending: { state: '3', hold_reason: '1' },
  hold: { state: '3', hold_reason: '4' },
  solved: { state: '6', hold_reason: '' },
  closed: { state: '7', hold_reason: '' },
};
const PRIORITY_OF: Record<string, string> = { urgent: '1', high: '2', normal: '3', low: '4' };

/**
 * The embedded desk's rows as ServiceNow records: organizations → core_company, users →
 * sys_user, tickets → incident, comments → sys_journal_field (see the header for the fields).
 */
export function loadServiceNowData(
  db: Database,
  fieldIds: { orderNumber: number; serialNumber: number } = EMBEDDED_FIELD_IDS,
): ServiceNowData {
  const tables = new Map<string, Map<string, SnRecord>>(Object.keys(SCHEMAS).map((name) => [name, new Map()]));
  const put = (table: string, record: SnRecord) => {
    const full: SnRecord = Object.fromEntries(SCHEMAS[table]!.fields.map((field) => [field, '']));
    tables.get(table)!.set(record.sys_id!, { ...full, sys_mod_count: '0', sys_created_by: 'admin', sys_updated_by: 'admin', ...record });
  };
  for (const row of db.prepare('SELECT * FROM organizations ORDER BY id').all() as {
    id: number;
    name: string;
    external_id: string | null;
    tags: string;
    created_at: string;
    updated_at: string;
  }[]) {
    put('core_company', {
      sys_id: sysIdOf('core_company', row.id),
      name: row.name,
      u_customer_number: row.external_id ?? '',
      u_support_tier: TIER_OF_TAG.find(([tag]) => (JSON.parse(row.tags) as string[]).includes(tag))?.[1] ?? '',
      sys_created_on: glideDateTime(row.created_at),
      sys_updated_on: glideDateTime(row.updated_at),
    });
  }
  const userNames = new Map<number, string>();
  for (const row of db.prepare('SELECT * FROM users ORDER BY id').all() as {
    id: number;
    name: string;
    email: string | null;
    role: string;
    organization_id: number | null;
    external_id: string | null;
    created_at: string;
  }[]) {
    const userName = row.email ?? `user.${row.id}`;
    userNames.set(row.id, userName);
    put('sys_user', {
      sys_id: sysIdOf('sys_user', row.id),
      user_name: userName,
      name: row.name,
      email: row.email ?? '',
      roles: row.role === 'admin' ? 'itil,admin' : row.role === 'agent' ? 'itil' : '',
      company: row.organization_id === null ? '' : sysIdOf('core_company', row.organization_id),
      u_crm_contact_id: row.external_id ?? '',
      active: 'true',
      sys_created_on: glideDateTime(row.created_at),
      sys_updated_on: glideDateTime(row.created_at),
    });
  }
  const fieldValues = new Map<string, string | null>();
  for (const row of db.prepare('SELECT ticket_id, field_id, value FROM ticket_custom_fields').all() as {
    ticket_id: number;
    field_id: number;
    value: string | null;
  }[]) {
    fieldValues.set(`${row.ticket_id}/${row.field_id}`, row.value);
  }
  for (const row of db.prepare('SELECT * FROM tickets ORDER BY id').all() as {
    id: number;
    type: string | null;
    subject: string;
    description: string | null;
    priority: string | null;
    status: string;
    requester_id: number | null;
    assignee_id: number | null;
    organization_id: number | null;
    tags: string;
    due_at: string | null;
    created_at: string;
    updated_at: string;
  }[]) {
    const state = STATE_OF[row.status] ?? STATE_OF.open!;
    put('incident', {
      sys_id: sysIdOf('incident', row.id),
      number: incidentNumber(row.id),
      short_description: row.subject,
      description: row.description ?? '',
      state: state.state,
      hold_reason: state.hold_reason,
      priority: PRIORITY_OF[row.priority ?? ''] ?? '3',
      caller_id: row.requester_id === null ? '' : sysIdOf('sys_user', row.requester_id),
      assigned_to: row.assignee_id === null ? '' : sysIdOf('sys_user', row.assignee_id),
      company: row.organization_id === null ? '' : sysIdOf('core_company', row.organization_id),
      due_date: glideDateTime(row.due_at),
      opened_at: glideDateTime(row.created_at),
      close_code: Number(state.state) >= 6 ? 'Solution provided' : '',
      close_notes: Number(state.state) >= 6 ? 'Resolved' : '',
      active: Number(state.state) >= 6 ? 'false' : 'true',
      u_case_type: row.type ?? '',
      u_tags: (JSON.parse(row.tags) as string[]).join(','),
      u_order_number: fieldValues.get(`${row.id}/${fieldIds.orderNumber}`) ?? '',
      u_serial_number: fieldValues.get(`${row.id}/${fieldIds.serialNumber}`) ?? '',
      sys_created_on: glideDateTime(row.created_at),
      sys_updated_on: glideDateTime(row.updated_at),
    });
  }
  for (const row of db.prepare('SELECT * FROM ticket_comments ORDER BY created_at, id').all() as {
    id: number;
    ticket_id: number;
    author_id: number | null;
    body: string;
    public: number;
    created_at: string;
  }[]) {
    put('sys_journal_field', {
      sys_id: sysIdOf('sys_journal_field', row.id),
      element: row.public === 1 ? 'comments' : 'work_notes',
      element_id: sysIdOf('incident', row.ticket_id),
      name: 'incident',
      value: row.body,
      sys_created_on: glideDateTime(row.created_at),
      sys_updated_on: glideDateTime(row.created_at),
      sys_created_by: row.author_id === null ? 'system' : (userNames.get(row.author_id) ?? 'system'),
    });
  }
  // SLA definitions: one per policy, priority and target (response, resolution), attached to
  // incidents of the tier's companies; business hours as a schedule, around the clock as none.
  const businessHours = sysIdOf('cmn_schedule', 'business-hours');
  put('cmn_schedule', { sys_id: businessHours, name: '8-5 weekdays', time_zone: 'UTC' });
  for (const row of db.prepare('SELECT * FROM sla_policies ORDER BY position').all() as {
    id: number;
    title: string;
    filter_tag: string;
    policy_metrics: string;
  }[]) {
    const tier = TIER_OF_TAG.find(([tag]) => tag === row.filter_tag)?.[1];
    if (!tier) continue;
    const metrics = JSON.parse(row.policy_metrics) as { priority: string; metric: string; target: number; business_hours: boolean }[];
    for (const metric of metrics) {
      const target = metric.metric === 'first_reply_time' ? 'response' : metric.metric === 'requester_wait_time' ? 'resolution' : null;
      const priority = PRIORITY_OF[metric.priority];
      if (!target || !priority) continue;
      put('contract_sla', {
        sys_id: sysIdOf('contract_sla', `${row.id}:${metric.priority}:${target}`),
        name: `${row.title}: P${priority} ${target}`,
        collection: 'incident',
        type: 'SLA',
        target,
        duration: glideDuration(metric.target),
        schedule: metric.business_hours ? businessHours : '',
        start_condition: `company.u_support_tier=${tier}^priority=${priority}^active=true`,
        active: 'true',
        u_sla_policy: row.title,
      });
    }
  }
  // The installed base and entitlements the embedded desk holds.
  const hasRecords = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'custom_object_records'").get();
  if (hasRecords) {
    for (const row of db.prepare('SELECT * FROM custom_object_records ORDER BY created_at, id').all() as {
      id: string;
      custom_object_key: string;
      external_id: string;
      name: string;
      organization_id: number | null;
      custom_object_fields: string;
      created_at: string;
      updated_at: string;
    }[]) {
      const fields = JSON.parse(row.custom_object_fields) as Record<string, string | number | boolean | null>;
      const common = {
        sys_id: sysIdOf(row.custom_object_key, row.id),
        u_name: row.name,
        u_company: row.organization_id === null ? '' : sysIdOf('core_company', row.organization_id),
        sys_created_on: glideDateTime(row.created_at),
        sys_updated_on: glideDateTime(row.updated_at),
      };
      const text = (value: unknown) => (value === null || value === undefined ? '' : String(value));
      if (row.custom_object_key === 'installed_product') {
        put('u_installed_product', {
          ...common,
          u_external_id: row.external_id,
          u_order_number: text(fields.order_number),
          u_sku: text(fields.sku),
          u_quantity: text(fields.quantity),
          u_warranty_months: text(fields.warranty_months),
        });
      } else if (row.custom_object_key === 'entitlement') {
        put('u_entitlement', {
          ...common,
          u_subscription_id: row.external_id,
          u_tier: text(fields.tier),
          u_active: fields.active === true ? 'true' : 'false',
          u_until: text(fields.until),
        });
      }
    }
  }
  return { tables };
}

const TIER_OF_TAG: readonly (readonly [string, string])[] = [
  ['tier_premium', 'PREMIUM'],
  ['tier_standard', 'STANDARD'],
  ['tier_basic', 'BASIC'],
];

/** A glide_duration's value: the time since the epoch, as a date-time (minutes given). */
export function glideDuration(minutes: number): string {
  return new Date(minutes * 60_000).toISOString().slice(0, 19).replace('T', ' ');
}

// ---------------------------------------------------------------------------------------------
// The server.
// ---------------------------------------------------------------------------------------------

export type Fault =
  /** 429 with Retry-After (seconds), as a rate limit rule answers. */
  | { kind: 'rate-limit'; retryAfterSeconds: number }
  | { kind: 'server-error'; status?: 500 | 502 | 503 }
  /** The connection is destroyed before the request is handled. */
  | { kind: 'reset' }
  /** The request is handled (an update is applied), then the connection is destroyed: a lost answer. */
  | { kind: 'reset-after-handling' };

export interface LoggedRequest {
  method: string;
  /** The path as sent, e.g. /api/now/table/incident. */
  path: string;
  query: Record<string, string>;
  /** The JSON body sent, if any. */
  body: unknown;
  /** The status answered; 0 for a dropped connection. */
  status: number;
}

export interface ServiceNowServer {
  readonly url: string;
  readonly data: ServiceNowData;
  readonly requests: LoggedRequest[];
  /** The user the accepted credentials belong to (author of journal entries written through the API). */
  readonly apiUser: SnRecord;
  /** Bearer tokens accepted; a test may add or take one away (an expired token). */
  readonly bearerTokens: Set<string>;
  /** Delay before every answer, in milliseconds. */
  latencyMs: number;
  /** The most records one page holds, whatever sysparm_limit asks. */
  maxLimit: number;
  /** What is left of the rate limit rule's allowance in the current window. */
  rateLimitRemaining: number;
  /** The next `count` requests (of those `when` picks, default all) meet the fault. */
  failNext(count: number, fault: Fault, when?: (request: LoggedRequest) => boolean): void;
  clearFaults(): void;
  /** Requests to a table (any version of the path). */
  requestsTo(table: string): LoggedRequest[];
  /** The records of a table, in the order they were written. */
  records(table: string): SnRecord[];
  close(): Promise<void>;
}

export interface ServiceNowServerOptions {
  data: ServiceNowData;
  /** Basic auth for the integration user, and the OAuth access tokens accepted. */
  credentials: { user: string; password: string; bearerTokens?: readonly string[] };
  /** Requests the rate limit rule allows per window (default 5,000 an hour). */
  rateLimit?: { limit: number; windowMs: number };
  /** sysparm_limit's ceiling (default 10,000, the Table API's default limit). */
  maxLimit?: number;
}

interface Reply {
  status: number;
  headers?: Record<string, string>;
  json?: unknown;
}

const failure = (status: number, message: string, detail: string | null): Reply => ({
  status,
  json: { error: { message, detail }, status: 'failure' },
});
const unauthenticated = () => failure(401, 'User Not Authenticated', 'Required to provide Auth information');
const notFound = () => failure(404, 'No Record found', "Record doesn't exist or ACL restricts the record retrieval");

/** Starts the server on 127.0.0.1 at a free port. */
export async function startServiceNowServer(options: ServiceNowServerOptions): Promise<ServiceNowServer> {
  const { data, credentials } = options;
  const rule = options.rateLimit ?? { limit: 5_000, windowMs: 3_600_000 };
  const apiUser = ensureApiUser(data, credentials.user);
  const requests: LoggedRequest[] = [];
  const faults: { fault: Fault; when: (request: LoggedRequest) => boolean }[] = [];
  let windowStart = Date.now();

  const server = createServer((req, res) => {
    void serve(req, res).catch((error: unknown) => res.destroy(error instanceof Error ? error : new Error(String(error))));
  });

  async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const text = await readBody(req);
    let body: unknown;
    try {
      body = text ? (JSON.parse(text) as unknown) : undefined;
    } catch {
      body = text;
    }
    const entry: LoggedRequest = {
      method: req.method ?? 'GET',
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      body,
      status: 0,
    };
    requests.push(entry);
    if (state.latencyMs > 0) await new Promise((resolve) => setTimeout(resolve, state.latencyMs));
    const now = Date.now();
    if (now - windowStart >= rule.windowMs) {
      windowStart = now;
      state.rateLimitRemaining = rule.limit;
    }
    const index = faults.findIndex((pending) => pending.when(entry));
    const fault = index === -1 ? undefined : faults.splice(index, 1)[0]?.fault;
    if (fault?.kind === 'reset') return void req.socket.destroy();
    let reply: Reply;
    if (fault?.kind === 'rate-limit') reply = rateLimited(fault.retryAfterSeconds);
    else if (fault?.kind === 'server-error') reply = serverError(fault.status ?? 503);
    else if (state.rateLimitRemaining <= 0) reply = rateLimited(Math.max(1, Math.ceil((windowStart + rule.windowMs - now) / 1000)));
    else {
      state.rateLimitRemaining -= 1;
      reply = answer(entry.method, url, req.headers.authorization, body);
    }
    if (fault?.kind === 'reset-after-handling') return void req.socket.destroy();
    entry.status = reply.status;
    write(res, reply);
  }

  function write(res: ServerResponse, reply: Reply): void {
    const headers: Record<string, string> = {
      'x-ratelimit-limit': String(rule.limit),
      'x-ratelimit-remaining': String(Math.max(0, state.rateLimitRemaining)),
      'x-ratelimit-reset': String(Math.ceil((windowStart + rule.windowMs) / 1000)),
      'x-ratelimit-rule': 'b6b2a3d0c3a31010c0a8e1d7f6a3d0c1',
      'content-type': 'application/json;charset=UTF-8',
      ...reply.headers,
    };
    res.writeHead(reply.status, headers);
    res.end(reply.json === undefined ? '' : JSON.stringify(reply.json));
  }

  function authenticated(header: string | undefined): boolean {
    if (!header) return false;
    const [scheme, value = ''] = header.split(' ', 2);
    if (scheme === 'Bearer') return state.bearerTokens.has(value);
    if (scheme === 'Basic') return Buffer.from(value, 'base64').toString('utf8') === `${credentials.user}:${credentials.password}`;
    return false;
  }

  function answer(method: string, url: URL, authorization: string | undefined, body: unknown): Reply {
    if (!authenticated(authorization)) return unauthenticated();
    const match = /^\/api\/now\/(?:v[12]\/)?table\/([^/]+)(?:\/([^/]+))?$/.exec(url.pathname);
    if (!match) return failure(400, 'Requested URI does not represent any resource', null);
    const [, table = '', sysId] = match;
    const schema = SCHEMAS[table];
    if (!schema) return failure(400, `Invalid table ${table}`, null);
    const instance: Instance = { data, apiUser, baseUrl: state.url };
    if (method === 'GET' && sysId === undefined) return list(table, url, instance, state.maxLimit);
    if (method === 'GET') {
      const record = data.tables.get(table)!.get(sysId!);
      return record ? { status: 200, json: { result: shape(table, record, url.searchParams, instance) } } : notFound();
    }
    if (method === 'POST' && sysId === undefined) return writeRecord(table, null, body, url.searchParams, instance);
    if ((method === 'PATCH' || method === 'PUT') && sysId !== undefined) {
      const record = data.tables.get(table)!.get(sysId);
      return record ? writeRecord(table, record, body, url.searchParams, instance) : notFound();
    }
    return failure(405, 'Method not Supported', `${method} is not supported on this resource`);
  }

  const state = {
    url: '',
    data,
    requests,
    apiUser,
    bearerTokens: new Set(credentials.bearerTokens ?? []),
    latencyMs: 0,
    maxLimit: options.maxLimit ?? 10_000,
    rateLimitRemaining: rule.limit,
    failNext(count: number, fault: Fault, when: (request: LoggedRequest) => boolean = () => true) {
      for (let i = 0; i < count; i += 1) faults.push({ fault, when });
    },
    clearFaults() {
      faults.length = 0;
    },
    requestsTo(table: string) {
      return requests.filter((request) => new RegExp(`^/api/now/(v[12]/)?table/${table}(/|$)`).test(request.path));
    },
    records(table: string) {
      return [...(data.tables.get(table)?.values() ?? [])];
    },
    close() {
      return new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      });
    },
  };

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return state;
}

function rateLimited(retryAfterSeconds: number): Reply {
  return {
    ...failure(429, 'Too Many Requests', `Rate limit exceeded. Retry after ${retryAfterSeconds} seconds`),
    headers: { 'retry-after': String(retryAfterSeconds) },
  };
}

function serverError(status: number): Reply {
  if (status === 503) return { ...failure(503, 'Service Unavailable', 'The instance is unavailable'), headers: { 'retry-after': '0' } };
  return failure(status, 'Internal Server Error', 'An unexpected error occurred');
}

function ensureApiUser(data: ServiceNowData, userName: string): SnRecord {
  const users = data.tables.get('sys_user')!;
  const existing = [...users.values()].find((user) => user.user_name === userName);
  if (existing) return existing;
  const sysId = sysIdOf('sys_user', `api:${userName}`);
  const now = glideDateTime(new Date().toISOString());
  const user: SnRecord = {
    ...Object.fromEntries(SCHEMAS.sys_user!.fields.map((field) => [field, ''])),
    sys_id: sysId,
    user_name: userName,
    name: 'Concord Integration',
    roles: 'rest_service',
    active: 'true',
    sys_created_on: now,
    sys_updated_on: now,
    sys_created_by: 'admin',
    sys_updated_by: 'admin',
    sys_mod_count: '0',
  };
  users.set(sysId, user);
  return user;
}

// ---------------------------------------------------------------------------------------------
// Table API.
// ---------------------------------------------------------------------------------------------

interface Instance {
  data: ServiceNowData;
  apiUser: SnRecord;
  baseUrl: string;
}

/** A field's value in a record, following references for a dot-walked name; undefined when the table has no such field. */
function valueOf(table: string, record: SnRecord, field: string, instance: Instance): string | undefined {
  const [head = '', ...rest] = field.split('.');
  const schema = SCHEMAS[table]!;
  if (!schema.fields.includes(head)) return undefined;
  const value = record[head] ?? '';
  if (rest.length === 0) return value;
  const target = schema.references[head];
  if (!target) return undefined;
  const referenced = instance.data.tables.get(target)!.get(value);
  if (!referenced) return fieldExists(target, rest.join('.')) ? '' : undefined;
  return valueOf(target, referenced, rest.join('.'), instance);
}

/** Whether the table has the field (a dot-walked one through its reference fields). */
function fieldExists(table: string, field: string): boolean {
  const [head = '', ...rest] = field.split('.');
  const schema = SCHEMAS[table]!;
  if (!schema.fields.includes(head)) return false;
  if (rest.length === 0) return true;
  const target = schema.references[head];
  return target !== undefined && fieldExists(target, rest.join('.'));
}

type Condition = (record: SnRecord) => boolean;
interface Query {
  /** AND of OR-groups. */
  groups: Condition[][];
  orderBy: { field: string; descending: boolean }[];
}

const OPERATORS = [
  'NOT IN',
  'NOTLIKE',
  'ISNOTEMPTY',
  'ISEMPTY',
  'STARTSWITH',
  'ENDSWITH',
  'IN',
  'LIKE',
  '!=',
  '>=',
  '<=',
  '=',
  '>',
  '<',
] as const;

const lower = (value: string) => value.toLowerCase();

/** Compares as numbers when both are, otherwise as strings ignoring case. */
function compareValues(a: string, b: string): number {
  if (a !== '' && b !== '' && !Number.isNaN(Number(a)) && !Number.isNaN(Number(b))) return Number(a) - Number(b);
  const [x, y] = [lower(a), lower(b)];
  return x < y ? -1 : x > y ? 1 : 0;
}

function parseQuery(table: string, text: string, instance: Instance): Query {
  const query: Query = { groups: [], orderBy: [] };
  if (!text) return query;
  for (const part of text.split('^')) {
    if (part === '' || part === 'EQ') continue;
    if (part.startsWith('ORDERBYDESC')) {
      query.orderBy.push({ field: part.slice('ORDERBYDESC'.length), descending: true });
      continue;
    }
    if (part.startsWith('ORDERBY')) {
      query.orderBy.push({ field: part.slice('ORDERBY'.length), descending: false });
      continue;
    }
    if (part.startsWith('OR') && query.groups.length > 0) {
      query.groups.at(-1)!.push(conditionOf(table, part.slice(2), instance) ?? (() => false));
      continue;
    }
    query.groups.push([conditionOf(table, part, instance) ?? (() => false)]);
  }
  return query;
}

/** One condition; null when it cannot be parsed (then it matches nothing). */
function conditionOf(table: string, part: string, instance: Instance): Condition | null {
  const fieldMatch = /^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)*/.exec(part);
  if (!fieldMatch) return null;
  const field = fieldMatch[0];
  const rest = part.slice(field.length);
  const operator = OPERATORS.find((candidate) => rest.startsWith(candidate));
  if (!operator) return null;
  const expected = rest.slice(operator.length);
  if (!fieldExists(table, field)) return () => false;
  const list = expected.split(',').map(lower);
  return (record) => {
    const actual = valueOf(table, record, field, instance) ?? '';
    switch (operator) {
      case '=':
        return lower(actual) === lower(expected);
      case '!=':
        return actual !== '' && lower(actual) !== lower(expected);
      case 'IN':
        return list.includes(lower(actual));
      case 'NOT IN':
        return actual !== '' && !list.includes(lower(actual));
      case 'LIKE':
        return lower(actual).includes(lower(expected));
      case 'NOTLIKE':
        return !lower(actual).includes(lower(expected));
      case 'STARTSWITH':
        return lower(actual).startsWith(lower(expected));
      case 'ENDSWITH':
        return lower(actual).endsWith(lower(expected));
      case 'ISEMPTY':
        return actual === '';
      case 'ISNOTEMPTY':
        return actual !== '';
      case '<':
        return actual !== '' && compareValues(actual, expected) < 0;
      case '<=':
        return actual !== '' && compareValues(actual, expected) <= 0;
      case '>':
        return actual !== '' && compareValues(actual, expected) > 0;
      case '>=':
        return actual !== '' && compareValues(actual, expected) >= 0;
    }
  };
}

function matching(table: string, query: Query, instance: Instance): SnRecord[] {
  const records = [...instance.data.tables.get(table)!.values()].filter((record) =>
    query.groups.every((group) => group.some((condition) => condition(record))),
  );
  const order = [...query.orderBy, { field: 'sys_id', descending: false }];
  return records.sort((a, b) => {
    for (const { field, descending } of order) {
      const difference = compareValues(valueOf(table, a, field, instance) ?? '', valueOf(table, b, field, instance) ?? '');
      if (difference !== 0) return descending ? -difference : difference;
    }
    return 0;
  });
}

function list(table: string, url: URL, instance: Instance, maxLimit: number): Reply {
  const params = url.searchParams;
  const query = parseQuery(table, params.get('sysparm_query') ?? '', instance);
  const limitParam = params.get('sysparm_limit');
  const offsetParam = params.get('sysparm_offset');
  const limit = limitParam === null ? maxLimit : Number(limitParam);
  const offset = offsetParam === null ? 0 : Number(offsetParam);
  if (!Number.isInteger(limit) || limit < 1) return failure(400, 'Invalid sysparm_limit', `${limitParam} is not a positive integer`);
  if (!Number.isInteger(offset) || offset < 0) return failure(400, 'Invalid sysparm_offset', `${offsetParam} is not a valid offset`);
  const pageSize = Math.min(limit, maxLimit);
  const all = matching(table, query, instance);
  const page = all.slice(offset, offset + pageSize);
  const headers: Record<string, string> = { 'x-total-count': String(all.length) };
  const link = (rel: string, at: number) => {
    const next = new URL(url.pathname, instance.baseUrl);
    for (const [name, value] of params) if (name !== 'sysparm_offset' && name !== 'sysparm_limit') next.searchParams.set(name, value);
    next.searchParams.set('sysparm_limit', String(pageSize));
    next.searchParams.set('sysparm_offset', String(at));
    return `<${next.href}>;rel="${rel}"`;
  };
  const links = [link('first', 0)];
  if (offset > 0) links.push(link('prev', Math.max(0, offset - pageSize)));
  if (offset + pageSize < all.length) links.push(link('next', offset + pageSize));
  links.push(link('last', Math.max(0, Math.floor((all.length - 1) / pageSize) * pageSize)));
  headers.link = links.join(',');
  return { status: 200, headers, json: { result: page.map((record) => shape(table, record, params, instance)) } };
}

/** A record as the Table API answers it, with the fields, display values and reference links asked for. */
function shape(table: string, record: SnRecord, params: URLSearchParams, instance: Instance): Record<string, unknown> {
  const schema = SCHEMAS[table]!;
  const fields = (params.get('sysparm_fields') ?? '')
    .split(',')
    .map((field) => field.trim())
    .filter(Boolean);
  const display = params.get('sysparm_display_value') ?? 'false';
  const noLinks = params.get('sysparm_exclude_reference_link') === 'true';
  const result: Record<string, unknown> = {};
  for (const field of fields.length ? fields : schema.fields) {
    const value = valueOf(table, record, field, instance);
    // Unknown fields are left out of the answer.
    if (value === undefined) continue;
    if (field.includes('.')) {
      result[field] = value;
      continue;
    }
    const target = schema.references[field];
    const label = target
      ? value === ''
        ? ''
        : (instance.data.tables.get(target)!.get(value)?.[SCHEMAS[target]!.display] ?? '')
      : (schema.choices?.[field]?.[value] ?? value);
    const link = target && value !== '' && !noLinks ? `${instance.baseUrl}/api/now/table/${target}/${value}` : undefined;
    if (display === 'true') result[field] = target && link ? { display_value: label, link } : label;
    else if (display === 'all') result[field] = { display_value: label, value, ...(link ? { link } : {}) };
    else result[field] = target && link ? { link, value } : value;
  }
  return result;
}

/** Creates (record null) or updates a record; journal fields on an incident add journal entries. */
function writeRecord(table: string, existing: SnRecord | null, body: unknown, params: URLSearchParams, instance: Instance): Reply {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return failure(400, 'Exception while reading request', 'The payload is not valid JSON.');
  }
  const schema = SCHEMAS[table]!;
  const now = glideDateTime(new Date().toISOString());
  if (existing && table === 'incident' && existing.state === '7') {
    return failure(403, 'Operation Failed', 'ACL Exception Update Failed due to security constraints');
  }
  const changes: SnRecord = {};
  const journal: { element: string; value: string }[] = [];
  for (const [field, raw] of Object.entries(body as Record<string, unknown>)) {
    const value =
      raw === null || raw === undefined ? '' : typeof raw === 'object' ? String((raw as { value?: unknown }).value ?? '') : String(raw);
    if (table === 'incident' && (field === 'work_notes' || field === 'comments')) {
      if (value !== '') journal.push({ element: field, value });
      continue;
    }
    // Unknown fields and system fields are ignored, as the Table API does.
    if (!schema.fields.includes(field) || SYSTEM_FIELDS.includes(field)) continue;
    changes[field] = value;
  }
  const record: SnRecord = existing
    ? { ...existing, ...changes }
    : {
        ...Object.fromEntries(schema.fields.map((field) => [field, ''])),
        ...changes,
        sys_id: randomUUID().replace(/-/g, ''),
        sys_created_on: now,
        sys_created_by: instance.apiUser.user_name!,
        sys_mod_count: '-1',
      };
  if (table === 'incident') {
    if (!existing && record.number === '') record.number = nextIncidentNumber(instance);
    if (record.state === '') record.state = '1';
    if (record.priority === '') record.priority = '3';
    const mandatory: string[] = [];
    if (record.state === '6' || record.state === '7') {
      if (record.close_code === '') mandatory.push('Resolution code');
      if (record.close_notes === '') mandatory.push('Resolution notes');
    }
    if (record.state === '3' && record.hold_reason === '') mandatory.push('On hold reason');
    if (mandatory.length > 0) {
      return failure(403, 'Operation Failed', `Data Policy Exception: \n\tThe following fields are mandatory: ${mandatory.join(', ')}`);
    }
    if (record.state !== '3') record.hold_reason = '';
    record.active = Number(record.state) >= 6 ? 'false' : 'true';
  }
  record.sys_updated_on = now;
  record.sys_updated_by = instance.apiUser.user_name!;
  record.sys_mod_count = String(Number(record.sys_mod_count || '0') + 1);
  instance.data.tables.get(table)!.set(record.sys_id!, record);
  const journalTable = instance.data.tables.get('sys_journal_field')!;
  for (const entry of journal) {
    const sysId = randomUUID().replace(/-/g, '');
    journalTable.set(sysId, {
      sys_id: sysId,
      element: entry.element,
      element_id: record.sys_id!,
      name: 'incident',
      value: entry.value,
      sys_created_on: now,
      sys_created_by: instance.apiUser.user_name!,
      sys_updated_on: now,
      sys_updated_by: instance.apiUser.user_name!,
      sys_mod_count: '0',
    });
  }
  return { status: existing ? 200 : 201, json: { result: shape(table, record, params, instance) } };
}

function nextIncidentNumber(instance: Instance): string {
  let highest = 0;
  for (const record of instance.data.tables.get('incident')!.values()) highest = Math.max(highest, Number(record.number?.slice(3)) || 0);
  return incidentNumber(highest + 1);
}
