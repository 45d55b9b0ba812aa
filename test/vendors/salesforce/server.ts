import { randomInt } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Database } from '../../../platform/sqlite.ts';
import { BASE62, newSalesforceId } from '../../../subgraphs/crm/src/connectors/embedded/ids.ts';

/**
 * A local stand-in for a Salesforce org's REST API (`/services/data/v59.0/...`), answering in
 * Salesforce's shapes: status codes, JSON error arrays with `application/json;charset=UTF-8`,
 * `Sforce-Limit-Info` on every response, query paging with nextRecordsUrl, 401
 * INVALID_SESSION_ID for a token it does not accept, 414 for a URI over 16,384 bytes, Composite
 * requests (`POST /composite`) with allOrNone rollback, and validation rules that refuse a save.
 * Its data is a copy of a seeded embedded CRM database, so an adapter reading it can be compared
 * record for record with the embedded adapter. Faults can be switched on, and every request is
 * logged.
 */
export interface SalesforceServer {
  /** `http://127.0.0.1:PORT`, to pass as jsforce's instanceUrl. */
  readonly instanceUrl: string;
  readonly version: string;
  /** Every request received, in order (status 0: the connection was reset). */
  readonly requests: LoggedRequest[];
  readonly faults: SalesforceFaults;
  /** The one access token the org accepts; assigning a new one expires the old. */
  accessToken: string;
  /** Rows per query page (Salesforce: 2,000). */
  pageSize: number;
  /** Calls counted against the daily allocation so far, and the allocation. */
  readonly apiUsage: { used: number; limit: number };
  /** The org's records of one sObject type (live: created records appear). */
  records(sobject: SObjectType): readonly SObjectRecord[];
  /** Clears the log and the faults, and restores the original token and page size. */
  reset(): void;
  /**
   * Changes a record as a user of the org would (its LastModifiedDate set to now) and returns the
   * Change Data Capture event the org publishes for it, as a relay forwards it: the
   * ChangeEventHeader and the changed fields' new values.
   */
  change(sobject: SObjectType, id: string, fields: SObjectRecord): ChangeEvent;
  /** Deletes a record and returns its DELETE change event (a header without fields, as Salesforce sends it). */
  remove(sobject: SObjectType, id: string): ChangeEvent;
  close(): Promise<void>;
}

/** A Change Data Capture event (`<Object>ChangeEvent`) in its JSON form. */
export interface ChangeEvent {
  ChangeEventHeader: {
    entityName: SObjectType;
    recordIds: string[];
    changeType: 'CREATE' | 'UPDATE' | 'DELETE' | 'UNDELETE';
    changedFields: string[];
    changeOrigin: string;
    transactionKey: string;
    sequenceNumber: number;
    /** When the change was committed, in ms since the epoch. */
    commitTimestamp: number;
    /** The system change number of the transaction: increasing within the org's database instance. */
    commitNumber: number;
    commitUser: string;
  };
  [field: string]: unknown;
}

export interface LoggedRequest {
  method: string;
  /** Path below `/services/data/vNN.N` (`/query`, `/query/01g…-2000`, `/sobjects/Task`). */
  path: string;
  /** The decoded `q` parameter of a query. */
  soql: string | null;
  /** The bearer token presented. */
  token: string | null;
  status: number;
}

export type FaultKind =
  /** 503 SERVER_UNAVAILABLE. */
  | 'unavailable'
  /** 403 REQUEST_LIMIT_EXCEEDED (daily allocation used up). */
  | 'requestLimit'
  /** The TCP connection is destroyed without an answer. */
  | 'reset'
  /** 400 MALFORMED_QUERY whatever the statement. */
  | 'malformedQuery';

export interface SalesforceFaults {
  /** Delay before every answer. */
  latencyMs: number;
  /**
   * The next `count` requests fail this way (queued after any already pending); with `path`
   * (`/composite`), the next `count` requests to that path, whatever comes before them.
   */
  failNext(kind: FaultKind, count?: number, path?: string): void;
  /** Every token is rejected with 401, including a freshly refreshed one. */
  rejectEveryToken: boolean;
  /**
   * The org lacks this field (e.g. a custom field not deployed, or CurrencyIsoCode in a
   * single-currency org): naming it is INVALID_FIELD, and describe leaves it out.
   */
  hideField(sobject: SObjectType, field: string): void;
  /** A validation rule on the sObject, active until reset(). */
  addValidationRule(sobject: SObjectType, rule: ValidationRule): void;
}

/**
 * A validation rule: a create or update whose record, as it would be saved, matches `when` (any,
 * without it) fails with 400 FIELD_CUSTOM_VALIDATION_EXCEPTION and the rule's message, shown on
 * `field` when given (else at the top of the page: no fields). Nothing of the save is kept.
 */
export interface ValidationRule {
  message: string;
  field?: string;
  when?: (record: Readonly<SObjectRecord>) => boolean;
}

export type SObjectType = 'User' | 'Account' | 'Contact' | 'Contract' | 'Task' | 'Opportunity' | 'OpportunityLineItem' | 'Subscription__c';
type Value = string | number | boolean | null;
export type SObjectRecord = Record<string, Value>;

