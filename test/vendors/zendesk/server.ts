import { createHmac, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Database } from '../../../platform/sqlite.ts';
import { EMBEDDED_FIELD_IDS } from '../../../subgraphs/support/src/connectors/embedded/tables.ts';
import { readBody } from '../http.ts';

/**
 * A local stand-in for the Zendesk Support API: the endpoints the support desk adapter uses,
 * answering in Zendesk's wire format (status codes, rate limit headers, JSON bodies and error
 * bodies), over an in-memory desk seeded from the embedded SQLite desk. Tests switch faults on
 * (latency, 429s, 5xx, dropped connections) and read the request log to count calls.
 *
 * Where Zendesk's behaviour is not documented the server is strict rather than lenient (an
 * unknown search keyword, too many ids), so an adapter that oversteps fails here instead of in
 * production.
 *
 * Like an account with a webhook subscribed to ticket and organization events, it POSTs a
 * signed event webhook to `webhook.url` for each change (through its API, or an agent's in
 * Zendesk's UI simulated by agentComment and agentUpdate), and serves the cursor-based
 * incremental ticket export, holding back the last `incrementalLagMs` as Zendesk holds back
 * the last minute.
 */

// ---------------------------------------------------------------------------------------------
// The in-memory desk, in Zendesk's resource shapes.
// ---------------------------------------------------------------------------------------------

export interface DeskOrganization {
  id: number;
  name: string;
  external_id: string | null;
  domain_names: string[];
  tags: string[];
  created_at: string;
  updated_at: string;
}
export interface DeskUser {
  id: number;
  name: string;
  email: string | null;
  role: 'end-user' | 'agent' | 'admin';
  organization_id: number | null;
  external_id: string | null;
  created_at: string;
}
export interface DeskTicket {
  id: number;
  external_id: string | null;
  type: string | null;
  subject: string;
  description: string | null;
  priority: string | null;
  status: string;
  requester_id: number | null;
  submitter_id: number | null;
  assignee_id: number | null;
  organization_id: number | null;
  group_id: number | null;
  tags: string[];
  custom_fields: { id: number; value: string | null }[];
  due_at: string | null;
  created_at: string;
  updated_at: string;
}
export interface DeskComment {
  id: number;
  ticket_id: number;
  author_id: number | null;
  body: string;
  public: boolean;
  created_at: string;
}
export interface DeskTicketField {
  id: number;
  type: 'text';
  title: string;
}
export interface DeskSlaPolicy {
  id: number;
  title: string;
  description: string | null;
  position: number;
  filter: { all: { field: string; operator: string; value: string }[]; any: { field: string; operator: string; value: string }[] };
  policy_metrics: { priority: string; metric: string; target: number; business_hours: boolean }[];
}

export type FieldValue = string | number | boolean | null;

/** A field of a custom object; a lookup field names the kind of record it relates to. */
export interface DeskCustomObjectField {
  key: string;
  /** A checkbox holds true or false; a date holds YYYY-MM-DD. */
  type: 'text' | 'integer' | 'checkbox' | 'date' | 'lookup';
  relationship_target_type?: 'zen:organization';
}
export interface DeskCustomObject {
  key: string;
  title: string;
  fields: DeskCustomObjectField[];
}
/**
 * A custom object record (Custom Objects API). Zendesk's ids are ULIDs (records loaded from the
 * embedded desk keep its ids); a lookup field holds the related record's id as a string.
 */
export interface DeskCustomObjectRecord {
  id: string;
  custom_object_key: string;
  name: string;
  external_id: string | null;
  custom_object_fields: Record<string, FieldValue>;
  created_by_user_id: string;
  updated_by_user_id: string;
  created_at: string;
  updated_at: string;
}

export interface ZendeskData {
  organizations: Map<number, DeskOrganization>;
  users: Map<number, DeskUser>;
  tickets: Map<number, DeskTicket>;
  /** Per ticket, in the order they were written. */
  comments: Map<number, DeskComment[]>;
  ticketFields: DeskTicketField[];
  slaPolicies: DeskSlaPolicy[];
  /** Custom objects by key. */
  customObjects: Map<string, DeskCustomObject>;
  /** Custom object records by id. */
  customObjectRecords: Map<string, DeskCustomObjectRecord>;
}

/** The installed base: one record per product of an order, linked to the customer's organization. */
export const INSTALLED_PRODUCT: DeskCustomObject = {
  key: 'installed_product',
  title: 'Installed product',
  fields: [
    { key: 'order_number', type: 'text' },
    { key: 'sku', type: 'text' },
    { key: 'quantity', type: 'integer' },
    { key: 'warranty_months', type: 'integer' },
    { key: 'organization', type: 'lookup', relationship_target_type: 'zen:organization' },
  ],
};

/** What a subscription entitles its customer to: one record per subscription, its external id the subscription id. */
export const ENTITLEMENT: DeskCustomObject = {
  key: 'entitlement',
  title: 'Entitlement',
  fields: [
    { key: 'tier', type: 'text' },
    { key: 'active', type: 'checkbox' },
    { key: 'until', type: 'date' },
    { key: 'organization', type: 'lookup', relationship_target_type: 'zen:organization' },
  ],
};

/**
 * The embedded desk's rows as Zendesk resources: custom field rows become each ticket's
 * `custom_fields` (every field listed, unset ones null, as Zendesk does), each SLA policy's
 * tag becomes a `current_tags includes` condition, and each custom object record's
 * organization becomes its `organization` lookup field.
 */
export function loadZendeskData(db: Database, fieldIds: { orderNumber: number; serialNumber: number } = EMBEDDED_FIELD_IDS): ZendeskData {
  const json = (text: string) => JSON.parse(text) as string[];
  const organizations = new Map<number, DeskOrganization>();
  for (const row of db.prepare('SELECT * FROM organizations ORDER BY id').all() as (Omit<DeskOrganization, 'domain_names' | 'tags'> & {
    domain_names: string;
    tags: string;
  })[]) {
    organizations.set(row.id, { ...row, domain_names: json(row.domain_names), tags: json(row.tags) });
  }
  const users = new Map<number, DeskUser>();
  for (const row of db.prepare('SELECT * FROM users ORDER BY id').all() as DeskUser[]) users.set(row.id, { ...row });

  const fieldValues = new Map<string, string | null>();
  for (const row of db.prepare('SELECT ticket_id, field_id, value FROM ticket_custom_fields').all() as {
    ticket_id: number;
    field_id: number;
    value: string | null;
  }[]) {
    fieldValues.set(`${row.ticket_id}/${row.field_id}`, row.value);
  }
  const fields = [fieldIds.orderNumber, fieldIds.serialNumber];
  const tickets = new Map<number, DeskTicket>();
  for (const row of db.prepare('SELECT * FROM tickets ORDER BY id').all() as (Omit<DeskTicket, 'tags' | 'custom_fields'> & {
    tags: string;
  })[]) {
    const custom_fields = fields.map((id) => ({ id, value: fieldValues.get(`${row.id}/${id}`) ?? null }));
    tickets.set(row.id, { ...row, tags: json(row.tags), custom_fields });
  }

  const comments = new Map<number, DeskComment[]>();
  for (const row of db.prepare('SELECT * FROM ticket_comments ORDER BY created_at, id').all() as (Omit<DeskComment, 'public'> & {
    public: number;
  })[]) {
    const list = comments.get(row.ticket_id) ?? [];
    list.push({ ...row, public: row.public === 1 });
    comments.set(row.ticket_id, list);
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
  ).map((row): DeskSlaPolicy => ({
    id: row.id,
    title: row.title,
    description: row.description,
    position: row.position,
    filter: { all: [{ field: 'current_tags', operator: 'includes', value: row.filter_tag }], any: [] },
    policy_metrics: JSON.parse(row.policy_metrics) as DeskSlaPolicy['policy_metrics'],
  }));
  const ticketFields: DeskTicketField[] = [
    { id: fieldIds.orderNumber, type: 'text', title: 'Order number' },
    { id: fieldIds.serialNumber, type: 'text', title: 'Serial number' },
  ];

  const customObjects = new Map([INSTALLED_PRODUCT, ENTITLEMENT].map((object) => [object.key, object]));
  const customObjectRecords = new Map<string, DeskCustomObjectRecord>();
  // Databases from before the installed base have no such table: their desk has no records.
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
      const fields = JSON.parse(row.custom_object_fields) as Record<string, FieldValue>;
      customObjectRecords.set(row.id, {
        id: row.id,
        custom_object_key: row.custom_object_key,
        name: row.name,
        external_id: row.external_id,
        custom_object_fields: { ...fields, organization: row.organization_id === null ? null : String(row.organization_id) },
        // Answered as the API user's.
        created_by_user_id: '',
        updated_by_user_id: '',
        created_at: row.created_at,
        updated_at: row.updated_at,
      });
    }
  }
  return { organizations, users, tickets, comments, ticketFields, slaPolicies, customObjects, customObjectRecords };
}

