import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Database } from '../../../platform/sqlite.ts';
import { EMBEDDED_FIELD_IDS } from '../../../subgraphs/support/src/connectors/embedded/tables.ts';
import { readBody } from '../http.ts';

/**
 * A local stand-in for the Freshdesk API v2: the endpoints the support desk adapter uses,
 * answering in Freshdesk's wire format (status codes, `Link` headers, rate limit headers, JSON
 * bodies and error bodies), over an in-memory desk seeded from the embedded SQLite desk. Tests
 * switch faults on (latency, 429s, 5xx, dropped connections) and read the request log to count
 * calls.
 *
 * The account it plays is configured as follows; the adapter is configured to match:
 * - Ticket custom fields `cf_order_number` and `cf_serial_number` (single-line text) hold the
 *   order and serial number.
 * - Companies have the custom field `customer_number` (the ERP customer number) and contacts
 *   `crm_contact_id` (the CRM contact id). Contact and company custom fields carry no `cf_`
 *   prefix, as in Freshdesk.
 * - Statuses: Freshdesk's 2 Open, 3 Pending, 4 Resolved, 5 Closed, and two custom statuses,
 *   6 "New" and 7 "On hold" (custom statuses get ids from 6 up). Ticket types include the
 *   default Question, Incident and Problem and a custom Task.
 * - One SLA policy per support tier (Freshdesk's policies apply to companies, not tags).
 *   Companies also have `support_tier` (BASIC, STANDARD, PREMIUM: from the organization's tier
 *   tag), which the adapter writes from the entitlements.
 * - Two custom objects (Custom Objects API): `installed_product` (external_id, product_name,
 *   company: a lookup of the company, order_number, sku, quantity, warranty_months) and
 *   `entitlement` (subscription_id, title, company, tier, active, until), seeded from the
 *   embedded desk's custom object records. Records list by one field at a time
 *   (`?company=<id>`), `page_size` (at most 100, default 20) at a time with a relative
 *   `_links.next.href`; a PUT must name the version it read (409 otherwise).
 * - The desk's comments, the first one included, are each ticket's conversations, as for
 *   tickets imported with their history; agents are Freshdesk agents, end users contacts. The
 *   API key belongs to an agent ("Concord Integration") added when missing.
 *
 * Behaviour copied from Freshdesk, strict where its documentation is: the ticket list returns
 * only tickets created in the last 30 days unless `updated_since` is given, pages hold at most
 * 100 records and stop at a page ceiling (300; lower for tests), `include=description` is needed
 * for descriptions in lists; filter search takes a double-quoted query of at most 512
 * characters, answers 30 results a page for at most 10 pages, compares dates by day (`:>` and
 * `:<` inclusive) and refuses fields it does not index. Results come newest first. Each include
 * costs 2 more credits in `X-RateLimit-Used-CurrentRequest`.
 */

// ---------------------------------------------------------------------------------------------
// The in-memory desk, in Freshdesk's resource shapes.
// ---------------------------------------------------------------------------------------------

export interface FreshdeskCompany {
  id: number;
  name: string;
  description: string | null;
  domains: string[];
  custom_fields: { customer_number: string | null; support_tier: string | null };
  created_at: string;
  updated_at: string;
}
export interface FreshdeskContact {
  id: number;
  name: string;
  email: string | null;
  company_id: number | null;
  custom_fields: { crm_contact_id: string | null };
  created_at: string;
  updated_at: string;
}
export interface FreshdeskAgent {
  id: number;
  name: string;
  email: string | null;
  created_at: string;
}
export interface FreshdeskTicket {
  id: number;
  subject: string;
  description_text: string | null;
  /** 2 Open, 3 Pending, 4 Resolved, 5 Closed, 6 New, 7 On hold. */
  status: number;
  /** 1 Low, 2 Medium, 3 High, 4 Urgent. */
  priority: number;
  type: string | null;
  tags: string[];
  requester_id: number | null;
  responder_id: number | null;
  company_id: number | null;
  group_id: number | null;
  custom_fields: { cf_order_number: string | null; cf_serial_number: string | null };
  due_by: string | null;
  created_at: string;
  updated_at: string;
}
export interface FreshdeskConversation {
  id: number;
  ticket_id: number;
  user_id: number | null;
  body_text: string;
  private: boolean;
  incoming: boolean;
  /** 0 reply, 2 note. */
  source: number;
  created_at: string;
  updated_at: string;
}
export interface FreshdeskSlaTarget {
  respond_within: number;
  resolve_within: number;
  business_hours: boolean;
  escalation_enabled: boolean;
}
export interface FreshdeskSlaPolicy {
  id: number;
  name: string;
  description: string | null;
  active: boolean;
  is_default: boolean;
  position: number;
  sla_target: Record<string, FreshdeskSlaTarget>;
  applicable_to: { company_ids?: number[] };
  created_at: string;
  updated_at: string;
}

export type FreshdeskObjectFieldType = 'text' | 'number' | 'checkbox' | 'date' | 'lookup';
export interface FreshdeskObjectSchema {
  id: string;
  name: string;
  title: string;
  fields: { name: string; type: FreshdeskObjectFieldType; required: boolean }[];
}
export interface FreshdeskObjectRecord {
  display_id: string;
  version: number;
  created_time: number;
  updated_time: number;
  data: Record<string, string | number | boolean | null>;
}

export interface FreshdeskData {
  companies: Map<number, FreshdeskCompany>;
  contacts: Map<number, FreshdeskContact>;
  agents: Map<number, FreshdeskAgent>;
  tickets: Map<number, FreshdeskTicket>;
  /** Per ticket, oldest first. */
  conversations: Map<number, FreshdeskConversation[]>;
  slaPolicies: FreshdeskSlaPolicy[];
  /** The account's custom objects, and their records per schema id. */
  schemas: FreshdeskObjectSchema[];
  records: Map<string, FreshdeskObjectRecord[]>;
}

/** The schema ids of the test account's custom objects. */
export const FRESHDESK_SCHEMA_IDS = { installed_product: '3000000001', entitlement: '3000000002' } as const;

const SCHEMAS: readonly FreshdeskObjectSchema[] = [
  {
    id: FRESHDESK_SCHEMA_IDS.installed_product,
    name: 'installed_product',
    title: 'Installed product',
    fields: [
      { name: 'external_id', type: 'text', required: true },
      { name: 'product_name', type: 'text', required: false },
      { name: 'company', type: 'lookup', required: true },
      { name: 'order_number', type: 'text', required: true },
      { name: 'sku', type: 'text', required: true },
      { name: 'quantity', type: 'number', required: false },
      { name: 'warranty_months', type: 'number', required: false },
    ],
  },
  {
    id: FRESHDESK_SCHEMA_IDS.entitlement,
    name: 'entitlement',
    title: 'Entitlement',
    fields: [
      { name: 'subscription_id', type: 'text', required: true },
      { name: 'title', type: 'text', required: false },
      { name: 'company', type: 'lookup', required: true },
      { name: 'tier', type: 'text', required: true },
      { name: 'active', type: 'checkbox', required: false },
      { name: 'until', type: 'date', required: false },
    ],
  },
];