/** Starts the org on 127.0.0.1 on a free port, holding a copy of the embedded CRM's records. */
export async function startSalesforceServer(options: {
  /** A seeded embedded CRM database (see test/helpers/stack.ts seededDatabases()). */
  db: Database;
  version?: string;
  accessToken?: string;
  pageSize?: number;
  apiUsage?: { used: number; limit: number };
}): Promise<SalesforceServer> {
  const version = options.version ?? '59.0';
  const initialToken = options.accessToken ?? 'concord-test-session';
  const initialPageSize = options.pageSize ?? 2_000;
  const org = new Org(loadRecords(options.db));
  const usage = { ...(options.apiUsage ?? { used: 10_000, limit: 100_000 }) };
  const requests: LoggedRequest[] = [];
  let pending: { kind: FaultKind; path: string | undefined }[] = [];
  const state = {
    accessToken: initialToken,
    pageSize: initialPageSize,
    faults: {
      latencyMs: 0,
      rejectEveryToken: false,
      failNext(kind: FaultKind, count = 1, path?: string) {
        for (let i = 0; i < count; i += 1) pending.push({ kind, path });
      },
      hideField: (sobject: SObjectType, field: string) => org.hide(sobject, field),
      addValidationRule: (sobject: SObjectType, rule: ValidationRule) => org.addRule(sobject, rule),
    },
  };
  const cursors = new Map<string, { path: string; rows: unknown[] }>();

  const server = createServer({ maxHeaderSize: 64 * 1024 }, (req, res) => {
    const entry: LoggedRequest = { method: req.method ?? 'GET', path: '', soql: null, token: bearerToken(req), status: 0 };
    requests.push(entry);
    void handle(req, res, entry).catch((error: unknown) => {
      if (!res.headersSent) reply(res, entry, 500, [{ message: String(error), errorCode: 'UNKNOWN_EXCEPTION' }]);
    });
  });

  function reply(
    res: ServerResponse,
    entry: LoggedRequest,
    status: number,
    body?: unknown,
    contentType = 'application/json;charset=UTF-8',
  ) {
    entry.status = status;
    const headers: Record<string, string> = { 'Sforce-Limit-Info': `api-usage=${usage.used}/${usage.limit}` };
    if (body !== undefined) headers['Content-Type'] = contentType;
    res.writeHead(status, headers);
    res.end(body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body));
  }

  async function handle(req: IncomingMessage, res: ServerResponse, entry: LoggedRequest): Promise<void> {
    const rawUrl = req.url ?? '/';
    const url = new URL(rawUrl, 'http://127.0.0.1');
    const root = `/services/data/v${version}`;
    entry.path = url.pathname.startsWith(root) ? url.pathname.slice(root.length) || '/' : url.pathname;
    entry.soql = url.searchParams.get('q');
    const body = await readBody(req);
    if (state.faults.latencyMs > 0) await sleep(state.faults.latencyMs);
    const send = (status: number, payload?: unknown, contentType?: string) => reply(res, entry, status, payload, contentType);

    // Salesforce's edge refuses a request whose URI (or URI and headers) is over 16 KB.
    if (Buffer.byteLength(rawUrl) > 16_384) return send(414, '<html><body>414 Request-URI Too Long</body></html>', 'text/html');
    if (Buffer.byteLength(rawUrl) + headerBytes(req) > 16_384) {
      return send(431, '<html><body>431 Request Header Fields Too Large</body></html>', 'text/html');
    }
    if (!url.pathname.startsWith(`${root}/`) && url.pathname !== root) {
      return send(404, [{ errorCode: 'NOT_FOUND', message: 'The requested resource does not exist' }]);
    }

    const faultAt = pending.findIndex((candidate) => candidate.path === undefined || candidate.path === entry.path);
    const fault = faultAt < 0 ? undefined : pending.splice(faultAt, 1)[0]?.kind;
    if (fault === 'reset') {
      entry.status = 0;
      req.socket.destroy();
      return;
    }
    if (fault === 'unavailable')
      return send(503, [{ errorCode: 'SERVER_UNAVAILABLE', message: 'Server is unavailable. Please try again later.' }]);

    if (state.faults.rejectEveryToken || entry.token !== state.accessToken) {
      return send(401, [{ message: 'Session expired or invalid', errorCode: 'INVALID_SESSION_ID' }]);
    }
    usage.used += 1;
    if (fault === 'requestLimit') return send(403, [{ message: 'TotalRequests Limit exceeded.', errorCode: 'REQUEST_LIMIT_EXCEEDED' }]);
    if (fault === 'malformedQuery') return send(400, [{ message: 'unexpected token: FROM', errorCode: 'MALFORMED_QUERY' }]);

    const answer = route(entry.method, entry.path, url.searchParams, body);
    send(answer.status, answer.body);
  }

  function route(method: string, path: string, params: URLSearchParams, body: string): Answer {
    const segments = path.split('/').filter(Boolean).map(decodeURIComponent);
    const [resource, ...rest] = segments;
    const allow = (...methods: string[]): Answer | null =>
      methods.includes(method)
        ? null
        : error(405, 'METHOD_NOT_ALLOWED', `HTTP Method '${method}' not allowed. Allowed are ${methods.join(',')}`);
    try {
      if ((resource === 'query' || resource === 'queryAll') && rest.length === 0) {
        return allow('GET') ?? runQuery(resource, params.get('q'));
      }
      if ((resource === 'query' || resource === 'queryAll') && rest.length === 1) return allow('GET') ?? nextPage(rest[0]!);
      if (resource === 'limits' && rest.length === 0) return allow('GET') ?? limits();
      if (resource === 'composite' && rest.length === 0) return allow('POST') ?? composite(parseJson(body));
      if (resource === 'composite' && rest[0] === 'sobjects' && rest.length === 2)
        return allow('POST') ?? org.retrieveMany(rest[1]!, parseJson(body), base());
      if (resource === 'sobjects' && rest.length === 1) return allow('POST') ?? org.create(rest[0]!, parseJson(body));
      if (resource === 'sobjects' && rest.length === 2 && rest[1] === 'describe') return allow('GET') ?? org.describe(rest[0]!, base());
      if (resource === 'sobjects' && rest.length === 2) {
        return (
          allow('GET', 'PATCH') ??
          (method === 'PATCH'
            ? org.update(rest[0]!, rest[1]!, parseJson(body))
            : org.retrieveOne(rest[0]!, rest[1]!, params.get('fields'), base()))
        );
      }
      if (resource === 'sobjects' && rest.length === 3) return allow('PATCH') ?? org.upsert(rest[0]!, rest[1]!, rest[2]!, parseJson(body));
      return error(404, 'NOT_FOUND', 'The requested resource does not exist');
    } catch (failure) {
      if (failure instanceof ApiError) return failure.answer;
      throw failure;
    }
  }

  const base = () => `/services/data/v${version}`;

  /**
   * POST /composite `{allOrNone, collateSubrequests, compositeRequest: [{method, url, referenceId,
   * body?}]}`: the subrequests in order, each answered as on its own, `@{ref.field}` in a url or
   * body replaced from an earlier answer. 200 `{compositeResponse: [{body, httpHeaders,
   * httpStatusCode, referenceId}]}` whatever they did. With allOrNone a failure stops the run and
   * rolls every change back: the failed subrequest keeps its error, every other one answers 400
   * PROCESSING_HALTED. Without it, a subrequest naming a failed one is not run (PROCESSING_HALTED).
   * Counted as one call.
   */
  function composite(input: unknown): Answer {
    const { allOrNone, compositeRequest } = (input ?? {}) as { allOrNone?: unknown; compositeRequest?: unknown };
    if (!Array.isArray(compositeRequest) || compositeRequest.length === 0) {
      return error(400, 'JSON_PARSER_ERROR', 'compositeRequest: a list of subrequests is required');
    }
    if (compositeRequest.length > MAX_SUBREQUESTS) {
      return error(400, 'LIMIT_EXCEEDED', `A composite request can have at most ${MAX_SUBREQUESTS} subrequests`);
    }
    const subrequests = compositeRequest.map((item: unknown) => {
      const { method, url, referenceId, body } = (item ?? {}) as Record<string, unknown>;
      if (typeof method !== 'string' || !['GET', 'POST', 'PATCH', 'PUT', 'DELETE'].includes(method) || typeof url !== 'string') {
        return fail(400, 'JSON_PARSER_ERROR', 'Each subrequest needs a method (GET, POST, PATCH, PUT, DELETE) and a url');
      }
      if (typeof referenceId !== 'string' || !/^[A-Za-z0-9_]+$/.test(referenceId)) {
        return fail(400, 'JSON_PARSER_ERROR', `Invalid referenceId: ${JSON.stringify(referenceId ?? null)}`);
      }
      return { method, url, referenceId, body };
    });
    const seen = new Set<string>();
    for (const { referenceId } of subrequests) {
      if (seen.has(referenceId)) return error(400, 'JSON_PARSER_ERROR', `Duplicate referenceId provided in the request: ${referenceId}`);
      seen.add(referenceId);
    }

    const atomic = allOrNone === true;
    const rollback = atomic ? org.snapshot() : null;
    const answers = new Map<string, Answer>();
    const results: CompositeResult[] = [];
    let failedAt = -1;
    for (const subrequest of subrequests) {
      if (atomic && failedAt >= 0) break;
      const answer = runSubrequest(subrequest, answers);
      answers.set(subrequest.referenceId, answer);
      results.push({
        body: answer.body ?? null,
        httpHeaders: locationHeader(subrequest.url, answer),
        httpStatusCode: answer.status,
        referenceId: subrequest.referenceId,
      });
      if (answer.status >= 400 && failedAt < 0) failedAt = results.length - 1;
    }
    if (rollback && failedAt >= 0) {
      rollback();
      const compositeResponse = subrequests.map(({ referenceId }, i): CompositeResult =>
        i === failedAt ? results[i]! : halted(referenceId),
      );
      return { status: 200, body: { compositeResponse } };
    }
    return { status: 200, body: { compositeResponse: results } };
  }

  function runSubrequest(subrequest: { method: string; url: string; body: unknown }, earlier: Map<string, Answer>): Answer {
    let url: string;
    let body: string;
    try {
      url = resolveReferences(subrequest.url, earlier, false);
      body = subrequest.body === undefined ? '' : resolveReferences(JSON.stringify(subrequest.body), earlier, true);
    } catch (failure) {
      if (failure instanceof ApiError) return failure.answer;
      throw failure;
    }
    const parsed = new URL(url, 'http://127.0.0.1');
    const root = base();
    if (!parsed.pathname.startsWith(`${root}/`) || parsed.pathname === `${root}/composite`) {
      return error(404, 'NOT_FOUND', 'The requested resource does not exist');
    }
    return route(subrequest.method, parsed.pathname.slice(root.length), parsed.searchParams, body);
  }

  function runQuery(resource: string, soql: string | null): Answer {
    if (!soql) return error(400, 'MALFORMED_QUERY', 'A query string has to be specified');
    const rows = org.query(soql, base());
    return page(resource, newCursorId(), rows, 0);
  }

  function nextPage(locator: string): Answer {
    const match = /^(01g[0-9A-Za-z]{15})-(\d+)$/.exec(locator);
    const cursor = match && cursors.get(match[1]!);
    if (!match || !cursor) return error(400, 'INVALID_QUERY_LOCATOR', 'invalid query locator');
    return page(cursor.path, match[1]!, cursor.rows, Number(match[2]));
  }

  function page(resource: string, cursorId: string, rows: unknown[], offset: number): Answer {
    const end = offset + state.pageSize;
    const body: Record<string, unknown> = { totalSize: rows.length, done: end >= rows.length, records: rows.slice(offset, end) };
    if (end < rows.length) {
      cursors.set(cursorId, { path: resource, rows });
      body.nextRecordsUrl = `${base()}/${resource}/${cursorId}-${end}`;
    }
    return { status: 200, body };
  }

  function limits(): Answer {
    return {
      status: 200,
      body: {
        DailyApiRequests: { Max: usage.limit, Remaining: usage.limit - usage.used },
        ConcurrentAsyncGetReportInstances: { Max: 200, Remaining: 200 },
        DailyBulkV2QueryJobs: { Max: 10_000, Remaining: 10_000 },
      },
    };
  }

  // The org's system change numbers: increasing, far from 1, as on a real instance.
  let commitNumber = 10_651_325_143_360;
  function changeHeader(
    sobject: SObjectType,
    recordIds: string[],
    changeType: ChangeEvent['ChangeEventHeader']['changeType'],
    changedFields: string[],
    at: Date,
  ): ChangeEvent['ChangeEventHeader'] {
    commitNumber += 1;
    return {
      entityName: sobject,
      recordIds,
      changeType,
      changedFields,
      changeOrigin: `com/salesforce/api/rest/${version}`,
      transactionKey: `0003${commitNumber.toString(16)}-${randomInt(1e9).toString(16)}`,
      sequenceNumber: 1,
      commitTimestamp: at.getTime(),
      commitNumber,
      commitUser: '005000000000001AAA',
    };
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    instanceUrl: `http://127.0.0.1:${port}`,
    version,
    requests,
    faults: state.faults,
    get accessToken() {
      return state.accessToken;
    },
    set accessToken(token: string) {
      state.accessToken = token;
    },
    get pageSize() {
      return state.pageSize;
    },
    set pageSize(size: number) {
      state.pageSize = size;
    },
    apiUsage: usage,
    records: (sobject) => org.records(sobject),
    change(sobject, id, fields) {
      const record = org.records(sobject).find((candidate) => candidate.Id === id);
      if (!record) throw new Error(`no ${sobject} ${id}`);
      const at = new Date();
      Object.assign(record, fields, { LastModifiedDate: salesforceDateTime(at) });
      const changedFields = [...Object.keys(fields), 'LastModifiedDate'];
      return {
        ChangeEventHeader: changeHeader(sobject, [id], 'UPDATE', changedFields, at),
        ...Object.fromEntries(changedFields.map((field) => [field, record[field] ?? null])),
      };
    },
    remove(sobject, id) {
      if (!org.remove(sobject, id)) throw new Error(`no ${sobject} ${id}`);
      return { ChangeEventHeader: changeHeader(sobject, [id], 'DELETE', [], new Date()) };
    },
    reset() {
      requests.length = 0;
      pending = [];
      state.faults.latencyMs = 0;
      state.faults.rejectEveryToken = false;
      state.accessToken = initialToken;
      state.pageSize = initialPageSize;
      org.unhideAll();
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}

// ---------------------------------------------------------------------------------------------
// HTTP helpers

interface Answer {
  status: number;
  body?: unknown;
}

interface CompositeResult {
  body: unknown;
  httpHeaders: Record<string, string>;
  httpStatusCode: number;
  referenceId: string;
}

const MAX_SUBREQUESTS = 25;

function halted(referenceId: string): CompositeResult {
  return {
    body: [
      {
        errorCode: 'PROCESSING_HALTED',
        message: 'The transaction was rolled back since another operation in the same transaction failed.',
      },
    ],
    httpHeaders: {},
    httpStatusCode: 400,
    referenceId,
  };
}

/** A created record's subrequest answers with its Location, as the REST API's header. */
function locationHeader(url: string, answer: Answer): Record<string, string> {
  const id = (answer.body as { id?: unknown } | null | undefined)?.id;
  if (answer.status !== 201 || typeof id !== 'string') return {};
  const sobject = /\/sobjects\/([^/?]+)/.exec(url)?.[1];
  const path = new URL(url, 'http://127.0.0.1').pathname;
  return sobject ? { Location: `${path.slice(0, path.indexOf('/sobjects/'))}/sobjects/${sobject}/${id}` } : {};
}

/**
 * Replaces `@{referenceId.path}` (path: `.field` and `[index]` steps) with the value at that path
 * in an earlier subrequest's answer: in a JSON body as a JSON value when it fills a whole string,
 * otherwise as text. A reference to a subrequest that failed, or to nothing, fails this one.
 */
function resolveReferences(text: string, earlier: Map<string, Answer>, json: boolean): string {
  const lookup = (reference: string): unknown => {
    const [name, ...steps] = reference.split(/\.|\[(\d+)\]/).filter((step) => step !== undefined && step !== '');
    const answer = name === undefined ? undefined : earlier.get(name);
    if (!answer || answer.status >= 400) {
      fail(400, 'PROCESSING_HALTED', `Invalid reference specified. No value for ${reference} found in ${name ?? ''}.`);
    }
    let value: unknown = answer.body;
    for (const step of steps) value = value && typeof value === 'object' ? (value as Record<string, unknown>)[step] : undefined;
    if (value === undefined) fail(400, 'PROCESSING_HALTED', `Invalid reference specified. No value for ${reference} found.`);
    return value;
  };
  const pattern = /@\{([A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+|\[\d+\])*)\}/g;
  if (json) {
    text = text.replace(new RegExp(`"${pattern.source}"`, 'g'), (_whole, reference: string) => JSON.stringify(lookup(reference)));
    return text.replace(pattern, (_whole, reference: string) => JSON.stringify(String(lookup(reference))).slice(1, -1));
  }
  return text.replace(pattern, (_whole, reference: string) => encodeURIComponent(String(lookup(reference))));
}

/** A failure answered as Salesforce does: a JSON array of `{message, errorCode, fields?}`. */
class ApiError extends Error {
  constructor(readonly answer: Answer) {
    super(JSON.stringify(answer.body));
  }
}

function error(status: number, errorCode: string, message: string, fields?: string[]): Answer {
  return { status, body: [{ message, errorCode, ...(fields ? { fields } : {}) }] };
}

function fail(status: number, errorCode: string, message: string, fields?: string[]): never {
  throw new ApiError(error(status, errorCode, message, fields));
}

function bearerToken(req: IncomingMessage): string | null {
  const match = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
  return match?.[1] ?? null;
}

function headerBytes(req: IncomingMessage): number {
  let bytes = 0;
  for (let i = 0; i < req.rawHeaders.length; i += 2) bytes += Buffer.byteLength(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`);
  return bytes;
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function parseJson(body: string): unknown {
  try {
    return JSON.parse(body) as unknown;
  } catch {
    return fail(400, 'JSON_PARSER_ERROR', `Unexpected character in the request body: ${body.slice(0, 40)}`);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function newCursorId(): string {
  let id = '01g';
  while (id.length < 18) id += BASE62.charAt(randomInt(BASE62.length));
  return id;
}

// ---------------------------------------------------------------------------------------------
// The org: schema and records

type FieldType = 'id' | 'reference' | 'string' | 'textarea' | 'picklist' | 'date' | 'datetime' | 'int' | 'double' | 'currency' | 'boolean';

interface ObjectSchema {
  keyPrefix: string;
  fields: Record<string, FieldType>;
  /** Relationship name → the lookup field holding the Id, and the object it points to. */
  relationships: Record<string, { field: string; to: SObjectType }>;
  /** Fields a client may set on insert and update. */
  writable: readonly string[];
  /** External ids, unique (case-insensitively, Salesforce's default): upsert keys. */
  externalIds: readonly string[];
  /** Other fields whose values are unique (case-insensitively): a clash is DUPLICATE_VALUE. */
  unique?: readonly string[];
}

const SCHEMA: Record<SObjectType, ObjectSchema> = {
  User: {
    keyPrefix: '005',
    fields: { Id: 'id', Name: 'string', Email: 'string', IsActive: 'boolean' },
    relationships: {},
    writable: [],
    externalIds: [],
  },
  Account: {
    keyPrefix: '001',
    fields: {
      Id: 'id',
      Name: 'string',
      AccountNumber: 'string',
      Type: 'picklist',
      Industry: 'picklist',
      Segment__c: 'picklist',
      OwnerId: 'reference',
      BillingStreet: 'textarea',
      BillingCity: 'string',
      BillingState: 'string',
      BillingPostalCode: 'string',
      BillingCountry: 'string',
      Phone: 'string',
      Website: 'string',
      AnnualRevenue: 'double',
      Tax_Registration_Number__c: 'string',
      Billing_Email__c: 'string',
      // Only in a multi-currency org: hideField makes the org single-currency.
      CurrencyIsoCode: 'picklist',
      Onboarding_Status__c: 'picklist',
      Onboarding_Reason__c: 'textarea',
      LastModifiedDate: 'datetime',
    },
    relationships: { Owner: { field: 'OwnerId', to: 'User' } },
    writable: [
      'Name',
      'AccountNumber',
      'Type',
      'Industry',
      'Segment__c',
      'OwnerId',
      'Phone',
      'Website',
      'AnnualRevenue',
      'Tax_Registration_Number__c',
      'Billing_Email__c',
      'CurrencyIsoCode',
      'Onboarding_Status__c',
      'Onboarding_Reason__c',
    ],
    externalIds: [],
    // Customer numbers are unique in the org, as in the embedded CRM.
    unique: ['AccountNumber'],
  },
  Contact: {
    keyPrefix: '003',
    fields: {
      Id: 'id',
      AccountId: 'reference',
      FirstName: 'string',
      LastName: 'string',
      Email: 'string',
      Phone: 'string',
      Title: 'string',
      LastModifiedDate: 'datetime',
    },
    relationships: { Account: { field: 'AccountId', to: 'Account' } },
    writable: ['AccountId', 'FirstName', 'LastName', 'Email', 'Phone', 'Title'],
    externalIds: [],
  },
  Contract: {
    keyPrefix: '800',
    fields: {
      Id: 'id',
      AccountId: 'reference',
      ContractNumber: 'string',
      Status: 'picklist',
      StartDate: 'date',
      EndDate: 'date',
      ContractTerm: 'int',
      SpecialTerms: 'textarea',
      SupportTier__c: 'picklist',
      LastModifiedDate: 'datetime',
    },
    relationships: { Account: { field: 'AccountId', to: 'Account' } },
    writable: ['AccountId', 'Status', 'StartDate', 'ContractTerm', 'SpecialTerms', 'SupportTier__c'],
    externalIds: [],
  },
  Task: {
    keyPrefix: '00T',
    fields: {
      Id: 'id',
      WhatId: 'reference',
      AccountId: 'reference',
      Subject: 'string',
      ActivityDate: 'date',
      Status: 'picklist',
      Priority: 'picklist',
      Description: 'textarea',
      TaskSubtype: 'picklist',
      CreatedDate: 'datetime',
      Concord_Key__c: 'string',
    },
    // Task.AccountId is derived by Salesforce from WhatId (or WhoId); clients cannot set it.
    relationships: { Account: { field: 'AccountId', to: 'Account' } },
    writable: ['WhatId', 'Subject', 'ActivityDate', 'Status', 'Priority', 'Description', 'TaskSubtype', 'Concord_Key__c'],
    externalIds: ['Concord_Key__c'],
  },
  Opportunity: {
    keyPrefix: '006',
    fields: {
      Id: 'id',
      AccountId: 'reference',
      Name: 'string',
      StageName: 'picklist',
      IsClosed: 'boolean',
      IsWon: 'boolean',
      CloseDate: 'date',
      Amount: 'currency',
      // Only in a multi-currency org: hideField makes the org single-currency.
      CurrencyIsoCode: 'picklist',
      ERP_Order_Number__c: 'string',
      ERP_Order_Status__c: 'picklist',
      Expected_Ship_Date__c: 'date',
      LastModifiedDate: 'datetime',
    },
    relationships: { Account: { field: 'AccountId', to: 'Account' } },
    // IsClosed and IsWon follow from the stage; clients cannot set them.
    writable: [
      'AccountId',
      'Name',
      'StageName',
      'CloseDate',
      'Amount',
      'CurrencyIsoCode',
      'ERP_Order_Number__c',
      'ERP_Order_Status__c',
      'Expected_Ship_Date__c',
    ],
    externalIds: [],
  },
  OpportunityLineItem: {
    keyPrefix: '00k',
    fields: {
      Id: 'id',
      OpportunityId: 'reference',
      // ProductCode and Name are the product's, read-only on the line.
      ProductCode: 'string',
      Name: 'string',
      Quantity: 'double',
      UnitPrice: 'currency',
      TotalPrice: 'currency',
      SortOrder: 'int',
    },
    relationships: { Opportunity: { field: 'OpportunityId', to: 'Opportunity' } },
    writable: [],
    externalIds: [],
  },
  // A custom object: its lookups' relationships are named with __r (Account__r for Account__c).
  Subscription__c: {
    keyPrefix: 'a0S',
    fields: {
      Id: 'id',
      Account__c: 'reference',
      Contract__c: 'reference',
      Plan_Code__c: 'string',
      Quantity__c: 'double',
      Support_Tier__c: 'picklist',
      Status__c: 'picklist',
      Start_Date__c: 'date',
      End_Date__c: 'date',
      Unit_Price__c: 'currency',
      Billing_Frequency__c: 'picklist',
      // Only in a multi-currency org: hideField makes the org single-currency.
      CurrencyIsoCode: 'picklist',
      LastModifiedDate: 'datetime',
    },
    relationships: {
      Account__r: { field: 'Account__c', to: 'Account' },
      Contract__r: { field: 'Contract__c', to: 'Contract' },
    },
    writable: [
      'Account__c',
      'Contract__c',
      'Plan_Code__c',
      'Quantity__c',
      'Support_Tier__c',
      'Status__c',
      'Start_Date__c',
      'End_Date__c',
      'Unit_Price__c',
      'Billing_Frequency__c',
      'CurrencyIsoCode',
    ],
    externalIds: [],
  },
};

const SOBJECTS = Object.keys(SCHEMA) as SObjectType[];

/** Copies the embedded CRM's tables, in Salesforce's value formats (booleans, datetimes). */
function loadRecords(db: Database): Map<SObjectType, SObjectRecord[]> {
  const data = new Map<SObjectType, SObjectRecord[]>();
  const tables = new Set(
    (db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table'`).all() as { name: string }[]).map((t) => t.name),
  );
  for (const sobject of SOBJECTS) {
    const { fields } = SCHEMA[sobject];
    // A database from before a table existed holds no such records.
    const rows = tables.has(sobject) ? (db.prepare(`SELECT * FROM "${sobject}"`).all() as Record<string, unknown>[]) : [];
    data.set(
      sobject,
      rows.map((row) => {
        const record: SObjectRecord = {};
        for (const [field, type] of Object.entries(fields)) record[field] = toSalesforceValue(row[field], type);
        return record;
      }),
    );
  }
  return data;
}

