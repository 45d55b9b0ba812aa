import { pagingGuard } from '../../../../platform/paging.ts';
import { Connection, type HttpRequest } from 'jsforce';
import type { ConnectorTelemetry } from '../../../../platform/connector-telemetry.ts';
import { ConnectorError } from '../../../../platform/errors.ts';
import { SystemCallError, type Resilience } from '../../../../platform/resilience.ts';
import type {
  ActivityRecord,
  ContactRecord,
  ContractRecord,
  ContractStatus,
  CrmConnector,
  CustomerRecord,
  CustomerSegment,
  NewActivity,
  SupportTier,
} from './types.ts';
import { CONTRACT_STATUSES, SEGMENTS, TIERS } from './vocabulary.ts';

/** How the Salesforce adapter reaches the org. */
export interface SalesforceConnectorOptions {
  /** The org's instance URL (`https://mydomain.my.salesforce.com`). */
  instanceUrl: string;
  /** REST API version without the "v" ("59.0"); jsforce would otherwise speak 50.0. */
  apiVersion: string;
  /**
   * An OAuth access token, and how to get a new one when Salesforce answers 401
   * INVALID_SESSION_ID. Without `refresh`, a rejected session fails the call.
   */
  auth: { kind: 'accessToken'; accessToken: string; refresh?: () => Promise<string> };
  telemetry: ConnectorTelemetry;
  resilience: Resilience;
}

/** The org's daily API allocation as of the last response (`Sforce-Limit-Info: api-usage=N/M`). */
export interface ApiUsage {
  used: number;
  limit: number;
}

/** The CRM port over Salesforce, plus what the adapter learns about the org's API budget. */
export interface SalesforceConnector extends CrmConnector {
  /**
   * Calls used and allowed today, from the latest response; null before the first one. Meant
   * for a gauge in the service's metrics: every request counts against the allocation.
   */
  apiUsage(): ApiUsage | null;
}

/**
 * A failed Salesforce call, classified for the resilience layer, with the `errorCode` from the
 * error body (`MALFORMED_QUERY`, `REQUEST_LIMIT_EXCEEDED`, …) or `ERROR_HTTP_<status>` when the
 * body was not Salesforce's JSON.
 */
export class SalesforceError extends SystemCallError {
  override name = 'SalesforceError';
  constructor(
    message: string,
    readonly errorCode: string,
    details: SystemCallError['details'],
    options?: { cause?: unknown },
  ) {
    super(message, details, options);
  }
}

/**
 * The CRM adapter over Salesforce's REST API, through jsforce.
 *
 * Reads are SOQL `IN (…)` queries over the canonical keys (customer numbers are
 * Account.AccountNumber, not Ids, so the sObject Collections retrieve, which takes Ids, does not
 * fit), chunked to Salesforce's size limits and paged with queryMore. Each HTTP request is one
 * resilience call (deadline, retry, breaker, bulkhead) and one telemetry call, so
 * `concord_connector_calls_total` counts what the org's API allocation counts.
 */