/** The account's statuses by the embedded desk's (Zendesk's) values. */
export const FRESHDESK_TEST_STATUSES: Readonly<Record<string, number>> = { open: 2, pending: 3, solved: 4, closed: 5, new: 6, hold: 7 };
/** The account's status ids, default and custom. */
const STATUS_IDS = new Set(Object.values(FRESHDESK_TEST_STATUSES));
const PRIORITIES: Readonly<Record<string, number>> = { low: 1, normal: 2, high: 3, urgent: 4 };
const TYPES: Readonly<Record<string, string>> = { question: 'Question', incident: 'Incident', problem: 'Problem', task: 'Task' };
/** The tier each embedded SLA policy's tag stands for. */
export const TIER_OF_POLICY_TAG: Readonly<Record<string, string>> = {
  tier_basic: 'BASIC',
  tier_standard: 'STANDARD',
  tier_premium: 'PREMIUM',
};

/**
 * The embedded desk's rows as Freshdesk resources: organizations become companies (external id
 * in `customer_number`), end users contacts (external id in `crm_contact_id`), agents agents,
 * tickets tickets (custom field rows in `cf_order_number`, `cf_serial_number`), comments
 * conversations, and each SLA policy one with targets per priority in seconds (first reply as
 * `respond_within`, the requester's wait as `resolve_within`).
 */
export function loadFreshdeskData(
  db: Database,
  fieldIds: { orderNumber: number; serialNumber: number } = EMBEDDED_FIELD_IDS,
): FreshdeskData {
  const json = (text: string) => JSON.parse(text) as string[];
  const companies = new Map<number, FreshdeskCompany>();
  for (const row of db.prepare('SELECT * FROM organizations ORDER BY id').all() as {
    id: number;
    name: string;
    external_id: string | null;
    domain_names: string;
    tags: string;
    created_at: string;
    updated_at: string;
  }[]) {
    const tags = json(row.tags);
    const tier = ['tier_premium', 'tier_standard', 'tier_basic'].find((tag) => tags.includes(tag));
    companies.set(row.id, {
      id: row.id,
      name: row.name,
      description: null,
      domains: json(row.domain_names),
      custom_fields: { customer_number: row.external_id, support_tier: tier ? TIER_OF_POLICY_TAG[tier]! : null },
      created_at: row.created_at,
      updated_at: row.updated_at,
    });
  }
  const contacts = new Map<number, FreshdeskContact>();
  const agents = new Map<number, FreshdeskAgent>();
  for (const row of db.prepare('SELECT * FROM users ORDER BY id').all() as {
    id: number;
    name: string;
    email: string | null;
    role: string;
    organization_id: number | null;
    external_id: string | null;
    created_at: string;
  }[]) {
    if (row.role === 'end-user') {
      contacts.set(row.id, {
        id: row.id,
        name: row.name,
        email: row.email,
        company_id: row.organization_id,
        custom_fields: { crm_contact_id: row.external_id },
        created_at: row.created_at,
        updated_at: row.created_at,
      });
    } else {
      agents.set(row.id, { id: row.id, name: row.name, email: row.email, created_at: row.created_at });
    }
  }
  const fieldValues = new Map<string, string | null>();
  for (const row of db.prepare('SELECT ticket_id, field_id, value FROM ticket_custom_fields').all() as {
    ticket_id: number;
    field_id: number;
    value: string | null;
  }[]) {
    fieldValues.set(`${row.ticket_id}/${row.field_id}`, row.value);
  }
  const tickets = new Map<number, FreshdeskTicket>();
  for (const row of db.prepare('SELECT * FROM tickets ORDER BY id').all() as {
    id: number;
    type: string | null;
    subject: string;
    description: string | null;
    priority: string;
    status: string;
    requester_id: number | null;
    assignee_id: number | null;
    organization_id: number | null;
    group_id: number | null;
    tags: string;
    due_at: string | null;
    created_at: string;
    updated_at: string;
  }[]) {
    tickets.set(row.id, {
      id: row.id,
      subject: row.subject,
      description_text: row.description,
      status: FRESHDESK_TEST_STATUSES[row.status] ?? 2,
      priority: PRIORITIES[row.priority] ?? 2,
      type: row.type === null ? null : (TYPES[row.type] ?? row.type),
      tags: json(row.tags),
      requester_id: row.requester_id,
      responder_id: row.assignee_id,
      company_id: row.organization_id,
      group_id: row.group_id,
      custom_fields: {
        cf_order_number: fieldValues.get(`${row.id}/${fieldIds.orderNumber}`) ?? null,
        cf_serial_number: fieldValues.get(`${row.id}/${fieldIds.serialNumber}`) ?? null,
      },
      due_by: row.due_at,
      created_at: row.created_at,
      updated_at: row.updated_at,
    });
  }
  const conversations = new Map<number, FreshdeskConversation[]>();
  for (const row of db.prepare('SELECT * FROM ticket_comments ORDER BY created_at, id').all() as {
    id: number;
    ticket_id: number;
    author_id: number | null;
    body: string;
    public: number;
    created_at: string;
  }[]) {
    const list = conversations.get(row.ticket_id) ?? [];
    const incoming = row.author_id !== null && contacts.has(row.author_id);
    list.push({
      id: row.id,
      ticket_id: row.ticket_id,
      user_id: row.author_id,
      body_text: row.body,
      private: row.public !== 1,
      incoming,
      source: row.public === 1 ? 0 : 2,
      created_at: row.created_at,
      updated_at: row.created_at,
    });
    conversations.set(row.ticket_id, list);
  }
  const slaPolicies = (
    db.prepare('SELECT * FROM sla_policies ORDER BY position').all() as {
      id: number;
      title: string;
      description: string | null;
      position: number;
      filter_tag: string;
      policy_metrics: string;
    }[]
  ).map((row): FreshdeskSlaPolicy => {
    const metrics = JSON.parse(row.policy_metrics) as { priority: string; metric: string; target: number; business_hours: boolean }[];
    const sla_target: Record<string, FreshdeskSlaTarget> = {};
    for (const metric of metrics) {
      const key = `priority_${PRIORITIES[metric.priority] ?? 2}`;
      const target = (sla_target[key] ??= { respond_within: 0, resolve_within: 0, business_hours: false, escalation_enabled: true });
      if (metric.metric === 'first_reply_time') target.respond_within = metric.target * 60;
      if (metric.metric === 'requester_wait_time' || metric.metric === 'resolution_time') target.resolve_within = metric.target * 60;
      target.business_hours ||= metric.business_hours;
    }
    return {
      id: row.id,
      name: row.title,
      description: row.description,
      active: true,
      is_default: false,
      position: row.position,
      sla_target,
      applicable_to: { company_ids: [] },
      created_at: '2023-01-01T00:00:00Z',
      updated_at: '2023-01-01T00:00:00Z',
    };
  });
  return { companies, contacts, agents, tickets, conversations, slaPolicies, ...customObjectsOf(db) };
}