function toSalesforceValue(value: unknown, type: FieldType): Value {
  if (value === null || value === undefined) return null;
  if (type === 'boolean') return Boolean(value);
  if (type === 'datetime') return salesforceDateTime(new Date(String(value)));
  if (type === 'int' || type === 'double' || type === 'currency') return Number(value);
  return String(value);
}

/** Salesforce's datetime format: `2025-12-04T19:36:59.000+0000`. */
function salesforceDateTime(date: Date): string {
  return date.toISOString().replace('Z', '+0000');
}

/** Resolved `Owner.Name`: the relationships walked, then the field on the last object. */
interface FieldPath {
  /** As the client should see it: canonical names (`Owner`, `Name`). */
  steps: { relationship: string; field: string; to: SObjectType }[];
  field: string;
  type: FieldType;
  /** Column in the statement, for error positions. */
  position: number;
}

class Org {
  private readonly byId = new Map<string, { sobject: SObjectType; record: SObjectRecord }>();
  private readonly hidden = new Set<string>();
  private readonly rules = new Map<SObjectType, ValidationRule[]>();

  constructor(private readonly data: Map<SObjectType, SObjectRecord[]>) {
    for (const [sobject, records] of data) for (const record of records) this.index(sobject, record);
  }

  records(sobject: SObjectType): readonly SObjectRecord[] {
    return this.data.get(sobject) ?? [];
  }