export function createSalesforceConnector(options: SalesforceConnectorOptions): SalesforceConnector {
  const client = createSalesforceClient(options);
  const { readIn } = client;

  return {
    customersByIds: (ids) => readIn('customersByIds', CUSTOMER, 'AccountNumber', ids, (record) => record.id),
    // Salesforce rejects a whole statement over one malformed Id literal; such a key matches nothing.
    contactsByIds: (ids) => readIn('contactsByIds', CONTACT, 'Id', ids.filter(isSalesforceId), (record) => record.id),
    contactsByCustomerIds: (customerIds) =>
      readIn('contactsByCustomerIds', CONTACT, 'Account.AccountNumber', customerIds, (record) => record.customerId),
    contractsByIds: (ids) => readIn('contractsByIds', CONTRACT, 'ContractNumber', ids, (record) => record.id),
    contractsByCustomerIds: (customerIds) =>
      readIn('contractsByCustomerIds', CONTRACT, 'Account.AccountNumber', customerIds, (record) => record.customerId),
    logActivity: (activity) => logActivity(client, activity),
    async ping() {
      // GET /limits touches no records and answers fast; a probe reports now, so it is not retried.
      await client.send('ping', {}, { method: 'GET', url: '/limits' }, false);
    },
    apiUsage: client.apiUsage,
    async close() {
      // jsforce keeps no connection of its own (node's agent pools sockets): nothing to release.
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Activities

/**
 * Records a Task once per key. The Task is looked up by Concord_Key__c first, so a repeated key
 * costs one query and returns the activity the first call created.
 *
 * A plain create (`POST /sobjects/Task`), not an upsert by external id
 * (`PATCH /sobjects/Task/Concord_Key__c/{key}`): an upsert on a used key updates that Task,
 * overwriting the subject and date the first call recorded, while the port promises the first
 * activity back. The org holds Concord_Key__c as a unique external id, so a second create with
 * the same key (a concurrent call, or a retry whose first answer was lost) fails with
 * DUPLICATE_VALUE instead of making a second Task; that is what makes the create safe to retry,
 * and the adapter then reads the Task that won.
 */
async function logActivity(client: SalesforceClient, activity: NewActivity): Promise<ActivityRecord | null> {
  const existing = await findActivity(client, activity.key);
  if (existing) return existing;
  const accountId = await accountIdOf(client, activity.customerId);
  if (!accountId) return null;
  try {
    const created = await client.send<{ id: string }>(
      'logActivity',
      {},
      { method: 'POST', url: '/sobjects/Task', body: JSON.stringify(toTaskFields(accountId, activity)), headers: JSON_BODY },
      true,
    );
    return {
      id: created.id,
      customerId: activity.customerId,
      subject: activity.subject,
      description: activity.description ?? null,
      activityDate: activity.activityDate,
    };
  } catch (error) {
    if (!(error instanceof SalesforceError && error.errorCode === 'DUPLICATE_VALUE')) throw error;
    const winner = await findActivity(client, activity.key);
    if (winner) return winner;
    throw error;
  }
}

async function findActivity(client: SalesforceClient, key: string): Promise<ActivityRecord | null> {
  const rows = await client.query<TaskRow>(
    'logActivity',
    `SELECT ${ACTIVITY.fields.join(', ')} FROM Task WHERE Concord_Key__c = ${soqlString(key)} LIMIT 1`,
    {},
  );
  const row = rows[0];
  return row ? ACTIVITY.toRecord(row) : null;
}

async function accountIdOf(client: SalesforceClient, customerId: string): Promise<string | null> {
  const rows = await client.query<{ Id: string; AccountNumber: string | null }>(
    'logActivity',
    `SELECT Id, AccountNumber FROM Account WHERE AccountNumber = ${soqlString(customerId)}`,
    {},
  );
  // SOQL compares text case-insensitively; customer numbers are exact keys.
  return rows.find((row) => row.AccountNumber === customerId)?.Id ?? null;
}

// ---------------------------------------------------------------------------------------------
// Requests: session, retries, telemetry

/** Options that switch jsforce's own retry off for one request (see `send`). */
const NO_JSFORCE_RETRY = { retry: { maxRetries: 0, methods: [] } };
const JSON_BODY = { 'content-type': 'application/json' };

type SalesforceClient = ReturnType<typeof createSalesforceClient>;

interface QueryPage<Row> {
  totalSize: number;
  done?: boolean;
  records: Row[];
  nextRecordsUrl?: string;
}

function createSalesforceClient(options: SalesforceConnectorOptions) {
  const { telemetry, resilience } = options;
  const conn = new Connection({
    instanceUrl: options.instanceUrl.replace(/\/+$/, ''),
    accessToken: options.auth.accessToken,
    version: options.apiVersion,
    // No refreshFn: jsforce would refresh and resend on every 401 without end against a server
    // that keeps rejecting the new token. The adapter refreshes itself, at most once per request.
  });
  const renewSession = createSessionRenewal(conn, telemetry.system, options.auth.refresh);
  const queryPath = `${new URL(conn._baseUrl()).pathname}/query?q=`;

  /**
   * Sends one HTTP request: one resilience call (whose retries are the only ones: jsforce's own
   * retry of GETs on 420/429/5xx and socket errors, 5 tries 500 ms doubling, is switched off per
   * request, or each resilience try would hide up to six requests and ~15 s of sleeping behind
   * one count and one deadline). Inside it, one telemetry call per request on the wire; a 401
   * renews the session once and sends again. jsforce takes no abort signal: a request past the
   * resilience deadline is abandoned, not cancelled, and still counts against the allocation.
   */
  async function send<R>(operation: string, detail: Record<string, unknown>, request: HttpRequest, idempotent: boolean): Promise<R> {
    return resilience.call(operation, { idempotent }, async () => {
      const token = conn.accessToken;
      try {
        return await exchange<R>(operation, detail, request);
      } catch (error) {
        if (!isSessionRejected(error)) throw error;
        await renewSession(operation, token, error);
      }
      try {
        return await exchange<R>(operation, detail, request);
      } catch (error) {
        if (!isSessionRejected(error)) throw error;
        throw new ConnectorError(telemetry.system, `${operation}: Salesforce rejected the renewed session too (${error.message})`, {
          cause: error,
        });
      }
    });
  }

  /** Exactly one HTTP request, counted once; failures come out classified. */
  async function exchange<R>(operation: string, detail: Record<string, unknown>, request: HttpRequest): Promise<R> {
    try {
      return await telemetry.call(operation, detail, async () => {
        try {
          // A fresh headers object per send: jsforce writes Authorization into the one it gets.
          return await conn.request<R>({ ...request, headers: { ...request.headers } }, NO_JSFORCE_RETRY);
        } catch (error) {
          throw classify(error);
        }
      });
    } catch (error) {
      throw unwrapTelemetry(error);
    }
  }

  /**
   * Runs one SOQL statement and follows nextRecordsUrl until done. `GET /query?q=` and
   * `GET {nextRecordsUrl}` are what conn.query()/queryMore() send, but those take no request
   * options, so jsforce's retry could not be switched off for them. Each page is its own
   * request: a failed page is retried alone, not the pages before it.
   */
  async function query<Row>(operation: string, soql: string, detail: Record<string, unknown>): Promise<Row[]> {
    const get = (url: string, page: number) => send<QueryPage<Row>>(operation, { ...detail, page }, { method: 'GET', url }, true);
    let page = await get(`/query?q=${encodeURIComponent(soql)}`, 1);
    const rows = [...page.records];
    const guard = pagingGuard('crm', operation);
    for (let number = 2; page.done !== true && page.nextRecordsUrl; number += 1) {
      guard.next(page.nextRecordsUrl);
      page = await get(page.nextRecordsUrl, number);
      rows.push(...page.records);
    }
    return rows;
  }

  /**
   * Reads the records of `view` whose `keyField` is one of `keys`: one statement per chunk of
   * keys, chunks in parallel (the resilience bulkhead bounds how many at once). Only records
   * whose key equals a requested key exactly are kept, since SOQL compares text
   * case-insensitively and the canonical keys are case-sensitive.
   */
  async function readIn<Row, Rec>(
    operation: string,
    view: View<Row, Rec>,
    keyField: string,
    keys: readonly string[],
    keyOf: (record: Rec) => string | null,
  ): Promise<Rec[]> {
    const wanted = new Set(keys);
    const select = `SELECT ${view.fields.join(', ')} FROM ${view.sobject}`;
    const statements = inStatements(select, keyField, [...wanted], queryPath.length);
    const pages = await Promise.all(statements.map(({ soql, keys: count }) => query<Row>(operation, soql, { keys: count })));
    const records: Rec[] = [];
    for (const row of pages.flat()) {
      const record = view.toRecord(row);
      const key = record && keyOf(record);
      if (record && key !== null && wanted.has(key)) records.push(record);
    }
    return view.order ? records.sort(view.order) : records;
  }

  function apiUsage(): ApiUsage | null {
    const usage = conn.limitInfo.apiUsage;
    return usage ? { used: usage.used, limit: usage.limit } : null;
  }

  return { send, query, readIn, apiUsage };
}

/**
 * Renews the access token after a 401. Concurrent requests rejected with the same token share
 * one refresh; a request whose token was already replaced meanwhile just sends again.
 */
function createSessionRenewal(conn: Connection, system: string, refresh: (() => Promise<string>) | undefined) {
  let renewal: Promise<void> | null = null;
  return async function renewSession(operation: string, staleToken: string | null | undefined, rejection: Error): Promise<void> {
    if (!refresh) {
      throw new ConnectorError(
        system,
        `${operation}: Salesforce rejected the session and no refresh is configured (${rejection.message})`,
        {
          cause: rejection,
        },
      );
    }
    if (conn.accessToken !== staleToken) return;
    renewal ??= refresh()
      .then((token) => {
        conn.accessToken = token;
      })
      .finally(() => {
        renewal = null;
      });
    try {
      await renewal;
    } catch (error) {
      throw new ConnectorError(system, `${operation}: could not renew the Salesforce session: ${(error as Error).message}`, {
        cause: error,
      });
    }
  };
}

function isSessionRejected(error: unknown): error is SalesforceError {
  return error instanceof SalesforceError && (error.errorCode === 'INVALID_SESSION_ID' || error.errorCode === 'ERROR_HTTP_401');
}

// ---------------------------------------------------------------------------------------------
// Failure classification

/** Error codes worth another try: the org is busy or down, not the request wrong. */
const RETRYABLE_CODES = new Set([
  'REQUEST_LIMIT_EXCEEDED', // 403: daily allocation or concurrent long-request limit reached
  'SERVER_UNAVAILABLE', // 503
  'UNKNOWN_EXCEPTION', // 500
  'UNABLE_TO_LOCK_ROW', // 400, but a transient lock held by another transaction
]);

/** HTTP statuses of the codes the adapter meets; jsforce's error carries the code, not the status. */
const STATUS_OF_CODE: Record<string, number> = {
  MALFORMED_QUERY: 400,
  INVALID_FIELD: 400,
  INVALID_TYPE: 400,
  INVALID_QUERY_FILTER_OPERATOR: 400,
  DUPLICATE_VALUE: 400,
  INVALID_SESSION_ID: 401,
  REQUEST_LIMIT_EXCEEDED: 403,
  NOT_FOUND: 404,
  UNKNOWN_EXCEPTION: 500,
  SERVER_UNAVAILABLE: 503,
};

/** Socket-level failures node-fetch reports (jsforce's own list of retryable ones). */
const NETWORK_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ENOTFOUND',
  'ENETDOWN',
  'ENETUNREACH',
  'EHOSTDOWN',
  'ETIMEDOUT',
  'EPIPE',
  'UND_ERR_SOCKET',
]);

/**
 * Turns what jsforce throws into a SystemCallError the resilience layer can act on: busy, 5xx
 * and network failures are retryable; a malformed query, an unknown field, a duplicate or a
 * rejected session are not (sending them again gives the same answer).
 */
function classify(error: unknown): Error {
  if (error instanceof SystemCallError) return error;
  const errorCode = (error as { errorCode?: unknown } | null)?.errorCode;
  const message = error instanceof Error ? error.message : String(error);
  if (typeof errorCode === 'string') {
    const httpStatus = /^ERROR_HTTP_(\d{3})$/.exec(errorCode)?.[1];
    const status = httpStatus ? Number(httpStatus) : STATUS_OF_CODE[errorCode];
    const retryable = RETRYABLE_CODES.has(errorCode) || (status !== undefined && (status >= 500 || status === 429 || status === 420));
    return new SalesforceError(`${errorCode}: ${message}`, errorCode, { retryable, status }, { cause: error });
  }
  const code = (error as { code?: unknown } | null)?.code;
  if ((error as Error | null)?.name === 'FetchError' || (typeof code === 'string' && NETWORK_CODES.has(code))) {
    return new SystemCallError(`network: ${message}`, { retryable: true }, { cause: error });
  }
  return error instanceof Error ? error : new Error(message);
}

/**
 * The telemetry may wrap a failure it considers an outage in a ConnectorError; the resilience
 * layer must still see the classified error to decide on a retry.
 */
function unwrapTelemetry(error: unknown): unknown {
  return error instanceof ConnectorError && error.cause instanceof SystemCallError ? error.cause : error;
}

// ---------------------------------------------------------------------------------------------
// SOQL

/** Salesforce's limit on a WHERE clause. */
const MAX_WHERE_CHARS = 4_000;
/** Salesforce's limit on a whole statement. */
const MAX_SOQL_CHARS = 100_000;
/**
 * The request line's URI plus the headers must stay within 16,384 bytes (else 414/431); the
 * query URI keeps 4 KB of that for the headers (the bearer token, host, user agent).
 */
const MAX_QUERY_URI_BYTES = 16_384 - 4_096;

const SOQL_ESCAPES: Record<string, string> = {
  '\\': '\\\\',
  "'": "\\'",
  '"': '\\"',
  '\n': '\\n',
  '\r': '\\r',
  '\t': '\\t',
  '\b': '\\b',
  '\f': '\\f',
};

/** A SOQL string literal; keys come from clients, so every quote and backslash is escaped. */
function soqlString(value: string): string {
  return `'${value.replace(/[\\'"\n\r\t\b\f]/g, (char) => SOQL_ESCAPES[char] ?? char)}'`;
}

/** A 15- or 18-character Salesforce Id; anything else in an Id filter fails the whole query. */
function isSalesforceId(value: string): boolean {
  return /^[a-zA-Z0-9]{15}(?:[a-zA-Z0-9]{3})?$/.test(value);
}

/**
 * `select WHERE field IN (…)` statements covering `keys`, each as full as the limits allow: the
 * WHERE clause within 4,000 characters, the statement within 100,000, and the encoded query URI
 * within its byte budget. A key too long to fit alone cannot name a record and is skipped.
 */
function inStatements(select: string, field: string, keys: readonly string[], uriPrefixBytes: number): { soql: string; keys: number }[] {
  const head = `${select} WHERE ${field} IN (`;
  const maxListChars = Math.min(MAX_WHERE_CHARS - `${field} IN ()`.length, MAX_SOQL_CHARS - head.length - 1);
  const maxListBytes = MAX_QUERY_URI_BYTES - uriPrefixBytes - encodedLength(head) - encodedLength(')');
  const statements: { soql: string; keys: number }[] = [];
  let list: string[] = [];
  let chars = 0;
  let bytes = 0;
  for (const key of keys) {
    const literal = soqlString(key);
    const literalBytes = encodedLength(literal);
    if (literal.length > maxListChars || literalBytes > maxListBytes) continue;
    // A comma costs one character, and three bytes once encoded.
    if (list.length && (chars + 1 + literal.length > maxListChars || bytes + 3 + literalBytes > maxListBytes)) {
      statements.push({ soql: `${head}${list.join(',')})`, keys: list.length });
      list = [];
    }
    chars = list.length ? chars + 1 + literal.length : literal.length;
    bytes = list.length ? bytes + 3 + literalBytes : literalBytes;
    list.push(literal);
  }
  if (list.length) statements.push({ soql: `${head}${list.join(',')})`, keys: list.length });
  return statements;
}

function encodedLength(text: string): number {
  return encodeURIComponent(text).length;
}

// ---------------------------------------------------------------------------------------------
// Mapping: Salesforce records ↔ canonical records, all in one place

/** What one kind of canonical record is read from: the sObject, its fields, the mapping. */
interface View<Row, Rec> {
  sobject: string;
  fields: readonly string[];
  /** Null when the row cannot be keyed canonically (an account without a customer number). */
  toRecord(row: Row): Rec | null;
  /** The order the port's lists come in (see the comparators below). */
  order?: (a: Rec, b: Rec) => number;
}

type Lookup<Fields extends string> = { [F in Fields]: string | null } | null;

interface AccountRow {
  Id: string;
  Name: string;
  AccountNumber: string | null;
  Industry: string | null;
  Segment__c: string | null;
  Owner: Lookup<'Name'>;
  BillingStreet: string | null;
  BillingCity: string | null;
  BillingState: string | null;
  BillingPostalCode: string | null;
  BillingCountry: string | null;
  Phone: string | null;
  Website: string | null;
}

interface ContactRow {
  Id: string;
  Account: Lookup<'AccountNumber'>;
  FirstName: string | null;
  LastName: string;
  Email: string | null;
  Phone: string | null;
  Title: string | null;
}

interface ContractRow {
  ContractNumber: string;
  Account: Lookup<'AccountNumber'>;
  Status: string;
  StartDate: string | null;
  EndDate: string | null;
  ContractTerm: number | null;
  SupportTier__c: string | null;
  SpecialTerms: string | null;
}

interface TaskRow {
  Id: string;
  Account: Lookup<'AccountNumber'>;
  Subject: string | null;
  Description: string | null;
  ActivityDate: string | null;
}

/** Accounts; the owner's name comes through the Owner lookup in the same query. */
const CUSTOMER: View<AccountRow, CustomerRecord> = {
  sobject: 'Account',
  fields: [
    'Id',
    'Name',
    'AccountNumber',
    'Industry',
    'Segment__c',
    'Owner.Name',
    'BillingStreet',
    'BillingCity',
    'BillingState',
    'BillingPostalCode',
    'BillingCountry',
    'Phone',
    'Website',
  ],
  toRecord(row) {
    if (row.AccountNumber === null) return null;
    const address = [row.BillingStreet, row.BillingCity, row.BillingState, row.BillingPostalCode, row.BillingCountry];
    return {
      id: row.AccountNumber,
      crmId: row.Id,
      name: row.Name,
      segment: row.Segment__c ? (SEGMENTS[row.Segment__c] ?? null) : null,
      industry: row.Industry,
      accountOwner: row.Owner?.Name ?? null,
      phone: row.Phone,
      website: row.Website,
      billingAddress: address.some(Boolean)
        ? {
            street: row.BillingStreet,
            city: row.BillingCity,
            state: row.BillingState,
            postalCode: row.BillingPostalCode,
            country: row.BillingCountry,
          }
        : null,
    };
  },
};

const CONTACT: View<ContactRow, ContactRecord> = {
  sobject: 'Contact',
  fields: ['Id', 'Account.AccountNumber', 'FirstName', 'LastName', 'Email', 'Phone', 'Title'],
  toRecord: (row) => ({
    id: row.Id,
    customerId: row.Account?.AccountNumber ?? null,
    firstName: row.FirstName,
    lastName: row.LastName,
    email: row.Email,
    phone: row.Phone,
    title: row.Title,
  }),
  order: byContactName,
};

const CONTRACT: View<ContractRow, ContractRecord> = {
  sobject: 'Contract',
  fields: ['ContractNumber', 'Account.AccountNumber', 'Status', 'StartDate', 'EndDate', 'ContractTerm', 'SupportTier__c', 'SpecialTerms'],
  toRecord(row) {
    // customerId is required: a contract on an account without a customer number has no customer.
    const customerId = row.Account?.AccountNumber;
    if (!customerId) return null;
    return {
      id: row.ContractNumber,
      customerId,
      status: CONTRACT_STATUSES[row.Status] ?? 'DRAFT',
      startDate: row.StartDate,
      endDate: row.EndDate,
      termMonths: row.ContractTerm,
      supportTier: (row.SupportTier__c && TIERS[row.SupportTier__c]) || 'BASIC',
      specialTerms: row.SpecialTerms,
    };
  },
  order: byStartDateDescending,
};

/** Tasks created by logActivity (Concord_Key__c set); the account comes through Task.Account. */
const ACTIVITY: View<TaskRow, ActivityRecord> = {
  sobject: 'Task',
  fields: ['Id', 'Account.AccountNumber', 'Subject', 'Description', 'ActivityDate'],
  toRecord(row) {
    const customerId = row.Account?.AccountNumber;
    if (!customerId) return null;
    return { id: row.Id, customerId, subject: row.Subject ?? '', description: row.Description, activityDate: row.ActivityDate };
  },
};

/**
 * A completed Task on the account. WhatId, not AccountId: Salesforce derives Task.AccountId
 * from WhatId/WhoId and rejects it on insert.
 */
function toTaskFields(accountId: string, activity: NewActivity): Record<string, string | null> {
  return {
    WhatId: accountId,
    Subject: activity.subject,
    ActivityDate: activity.activityDate,
    Status: 'Completed',
    Priority: 'Normal',
    Description: activity.description ?? null,
    TaskSubtype: 'Task',
    Concord_Key__c: activity.key,
  };
}

// Lists come in the embedded CRM's order (SQLite: bytewise, nulls lowest), not in Salesforce's
// (case-insensitive and locale-aware: "de Jong" sorts before "Smith" there, after it in SQLite),
// so switching adapters does not reorder what clients see. The adapter sorts; SOQL does not.

function byContactName(a: ContactRecord, b: ContactRecord): number {
  return ascending(a.lastName, b.lastName) || ascending(a.firstName, b.firstName) || ascending(a.id, b.id);
}

function byStartDateDescending(a: ContractRecord, b: ContractRecord): number {
  return ascending(b.startDate, a.startDate) || ascending(a.id, b.id);
}

/** Code-unit order with null lowest (first ascending, last descending), as SQLite orders. */
function ascending(a: string | null, b: string | null): number {
  if (a === b) return 0;
  if (a === null) return -1;
  if (b === null) return 1;
  return a < b ? -1 : 1;
}