/** The embedded desk's custom object records (installed base, entitlements) as Freshdesk custom object records. */
function customObjectsOf(db: Database): Pick<FreshdeskData, 'schemas' | 'records'> {
  const schemas = SCHEMAS.map((schema) => ({ ...schema, fields: schema.fields.map((field) => ({ ...field })) }));
  const records = new Map<string, FreshdeskObjectRecord[]>(schemas.map((schema) => [schema.id, []]));
  const hasRecords = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'custom_object_records'").get();
  if (!hasRecords) return { schemas, records };
  let next = 1;
  for (const row of db.prepare('SELECT * FROM custom_object_records ORDER BY created_at, id').all() as {
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
      display_id: String(next),
      version: 1,
      created_time: Date.parse(row.created_at),
      updated_time: Date.parse(row.updated_at),
    };
    if (row.custom_object_key === 'installed_product') {
      next += 1;
      records.get(FRESHDESK_SCHEMA_IDS.installed_product)!.push({
        ...common,
        data: {
          external_id: row.external_id,
          product_name: row.name,
          company: row.organization_id,
          order_number: fields.order_number ?? null,
          sku: fields.sku ?? null,
          quantity: fields.quantity ?? null,
          warranty_months: fields.warranty_months ?? null,
        },
      });
    } else if (row.custom_object_key === 'entitlement') {
      next += 1;
      records.get(FRESHDESK_SCHEMA_IDS.entitlement)!.push({
        ...common,
        data: {
          subscription_id: row.external_id,
          title: row.name,
          company: row.organization_id,
          tier: fields.tier ?? null,
          active: fields.active === true,
          until: fields.until ?? null,
        },
      });
    }
  }
  return { schemas, records };
}

/** The SLA policy id of each tier, as the account's configuration names them. */
export function slaPolicyIdsOf(db: Database): Record<string, number> {
  const ids: Record<string, number> = {};
  for (const row of db.prepare('SELECT id, filter_tag FROM sla_policies ORDER BY position').all() as { id: number; filter_tag: string }[]) {
    const tier = TIER_OF_POLICY_TAG[row.filter_tag];
    if (tier && ids[tier] === undefined) ids[tier] = row.id;
  }
  return ids;
}

// ---------------------------------------------------------------------------------------------
// The server.
// ---------------------------------------------------------------------------------------------

export type Fault =
  /** 429 with Retry-After (seconds). */
  | { kind: 'rate-limit'; retryAfterSeconds: number }
  | { kind: 'server-error'; status?: 500 | 502 | 503 }
  /** The connection is destroyed before the request is handled. */
  | { kind: 'reset' }
  /** The request is handled (a change is applied), then the connection is destroyed: a lost answer. */
  | { kind: 'reset-after-handling' };

export interface LoggedRequest {
  method: string;
  /** The path as sent, e.g. /api/v2/tickets/12. */
  path: string;
  query: Record<string, string>;
  /** The status answered; 0 for a dropped connection. */
  status: number;
}

export interface FreshdeskServer {
  readonly url: string;
  readonly data: FreshdeskData;
  /** Every request received, in order. */
  readonly requests: LoggedRequest[];
  /** The agent the API key belongs to. */
  readonly apiAgent: FreshdeskAgent;
  /** Delay before every answer, in milliseconds. */
  latencyMs: number;
  /** The last page a list serves (Freshdesk: 300). */
  pageCeiling: number;
  /** The last page a filter search serves (Freshdesk: 10). */
  searchPageCeiling: number;
  /**
   * The next `count` requests (of those `when` picks, default all) meet the fault instead of
   * their answer (or, for reset-after-handling, after it).
   */
  failNext(count: number, fault: Fault, when?: (request: LoggedRequest) => boolean): void;
  clearFaults(): void;
  /** Requests whose path starts with the prefix (e.g. '/api/v2/search'). */
  requestsTo(prefix: string): LoggedRequest[];
  close(): Promise<void>;
}

export interface FreshdeskServerOptions {
  data: FreshdeskData;
  /** The API key accepted (sent as `apikey:X`). */
  apiKey: string;
  /** "Now" for the ticket list's default 30-day window; default the clock's. */
  now?: () => number;
  pageCeiling?: number;
  searchPageCeiling?: number;
}

interface Reply {
  status: number;
  headers?: Record<string, string>;
  json?: unknown;
  /** Credits the request used (1, plus 2 per include). */
  credits?: number;
}

const RATE_LIMIT = 700;
const MAX_PER_PAGE = 100;
const SEARCH_PER_PAGE = 30;
const QUERY_LIMIT = 512;
const DEFAULT_LIST_WINDOW_MS = 30 * 24 * 3600 * 1000;

const notFound = (): Reply => ({ status: 404, json: { code: 'access_denied', message: 'Record not found' } });
const unauthenticated = (): Reply => ({
  status: 401,
  json: { code: 'invalid_credentials', message: 'You have to be logged in to perform this action.' },
});
const invalid = (...errors: { field: string; message: string; code: string }[]): Reply => ({
  status: 400,
  json: { description: 'Validation failed', errors },
});

/** Starts the server on 127.0.0.1 at a free port. */
export async function startFreshdeskServer(options: FreshdeskServerOptions): Promise<FreshdeskServer> {
  const { data } = options;
  const apiAgent = ensureApiAgent(data);
  const requests: LoggedRequest[] = [];
  const faults: { fault: Fault; when: (request: LoggedRequest) => boolean }[] = [];
  let remaining = RATE_LIMIT;
  let baseUrl = '';

  const server = createServer((req, res) => {
    void serve(req, res).catch((error: unknown) => {
      res.destroy(error instanceof Error ? error : new Error(String(error)));
    });
  });

  async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const entry: LoggedRequest = {
      method: req.method ?? 'GET',
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      status: 0,
    };
    requests.push(entry);
    const body = await readBody(req);
    if (state.latencyMs > 0) await new Promise((resolve) => setTimeout(resolve, state.latencyMs));
    const index = faults.findIndex((pending) => pending.when(entry));
    const fault = index === -1 ? undefined : faults.splice(index, 1)[0]?.fault;
    if (fault?.kind === 'reset') return void req.socket.destroy();
    const reply = fault?.kind === 'rate-limit' || fault?.kind === 'server-error' ? faultReply(fault) : answer(entry.method, url, req, body);
    if (fault?.kind === 'reset-after-handling') return void req.socket.destroy();
    entry.status = reply.status;
    const used = reply.status === 429 ? 0 : (reply.credits ?? 1);
    remaining = Math.max(0, remaining - used);
    const headers: Record<string, string> = {
      'x-ratelimit-total': String(RATE_LIMIT),
      'x-ratelimit-remaining': String(remaining),
      'x-ratelimit-used-currentrequest': String(used),
      ...reply.headers,
    };
    if (reply.json === undefined) {
      res.writeHead(reply.status, headers);
      res.end();
    } else {
      res.writeHead(reply.status, { ...headers, 'content-type': 'application/json; charset=utf-8' });
      res.end(JSON.stringify(reply.json));
    }
  }

  function answer(method: string, url: URL, req: IncomingMessage, body: string): Reply {
    if (!authenticated(req.headers.authorization, options.apiKey)) return unauthenticated();
    return route(method, url.pathname, url.searchParams, body, desk());
  }

  const desk = (): Desk => ({
    data,
    apiAgent,
    baseUrl,
    now: options.now ?? Date.now,
    pageCeiling: state.pageCeiling,
    searchPageCeiling: state.searchPageCeiling,
  });

  const state = {
    url: '',
    data,
    requests,
    apiAgent,
    latencyMs: 0,
    pageCeiling: options.pageCeiling ?? 300,
    searchPageCeiling: options.searchPageCeiling ?? 10,
    failNext(count: number, fault: Fault, when: (request: LoggedRequest) => boolean = () => true) {
      for (let i = 0; i < count; i += 1) faults.push({ fault, when });
    },
    clearFaults() {
      faults.length = 0;
    },
    requestsTo(prefix: string) {
      return requests.filter((request) => request.path.startsWith(prefix));
    },
    close() {
      return new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      });
    },
  };

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  state.url = baseUrl;
  return state;
}