  hide(sobject: SObjectType, field: string): void {
    this.hidden.add(`${sobject}.${field}`);
  }

  unhideAll(): void {
    this.hidden.clear();
    this.rules.clear();
  }

  addRule(sobject: SObjectType, rule: ValidationRule): void {
    this.rules.set(sobject, [...(this.rules.get(sobject) ?? []), rule]);
  }

  /** The org as it is now; calling the result puts it back (the same record objects, their values). */
  snapshot(): () => void {
    const saved = [...this.data.values()].map((records) => ({
      records,
      entries: records.map((record) => ({ record, values: { ...record } })),
    }));
    return () => {
      this.byId.clear();
      for (const { records, entries } of saved) {
        records.length = 0;
        for (const { record, values } of entries) records.push(Object.assign(record, values));
      }
      for (const [sobject, records] of this.data) for (const record of records) this.index(sobject, record);
    };
  }

  /** GET /sobjects/{Type}/describe: the object and its fields (those the org has). */
  describe(type: string, base: string): Answer {
    const sobject = this.sobjectType(type);
    const schema = SCHEMA[sobject];
    const relationshipOf = (field: string) => Object.entries(schema.relationships).find(([, lookup]) => lookup.field === field);
    const fields = Object.entries(schema.fields)
      .filter(([name]) => this.field(sobject, name))
      .map(([name, fieldType]) => {
        const relationship = relationshipOf(name);
        return {
          name,
          type: fieldType,
          label: name,
          nillable: fieldType !== 'id' && fieldType !== 'boolean',
          createable: schema.writable.includes(name),
          updateable: schema.writable.includes(name),
          externalId: schema.externalIds.includes(name),
          unique: schema.externalIds.includes(name) || (schema.unique ?? []).includes(name),
          relationshipName: relationship?.[0] ?? null,
          referenceTo: relationship ? [relationship[1].to] : [],
        };
      });
    return {
      status: 200,
      body: {
        name: sobject,
        label: sobject,
        keyPrefix: schema.keyPrefix,
        queryable: true,
        createable: schema.writable.length > 0,
        updateable: schema.writable.length > 0,
        fields,
        urls: { sobject: `${base}/sobjects/${sobject}`, describe: `${base}/sobjects/${sobject}/describe` },
      },
    };
  }