// ---------------------------------------------------------------------------------------------
// The server.
// ---------------------------------------------------------------------------------------------

export type Fault =
  /** 429 with Retry-After (seconds) and a text/plain body. */
  | { kind: 'rate-limit'; retryAfterSeconds: number }
  | { kind: 'server-error'; status?: 500 | 502 | 503 }
  /** The connection is destroyed before the request is handled. */
  | { kind: 'reset' }
  /** The request is handled (an update is applied), then the connection is destroyed: a lost answer. */
  | { kind: 'reset-after-handling' };

export interface LoggedRequest {
  method: string;
  /** The path as sent, e.g. /api/v2/tickets/show_many.json. */
  path: string;
  query: Record<string, string>;
  /** The status answered; 0 for a dropped connection. */
  status: number;
}

/** A webhook request the server sent (or would have, with no webhook configured), and how each attempt was answered. */
export interface WebhookDelivery {
  /** The event type, e.g. zen:event-type:ticket.comment_added. */
  readonly type: string;
  /** The JSON body, the same on every attempt. */
  readonly body: string;
  /** Each attempt's status; 0 when the connection failed. */
  readonly attempts: number[];
}

/** Where the account's webhook posts, and the secret it signs with. */
export interface WebhookTarget {
  readonly url: string;
  readonly secret: string;
}

export interface ZendeskServer {
  readonly url: string;
  readonly data: ZendeskData;
  /** Every request received, in order. */
  readonly requests: LoggedRequest[];
  /** The agent the accepted credentials belong to (author of comments added through the API). */
  readonly apiUser: DeskUser;
  /** Delay before every answer, in milliseconds. */
  latencyMs: number;
  /** Requests others sharing the account (another integration, its own agents' apps) spend of this window's limit. */
  spendRateLimit(count: number): void;
  /** Requests left in this window. */
  rateLimitRemaining(): number;
  /** A new window starts now, of which others sharing the account have already spent all but `left`. */
  startRateLimitWindow(left: number): void;
  /**
   * The next `count` requests (of those `when` picks, default all) meet the fault instead of
   * their answer (or, for reset-after-handling, after it).
   */
  failNext(count: number, fault: Fault, when?: (request: LoggedRequest) => boolean): void;
  clearFaults(): void;
  /** Requests whose path starts with the prefix (e.g. '/api/v2/search'). */
  requestsTo(prefix: string): LoggedRequest[];
  /** Where event webhooks go; null: none are sent (they are still listed in `deliveries`). */
  webhook: WebhookTarget | null;
  /** Every webhook the desk's changes caused, in order. */
  readonly deliveries: WebhookDelivery[];
  /**
   * Attempts after a 409, 429 or 503 answer (Zendesk's retries), `webhookRetryDelayMs` apart.
   * Defaults: 3 attempts more, 1 s apart.
   */
  webhookRetries: number;
  webhookRetryDelayMs: number;
  /** Changes this recent are left out of the incremental export (Zendesk: the last minute). */
  incrementalLagMs: number;
  /** Resolves when every webhook queued so far has been sent (and its retries made). */
  webhooksSettled(): Promise<void>;
  /** Sends a delivery's body again, signed anew (a resend); resolves to the answer's status. */
  redeliver(delivery: WebhookDelivery): Promise<number>;
  /** An agent adds a comment in Zendesk's UI: the ticket is updated and the comment_added webhook sent. */
  agentComment(ticketId: number, comment: { body: string; public?: boolean; authorId?: number }): DeskComment;
  /** An agent changes a ticket's status or priority in Zendesk's UI, with the webhooks of each change. */
  agentUpdate(ticketId: number, update: { status?: string; priority?: string }): DeskTicket;
  close(): Promise<void>;
}

export interface ZendeskServerOptions {
  data: ZendeskData;
  /** The credentials accepted: an API token for the email, and optionally an OAuth token. */
  credentials: { email: string; apiToken: string; bearerToken?: string };
  /** Where event webhooks go (settable later: `server.webhook`). */
  webhook?: WebhookTarget | null;
  /** Changes this recent are left out of the incremental export; default 60 s, as Zendesk. */
  incrementalLagMs?: number;
  /**
   * The account's rate limit: requests per window (Zendesk's is per minute; 700 on Enterprise).
   * Past it every request is answered 429 with the seconds to the window's end as Retry-After.
   */
  rateLimit?: { limit: number; windowMs: number };
}

/** Answers as a JSON body or plain text, with headers. */
interface Reply {
  status: number;
  headers?: Record<string, string>;
  json?: unknown;
  text?: string;
}

const RATE_LIMIT = 700;
const SHOW_MANY_LIMIT = 100;
const SEARCH_RESULTS_LIMIT = 1000;

const notFound = (): Reply => ({ status: 404, json: { error: 'RecordNotFound', description: 'Not found' } });
const unauthenticated = (): Reply => ({ status: 401, json: { error: "Couldn't authenticate you" } });
const invalidRecord = (details: Record<string, { description: string; error: string }[]>): Reply => ({
  status: 422,
  json: { error: 'RecordInvalid', description: 'Record validation errors', details },
});
const badRequest = (error: string, description: string): Reply => ({ status: 400, json: { error, description } });