function faultReply(fault: Extract<Fault, { kind: 'rate-limit' | 'server-error' }>): Reply {
  if (fault.kind === 'rate-limit') {
    return {
      status: 429,
      headers: { 'retry-after': String(fault.retryAfterSeconds) },
      json: { message: `You have exceeded the limit of requests per minute. Retry after ${fault.retryAfterSeconds} seconds.` },
    };
  }
  const status = fault.status ?? 503;
  return { status, json: { code: 'internal_error', message: 'We are facing some trouble. Please try again later.' } };
}

function ensureApiAgent(data: FreshdeskData): FreshdeskAgent {
  const existing = [...data.agents.values()].find((agent) => agent.name === 'Concord Integration');
  if (existing) return existing;
  const id = Math.max(0, ...data.agents.keys(), ...data.contacts.keys()) + 1;
  const agent: FreshdeskAgent = {
    id,
    name: 'Concord Integration',
    email: 'integration@concord.example',
    created_at: '2023-01-01T00:00:00Z',
  };
  data.agents.set(id, agent);
  return agent;
}

/** Basic `apikey:X`: Freshdesk reads the key from the user name and ignores the password. */
function authenticated(header: string | undefined, apiKey: string): boolean {
  const [scheme, value = ''] = (header ?? '').split(' ', 2);
  if (scheme !== 'Basic') return false;
  const decoded = Buffer.from(value, 'base64').toString('utf8');
  return decoded.slice(0, decoded.indexOf(':')) === apiKey;
}

// ---------------------------------------------------------------------------------------------
// Endpoints.
// ---------------------------------------------------------------------------------------------

interface Desk {
  data: FreshdeskData;
  apiAgent: FreshdeskAgent;
  baseUrl: string;
  now: () => number;
  pageCeiling: number;
  searchPageCeiling: number;
}

function route(method: string, path: string, params: URLSearchParams, body: string, desk: Desk): Reply {
  const ticketPath = /^\/api\/v2\/tickets\/(\d+)(?:\/(conversations|notes|reply))?$/.exec(path);
  const recordPath = /^\/api\/v2\/(companies|contacts|agents)\/(\d+)$/.exec(path);
  const objectPath = /^\/api\/v2\/custom_objects\/schemas(?:\/([^/]+)(?:\/records(?:\/([^/]+))?)?)?$/.exec(path);
  if (objectPath) return customObjects(method, objectPath[1], objectPath[2], path, params, body, desk);
  if (recordPath && recordPath[1] === 'companies' && method === 'PUT') {
    const company = desk.data.companies.get(Number(recordPath[2]));
    return company ? updateCompany(company, body) : notFound();
  }
  if (ticketPath) {
    const ticket = desk.data.tickets.get(Number(ticketPath[1]));
    if (!ticket) return notFound();
    const sub = ticketPath[2];
    if (!sub && method === 'GET') return showTicket(ticket, params, desk);
    if (!sub && method === 'PUT') return updateTicket(ticket, body, desk);
    if (sub === 'conversations' && method === 'GET') return listConversations(ticket, params, desk, path);
    if ((sub === 'notes' || sub === 'reply') && method === 'POST') return addConversation(ticket, sub, body, desk);
    return { status: 405, json: { code: 'method_not_allowed', message: `${method} is not allowed here` } };
  }
  if (recordPath && method === 'GET') {
    const id = Number(recordPath[2]);
    if (recordPath[1] === 'companies') {
      const company = desk.data.companies.get(id);
      return company ? { status: 200, json: companyJson(company) } : notFound();
    }
    if (recordPath[1] === 'contacts') {
      const contact = desk.data.contacts.get(id);
      return contact ? { status: 200, json: contactJson(contact) } : notFound();
    }
    const agent = desk.data.agents.get(id);
    return agent ? { status: 200, json: agentJson(agent) } : notFound();
  }
  if (method !== 'GET') return { status: 405, json: { code: 'method_not_allowed', message: `${method} is not allowed here` } };
  switch (path) {
    case '/api/v2/tickets':
      return listTickets(params, desk, path);
    case '/api/v2/agents/me':
      return { status: 200, json: agentJson(desk.apiAgent) };
    case '/api/v2/agents':
      return paged([...desk.data.agents.values()].map(agentJson), params, desk, path);
    case '/api/v2/companies':
      return paged([...desk.data.companies.values()].map(companyJson), params, desk, path);
    case '/api/v2/contacts':
      return paged([...desk.data.contacts.values()].map(contactJson), params, desk, path);
    case '/api/v2/sla_policies':
      return { status: 200, json: desk.data.slaPolicies };
    case '/api/v2/search/tickets':
      return search(params, desk, TICKET_FIELDS, [...desk.data.tickets.values()], (ticket) => ticketJson(ticket, desk, true));
    case '/api/v2/search/companies':
      return search(params, desk, COMPANY_FIELDS, [...desk.data.companies.values()], companyJson);
    case '/api/v2/search/contacts':
      return search(params, desk, CONTACT_FIELDS, [...desk.data.contacts.values()], contactJson);
  }
  return { status: 404, json: { code: 'invalid_url', message: 'The requested URL was not found' } };
}

// ---------------------------------------------------------------------------------------------
// Custom objects: schemas and their records.
// ---------------------------------------------------------------------------------------------

const RECORDS_PER_PAGE = 20;
const methodNotAllowed = (method: string): Reply => ({
  status: 405,
  json: { code: 'method_not_allowed', message: `${method} is not allowed here` },
});

function customObjects(
  method: string,
  schemaId: string | undefined,
  displayId: string | undefined,
  path: string,
  params: URLSearchParams,
  body: string,
  desk: Desk,
): Reply {
  if (schemaId === undefined) return method === 'GET' ? { status: 200, json: { schemas: desk.data.schemas } } : methodNotAllowed(method);
  const schema = desk.data.schemas.find((candidate) => candidate.id === decodeURIComponent(schemaId));
  if (!schema) return notFound();
  if (!path.includes('/records')) return method === 'GET' ? { status: 200, json: schema } : methodNotAllowed(method);
  const records = desk.data.records.get(schema.id)!;
  if (displayId === undefined) {
    if (method === 'GET') return listRecords(schema, records, params, path);
    if (method === 'POST') return createRecord(schema, records, body, desk);
    return methodNotAllowed(method);
  }
  const record = records.find((candidate) => candidate.display_id === decodeURIComponent(displayId));
  if (!record) return notFound();
  if (method === 'GET') return { status: 200, json: record };
  if (method === 'PUT') return updateRecord(schema, record, body, desk);
  return methodNotAllowed(method);
}