  /** Deletes a record, as a user of the org would; false when there is none. */
  remove(sobject: SObjectType, id: string): boolean {
    const records = this.data.get(sobject) ?? [];
    const at = records.findIndex((record) => record.Id === id);
    if (at < 0) return false;
    records.splice(at, 1);
    this.byId.delete(id.slice(0, 15));
    return true;
  }

  private index(sobject: SObjectType, record: SObjectRecord): void {
    this.byId.set(String(record.Id).slice(0, 15), { sobject, record });
  }

  private find(id: Value): { sobject: SObjectType; record: SObjectRecord } | null {
    return typeof id === 'string' ? (this.byId.get(id.slice(0, 15)) ?? null) : null;
  }

  /** The sObject type named (case-insensitively), or INVALID_TYPE. */
  sobjectType(name: string, soql?: string, position = 0): SObjectType {
    const type = SOBJECTS.find((candidate) => candidate.toLowerCase() === name.toLowerCase());
    if (type) return type;
    if (soql === undefined) return fail(404, 'NOT_FOUND', 'The requested resource does not exist');
    const detail = `sObject type '${name}' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names.`;
    return fail(400, 'INVALID_TYPE', queryError(soql, position, detail));
  }

  /** The field's canonical name and type, or null when the org has no such field. */
  field(sobject: SObjectType, name: string): { name: string; type: FieldType } | null {
    for (const [field, type] of Object.entries(SCHEMA[sobject].fields)) {
      if (field.toLowerCase() === name.toLowerCase() && !this.hidden.has(`${sobject}.${field}`)) return { name: field, type };
    }
    return null;
  }

  /** Resolves `Field` or `Relationship.….Field` from `sobject`, or INVALID_FIELD. */
  resolve(sobject: SObjectType, path: string, soql: string, position: number): FieldPath {
    const parts = path.split('.');
    const steps: FieldPath['steps'] = [];
    let current = sobject;
    for (const part of parts.slice(0, -1)) {
      const entry = Object.entries(SCHEMA[current].relationships).find(([name]) => name.toLowerCase() === part.toLowerCase());
      if (!entry) {
        fail(
          400,
          'INVALID_FIELD',
          queryError(
            soql,
            position,
            `Didn't understand relationship '${part}' in field path. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe call for the appropriate names.`,
          ),
        );
      }
      const [relationship, { field, to }] = entry;
      steps.push({ relationship, field, to });
      current = to;
    }
    const last = parts[parts.length - 1] ?? '';
    const field = this.field(current, last);
    if (!field) {
      fail(
        400,
        'INVALID_FIELD',
        queryError(
          soql,
          position,
          `No such column '${last}' on entity '${current}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.`,
        ),
      );
    }
    return { steps, field: field.name, type: field.type, position };
  }

  /** The value at `path` on `record`, following lookups; null when a lookup is empty. */
  valueOf(record: SObjectRecord, path: FieldPath): Value {
    let current: SObjectRecord | null = record;
    for (const step of path.steps) current = current ? (this.find(current[step.field] ?? null)?.record ?? null) : null;
    return current ? (current[path.field] ?? null) : null;
  }