/** Starts the server on 127.0.0.1 at a free port. */
export async function startZendeskServer(options: ZendeskServerOptions): Promise<ZendeskServer> {
  const { data, credentials } = options;
  const apiUser = ensureApiUser(data, credentials.email);
  const requests: LoggedRequest[] = [];
  const faults: { fault: Fault; when: (request: LoggedRequest) => boolean }[] = [];
  const rateLimit = options.rateLimit ?? { limit: RATE_LIMIT, windowMs: 60_000 };
  let remaining = rateLimit.limit;
  let windowEnds = Date.now() + rateLimit.windowMs;
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
    if (Date.now() >= windowEnds) {
      remaining = rateLimit.limit;
      windowEnds = Date.now() + rateLimit.windowMs;
    }
    if (remaining === 0) {
      entry.status = 429;
      return write(res, faultReply({ kind: 'rate-limit', retryAfterSeconds: Math.max(1, Math.ceil((windowEnds - Date.now()) / 1000)) }));
    }
    remaining -= 1;
    const index = faults.findIndex((pending) => pending.when(entry));
    const fault = index === -1 ? undefined : faults.splice(index, 1)[0]?.fault;
    if (fault?.kind === 'reset') return void req.socket.destroy();
    const reply = fault?.kind === 'rate-limit' || fault?.kind === 'server-error' ? faultReply(fault) : answer(entry.method, url, req, body);
    if (fault?.kind === 'reset-after-handling') return void req.socket.destroy();
    entry.status = reply.status;
    write(res, reply);
  }

  function write(res: ServerResponse, reply: Reply): void {
    const headers: Record<string, string> = {
      'x-rate-limit': String(rateLimit.limit),
      'x-rate-limit-remaining': String(remaining),
      ...reply.headers,
    };
    if (reply.json !== undefined) {
      res.writeHead(reply.status, { ...headers, 'content-type': 'application/json; charset=utf-8' });
      res.end(JSON.stringify(reply.json));
    } else {
      res.writeHead(reply.status, { ...headers, 'content-type': 'text/plain; charset=utf-8' });
      res.end(reply.text ?? '');
    }
  }

  function answer(method: string, url: URL, req: IncomingMessage, body: string): Reply {
    const path = url.pathname.replace(/\.json$/, '');
    const identity = authenticate(req.headers.authorization, credentials);
    // Zendesk answers /users/me without credentials as the anonymous user; wrong ones are refused.
    if (identity === 'anonymous' && method === 'GET' && path === '/api/v2/users/me') {
      return { status: 200, json: { user: { id: null, name: 'Anonymous user', email: 'invalid@example.com', role: 'end-user' } } };
    }
    if (identity !== 'ok') return unauthenticated();
    return route(method, path, url.searchParams, body, desk());
  }

  // Webhooks go out one after the other, after the answer to the change that caused them.
  const deliveries: WebhookDelivery[] = [];
  let sending: Promise<void> = Promise.resolve();
  const notify = (payload: Record<string, unknown>) => {
    const delivery: WebhookDelivery = { type: String(payload.type), body: JSON.stringify(payload), attempts: [] };
    deliveries.push(delivery);
    sending = sending.then(() => deliverWithRetries(delivery));
  };
  const desk = (): Desk => ({ data, apiUser, baseUrl, notify, incrementalLagMs: state.incrementalLagMs });

  async function post(delivery: WebhookDelivery): Promise<number> {
    const target = state.webhook;
    if (!target) return 0;
    const timestamp = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
    const signature = createHmac('sha256', target.secret).update(timestamp).update(delivery.body).digest('base64');
    let status = 0;
    try {
      const response = await fetch(target.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json; charset=utf-8',
          'user-agent': 'Zendesk Webhook',
          'x-zendesk-account-id': String(ACCOUNT_ID),
          'x-zendesk-webhook-id': WEBHOOK_ID,
          'x-zendesk-webhook-invocation-id': String(deliveries.indexOf(delivery) + 1),
          'x-zendesk-webhook-signature': signature,
          'x-zendesk-webhook-signature-timestamp': timestamp,
        },
        body: delivery.body,
      });
      await response.arrayBuffer();
      status = response.status;
    } catch {
      status = 0;
    }
    delivery.attempts.push(status);
    return status;
  }

  async function deliverWithRetries(delivery: WebhookDelivery): Promise<void> {
    if (!state.webhook) return;
    for (let attempt = 0; ; attempt += 1) {
      const status = await post(delivery);
      if (!RETRIED_STATUSES.has(status) || attempt >= state.webhookRetries) return;
      await new Promise((resolve) => setTimeout(resolve, state.webhookRetryDelayMs));
    }
  }

  const state = {
    url: '',
    data,
    requests,
    apiUser,
    latencyMs: 0,
    spendRateLimit: (count: number) => {
      remaining = Math.max(0, remaining - count);
    },
    rateLimitRemaining: () => remaining,
    startRateLimitWindow: (left: number) => {
      remaining = Math.min(left, rateLimit.limit);
      windowEnds = Date.now() + rateLimit.windowMs;
    },
    webhook: options.webhook ?? null,
    deliveries,
    webhookRetries: 3,
    webhookRetryDelayMs: 1_000,
    incrementalLagMs: options.incrementalLagMs ?? 60_000,
    webhooksSettled: () => sending,
    redeliver: (delivery: WebhookDelivery) => post(delivery),
    agentComment(ticketId: number, comment: { body: string; public?: boolean; authorId?: number }): DeskComment {
      const ticket = data.tickets.get(ticketId);
      if (!ticket) throw new Error(`no ticket ${ticketId}`);
      const author = comment.authorId ?? [...data.users.values()].find((user) => user.role === 'agent')?.id ?? apiUser.id;
      changeTicket(ticket, { comment: { body: comment.body, public: comment.public ?? true } }, author, desk());
      return data.comments.get(ticketId)!.at(-1)!;
    },
    agentUpdate(ticketId: number, update: { status?: string; priority?: string }): DeskTicket {
      const ticket = data.tickets.get(ticketId);
      if (!ticket) throw new Error(`no ticket ${ticketId}`);
      const agent = [...data.users.values()].find((user) => user.role === 'agent')?.id ?? apiUser.id;
      changeTicket(ticket, update, agent, desk());
      return ticket;
    },
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
        // Clients keep connections alive; without this, close waits for them to time out.
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
      text: `Rate limited. Retry after ${fault.retryAfterSeconds} seconds.`,
    };
  }
  const status = fault.status ?? 503;
  if (status === 503) return { status, headers: { 'retry-after': '0' }, text: 'Service Unavailable' };
  return { status, json: { error: 'InternalServerError', description: 'Something went wrong on our end' } };
}

function ensureApiUser(data: ZendeskData, email: string): DeskUser {
  const existing = [...data.users.values()].find((user) => user.email === email);
  if (existing) return existing;
  const id = Math.max(0, ...data.users.keys()) + 1;
  const user: DeskUser = {
    id,
    name: 'Concord Integration',
    email,
    role: 'admin',
    organization_id: null,
    external_id: null,
    created_at: '2023-01-01T00:00:00Z',
  };
  data.users.set(id, user);
  return user;
}

function authenticate(header: string | undefined, credentials: ZendeskServerOptions['credentials']): 'ok' | 'anonymous' | 'refused' {
  if (!header) return 'anonymous';
  const [scheme, value = ''] = header.split(' ', 2);
  if (scheme === 'Bearer') return credentials.bearerToken !== undefined && value === credentials.bearerToken ? 'ok' : 'refused';
  if (scheme === 'Basic') {
    return Buffer.from(value, 'base64').toString('utf8') === `${credentials.email}/token:${credentials.apiToken}` ? 'ok' : 'refused';
  }
  return 'refused';
}

// ---------------------------------------------------------------------------------------------
// Endpoints.
// ---------------------------------------------------------------------------------------------

interface Desk {
  data: ZendeskData;
  apiUser: DeskUser;
  baseUrl: string;
  /** Sends the event webhook of a change. */
  notify: (payload: Record<string, unknown>) => void;
  incrementalLagMs: number;
}

const ACCOUNT_ID = 10_973_248;
const WEBHOOK_ID = '01HCONCORDTESTWEBHOOK0000';
/** Answers Zendesk retries a webhook after. */
const RETRIED_STATUSES: ReadonlySet<number> = new Set([409, 429, 503]);

function route(method: string, path: string, params: URLSearchParams, body: string, desk: Desk): Reply {
  const ticketPath = /^\/api\/v2\/tickets\/(\d+)(\/comments)?$/.exec(path);
  const recordsPath = /^\/api\/v2\/custom_objects\/([^/]+)\/records(\/search)?$/.exec(path);
  const organizationTagsPath = /^\/api\/v2\/organizations\/(\d+)\/tags$/.exec(path);
  const organizationPath = /^\/api\/v2\/organizations\/(\d+)$/.exec(path);
  if (organizationPath && method === 'GET') {
    const organization = desk.data.organizations.get(Number(organizationPath[1]));
    return organization ? { status: 200, json: { organization: organizationJson(organization, desk) } } : notFound();
  }
  if (organizationTagsPath) return organizationTags(method, Number(organizationTagsPath[1]), body, desk);
  if (recordsPath) {
    const key = decodeURIComponent(recordsPath[1]!);
    if (method === 'PATCH' && !recordsPath[2]) return upsertCustomObjectRecord(key, params, body, desk);
    if (method === 'POST' && recordsPath[2]) return filteredSearchCustomObjectRecords(key, params, body, desk);
  }
  if (method === 'GET') {
    switch (path) {
      case '/api/v2/users/me':
        return { status: 200, json: { user: userJson(desk.apiUser, desk) } };
      case '/api/v2/users/show_many':
        return showManyUsers(params, desk);
      case '/api/v2/organizations/show_many':
        return showManyOrganizations(params, desk);
      case '/api/v2/tickets/show_many':
        return showManyTickets(params, desk);
      case '/api/v2/search':
        return search(params, desk);
      case '/api/v2/search/count':
        return searchCount(params, desk);
      case '/api/v2/search/export':
        return searchExport(params, desk);
      case '/api/v2/incremental/tickets/cursor':
        return incrementalTickets(params, desk);
      case '/api/v2/slas/policies':
        return {
          status: 200,
          json: { sla_policies: desk.data.slaPolicies, next_page: null, previous_page: null, count: desk.data.slaPolicies.length },
        };
      case '/api/v2/ticket_fields':
        return {
          status: 200,
          json: { ticket_fields: desk.data.ticketFields, next_page: null, previous_page: null, count: desk.data.ticketFields.length },
        };
    }
    if (ticketPath?.[2]) return listComments(Number(ticketPath[1]), params, desk);
    if (ticketPath) return showTicket(Number(ticketPath[1]), params, desk);
  }
  if (method === 'PUT' && ticketPath && !ticketPath[2]) return updateTicket(Number(ticketPath[1]), body, desk);
  return { status: 404, json: { error: 'InvalidEndpoint', description: 'Not found' } };
}

/** `ids` or `external_ids`, comma-separated, at most 100. */
function idList(params: URLSearchParams, name: string): string[] | Reply {
  const values = (params.get(name) ?? '')
    .split(',')
    .map((value) => value.trim())
    .filter(Boolean);
  if (values.length > SHOW_MANY_LIMIT) return badRequest('InvalidParameter', `${name}: at most ${SHOW_MANY_LIMIT} values`);
  return values;
}

function showManyUsers(params: URLSearchParams, desk: Desk): Reply {
  const byExternal = params.has('external_ids');
  const values = idList(params, byExternal ? 'external_ids' : 'ids');
  if (!Array.isArray(values)) return values;
  const wanted = new Set(values);
  const users = [...desk.data.users.values()].filter((user) => wanted.has(byExternal ? (user.external_id ?? '') : String(user.id)));
  return {
    status: 200,
    json: { users: users.map((user) => userJson(user, desk)), next_page: null, previous_page: null, count: users.length },
  };
}