/** The record data's errors against the schema: unknown fields, missing required ones, wrong types. */
function dataErrors(schema: FreshdeskObjectSchema, data: Record<string, unknown>, desk: Desk) {
  const errors: { field: string; message: string; code: string }[] = [];
  for (const name of Object.keys(data))
    if (!schema.fields.some((field) => field.name === name))
      errors.push({ field: name, message: 'Unexpected/invalid field in request', code: 'invalid_field' });
  for (const field of schema.fields) {
    const value = data[field.name];
    if (value === undefined || value === null || value === '') {
      if (field.required)
        errors.push({ field: field.name, message: 'It should not be blank as this is a mandatory field', code: 'missing_field' });
      continue;
    }
    const ok =
      field.type === 'number' || field.type === 'lookup'
        ? typeof value === 'number' && Number.isInteger(value)
        : field.type === 'checkbox'
          ? typeof value === 'boolean'
          : field.type === 'date'
            ? typeof value === 'string' && /^\d{4}-\d{2}-\d{2}$/.test(value)
            : typeof value === 'string';
    if (!ok) errors.push({ field: field.name, message: `It should be a valid ${field.type}`, code: 'datatype_mismatch' });
    else if (field.type === 'lookup' && !desk.data.companies.has(value as number))
      errors.push({ field: field.name, message: 'There is no company with this id', code: 'invalid_value' });
  }
  return errors;
}

/** The data as stored: every field of the schema, null when not given. */
function storedData(schema: FreshdeskObjectSchema, data: Record<string, unknown>): FreshdeskObjectRecord['data'] {
  return Object.fromEntries(schema.fields.map((field) => [field.name, (data[field.name] ?? null) as string | number | boolean | null]));
}

function createRecord(schema: FreshdeskObjectSchema, records: FreshdeskObjectRecord[], body: string, desk: Desk): Reply {
  const request = parseJson(body);
  if (!request) return invalidJson();
  const data = request.data;
  if (!data || typeof data !== 'object' || Array.isArray(data))
    return invalid({ field: 'data', message: 'It should be an object', code: 'datatype_mismatch' });
  const errors = dataErrors(schema, data as Record<string, unknown>, desk);
  if (errors.length) return invalid(...errors);
  const now = Date.now();
  const record: FreshdeskObjectRecord = {
    display_id: String(Math.max(0, ...records.map((entry) => Number(entry.display_id))) + 1),
    version: 1,
    created_time: now,
    updated_time: now,
    data: storedData(schema, data as Record<string, unknown>),
  };
  records.push(record);
  return { status: 200, json: record };
}

function updateRecord(schema: FreshdeskObjectSchema, record: FreshdeskObjectRecord, body: string, desk: Desk): Reply {
  const request = parseJson(body);
  if (!request) return invalidJson();
  const data = request.data;
  if (!data || typeof data !== 'object' || Array.isArray(data))
    return invalid({ field: 'data', message: 'It should be an object', code: 'datatype_mismatch' });
  if (typeof request.version !== 'number') return invalid({ field: 'version', message: 'It should be a number', code: 'missing_field' });
  if (request.version !== record.version)
    return { status: 409, json: { code: 'version_conflict', message: 'The record has been modified since it was read' } };
  const errors = dataErrors(schema, data as Record<string, unknown>, desk);
  if (errors.length) return invalid(...errors);
  record.data = storedData(schema, data as Record<string, unknown>);
  record.version += 1;
  record.updated_time = Math.max(Date.now(), record.updated_time + 1);
  return { status: 200, json: record };
}

/** Records whose one field holds the value given (at most one filter), in creation order, `page_size` a page. */
function listRecords(
  schema: FreshdeskObjectSchema,
  records: readonly FreshdeskObjectRecord[],
  params: URLSearchParams,
  path: string,
): Reply {
  const filters = [...params.keys()].filter((name) => name !== 'page_size' && name !== 'next_token');
  for (const name of filters)
    if (!schema.fields.some((field) => field.name === name))
      return invalid({ field: name, message: 'Unexpected/invalid field in request', code: 'invalid_field' });
  if (filters.length > 1) return invalid({ field: filters[1]!, message: 'Only one field can be filtered on', code: 'invalid_value' });
  const pageSize = params.has('page_size') ? Number(params.get('page_size')) : RECORDS_PER_PAGE;
  if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > MAX_PER_PAGE)
    return invalid({
      field: 'page_size',
      message: `It should be a Positive Number less than or equal to ${MAX_PER_PAGE}`,
      code: 'invalid_value',
    });
  const offset = params.has('next_token') ? Number(Buffer.from(params.get('next_token')!, 'base64url').toString('utf8')) : 0;
  if (!Number.isInteger(offset) || offset < 0)
    return invalid({ field: 'next_token', message: 'It is not a valid token', code: 'invalid_value' });
  const [filter] = filters;
  const value = filter === undefined ? null : params.get(filter)!;
  const matching = records.filter((record) => filter === undefined || String(record.data[filter] ?? '') === value);
  const page = matching.slice(offset, offset + pageSize);
  const json: Record<string, unknown> = { records: page };
  if (offset + pageSize < matching.length) {
    const next = new URLSearchParams(params);
    next.set('next_token', Buffer.from(String(offset + pageSize)).toString('base64url'));
    json._links = { next: { href: `${path}?${next.toString()}` } };
  }
  return { status: 200, json };
}

function updateCompany(company: FreshdeskCompany, body: string): Reply {
  const update = parseJson(body);
  if (!update) return invalidJson();
  for (const field of Object.keys(update))
    if (field !== 'custom_fields') return invalid({ field, message: 'Unexpected/invalid field in request', code: 'invalid_field' });
  const custom = update.custom_fields as Record<string, unknown> | undefined;
  if (custom) {
    for (const [name, value] of Object.entries(custom)) {
      if (!(name in company.custom_fields))
        return invalid({ field: name, message: 'Unexpected/invalid field in request', code: 'invalid_field' });
      if (value !== null && typeof value !== 'string')
        return invalid({ field: name, message: 'It should be a String', code: 'datatype_mismatch' });
      (company.custom_fields as Record<string, string | null>)[name] = value;
    }
  }
  company.updated_at = deskNow();
  return { status: 200, json: companyJson(company) };
}