  /** Runs a SOQL statement: the matching records, shaped as the REST API returns them. */
  query(soql: string, base: string): unknown[] {
    const parsed = parseSoql(soql);
    const sobject = this.sobjectType(parsed.from.name, soql, parsed.from.position);
    const fields = parsed.fields.map((field) => this.resolve(sobject, field.name, soql, field.position));
    const where = parsed.where ? this.compile(sobject, parsed.where, soql) : () => true;
    const order = parsed.orderBy.map((item) => ({ ...item, path: this.resolve(sobject, item.field, soql, item.position) }));
    let matches = this.records(sobject).filter(where);
    if (order.length) matches = [...matches].sort((a, b) => this.compareBy(order, a, b));
    if (parsed.limit !== null) matches = matches.slice(0, parsed.limit);
    return matches.map((record) => this.shape(sobject, record, fields, base));
  }

  private compareBy(order: (OrderItem & { path: FieldPath })[], a: SObjectRecord, b: SObjectRecord): number {
    for (const item of order) {
      const result = compareValues(this.valueOf(a, item.path), this.valueOf(b, item.path), item.descending, item.nullsLast);
      if (result) return result;
    }
    return 0;
  }

  /** A record as a query returns it: `attributes`, then the selected fields, lookups nested. */
  private shape(sobject: SObjectType, record: SObjectRecord, fields: FieldPath[], base: string): Record<string, unknown> {
    const out: Record<string, unknown> = { attributes: attributes(sobject, record, base) };
    for (const path of fields) {
      let target: Record<string, unknown> | null = out;
      let source: SObjectRecord | null = record;
      for (const step of path.steps) {
        if (!target || !source) break;
        const related = this.find(source[step.field] ?? null);
        if (!related) {
          target[step.relationship] ??= null;
          target = null;
          break;
        }
        const existing: unknown = target[step.relationship];
        const nested: Record<string, unknown> =
          existing && typeof existing === 'object'
            ? (existing as Record<string, unknown>)
            : { attributes: attributes(related.sobject, related.record, base) };
        target[step.relationship] = nested;
        target = nested;
        source = related.record;
      }
      if (target && source) target[path.field] = source[path.field] ?? null;
    }
    return out;
  }

  private compile(sobject: SObjectType, condition: Condition, soql: string): (record: SObjectRecord) => boolean {
    if (condition.kind !== 'compare') {
      const parts = condition.parts.map((part) => this.compile(sobject, part, soql));
      return condition.kind === 'and' ? (record) => parts.every((part) => part(record)) : (record) => parts.some((part) => part(record));
    }
    const path = this.resolve(sobject, condition.field, soql, condition.position);
    const values = condition.values.map((literal) => checkLiteral(path, literal, soql));
    const matches = (record: SObjectRecord) => values.some((value) => equalValues(path.type, this.valueOf(record, path), value));
    if (condition.op === 'in' || condition.op === '=') return matches;
    return (record) => !matches(record);
  }

  /** POST /composite/sobjects/{Type} `{ids, fields}`: the records in order, null where missing. */
  retrieveMany(type: string, body: unknown, base: string): Answer {
    const sobject = this.sobjectType(type);
    const { ids, fields } = (body ?? {}) as { ids?: unknown; fields?: unknown };
    if (!Array.isArray(ids) || !Array.isArray(fields) || !fields.length) {
      return error(400, 'INVALID_FIELD', 'Both ids and fields are required');
    }
    if (ids.length > 2_000)
      return error(400, 'EXCEEDED_ID_LIMIT', 'record limit reached. cannot submit more than 2000 records into this call');
    const paths = fields.map((name) => {
      const field = this.field(sobject, String(name));
      return field ?? fail(400, 'INVALID_FIELD', `No such column '${String(name)}' on sobject of type ${sobject}`);
    });
    const records = ids.map((id) => {
      const found = this.find(String(id));
      if (!found || found.sobject !== sobject) return null;
      const out: Record<string, unknown> = { attributes: attributes(sobject, found.record, base) };
      for (const field of paths) out[field.name] = found.record[field.name] ?? null;
      return out;
    });
    return { status: 200, body: records };
  }

  /** GET /sobjects/{Type}/{Id}[?fields=A,B]: every field, or those named. */
  retrieveOne(type: string, id: string, fieldList: string | null, base: string): Answer {
    const sobject = this.sobjectType(type);
    const found = this.find(id);
    if (!found || found.sobject !== sobject) return error(404, 'NOT_FOUND', 'The requested resource does not exist');
    const names = fieldList ? fieldList.split(',') : Object.keys(SCHEMA[sobject].fields).filter((name) => this.field(sobject, name));
    const out: Record<string, unknown> = { attributes: attributes(sobject, found.record, base) };
    for (const name of names) {
      const field = this.field(sobject, name) ?? fail(400, 'INVALID_FIELD', `No such column '${name}' on sobject of type ${sobject}`);
      out[field.name] = found.record[field.name] ?? null;
    }
    return { status: 200, body: out };
  }

  /** POST /sobjects/{Type}: 201 `{id, success, errors}`. */
  create(type: string, body: unknown): Answer {
    const sobject = this.sobjectType(type);
    const values = this.writableValues(sobject, body);
    const record = this.insert(sobject, values);
    return { status: 201, body: { id: record.Id, success: true, errors: [] } };
  }

  /** PATCH /sobjects/{Type}/{ExternalIdField}/{value}: 201 created, 200 updated. */
  upsert(type: string, fieldName: string, key: string, body: unknown): Answer {
    const sobject = this.sobjectType(type);
    const field = this.field(sobject, fieldName);
    if (!field || !SCHEMA[sobject].externalIds.includes(field.name)) {
      return error(404, 'NOT_FOUND', `Provided external ID field does not exist or is not accessible: ${fieldName}`);
    }
    const values = this.writableValues(sobject, body);
    const matches = this.records(sobject).filter((record) => equalValues('string', record[field.name] ?? null, key));
    if (matches.length > 1) {
      return { status: 300, body: matches.map((record) => `/services/data/sobjects/${sobject}/${String(record.Id)}`) };
    }
    const existing = matches[0];
    if (!existing) {
      const record = this.insert(sobject, { ...values, [field.name]: key });
      return { status: 201, body: { id: record.Id, success: true, errors: [], created: true } };
    }
    this.modify(sobject, existing, values);
    return { status: 200, body: { id: existing.Id, success: true, errors: [], created: false } };
  }

  /** PATCH /sobjects/{Type}/{Id}: 204, no body. */
  update(type: string, id: string, body: unknown): Answer {
    const sobject = this.sobjectType(type);
    const found = this.find(id);
    if (!found || found.sobject !== sobject) return error(404, 'NOT_FOUND', 'The requested resource does not exist');
    this.modify(sobject, found.record, this.writableValues(sobject, body));
    return { status: 204 };
  }

  private modify(sobject: SObjectType, record: SObjectRecord, values: SObjectRecord): void {
    this.checkUnique(sobject, values, record);
    this.checkRules(sobject, { ...record, ...values });
    Object.assign(record, values);
    if ('LastModifiedDate' in SCHEMA[sobject].fields) record.LastModifiedDate = salesforceDateTime(new Date());
  }

  private checkRules(sobject: SObjectType, record: SObjectRecord): void {
    for (const rule of this.rules.get(sobject) ?? []) {
      if (!rule.when || rule.when(record)) {
        fail(400, 'FIELD_CUSTOM_VALIDATION_EXCEPTION', rule.message, rule.field ? [rule.field] : []);
      }
    }
  }