function showManyOrganizations(params: URLSearchParams, desk: Desk): Reply {
  const byExternal = params.has('external_ids');
  const values = idList(params, byExternal ? 'external_ids' : 'ids');
  if (!Array.isArray(values)) return values;
  const wanted = new Set(values);
  const organizations = [...desk.data.organizations.values()].filter((organization) =>
    wanted.has(byExternal ? (organization.external_id ?? '') : String(organization.id)),
  );
  return {
    status: 200,
    json: {
      organizations: organizations.map((organization) => organizationJson(organization, desk)),
      next_page: null,
      previous_page: null,
      count: organizations.length,
    },
  };
}

function showManyTickets(params: URLSearchParams, desk: Desk): Reply {
  const values = idList(params, 'ids');
  if (!Array.isArray(values)) return values;
  const tickets = values.map((id) => desk.data.tickets.get(Number(id))).filter((ticket): ticket is DeskTicket => ticket !== undefined);
  return { status: 200, json: { tickets: tickets.map((ticket) => ticketJson(ticket, desk)), ...sideloads(tickets, params, desk) } };
}

function showTicket(id: number, params: URLSearchParams, desk: Desk): Reply {
  const ticket = desk.data.tickets.get(id);
  if (!ticket) return notFound();
  return { status: 200, json: { ticket: ticketJson(ticket, desk), ...sideloads([ticket], params, desk) } };
}

/** `include=users,organizations`: the people and organizations the tickets refer to. */
function sideloads(tickets: readonly DeskTicket[], params: URLSearchParams, desk: Desk): { users?: unknown[]; organizations?: unknown[] } {
  const include = new Set((params.get('include') ?? '').split(',').map((name) => name.trim()));
  const result: { users?: unknown[]; organizations?: unknown[] } = {};
  if (include.has('users')) {
    const ids = new Set(tickets.flatMap((ticket) => [ticket.requester_id, ticket.submitter_id, ticket.assignee_id]));
    result.users = [...ids].flatMap((id) => {
      const user = id === null ? undefined : desk.data.users.get(id);
      return user ? [userJson(user, desk)] : [];
    });
  }
  if (include.has('organizations')) {
    const ids = new Set(tickets.map((ticket) => ticket.organization_id));
    result.organizations = [...ids].flatMap((id) => {
      const organization = id === null ? undefined : desk.data.organizations.get(id);
      return organization ? [organizationJson(organization, desk)] : [];
    });
  }
  return result;
}

/** Cursor pages: `page[size]` (at most `max`) and an opaque `page[after]`. */
function cursorPage<T>(
  items: readonly T[],
  keyOf: (item: T) => number | string,
  params: URLSearchParams,
  max: number,
  link: (cursor: string) => string,
) {
  const size = Math.min(max, Math.max(1, Number(params.get('page[size]') ?? 100) || 100));
  const after = params.get('page[after]');
  const start = after ? items.findIndex((item) => String(keyOf(item)) === decodeCursor(after)) + 1 : 0;
  const page = items.slice(start, start + size);
  const hasMore = start + size < items.length;
  const first = page[0];
  const last = page[page.length - 1];
  const afterCursor = last === undefined ? null : encodeCursor(keyOf(last));
  const beforeCursor = first === undefined ? null : encodeCursor(keyOf(first));
  return {
    page,
    meta: { has_more: hasMore, after_cursor: afterCursor, before_cursor: beforeCursor },
    links: { next: hasMore && afterCursor ? link(afterCursor) : null, prev: beforeCursor ? link(beforeCursor) : null },
  };
}

const encodeCursor = (key: number | string) => Buffer.from(`k${key}`).toString('base64url');
const decodeCursor = (cursor: string) => Buffer.from(cursor, 'base64url').toString('utf8').slice(1);

function listComments(ticketId: number, params: URLSearchParams, desk: Desk): Reply {
  if (!desk.data.tickets.has(ticketId)) return notFound();
  const comments = desk.data.comments.get(ticketId) ?? [];
  const size = params.get('page[size]') ?? '100';
  const { page, meta, links } = cursorPage(
    comments,
    (comment) => comment.id,
    params,
    100,
    (cursor) => `${desk.baseUrl}/api/v2/tickets/${ticketId}/comments.json?page%5Bafter%5D=${cursor}&page%5Bsize%5D=${size}`,
  );
  const json: Record<string, unknown> = { comments: page.map(commentJson), meta, links };
  if ((params.get('include') ?? '').split(',').includes('users')) {
    const authors = new Set(page.map((comment) => comment.author_id));
    json.users = [...authors].flatMap((id) => {
      const user = id === null ? undefined : desk.data.users.get(id);
      return user ? [userJson(user, desk)] : [];
    });
  }
  return { status: 200, json };
}

function updateTicket(id: number, body: string, desk: Desk): Reply {
  const ticket = desk.data.tickets.get(id);
  if (!ticket) return notFound();
  let update: TicketUpdate;
  try {
    update = (JSON.parse(body) as { ticket?: TicketUpdate }).ticket ?? {};
  } catch {
    return badRequest('InvalidJSON', 'The request body is not valid JSON');
  }
  if (ticket.status === 'closed') {
    return invalidRecord({ status: [{ description: 'Status: closed prevents ticket update', error: 'ClosedPreventsUpdate' }] });
  }
  if (update.status !== undefined && !STATUS_ORDER.includes(update.status)) {
    return invalidRecord({ status: [{ description: `Status: ${update.status} is not valid`, error: 'InvalidValue' }] });
  }
  if (update.priority !== undefined && !PRIORITY_ORDER.includes(update.priority)) {
    return invalidRecord({ priority: [{ description: `Priority: ${update.priority} is not valid`, error: 'InvalidValue' }] });
  }
  if (update.safe_update && update.updated_stamp !== ticket.updated_at) {
    return {
      status: 409,
      json: {
        error: 'UpdateConflict',
        description: 'Safe Update prevented the update due to outdated ticket data. Please fetch the latest ticket data and try again.',
      },
    };
  }
  const { now, events } = changeTicket(ticket, update, desk.apiUser.id, desk);
  const audit = { id: Date.now(), ticket_id: id, created_at: now, author_id: desk.apiUser.id, metadata: {}, events };
  return { status: 200, json: { ticket: ticketJson(ticket, desk), audit } };
}

/**
 * Applies an update to a ticket (through the API or, from the test, an agent in the UI): its
 * audit events, and the event webhooks of the changes, sent once the change is made.
 */
function changeTicket(
  ticket: DeskTicket,
  update: Pick<TicketUpdate, 'status' | 'priority' | 'comment' | 'additional_tags'>,
  actorId: number,
  desk: Desk,
): { now: string; events: unknown[] } {
  // Strictly later than the last update, so updated_at works as the safe-update stamp even for
  // updates within one second.
  const now = new Date(Math.max(Date.now(), Date.parse(ticket.updated_at) + 1000)).toISOString().replace(/\.\d{3}Z$/, 'Z');
  const events: unknown[] = [];
  const webhooks: [string, Record<string, unknown>][] = [];
  if (update.status !== undefined && update.status !== ticket.status) {
    events.push({ type: 'Change', field_name: 'status', value: update.status, previous_value: ticket.status });
    webhooks.push(['status_changed', { current: update.status.toUpperCase(), previous: ticket.status.toUpperCase() }]);
    ticket.status = update.status;
  }
  if (update.priority !== undefined && update.priority !== ticket.priority) {
    events.push({ type: 'Change', field_name: 'priority', value: update.priority, previous_value: ticket.priority });
    webhooks.push(['priority_changed', { current: update.priority.toUpperCase(), previous: ticket.priority?.toUpperCase() ?? null }]);
    ticket.priority = update.priority;
  }
  if (update.comment?.body) {
    const comments = desk.data.comments.get(ticket.id) ?? [];
    const commentId = Math.max(0, ...[...desk.data.comments.values()].flat().map((comment) => comment.id)) + 1;
    const comment: DeskComment = {
      id: commentId,
      ticket_id: ticket.id,
      author_id: actorId,
      body: update.comment.body,
      public: update.comment.public ?? true,
      created_at: now,
    };
    comments.push(comment);
    desk.data.comments.set(ticket.id, comments);
    events.push(commentJson(comment));
    const author = desk.data.users.get(actorId);
    webhooks.push([
      'comment_added',
      {
        comment: {
          id: String(comment.id),
          body: comment.body,
          is_public: comment.public,
          author: { id: String(actorId), is_staff: author?.role !== 'end-user', name: author?.name ?? '' },
        },
      },
    ]);
  }
  const added = (update.additional_tags ?? []).map((tag) => tag.toLowerCase()).filter((tag) => !ticket.tags.includes(tag));
  if (added.length) {
    events.push({ type: 'Change', field_name: 'tags', value: [...ticket.tags, ...added], previous_value: ticket.tags });
    webhooks.push(['tags_changed', { tags_added: added, tags_removed: [] }]);
    ticket.tags = [...ticket.tags, ...added];
  }
  ticket.updated_at = now;
  for (const [kind, event] of webhooks) desk.notify(ticketEventPayload(kind, ticket, actorId, event));
  return { now, events };
}