/** page and per_page as Freshdesk checks them, or the validation error. */
function pageParams(params: URLSearchParams, desk: Desk): { page: number; perPage: number } | Reply {
  const page = params.has('page') ? Number(params.get('page')) : 1;
  const perPage = params.has('per_page') ? Number(params.get('per_page')) : 30;
  const errors = [];
  if (!Number.isInteger(page) || page < 1) errors.push({ field: 'page', message: 'It should be a Positive Number', code: 'invalid_value' });
  else if (page > desk.pageCeiling)
    errors.push({ field: 'page', message: `It should be less than or equal to ${desk.pageCeiling}`, code: 'invalid_value' });
  if (!Number.isInteger(perPage) || perPage < 1 || perPage > MAX_PER_PAGE)
    errors.push({
      field: 'per_page',
      message: `It should be a Positive Number less than or equal to ${MAX_PER_PAGE}`,
      code: 'invalid_value',
    });
  return errors.length ? invalid(...errors) : { page, perPage };
}

/** One page of a list, with a `Link` to the next while there is one and the ceiling allows it. */
function paged(items: readonly unknown[], params: URLSearchParams, desk: Desk, path: string, credits = 1): Reply {
  const paging = pageParams(params, desk);
  if ('status' in paging) return paging;
  const { page, perPage } = paging;
  const slice = items.slice((page - 1) * perPage, page * perPage);
  const headers: Record<string, string> = {};
  if (items.length > page * perPage && page < desk.pageCeiling) {
    const next = new URLSearchParams(params);
    next.set('page', String(page + 1));
    headers.link = `<${desk.baseUrl}${path}?${next.toString()}>; rel="next"`;
  }
  return { status: 200, headers, json: slice, credits };
}

const LIST_INCLUDES = new Set(['requester', 'stats', 'description', 'company']);
const VIEW_INCLUDES = new Set(['requester', 'stats', 'company', 'conversations']);
const ORDER_KEYS: Record<string, (ticket: FreshdeskTicket) => string | number> = {
  created_at: (ticket) => ticket.created_at,
  updated_at: (ticket) => ticket.updated_at,
  due_by: (ticket) => ticket.due_by ?? '',
  status: (ticket) => ticket.status,
};
const LIST_PARAMS = new Set([
  'page',
  'per_page',
  'updated_since',
  'order_by',
  'order_type',
  'include',
  'company_id',
  'requester_id',
  'filter',
  'email',
]);

function includesOf(params: URLSearchParams, allowed: ReadonlySet<string>): string[] | Reply {
  const includes = (params.get('include') ?? '').split(',').filter(Boolean);
  const unknown = includes.filter((include) => !allowed.has(include));
  if (unknown.length)
    return invalid({ field: 'include', message: `It should be one of these values: '${[...allowed].join(',')}'`, code: 'invalid_value' });
  return includes;
}

function listTickets(params: URLSearchParams, desk: Desk, path: string): Reply {
  for (const name of params.keys())
    if (!LIST_PARAMS.has(name)) return invalid({ field: name, message: 'Unexpected/invalid field in request', code: 'invalid_field' });
  const includes = includesOf(params, LIST_INCLUDES);
  if (!Array.isArray(includes)) return includes;
  const orderBy = params.get('order_by') ?? 'created_at';
  const orderType = params.get('order_type') ?? 'desc';
  if (!ORDER_KEYS[orderBy])
    return invalid({
      field: 'order_by',
      message: "It should be one of these values: 'created_at,due_by,updated_at,status'",
      code: 'invalid_value',
    });
  if (orderType !== 'asc' && orderType !== 'desc')
    return invalid({ field: 'order_type', message: "It should be one of these values: 'asc,desc'", code: 'invalid_value' });
  let since: number | null = null;
  if (params.has('updated_since')) {
    since = Date.parse(params.get('updated_since')!);
    if (Number.isNaN(since))
      return invalid({ field: 'updated_since', message: 'It should be in the format of YYYY-MM-DDTHH:MM:SSZ', code: 'invalid_value' });
  }
  const company = params.has('company_id') ? Number(params.get('company_id')) : null;
  const requester = params.has('requester_id') ? Number(params.get('requester_id')) : null;
  const createdAfter = desk.now() - DEFAULT_LIST_WINDOW_MS;
  const key = ORDER_KEYS[orderBy];
  const tickets = [...desk.data.tickets.values()]
    .filter((ticket) => (since === null ? Date.parse(ticket.created_at) >= createdAfter : Date.parse(ticket.updated_at) >= since))
    .filter((ticket) => (company === null || ticket.company_id === company) && (requester === null || ticket.requester_id === requester))
    .sort((a, b) => {
      const [x, y] = [key(a), key(b)];
      const order = x < y ? -1 : x > y ? 1 : a.id - b.id;
      return orderType === 'asc' ? order : -order;
    });
  const json = tickets.map((ticket) => ({
    ...ticketJson(ticket, desk, includes.includes('description')),
    ...included(ticket, includes, desk),
  }));
  return paged(json, params, desk, path, 1 + 2 * includes.length);
}

function showTicket(ticket: FreshdeskTicket, params: URLSearchParams, desk: Desk): Reply {
  const includes = includesOf(params, VIEW_INCLUDES);
  if (!Array.isArray(includes)) return includes;
  const extra: Record<string, unknown> = included(ticket, includes, desk);
  if (includes.includes('conversations'))
    extra.conversations = (desk.data.conversations.get(ticket.id) ?? []).slice(0, 10).map(conversationJson);
  return { status: 200, json: { ...ticketJson(ticket, desk, true), ...extra }, credits: 1 + 2 * includes.length };
}

function included(ticket: FreshdeskTicket, includes: readonly string[], desk: Desk): Record<string, unknown> {
  const extra: Record<string, unknown> = {};
  if (includes.includes('requester')) {
    const contact = ticket.requester_id === null ? undefined : desk.data.contacts.get(ticket.requester_id);
    extra.requester = contact ? { id: contact.id, name: contact.name, email: contact.email, mobile: null, phone: null } : null;
  }
  if (includes.includes('company')) {
    const company = ticket.company_id === null ? undefined : desk.data.companies.get(ticket.company_id);
    extra.company = company ? { id: company.id, name: company.name } : {};
  }
  if (includes.includes('stats')) {
    extra.stats = {
      agent_responded_at: null,
      requester_responded_at: null,
      first_responded_at: null,
      status_updated_at: ticket.updated_at,
      reopened_at: null,
      resolved_at: ticket.status === 4 ? ticket.updated_at : null,
      closed_at: ticket.status === 5 ? ticket.updated_at : null,
      pending_since: ticket.status === 3 ? ticket.updated_at : null,
    };
  }
  return extra;
}

const UPDATABLE = new Set([
  'status',
  'priority',
  'tags',
  'type',
  'responder_id',
  'group_id',
  'custom_fields',
  'subject',
  'due_by',
  'fr_due_by',
]);

/** A JSON object body, or null when the body is not one. */
function parseJson(body: string): Record<string, unknown> | null {
  try {
    const parsed = JSON.parse(body) as unknown;
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) return parsed as Record<string, unknown>;
  } catch {
    // answered by the caller
  }
  return null;
}

const invalidJson = (): Reply => ({ status: 400, json: { code: 'invalid_json', message: 'Request body has invalid json format' } });