  /** The body's fields, validated: known, writable, of the right shape, references resolving. */
  private writableValues(sobject: SObjectType, body: unknown): SObjectRecord {
    if (!body || typeof body !== 'object' || Array.isArray(body))
      return fail(400, 'JSON_PARSER_ERROR', 'The request body must be a JSON object');
    const values: SObjectRecord = {};
    for (const [name, value] of Object.entries(body as Record<string, unknown>)) {
      if (name === 'attributes') continue;
      const field = this.field(sobject, name);
      if (!field) fail(400, 'INVALID_FIELD', `No such column '${name}' on sobject of type ${sobject}`);
      if (!SCHEMA[sobject].writable.includes(field.name)) {
        fail(
          400,
          'INVALID_FIELD_FOR_INSERT_UPDATE',
          `Unable to create/update fields: ${field.name}. Please check the security settings of this field and verify that it is read/write for your profile or permission set.`,
          [field.name],
        );
      }
      values[field.name] = checkFieldValue(sobject, field, value);
      if (field.type === 'reference' && values[field.name] !== null && !this.find(values[field.name] ?? null)) {
        fail(400, 'INVALID_CROSS_REFERENCE_KEY', `invalid cross reference id`, [field.name]);
      }
    }
    return values;
  }

  private checkUnique(sobject: SObjectType, values: SObjectRecord, self?: SObjectRecord): void {
    for (const field of [...SCHEMA[sobject].externalIds, ...(SCHEMA[sobject].unique ?? [])]) {
      const value = values[field];
      if (value === null || value === undefined) continue;
      const clash = this.records(sobject).find((record) => record !== self && equalValues('string', record[field] ?? null, value));
      if (clash) {
        fail(400, 'DUPLICATE_VALUE', `duplicate value found: ${field} duplicates value on record with id: ${String(clash.Id)}`, []);
      }
    }
  }

  private insert(sobject: SObjectType, values: SObjectRecord): SObjectRecord {
    this.checkUnique(sobject, values);
    const record: SObjectRecord = {};
    for (const field of Object.keys(SCHEMA[sobject].fields)) record[field] = null;
    Object.assign(record, values, { Id: newSalesforceId(SCHEMA[sobject].keyPrefix) });
    const now = salesforceDateTime(new Date());
    if ('LastModifiedDate' in SCHEMA[sobject].fields) record.LastModifiedDate = now;
    if (sobject === 'Task') {
      record.CreatedDate = now;
      record.Status ??= 'Not Started';
      record.Priority ??= 'Normal';
      // The account of what the Task is related to: the account itself, or an opportunity's.
      const what = this.find(record.WhatId ?? null);
      record.AccountId =
        what?.sobject === 'Account' ? String(what.record.Id) : what?.sobject === 'Opportunity' ? (what.record.AccountId ?? null) : null;
    }
    this.checkRules(sobject, record);
    this.data.get(sobject)?.push(record);
    this.index(sobject, record);
    return record;
  }
}

function attributes(sobject: SObjectType, record: SObjectRecord, base: string): { type: string; url: string } {
  return { type: sobject, url: `${base}/sobjects/${sobject}/${String(record.Id)}` };
}

function checkFieldValue(sobject: SObjectType, field: { name: string; type: FieldType }, value: unknown): Value {
  if (value === null) return null;
  const wrong = () =>
    fail(
      400,
      'JSON_PARSER_ERROR',
      `Cannot deserialize instance of ${field.type} from ${typeof value} value ${JSON.stringify(value)} for ${sobject}.${field.name}`,
    );
  switch (field.type) {
    case 'boolean':
      return typeof value === 'boolean' ? value : wrong();
    case 'int':
    case 'double':
    case 'currency':
      return typeof value === 'number' ? value : wrong();
    case 'date':
      return typeof value === 'string' && /^\d{4}-\d{2}-\d{2}$/.test(value) ? value : wrong();
    default:
      return typeof value === 'string' ? value : wrong();
  }
}

/** Ids compare on their case-sensitive 15-character form; text case-insensitively. */
function equalValues(type: FieldType, actual: Value, expected: Value): boolean {
  if (expected === null || actual === null) return expected === actual;
  if (type === 'id' || type === 'reference') return String(actual).slice(0, 15) === String(expected).slice(0, 15);
  if (typeof actual === 'string' && typeof expected === 'string') return actual.toUpperCase() === expected.toUpperCase();
  return actual === expected;
}

/**
 * English-locale order: text by its upper-cased UTF-8 value (so case-insensitive), nulls first
 * unless NULLS LAST, whatever the direction.
 */
function compareValues(a: Value, b: Value, descending: boolean, nullsLast: boolean): number {
  if (a === null || b === null) {
    if (a === b) return 0;
    return (a === null) === nullsLast ? 1 : -1;
  }
  const left = typeof a === 'string' ? Buffer.from(a.toUpperCase()) : a;
  const right = typeof b === 'string' ? Buffer.from(b.toUpperCase()) : b;
  const result = Buffer.isBuffer(left) && Buffer.isBuffer(right) ? Buffer.compare(left, right) : left < right ? -1 : left > right ? 1 : 0;
  return descending ? -result : result;
}

/** A filter value checked against the field's type, as Salesforce checks it before running. */
function checkLiteral(path: FieldPath, literal: Literal, soql: string): Value {
  const { value } = literal;
  if (value === null) return null;
  const name = [...path.steps.map((step) => step.relationship), path.field].join('.');
  if (path.type === 'id' || path.type === 'reference') {
    if (typeof value !== 'string' || !/^[a-zA-Z0-9]{15}(?:[a-zA-Z0-9]{3})?$/.test(value)) {
      fail(400, 'INVALID_QUERY_FILTER_OPERATOR', queryError(soql, literal.position, `invalid ID field: ${String(value)}`));
    }
    return value;
  }
  const numeric = path.type === 'int' || path.type === 'double' || path.type === 'currency';
  if (numeric !== (typeof value === 'number') || (path.type === 'boolean') !== (typeof value === 'boolean')) {
    const expected = numeric ? 'double' : path.type === 'boolean' ? 'boolean' : 'string';
    fail(
      400,
      'INVALID_QUERY_FILTER_OPERATOR',
      queryError(
        soql,
        literal.position,
        `value of filter criterion for field '${name}' must be of type ${expected} and should not be enclosed in quotes`,
      ),
    );
  }
  return value;
}

/** Salesforce's query error text: the statement, a caret under the column, the reason. */
function queryError(soql: string, position: number, detail: string): string {
  return `\n${soql}\n${' '.repeat(position)}^\nERROR at Row:1:Column:${position + 1}\n${detail}`;
}

// ---------------------------------------------------------------------------------------------
// SOQL: the subset the adapters send
//
//   SELECT field, Relationship.field, … FROM Object
//   [WHERE cond]    cond: term [AND|OR term]…, term: ( cond ) | field IN (v, …) | field NOT IN (…)
//                                                     | field = v | field != v
//   [ORDER BY field [ASC|DESC] [NULLS FIRST|LAST], …] [LIMIT n]
//
// Values: 'text' (with SOQL's backslash escapes), numbers, dates, true/false, null.

interface Token {
  kind: 'word' | 'string' | 'number' | 'date' | 'punct' | 'end';
  text: string;
  value: Value;
  position: number;
}

interface Literal {
  value: Value;
  position: number;
}

type Condition =
  | { kind: 'and' | 'or'; parts: Condition[] }
  | { kind: 'compare'; field: string; position: number; op: 'in' | 'notIn' | '=' | '!='; values: Literal[] };

interface OrderItem {
  field: string;
  position: number;
  descending: boolean;
  nullsLast: boolean;
}

interface SoqlStatement {
  fields: { name: string; position: number }[];
  from: { name: string; position: number };
  where: Condition | null;
  orderBy: OrderItem[];
  limit: number | null;
}