/**
 * A ticket event webhook's body as Zendesk sends it: the ticket in `detail` (ids as strings,
 * status, priority and type in capitals), what changed in `event`.
 */
function ticketEventPayload(kind: string, ticket: DeskTicket, actorId: number, event: Record<string, unknown>): Record<string, unknown> {
  const id = (value: number | null) => (value === null ? null : String(value));
  return {
    type: `zen:event-type:ticket.${kind}`,
    account_id: ACCOUNT_ID,
    id: randomUUID(),
    time: new Date().toISOString(),
    zendesk_event_version: '2022-11-06',
    subject: `zen:ticket:${ticket.id}`,
    detail: {
      actor_id: String(actorId),
      assignee_id: id(ticket.assignee_id),
      brand_id: '360000000001',
      created_at: ticket.created_at,
      custom_status: String(STATUS_ORDER.indexOf(ticket.status) + 1),
      description: ticket.description ?? '',
      external_id: ticket.external_id,
      form_id: '360000000001',
      group_id: id(ticket.group_id),
      id: String(ticket.id),
      is_public: true,
      organization_id: id(ticket.organization_id),
      priority: ticket.priority?.toUpperCase() ?? null,
      requester_id: id(ticket.requester_id),
      status: ticket.status.toUpperCase(),
      subject: ticket.subject,
      submitter_id: id(ticket.submitter_id),
      tags: [...ticket.tags],
      type: ticket.type?.toUpperCase() ?? null,
      updated_at: ticket.updated_at,
      via: { channel: 'web_service' },
    },
    event,
  };
}

/** An organization event webhook's body as Zendesk sends it. */
function organizationEventPayload(kind: string, organization: DeskOrganization, event: Record<string, unknown>): Record<string, unknown> {
  return {
    type: `zen:event-type:organization.${kind}`,
    account_id: ACCOUNT_ID,
    id: randomUUID(),
    time: new Date().toISOString(),
    zendesk_event_version: '2022-06-20',
    subject: `zen:organization:${organization.id}`,
    detail: {
      created_at: organization.created_at,
      external_id: organization.external_id,
      group_id: null,
      id: String(organization.id),
      name: organization.name,
      shared_comments: false,
      shared_tickets: false,
      updated_at: organization.updated_at,
    },
    event,
  };
}

const encodeExportCursor = (at: number, id: number) => Buffer.from(`i${at}:${id}`).toString('base64url');
function decodeExportCursor(cursor: string): { at: number; id: number } | null {
  const match = /^i(\d+):(-?\d+)$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  return match ? { at: Number(match[1]), id: Number(match[2]) } : null;
}

/**
 * `GET /api/v2/incremental/tickets/cursor.json`: the tickets changed since `start_time` (Unix
 * seconds, at least `incrementalLagMs` ago) or after a `cursor`, oldest change first, at most
 * `per_page` (1000), changes of the last `incrementalLagMs` held back; every page has an
 * `after_cursor`, also the last one (`end_of_stream: true`), for the next export.
 */
function incrementalTickets(params: URLSearchParams, desk: Desk): Reply {
  const now = Date.now();
  let after: { at: number; id: number } | null;
  if (params.has('cursor')) {
    after = decodeExportCursor(params.get('cursor') ?? '');
    if (!after) return badRequest('InvalidCursor', 'The cursor is not valid');
  } else {
    const startTime = Number(params.get('start_time'));
    if (!params.has('start_time') || !Number.isSafeInteger(startTime) || startTime < 0)
      return badRequest('InvalidValue', 'start_time is required: a Unix time in seconds');
    if (desk.incrementalLagMs > 0 && startTime * 1000 > now - desk.incrementalLagMs)
      return badRequest('InvalidValue', 'Too recent start_time. Use a start_time older than 1 minute');
    after = { at: startTime * 1000, id: -1 };
  }
  const size = Math.min(1000, Math.max(1, Number(params.get('per_page') ?? 1000) || 1000));
  const key = (ticket: DeskTicket) => ({ at: Date.parse(ticket.updated_at), id: ticket.id });
  const changed = [...desk.data.tickets.values()]
    .filter((ticket) => {
      const { at, id } = key(ticket);
      return (at > after.at || (at === after.at && id > after.id)) && at <= now - desk.incrementalLagMs;
    })
    .sort((a, b) => key(a).at - key(b).at || a.id - b.id);
  const page = changed.slice(0, size);
  const last = page.at(-1);
  const cursor = last ? encodeExportCursor(key(last).at, last.id) : encodeExportCursor(after.at, after.id);
  return {
    status: 200,
    json: {
      tickets: page.map((ticket) => ({ ...ticketJson(ticket, desk), generated_timestamp: Math.floor(key(ticket).at / 1000) })),
      after_url: `${desk.baseUrl}/api/v2/incremental/tickets/cursor.json?cursor=${cursor}`,
      after_cursor: cursor,
      before_url: null,
      before_cursor: null,
      end_of_stream: changed.length <= size,
      ...sideloads(page, params, desk),
    },
  };
}

interface TicketUpdate {
  status?: string;
  priority?: string;
  comment?: { body?: string; public?: boolean };
  additional_tags?: string[];
  safe_update?: boolean;
  updated_stamp?: string;
}

/**
 * The tags of an organization (Tags API): GET lists them, PUT adds the tags sent, DELETE removes
 * them, POST replaces them all (201); each answers `{"tags": [...]}` as they are afterwards.
 * Zendesk keeps tags lower-case and splits them at spaces. Zendesk documents no safe update for
 * organizations, so none is offered here; a change bumps the organization's updated_at.
 */
function organizationTags(method: string, id: number, body: string, desk: Desk): Reply {
  const organization = desk.data.organizations.get(id);
  if (!organization) return notFound();
  if (method === 'GET') return { status: 200, json: { tags: [...organization.tags] } };
  if (method !== 'PUT' && method !== 'DELETE' && method !== 'POST') {
    return { status: 404, json: { error: 'InvalidEndpoint', description: 'Not found' } };
  }
  let sent: unknown;
  try {
    sent = (JSON.parse(body) as { tags?: unknown }).tags;
  } catch {
    return badRequest('InvalidJSON', 'The request body is not valid JSON');
  }
  if (!Array.isArray(sent) || !sent.every((tag) => typeof tag === 'string')) {
    return badRequest('InvalidParameter', 'tags: expected an array of strings');
  }
  const tags = [...new Set(sent.flatMap((tag) => tag.toLowerCase().split(/\s+/)).filter(Boolean))];
  const before = organization.tags;
  const after =
    method === 'PUT'
      ? [...before, ...tags.filter((tag) => !before.includes(tag))]
      : method === 'DELETE'
        ? before.filter((tag) => !tags.includes(tag))
        : tags;
  if (JSON.stringify(after) !== JSON.stringify(before)) {
    organization.tags = after;
    organization.updated_at = new Date(Math.max(Date.now(), Date.parse(organization.updated_at) + 1000))
      .toISOString()
      .replace(/\.\d{3}Z$/, 'Z');
    desk.notify(
      organizationEventPayload('tags_changed', organization, {
        tags_added: after.filter((tag) => !before.includes(tag)),
        tags_removed: before.filter((tag) => !after.includes(tag)),
      }),
    );
  }
  return { status: method === 'POST' ? 201 : 200, json: { tags: [...organization.tags] } };
}

// ---------------------------------------------------------------------------------------------
// Custom object records (Custom Objects API). Its errors come as a list, {"errors":[{code,
// status, title, detail}]}, rather than the Support API's {"error","description"}.
// ---------------------------------------------------------------------------------------------

const RECORD_PAGE_LIMIT = 100;
/** Without a sort, Zendesk orders records by relevance and returns only the first 10,000. */
const UNSORTED_RECORDS_LIMIT = 10_000;

const objectError = (status: number, code: string, title: string, detail: string): Reply => ({
  status,
  json: { errors: [{ code, status: String(status), title, detail }] },
});
const objectNotFound = (key: string) => objectError(404, 'NotFound', 'Not Found', `Custom object ${key} was not found`);
const objectBadRequest = (detail: string) => objectError(400, 'InvalidParameter', 'Bad Request', detail);
const objectInvalid = (detail: string) => objectError(422, 'RecordInvalid', 'Record validation errors', detail);