function updateTicket(ticket: FreshdeskTicket, body: string, desk: Desk): Reply {
  const update = parseJson(body);
  if (!update) return invalidJson();
  const errors = [];
  for (const field of Object.keys(update))
    if (!UPDATABLE.has(field)) errors.push({ field, message: 'Unexpected/invalid field in request', code: 'invalid_field' });
  if ('status' in update && !STATUS_IDS.has(update.status as number))
    errors.push({ field: 'status', message: `It should be one of these values: '${[...STATUS_IDS].join(',')}'`, code: 'invalid_value' });
  if ('priority' in update && ![1, 2, 3, 4].includes(update.priority as number))
    errors.push({ field: 'priority', message: "It should be one of these values: '1,2,3,4'", code: 'invalid_value' });
  if ('tags' in update && !(Array.isArray(update.tags) && update.tags.every((tag) => typeof tag === 'string' && tag.length <= 255)))
    errors.push({ field: 'tags', message: 'It should be an Array of String', code: 'datatype_mismatch' });
  if (errors.length) return invalid(...errors);
  if (typeof update.status === 'number') ticket.status = update.status;
  if (typeof update.priority === 'number') ticket.priority = update.priority;
  // Freshdesk replaces the ticket's tags with the list sent.
  if (Array.isArray(update.tags)) ticket.tags = [...new Set(update.tags as string[])];
  ticket.updated_at = deskNow();
  return { status: 200, json: ticketJson(ticket, desk, true) };
}

function addConversation(ticket: FreshdeskTicket, kind: 'notes' | 'reply', body: string, desk: Desk): Reply {
  const request = parseJson(body);
  if (!request) return invalidJson();
  if (typeof request.body !== 'string' || request.body.trim() === '')
    return invalid({ field: 'body', message: 'It should not be blank as this is a mandatory field', code: 'missing_field' });
  if (kind === 'notes' && 'private' in request && typeof request.private !== 'boolean')
    return invalid({ field: 'private', message: 'It should be a boolean value', code: 'datatype_mismatch' });
  const now = deskNow();
  const all = [...desk.data.conversations.values()].flat();
  const conversation: FreshdeskConversation = {
    id: Math.max(0, ...all.map((entry) => entry.id)) + 1,
    ticket_id: ticket.id,
    user_id: desk.apiAgent.id,
    body_text: textOf(request.body),
    private: kind === 'notes' ? request.private !== false : false,
    incoming: false,
    source: kind === 'notes' ? 2 : 0,
    created_at: now,
    updated_at: now,
  };
  const list = desk.data.conversations.get(ticket.id) ?? [];
  list.push(conversation);
  desk.data.conversations.set(ticket.id, list);
  ticket.updated_at = now;
  return { status: 201, json: conversationJson(conversation) };
}

function listConversations(ticket: FreshdeskTicket, params: URLSearchParams, desk: Desk, path: string): Reply {
  return paged((desk.data.conversations.get(ticket.id) ?? []).map(conversationJson), params, desk, path);
}

// ---------------------------------------------------------------------------------------------
// Filter search: `query="field:value AND (field:>'2024-01-01' OR field:'text')"`.
// ---------------------------------------------------------------------------------------------

type Value = { kind: 'number'; value: number } | { kind: 'string'; value: string } | { kind: 'null' } | { kind: 'boolean'; value: boolean };
type FieldType = 'number' | 'text' | 'date' | 'tags';
type Accessor<T> = { type: FieldType; get: (record: T) => string | number | null | readonly string[] };
type Node<T> = (record: T) => boolean;

const TICKET_FIELDS: Record<string, Accessor<FreshdeskTicket>> = {
  status: { type: 'number', get: (ticket) => ticket.status },
  priority: { type: 'number', get: (ticket) => ticket.priority },
  agent_id: { type: 'number', get: (ticket) => ticket.responder_id },
  group_id: { type: 'number', get: (ticket) => ticket.group_id },
  type: { type: 'text', get: (ticket) => ticket.type },
  tag: { type: 'tags', get: (ticket) => ticket.tags },
  due_by: { type: 'date', get: (ticket) => ticket.due_by },
  created_at: { type: 'date', get: (ticket) => ticket.created_at },
  updated_at: { type: 'date', get: (ticket) => ticket.updated_at },
  cf_order_number: { type: 'text', get: (ticket) => ticket.custom_fields.cf_order_number },
  cf_serial_number: { type: 'text', get: (ticket) => ticket.custom_fields.cf_serial_number },
};
const COMPANY_FIELDS: Record<string, Accessor<FreshdeskCompany>> = {
  domain: { type: 'tags', get: (company) => company.domains },
  customer_number: { type: 'text', get: (company) => company.custom_fields.customer_number },
  created_at: { type: 'date', get: (company) => company.created_at },
  updated_at: { type: 'date', get: (company) => company.updated_at },
};
const CONTACT_FIELDS: Record<string, Accessor<FreshdeskContact>> = {
  email: { type: 'text', get: (contact) => contact.email },
  company_id: { type: 'number', get: (contact) => contact.company_id },
  crm_contact_id: { type: 'text', get: (contact) => contact.custom_fields.crm_contact_id },
  created_at: { type: 'date', get: (contact) => contact.created_at },
  updated_at: { type: 'date', get: (contact) => contact.updated_at },
};

function search<T extends { id: number; created_at: string }>(
  params: URLSearchParams,
  desk: Desk,
  fields: Record<string, Accessor<T>>,
  records: T[],
  toJson: (record: T) => unknown,
): Reply {
  const raw = params.get('query');
  if (raw === null || raw.length < 2 || !raw.startsWith('"') || !raw.endsWith('"'))
    return invalid({ field: 'query', message: 'It should be a valid query enclosed in double quotes', code: 'invalid_value' });
  const query = raw.slice(1, -1);
  if (query.length > QUERY_LIMIT)
    return invalid({ field: 'query', message: `It should not exceed ${QUERY_LIMIT} characters`, code: 'invalid_value' });
  const page = params.has('page') ? Number(params.get('page')) : 1;
  if (!Number.isInteger(page) || page < 1 || page > desk.searchPageCeiling)
    return invalid({
      field: 'page',
      message: `It should be a Positive Number less than or equal to ${desk.searchPageCeiling}`,
      code: 'invalid_value',
    });
  for (const name of params.keys())
    if (name !== 'query' && name !== 'page')
      return invalid({ field: name, message: 'Unexpected/invalid field in request', code: 'invalid_field' });
  const matcher = parseQuery(query, fields);
  if (typeof matcher === 'string') return invalid({ field: 'query', message: matcher, code: 'invalid_value' });
  const matches = records
    .filter(matcher)
    .sort((a, b) => (a.created_at < b.created_at ? 1 : a.created_at > b.created_at ? -1 : b.id - a.id));
  const results = matches.slice((page - 1) * SEARCH_PER_PAGE, page * SEARCH_PER_PAGE).map(toJson);
  return { status: 200, json: { results, total: matches.length } };
}