const UNESCAPES: Record<string, string> = {
  n: '\n',
  r: '\r',
  t: '\t',
  b: '\b',
  f: '\f',
  '"': '"',
  "'": "'",
  '\\': '\\',
  _: '\\_',
  '%': '\\%',
};
const MAX_SOQL_CHARS = 100_000;
const MAX_WHERE_CHARS = 4_000;

function tokenize(soql: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  const malformed = (position: number, detail: string): never => fail(400, 'MALFORMED_QUERY', queryError(soql, position, detail));
  while (i < soql.length) {
    const char = soql.charAt(i);
    if (/\s/.test(char)) {
      i += 1;
      continue;
    }
    const start = i;
    if (char === "'") {
      let value = '';
      i += 1;
      for (;;) {
        if (i >= soql.length) malformed(start, 'unexpected end of string literal');
        const next = soql.charAt(i);
        if (next === "'") break;
        if (next === '\\') {
          const escaped = UNESCAPES[soql.charAt(i + 1)];
          if (escaped === undefined)
            malformed(
              i,
              `Invalid string literal '${soql.slice(start, i + 2)}'. Illegal character sequence '\\${soql.charAt(i + 1)}' in string literal.`,
            );
          value += escaped;
          i += 2;
          continue;
        }
        value += next;
        i += 1;
      }
      i += 1;
      tokens.push({ kind: 'string', text: soql.slice(start, i), value, position: start });
      continue;
    }
    const date = /^\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2}))?/.exec(soql.slice(i));
    if (date) {
      i += date[0].length;
      tokens.push({ kind: 'date', text: date[0], value: date[0], position: start });
      continue;
    }
    const number = /^-?\d+(?:\.\d+)?/.exec(soql.slice(i));
    if (number) {
      i += number[0].length;
      tokens.push({ kind: 'number', text: number[0], value: Number(number[0]), position: start });
      continue;
    }
    const word = /^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*/.exec(soql.slice(i));
    if (word) {
      i += word[0].length;
      tokens.push({ kind: 'word', text: word[0], value: word[0], position: start });
      continue;
    }
    const punct = /^(?:!=|<>|[(),=])/.exec(soql.slice(i));
    if (!punct) return malformed(start, `unexpected token: '${char}'`);
    i += punct[0].length;
    tokens.push({ kind: 'punct', text: punct[0] === '<>' ? '!=' : punct[0], value: null, position: start });
  }
  tokens.push({ kind: 'end', text: '<EOF>', value: null, position: soql.length });
  return tokens;
}

function parseSoql(soql: string): SoqlStatement {
  if (soql.length > MAX_SOQL_CHARS) fail(400, 'MALFORMED_QUERY', `SOQL statements cannot be longer than ${MAX_SOQL_CHARS} characters`);
  const tokens = tokenize(soql);
  let index = 0;
  const peek = () => tokens[index]!;
  const next = () => tokens[index++]!;
  const unexpected = (token: Token): never =>
    fail(400, 'MALFORMED_QUERY', queryError(soql, token.position, `unexpected token: '${token.text}'`));
  const isKeyword = (token: Token, keyword: string) => token.kind === 'word' && token.text.toUpperCase() === keyword;
  const expectKeyword = (keyword: string) => {
    const token = next();
    if (!isKeyword(token, keyword)) unexpected(token);
  };
  const expectPunct = (text: string) => {
    const token = next();
    if (token.kind !== 'punct' || token.text !== text) unexpected(token);
  };
  const fieldName = () => {
    const token = next();
    if (token.kind !== 'word' || RESERVED.has(token.text.toUpperCase())) return unexpected(token);
    return { name: token.text, position: token.position };
  };
  const literal = (): Literal => {
    const token = next();
    if (token.kind === 'string' || token.kind === 'number' || token.kind === 'date')
      return { value: token.value, position: token.position };
    if (isKeyword(token, 'NULL')) return { value: null, position: token.position };
    if (isKeyword(token, 'TRUE') || isKeyword(token, 'FALSE'))
      return { value: token.text.toUpperCase() === 'TRUE', position: token.position };
    return unexpected(token);
  };

  const condition = (): Condition => {
    const parts = [term()];
    let joiner: 'and' | 'or' | null = null;
    while (isKeyword(peek(), 'AND') || isKeyword(peek(), 'OR')) {
      const token = next();
      const kind = token.text.toUpperCase() === 'AND' ? 'and' : 'or';
      // SOQL needs parentheses to mix AND and OR.
      if (joiner && joiner !== kind) unexpected(token);
      joiner = kind;
      parts.push(term());
    }
    return parts.length === 1 ? parts[0]! : { kind: joiner ?? 'and', parts };
  };
  const term = (): Condition => {
    if (peek().kind === 'punct' && peek().text === '(') {
      next();
      const inner = condition();
      expectPunct(')');
      return inner;
    }
    const field = fieldName();
    let negated = false;
    if (isKeyword(peek(), 'NOT')) {
      next();
      negated = true;
    }
    if (isKeyword(peek(), 'IN')) {
      next();
      expectPunct('(');
      const values = [literal()];
      while (peek().kind === 'punct' && peek().text === ',') {
        next();
        values.push(literal());
      }
      expectPunct(')');
      return { kind: 'compare', field: field.name, position: field.position, op: negated ? 'notIn' : 'in', values };
    }
    if (negated) unexpected(peek());
    const op = next();
    if (op.kind !== 'punct' || (op.text !== '=' && op.text !== '!=')) unexpected(op);
    return { kind: 'compare', field: field.name, position: field.position, op: op.text as '=' | '!=', values: [literal()] };
  };

  expectKeyword('SELECT');
  const fields = [fieldName()];
  while (peek().kind === 'punct' && peek().text === ',') {
    next();
    fields.push(fieldName());
  }
  expectKeyword('FROM');
  const from = fieldName();
  let where: Condition | null = null;
  if (isKeyword(peek(), 'WHERE')) {
    const start = next().position + 'WHERE '.length;
    where = condition();
    const whereChars = peek().position - start;
    if (whereChars > MAX_WHERE_CHARS) {
      fail(
        400,
        'MALFORMED_QUERY',
        queryError(soql, start, `The WHERE clause is ${whereChars} characters long; at most ${MAX_WHERE_CHARS} are allowed`),
      );
    }
  }
  const orderBy: OrderItem[] = [];
  if (isKeyword(peek(), 'ORDER')) {
    next();
    expectKeyword('BY');
    do {
      if (orderBy.length) next();
      const field = fieldName();
      const item: OrderItem = { field: field.name, position: field.position, descending: false, nullsLast: false };
      if (isKeyword(peek(), 'ASC') || isKeyword(peek(), 'DESC')) item.descending = next().text.toUpperCase() === 'DESC';
      if (isKeyword(peek(), 'NULLS')) {
        next();
        const which = next();
        if (!isKeyword(which, 'FIRST') && !isKeyword(which, 'LAST')) unexpected(which);
        item.nullsLast = which.text.toUpperCase() === 'LAST';
      }
      orderBy.push(item);
    } while (peek().kind === 'punct' && peek().text === ',');
  }
  let limit: number | null = null;
  if (isKeyword(peek(), 'LIMIT')) {
    next();
    const token = next();
    if (token.kind !== 'number' || !Number.isInteger(token.value)) unexpected(token);
    limit = Number(token.value);
  }
  if (peek().kind !== 'end') unexpected(peek());
  return { fields, from, where, orderBy, limit };
}

const RESERVED = new Set([
  'SELECT',
  'FROM',
  'WHERE',
  'AND',
  'OR',
  'NOT',
  'IN',
  'ORDER',
  'BY',
  'ASC',
  'DESC',
  'NULLS',
  'FIRST',
  'LAST',
  'LIMIT',
  'NULL',
  'TRUE',
  'FALSE',
]);