/** Zendesk's timestamps: whole seconds, UTC. */
const deskNow = () => new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
let recordSequence = 0;
/** A ULID-shaped id (26 characters of Crockford base32: the time, then a sequence), as Zendesk gives records. */
function newRecordId(): string {
  const digits = (value: number, length: number) => {
    let text = '';
    for (let i = 0; i < length; i += 1, value = Math.floor(value / 32)) text = CROCKFORD[value % 32]! + text;
    return text;
  };
  recordSequence += 1;
  return digits(Date.now(), 10) + digits(recordSequence, 16);
}

const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * A field value as the record stores it, or the reason it is invalid. A lookup field takes the
 * related record's id, or `external_id:<id>` (then the id it names is stored).
 */
function fieldValue(field: DeskCustomObjectField, value: unknown, desk: Desk): FieldValue | { invalid: string } {
  if (value === null) return null;
  switch (field.type) {
    case 'text':
      return typeof value === 'string' ? value : { invalid: `${field.key}: expected a string` };
    case 'integer':
      return typeof value === 'number' && Number.isSafeInteger(value) ? value : { invalid: `${field.key}: expected an integer` };
    case 'checkbox':
      return typeof value === 'boolean' ? value : { invalid: `${field.key}: expected true or false` };
    case 'date':
      return typeof value === 'string' && /^\d{4}-\d{2}-\d{2}$/.test(value) && !Number.isNaN(Date.parse(value))
        ? value
        : { invalid: `${field.key}: expected a date (YYYY-MM-DD)` };
    case 'lookup': {
      if (typeof value !== 'string' && typeof value !== 'number') return { invalid: `${field.key}: expected a record id` };
      const text = String(value);
      const organization = text.startsWith('external_id:')
        ? [...desk.data.organizations.values()].find((candidate) => candidate.external_id === text.slice('external_id:'.length))
        : /^\d+$/.test(text)
          ? desk.data.organizations.get(Number(text))
          : undefined;
      return organization ? String(organization.id) : { invalid: `${field.key}: no organization ${text}` };
    }
  }
}

/**
 * `PATCH /api/v2/custom_objects/{key}/records?external_id=...`: updates the record with that
 * external id (only the attributes sent) or creates it. Upserting by name needs a unique name
 * field, which this server's objects do not have.
 */
function upsertCustomObjectRecord(key: string, params: URLSearchParams, body: string, desk: Desk): Reply {
  const object = desk.data.customObjects.get(key);
  if (!object) return objectNotFound(key);
  const externalId = params.get('external_id');
  if (params.has('name')) {
    return objectBadRequest(
      externalId === null ? 'The name field of this object is not unique' : 'External id and name cannot be used together',
    );
  }
  if (!externalId) return objectBadRequest('external_id is required');
  let input: { name?: unknown; custom_object_fields?: unknown };
  try {
    const parsed = JSON.parse(body) as { custom_object_record?: unknown };
    if (!isPlainObject(parsed.custom_object_record)) return objectBadRequest('The body needs a custom_object_record object');
    input = parsed.custom_object_record;
  } catch {
    return objectBadRequest('The request body is not valid JSON');
  }
  if (input.name !== undefined && (typeof input.name !== 'string' || input.name.trim() === '')) {
    return objectInvalid('name: must be a non-empty string');
  }
  if (input.custom_object_fields !== undefined && !isPlainObject(input.custom_object_fields)) {
    return objectInvalid('custom_object_fields: expected an object');
  }
  const fields: Record<string, FieldValue> = {};
  for (const [fieldKey, value] of Object.entries(input.custom_object_fields ?? {})) {
    const field = object.fields.find((candidate) => candidate.key === fieldKey);
    if (!field) return objectInvalid(`${fieldKey}: not a field of ${key}`);
    const stored = fieldValue(field, value, desk);
    if (isPlainObject(stored)) return objectInvalid(stored.invalid);
    fields[fieldKey] = stored;
  }
  const now = deskNow();
  const user = String(desk.apiUser.id);
  const existing = [...desk.data.customObjectRecords.values()].find(
    (record) => record.custom_object_key === key && record.external_id === externalId,
  );
  if (existing) {
    if (typeof input.name === 'string') existing.name = input.name;
    existing.custom_object_fields = { ...existing.custom_object_fields, ...fields };
    existing.updated_at = now;
    existing.updated_by_user_id = user;
    return { status: 200, json: { custom_object_record: recordJson(existing, desk) } };
  }
  if (typeof input.name !== 'string') return objectInvalid('name: is required');
  const record: DeskCustomObjectRecord = {
    id: newRecordId(),
    custom_object_key: key,
    name: input.name,
    external_id: externalId,
    custom_object_fields: { ...Object.fromEntries(object.fields.map((field) => [field.key, null])), ...fields },
    created_by_user_id: user,
    updated_by_user_id: user,
    created_at: now,
    updated_at: now,
  };
  desk.data.customObjectRecords.set(record.id, record);
  return { status: 200, json: { custom_object_record: recordJson(record, desk) } };
}

type RecordPredicate = (record: DeskCustomObjectRecord) => boolean;
type AttributeType = DeskCustomObjectField['type'] | 'date';

/** The fields a filter may name: custom fields under `custom_object_fields.`, standard ones bare. */
function attributeOf(
  name: string,
  object: DeskCustomObject,
): { type: AttributeType; read: (record: DeskCustomObjectRecord) => unknown } | string {
  const custom = /^custom_object_fields\.(.+)$/.exec(name);
  if (custom) {
    const field = object.fields.find((candidate) => candidate.key === custom[1]);
    if (!field) return `${name}: not a field of ${object.key}`;
    return { type: field.type, read: (record) => record.custom_object_fields[field.key] ?? null };
  }
  switch (name) {
    case 'name':
    case 'external_id':
      return { type: 'text', read: (record) => record[name] };
    case 'created_at':
    case 'updated_at':
      return { type: 'date', read: (record) => record[name] };
    default:
      return `This server does not filter on "${name}"`;
  }
}

const RANGE_OPERATORS: Record<string, (order: number) => boolean> = {
  $gt: (order) => order > 0,
  $gte: (order) => order >= 0,
  $lt: (order) => order < 0,
  $lte: (order) => order <= 0,
};

/**
 * One operator of a comparison object. Whether Zendesk compares text with regard to case is not
 * documented: here it does not, the looser answer, so an adapter that takes matches as exact
 * finds out here.
 */
function comparisonOf(
  name: string,
  type: AttributeType,
  read: (record: DeskCustomObjectRecord) => unknown,
  operator: string,
  expected: unknown,
) {
  if (type === 'checkbox') {
    if (typeof expected !== 'boolean') return `${name} ${operator}: expected true or false`;
    // An unset checkbox reads as false.
    if (operator === '$eq') return (record: DeskCustomObjectRecord) => (read(record) === true) === expected;
    if (operator === '$noteq') return (record: DeskCustomObjectRecord) => (read(record) === true) !== expected;
    return `${name}: ${operator} is not supported on a checkbox field`;
  }
  if (typeof expected !== 'string' && typeof expected !== 'number') return `${name} ${operator}: expected a string or a number`;
  const normalize = (value: unknown): string | number | null => {
    if (value === null || value === undefined) return null;
    if (type === 'integer') return Number(value);
    if (type === 'date') return Date.parse(String(value));
    if (type === 'text') return String(value).toLowerCase();
    return String(value);
  };
  const target = normalize(expected);
  if (typeof target === 'number' && Number.isNaN(target)) return `${name} ${operator}: "${expected}" is not a ${type}`;
  if (operator === '$eq') return (record: DeskCustomObjectRecord) => normalize(read(record)) === target;
  if (operator === '$noteq') return (record: DeskCustomObjectRecord) => normalize(read(record)) !== target;
  const range = RANGE_OPERATORS[operator];
  if (!range) return `This server does not support the operator "${operator}"`;
  if (type !== 'integer' && type !== 'date') return `${name}: ${operator} needs a number or a date field`;
  return (record: DeskCustomObjectRecord) => {
    const actual = normalize(read(record));
    return typeof actual === 'number' && typeof target === 'number' && range(actual - target);
  };
}