/** Tokens: ( ) AND OR and terms `field:value`, `field:>value`, `field:<value`. */
function parseQuery<T>(query: string, fields: Record<string, Accessor<T>>): Node<T> | string {
  const tokens = query.match(/\(|\)|[A-Za-z_][A-Za-z0-9_]*:[<>]?(?:'(?:[^'\\]|\\.)*'|[^\s()]+)|\S+/g) ?? [];
  let position = 0;
  const peek = () => tokens[position];
  const expression = (): Node<T> | string => {
    let left = conjunction();
    while (typeof left !== 'string' && peek() === 'OR') {
      position += 1;
      const right = conjunction();
      if (typeof right === 'string') return right;
      const l = left;
      left = (record) => l(record) || right(record);
    }
    return left;
  };
  const conjunction = (): Node<T> | string => {
    let left = primary();
    while (typeof left !== 'string' && peek() === 'AND') {
      position += 1;
      const right = primary();
      if (typeof right === 'string') return right;
      const l = left;
      left = (record) => l(record) && right(record);
    }
    return left;
  };
  const primary = (): Node<T> | string => {
    const token = tokens[position++];
    if (token === undefined) return 'Query ends unexpectedly';
    if (token === '(') {
      const inner = expression();
      if (typeof inner === 'string') return inner;
      if (tokens[position++] !== ')') return 'Parentheses do not match';
      return inner;
    }
    return term(token, fields);
  };
  const node = expression();
  if (typeof node === 'string') return node;
  if (position !== tokens.length) return `Unexpected '${tokens[position]}' in query`;
  return node;
}

function term<T>(token: string, fields: Record<string, Accessor<T>>): Node<T> | string {
  const match = /^([A-Za-z_][A-Za-z0-9_]*):([<>]?)(.+)$/.exec(token);
  if (!match) return `Invalid term '${token}'`;
  const [, name, operator, text] = match as unknown as [string, string, '' | '<' | '>', string];
  const field = fields[name];
  if (!field) return `'${name}' is not a supported field`;
  const value = parseValue(text);
  if (value === null) return `Invalid value '${text}' for ${name}`;
  if (operator && field.type !== 'number' && field.type !== 'date') return `${name} does not take ${operator}`;
  return (record) => {
    const actual = field.get(record);
    if (value.kind === 'null') return actual === null || (Array.isArray(actual) && actual.length === 0);
    if (actual === null) return false;
    if (field.type === 'tags')
      return value.kind === 'string' && (actual as readonly string[]).some((tag) => tag.toLowerCase() === value.value.toLowerCase());
    if (field.type === 'date') {
      if (value.kind !== 'string') return false;
      const day = String(actual).slice(0, 10);
      return operator === '>' ? day >= value.value : operator === '<' ? day <= value.value : day === value.value;
    }
    if (field.type === 'number') {
      if (value.kind !== 'number') return false;
      const number = Number(actual);
      return operator === '>' ? number >= value.value : operator === '<' ? number <= value.value : number === value.value;
    }
    // Text matches whole values, case aside.
    return value.kind === 'string' && String(actual).toLowerCase() === value.value.toLowerCase();
  };
}

function parseValue(text: string): Value | null {
  if (text === 'null') return { kind: 'null' };
  if (text === 'true' || text === 'false') return { kind: 'boolean', value: text === 'true' };
  if (/^-?\d+$/.test(text)) return { kind: 'number', value: Number(text) };
  if (text.startsWith("'") && text.endsWith("'") && text.length >= 2)
    return { kind: 'string', value: text.slice(1, -1).replace(/\\(.)/g, '$1') };
  return null;
}

// ---------------------------------------------------------------------------------------------
// Resource JSON.
// ---------------------------------------------------------------------------------------------

/** Freshdesk's timestamps: whole seconds, UTC. */
const deskNow = () => new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');

const escapeHtml = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const htmlOf = (text: string) => `<div>${escapeHtml(text).replace(/\n/g, '<br>')}</div>`;

/** The text of an HTML body, as Freshdesk derives `body_text`. */
function textOf(html: string): string {
  return html
    .replace(/<br\s*\/?>/gi, '\n')
    .replace(/<[^>]*>/g, '')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&amp;/g, '&');
}

function ticketJson(ticket: FreshdeskTicket, desk: Desk, withDescription: boolean) {
  return {
    id: ticket.id,
    subject: ticket.subject,
    ...(withDescription
      ? {
          description: ticket.description_text === null ? null : htmlOf(ticket.description_text),
          description_text: ticket.description_text,
        }
      : {}),
    status: ticket.status,
    priority: ticket.priority,
    source: 1,
    type: ticket.type,
    requester_id: ticket.requester_id,
    responder_id: ticket.responder_id,
    company_id: ticket.company_id,
    group_id: ticket.group_id,
    product_id: null,
    email_config_id: null,
    cc_emails: [],
    fwd_emails: [],
    reply_cc_emails: [],
    to_emails: null,
    tags: [...ticket.tags],
    custom_fields: { ...ticket.custom_fields },
    spam: false,
    is_escalated: false,
    fr_escalated: false,
    due_by: ticket.due_by,
    fr_due_by: ticket.due_by,
    created_at: ticket.created_at,
    updated_at: ticket.updated_at,
    support_email: desk.apiAgent.email,
  };
}

function conversationJson(conversation: FreshdeskConversation) {
  return {
    id: conversation.id,
    ticket_id: conversation.ticket_id,
    user_id: conversation.user_id,
    body: htmlOf(conversation.body_text),
    body_text: conversation.body_text,
    incoming: conversation.incoming,
    private: conversation.private,
    source: conversation.source,
    support_email: null,
    to_emails: [],
    from_email: null,
    cc_emails: [],
    bcc_emails: null,
    attachments: [],
    created_at: conversation.created_at,
    updated_at: conversation.updated_at,
  };
}

function companyJson(company: FreshdeskCompany) {
  return {
    id: company.id,
    name: company.name,
    description: company.description,
    note: null,
    domains: [...company.domains],
    custom_fields: { ...company.custom_fields },
    health_score: null,
    account_tier: null,
    renewal_date: null,
    industry: null,
    created_at: company.created_at,
    updated_at: company.updated_at,
  };
}

function contactJson(contact: FreshdeskContact) {
  return {
    id: contact.id,
    name: contact.name,
    email: contact.email,
    active: true,
    address: null,
    company_id: contact.company_id,
    description: null,
    job_title: null,
    language: 'en',
    mobile: null,
    phone: null,
    time_zone: 'UTC',
    twitter_id: null,
    unique_external_id: null,
    custom_fields: { ...contact.custom_fields },
    created_at: contact.created_at,
    updated_at: contact.updated_at,
  };
}

function agentJson(agent: FreshdeskAgent) {
  return {
    id: agent.id,
    available: true,
    occasional: false,
    signature: null,
    ticket_scope: 1,
    type: 'support_agent',
    created_at: agent.created_at,
    updated_at: agent.created_at,
    contact: {
      active: true,
      email: agent.email,
      job_title: null,
      language: 'en',
      mobile: null,
      name: agent.name,
      phone: null,
      time_zone: 'UTC',
      created_at: agent.created_at,
      updated_at: agent.created_at,
    },
  };
}