/** A filter: attributes with comparison objects, and `$and` / `$or` arrays of filters; all must match. */
function compileFilter(filter: unknown, object: DeskCustomObject): RecordPredicate | string {
  if (!isPlainObject(filter)) return 'filter: expected an object';
  const parts: RecordPredicate[] = [];
  for (const [name, value] of Object.entries(filter)) {
    if (name === '$and' || name === '$or') {
      if (!Array.isArray(value) || value.length === 0) return `${name}: expected a non-empty array of filters`;
      const nested = value.map((entry) => compileFilter(entry, object));
      const error = nested.find((entry): entry is string => typeof entry === 'string');
      if (error !== undefined) return error;
      const predicates = nested as RecordPredicate[];
      parts.push(name === '$and' ? (record) => predicates.every((p) => p(record)) : (record) => predicates.some((p) => p(record)));
      continue;
    }
    const attribute = attributeOf(name, object);
    if (typeof attribute === 'string') return attribute;
    if (!isPlainObject(value) || Object.keys(value).length === 0) return `${name}: expected a comparison object`;
    for (const [operator, expected] of Object.entries(value)) {
      const predicate = comparisonOf(name, attribute.type, attribute.read, operator, expected);
      if (typeof predicate === 'string') return predicate;
      parts.push(predicate);
    }
  }
  return (record) => parts.every((predicate) => predicate(record));
}

const RECORD_SORT_KEYS: Record<string, (record: DeskCustomObjectRecord) => string | number> = {
  name: (record) => record.name.toLowerCase(),
  created_at: (record) => Date.parse(record.created_at),
  updated_at: (record) => Date.parse(record.updated_at),
};

/** `query` matches records whose text fields (or name) have a word beginning with one of its words. */
function textMatches(record: DeskCustomObjectRecord, object: DeskCustomObject, query: string): boolean {
  const words = query.toLowerCase().split(/\s+/).filter(Boolean);
  const texts = [
    record.name,
    ...object.fields.filter((field) => field.type === 'text').map((field) => record.custom_object_fields[field.key]),
  ];
  const recordWords = texts.flatMap((text) => (typeof text === 'string' ? text.toLowerCase().split(/\W+/) : []));
  return words.some((word) => recordWords.some((candidate) => candidate.startsWith(word)));
}

/**
 * `POST /api/v2/custom_objects/{key}/records/search` with `{"filter": ...}`: cursor pages
 * (`page[size]` at most 100, `page[after]`), ordered by `sort` (name, created_at, updated_at,
 * `-` for descending) or, without one, by relevance (recently updated first here) and cut at
 * the first 10,000.
 */
function filteredSearchCustomObjectRecords(key: string, params: URLSearchParams, body: string, desk: Desk): Reply {
  const object = desk.data.customObjects.get(key);
  if (!object) return objectNotFound(key);
  const size = Number(params.get('page[size]') ?? RECORD_PAGE_LIMIT);
  if (!Number.isInteger(size) || size < 1 || size > RECORD_PAGE_LIMIT) {
    return objectBadRequest(`page[size]: between 1 and ${RECORD_PAGE_LIMIT}`);
  }
  if (params.has('page[before]')) return objectBadRequest('This server pages forwards only (page[after])');
  const sort = params.get('sort');
  const sortKey = sort === null ? undefined : RECORD_SORT_KEYS[sort.replace(/^-/, '')];
  if (sort !== null && !sortKey) return objectBadRequest(`sort: one of name, created_at, updated_at, each optionally with a leading -`);
  let filter: RecordPredicate = () => true;
  if (body.trim() !== '') {
    let parsed: { filter?: unknown };
    try {
      parsed = JSON.parse(body) as { filter?: unknown };
    } catch {
      return objectBadRequest('The request body is not valid JSON');
    }
    if (parsed.filter !== undefined) {
      const compiled = compileFilter(parsed.filter, object);
      if (typeof compiled === 'string') return objectBadRequest(compiled);
      filter = compiled;
    }
  }
  const query = params.get('query');
  const matched = [...desk.data.customObjectRecords.values()].filter(
    (record) => record.custom_object_key === key && filter(record) && (!query || query === '*' || textMatches(record, object, query)),
  );
  const direction = sort?.startsWith('-') ? -1 : 1;
  const by = sortKey ?? RECORD_SORT_KEYS.updated_at!;
  const ordered = matched.sort((a, b) => {
    const [x, y] = [by(a), by(b)];
    return ((x < y ? -1 : x > y ? 1 : 0) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)) * (sortKey ? direction : -1);
  });
  const records = sortKey ? ordered : ordered.slice(0, UNSORTED_RECORDS_LIMIT);
  const { page, meta, links } = cursorPage(
    records,
    (record) => record.id,
    params,
    RECORD_PAGE_LIMIT,
    (cursor) => {
      const next = new URLSearchParams(params);
      next.set('page[after]', cursor);
      return `${desk.baseUrl}/api/v2/custom_objects/${key}/records/search?${next.toString()}`;
    },
  );
  return {
    status: 200,
    json: { custom_object_records: page.map((record) => recordJson(record, desk)), meta, links, count: records.length },
  };
}

// ---------------------------------------------------------------------------------------------
// Search: the query language's terms the adapter uses. One keyword given several values matches
// any of them; different keywords, ranges and words must all match.
// ---------------------------------------------------------------------------------------------

const STATUS_ORDER = ['new', 'open', 'pending', 'hold', 'solved', 'closed'];
const PRIORITY_ORDER = ['low', 'normal', 'high', 'urgent'];

type Term = { keyword: string; operator: ':' | '<' | '>'; value: string; quoted: boolean } | { word: string };
type Predicate = (ticket: DeskTicket, desk: Desk) => boolean;

function parseQuery(query: string): Term[] | string {
  const terms: Term[] = [];
  for (const match of query.matchAll(/([a-z_0-9]+)([:<>])(?:"([^"]*)"|(\S+))|"([^"]*)"|(\S+)/gi)) {
    const [, keyword, operator, quotedValue, value, phraseWord, word] = match;
    if (keyword && operator) {
      terms.push({
        keyword: keyword.toLowerCase(),
        operator: operator as ':' | '<' | '>',
        value: quotedValue ?? value ?? '',
        quoted: quotedValue !== undefined,
      });
    } else {
      terms.push({ word: (phraseWord ?? word ?? '').toLowerCase() });
    }
  }
  const type = terms.find((term) => 'keyword' in term && term.keyword === 'type');
  if (!type || !('keyword' in type) || type.value !== 'ticket') return 'This server searches tickets only: the query needs type:ticket';
  return terms;
}

function compare(actual: string | number | null, operator: ':' | '<' | '>', expected: string | number): boolean {
  if (actual === null) return false;
  if (operator === '<') return actual < expected;
  if (operator === '>') return actual > expected;
  return actual === expected;
}

function rank(order: readonly string[], value: string | null): number | null {
  const index = value === null ? -1 : order.indexOf(value);
  return index === -1 ? null : index;
}

/** A user named by id, email or name (and `none` for nobody). */
function personMatches(userId: number | null, value: string, desk: Desk): boolean {
  if (value === 'none') return userId === null;
  if (/^\d+$/.test(value)) return userId === Number(value);
  const user = userId === null ? undefined : desk.data.users.get(userId);
  return !!user && (user.email?.toLowerCase() === value.toLowerCase() || user.name.toLowerCase() === value.toLowerCase());
}

function predicateFor(term: Extract<Term, { keyword: string }>): Predicate | string {
  const { keyword, operator, value, quoted } = term;
  const lower = value.toLowerCase();
  const field = /^custom_field_(\d+)$/.exec(keyword);
  if (field) {
    const fieldId = Number(field[1]);
    return (ticket) => {
      const actual = ticket.custom_fields.find((entry) => entry.id === fieldId)?.value?.toLowerCase();
      // A phrase matches the whole value; a bare word also matches values it begins.
      return actual !== undefined && (quoted ? actual === lower : actual.startsWith(lower));
    };
  }
  switch (keyword) {
    case 'type':
      return () => true;
    case 'status':
      return (ticket) => compare(rank(STATUS_ORDER, ticket.status), operator, rank(STATUS_ORDER, lower) ?? Number.NaN);
    case 'priority':
      return (ticket) => compare(rank(PRIORITY_ORDER, ticket.priority), operator, rank(PRIORITY_ORDER, lower) ?? Number.NaN);
    case 'ticket_type':
      return (ticket) => ticket.type === lower;
    case 'tags':
      return (ticket) => ticket.tags.includes(lower);
    case 'organization':
      return (ticket, desk) =>
        lower === 'none'
          ? ticket.organization_id === null
          : /^\d+$/.test(lower)
            ? ticket.organization_id === Number(lower)
            : desk.data.organizations.get(ticket.organization_id ?? -1)?.name.toLowerCase() === lower;
    case 'requester':
      return (ticket, desk) => personMatches(ticket.requester_id, value, desk);
    case 'assignee':
      return (ticket, desk) => personMatches(ticket.assignee_id, value, desk);
    case 'created':
    case 'updated': {
      const at = Date.parse(value);
      if (Number.isNaN(at)) return `${keyword}: "${value}" is not a date`;
      return (ticket) => compare(Date.parse(keyword === 'created' ? ticket.created_at : ticket.updated_at), operator, at);
    }
    default:
      return `This server does not support the search keyword "${keyword}"`;
  }
}

/** The tickets a query matches, or the reason it cannot be answered. */
function matchTickets(query: string, desk: Desk): DeskTicket[] | string {
  const terms = parseQuery(query);
  if (typeof terms === 'string') return terms;
  const anyOf = new Map<string, Predicate[]>();
  const allOf: Predicate[] = [];
  for (const term of terms) {
    if ('word' in term) {
      allOf.push((ticket) =>
        `${ticket.subject} ${ticket.description ?? ''}`
          .toLowerCase()
          .split(/\W+/)
          .some((word) => word.startsWith(term.word)),
      );
      continue;
    }
    const predicate = predicateFor(term);
    if (typeof predicate === 'string') return predicate;
    if (term.operator === ':') anyOf.set(term.keyword, [...(anyOf.get(term.keyword) ?? []), predicate]);
    else allOf.push(predicate);
  }
  const groups = [...anyOf.values()];
  return [...desk.data.tickets.values()].filter(
    (ticket) =>
      allOf.every((predicate) => predicate(ticket, desk)) && groups.every((group) => group.some((predicate) => predicate(ticket, desk))),
  );
}

const SORT_KEYS: Record<string, (ticket: DeskTicket) => string | number> = {
  created_at: (ticket) => ticket.created_at,
  updated_at: (ticket) => ticket.updated_at,
  priority: (ticket) => rank(PRIORITY_ORDER, ticket.priority) ?? -1,
  status: (ticket) => rank(STATUS_ORDER, ticket.status) ?? -1,
  ticket_type: (ticket) => ticket.type ?? '',
};

function sortTickets(tickets: DeskTicket[], sortBy: string | null, sortOrder: string | null): DeskTicket[] {
  // Without sort_by Zendesk orders by relevance; recently updated first is as good a stand-in.
  const key = SORT_KEYS[sortBy ?? 'updated_at'] ?? SORT_KEYS.updated_at!;
  const direction = sortOrder === 'asc' ? 1 : -1;
  return tickets.sort((a, b) => {
    const [x, y] = [key(a), key(b)];
    return (x < y ? -1 : x > y ? 1 : 0) * direction || (a.id - b.id) * direction;
  });
}

function search(params: URLSearchParams, desk: Desk): Reply {
  const matched = matchTickets(params.get('query') ?? '', desk);
  if (typeof matched === 'string') return badRequest('InvalidSearch', matched);
  const perPage = Math.min(100, Math.max(1, Number(params.get('per_page') ?? 100) || 100));
  const page = Math.max(1, Number(params.get('page') ?? 1) || 1);
  if (page * perPage > SEARCH_RESULTS_LIMIT) {
    return {
      status: 422,
      json: { error: 'InvalidPaginationParameter', description: 'Search results are limited to 1,000; use the export endpoint' },
    };
  }
  const sorted = sortTickets(matched, params.get('sort_by'), params.get('sort_order'));
  const results = sorted
    .slice((page - 1) * perPage, page * perPage)
    .map((ticket) => ({ ...ticketJson(ticket, desk), result_type: 'ticket' }));
  const link = (n: number) => {
    const next = new URLSearchParams(params);
    next.set('page', String(n));
    return `${desk.baseUrl}/api/v2/search.json?${next.toString()}`;
  };
  const hasNext = page * perPage < Math.min(sorted.length, SEARCH_RESULTS_LIMIT);
  return {
    status: 200,
    json: {
      results,
      facets: null,
      next_page: hasNext ? link(page + 1) : null,
      previous_page: page > 1 ? link(page - 1) : null,
      count: sorted.length,
    },
  };
}

function searchCount(params: URLSearchParams, desk: Desk): Reply {
  const matched = matchTickets(params.get('query') ?? '', desk);
  if (typeof matched === 'string') return badRequest('InvalidSearch', matched);
  return { status: 200, json: { count: matched.length } };
}

function searchExport(params: URLSearchParams, desk: Desk): Reply {
  if (params.get('filter[type]') !== 'ticket')
    return badRequest('InvalidParameter', 'filter[type] is required (this server exports tickets)');
  const matched = matchTickets(params.get('query') ?? '', desk);
  if (typeof matched === 'string') return badRequest('InvalidSearch', matched);
  const tickets = matched.sort((a, b) => a.id - b.id);
  const { page, meta, links } = cursorPage(
    tickets,
    (ticket) => ticket.id,
    params,
    1000,
    (cursor) => {
      const next = new URLSearchParams(params);
      next.set('page[after]', cursor);
      return `${desk.baseUrl}/api/v2/search/export.json?${next.toString()}`;
    },
  );
  return {
    status: 200,
    json: { results: page.map((ticket) => ({ ...ticketJson(ticket, desk), result_type: 'ticket' })), facets: null, meta, links },
  };
}

// ---------------------------------------------------------------------------------------------
// Resource JSON.
// ---------------------------------------------------------------------------------------------

function ticketJson(ticket: DeskTicket, desk: Desk) {
  return {
    url: `${desk.baseUrl}/api/v2/tickets/${ticket.id}.json`,
    id: ticket.id,
    external_id: ticket.external_id,
    via: { channel: 'web', source: { from: {}, to: {}, rel: null } },
    created_at: ticket.created_at,
    updated_at: ticket.updated_at,
    type: ticket.type,
    subject: ticket.subject,
    raw_subject: ticket.subject,
    description: ticket.description,
    priority: ticket.priority,
    status: ticket.status,
    recipient: null,
    requester_id: ticket.requester_id,
    submitter_id: ticket.submitter_id,
    assignee_id: ticket.assignee_id,
    organization_id: ticket.organization_id,
    group_id: ticket.group_id,
    collaborator_ids: [],
    follower_ids: [],
    email_cc_ids: [],
    has_incidents: false,
    is_public: true,
    due_at: ticket.due_at,
    tags: [...ticket.tags],
    custom_fields: ticket.custom_fields.map((field) => ({ ...field })),
    fields: ticket.custom_fields.map((field) => ({ ...field })),
    satisfaction_rating: null,
    sharing_agreement_ids: [],
    allow_channelback: false,
    allow_attachments: true,
  };
}

function userJson(user: DeskUser, desk: Desk) {
  return {
    id: user.id,
    url: `${desk.baseUrl}/api/v2/users/${user.id}.json`,
    name: user.name,
    email: user.email,
    created_at: user.created_at,
    updated_at: user.created_at,
    time_zone: 'UTC',
    role: user.role,
    organization_id: user.organization_id,
    external_id: user.external_id,
    tags: [],
    active: true,
    verified: true,
    suspended: false,
  };
}

function organizationJson(organization: DeskOrganization, desk: Desk) {
  return {
    url: `${desk.baseUrl}/api/v2/organizations/${organization.id}.json`,
    id: organization.id,
    name: organization.name,
    shared_tickets: false,
    shared_comments: false,
    external_id: organization.external_id,
    created_at: organization.created_at,
    updated_at: organization.updated_at,
    domain_names: [...organization.domain_names],
    details: '',
    notes: '',
    group_id: null,
    tags: [...organization.tags],
    organization_fields: {},
  };
}

function commentJson(comment: DeskComment) {
  return {
    id: comment.id,
    type: 'Comment',
    author_id: comment.author_id,
    body: comment.body,
    html_body: `<div class="zd-comment"><p>${comment.body.replace(/&/g, '&amp;').replace(/</g, '&lt;')}</p></div>`,
    plain_body: comment.body,
    public: comment.public,
    attachments: [],
    audit_id: comment.id,
    via: { channel: 'web', source: { from: {}, to: {}, rel: null } },
    created_at: comment.created_at,
    metadata: { system: {}, custom: {} },
  };
}

function recordJson(record: DeskCustomObjectRecord, desk: Desk) {
  return {
    url: `${desk.baseUrl}/api/v2/custom_objects/${record.custom_object_key}/records/${record.id}.json`,
    id: record.id,
    name: record.name,
    custom_object_key: record.custom_object_key,
    custom_object_fields: { ...record.custom_object_fields },
    created_by_user_id: record.created_by_user_id || String(desk.apiUser.id),
    updated_by_user_id: record.updated_by_user_id || String(desk.apiUser.id),
    created_at: record.created_at,
    updated_at: record.updated_at,
    external_id: record.external_id,
    photo: null,
  };
}
