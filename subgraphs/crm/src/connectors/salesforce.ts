import { pagingGuard } from '../../../../platform/paging.ts';
import { Connection, type HttpRequest } from 'jsforce';
import type { ConnectorTelemetry } from '../../../../platform/connector-telemetry.ts';
import { ConnectorError } from '../../../../platform/errors.ts';
import { SystemCallError, type Resilience } from '../../../../platform/resilience.ts';
import { unwrapTelemetry, verdictOf, type StatusTable } from '../../../../platform/vendor-http.ts';
import { toDecimal } from '../../../../platform/sql.ts';
import {
  CrmRefusal,
  type AccountOnboardingUpdate,
  type AccountRecord,
  type ActivityRecord,
  type AddressRecord,
  type ContactRecord,
  type ContractRecord,
  type ContractStatus,
  type CrmConnector,
  type CustomerRecord,
  type CustomerSegment,
  type NewActivity,
  type OpportunityLineRecord,
  type OpportunityOrderUpdate,
  type OpportunityRecord,
  type SubscriptionRecord,
  type SupportTier,
} from './types.ts';
import {
  billingAddressOf,
  type BillingAddressFields,
  CONTRACT_STATUSES,
  FREQUENCIES,
  ONBOARDING_FROM_CRM,
  ONBOARDING_TO_CRM,
  SEGMENTS,
  SUBSCRIPTION_STATUSES,
  TIERS,
} from './vocabulary.ts';

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
  const accountView = createCurrencyView(client, 'Account', accountViewFor);
  const opportunityView = createCurrencyView(client, 'Opportunity', opportunityViewFor);
  const subscriptionView = createCurrencyView(client, 'Subscription__c', subscriptionViewFor);

  return {
    customersByIds: (ids) => readIn('customersByIds', CUSTOMER, 'AccountNumber', ids, (record) => record.id),
    // Salesforce rejects a whole statement over one malformed Id literal; such a key matches nothing.
    contactsByIds: (ids) => readIn('contactsByIds', CONTACT, 'Id', ids.filter(isSalesforceId), (record) => record.id),
    contactsByCustomerIds: (customerIds) =>
      readIn('contactsByCustomerIds', CONTACT, 'Account.AccountNumber', customerIds, (record) => record.customerId),
    contractsByIds: (ids) => readIn('contractsByIds', CONTRACT, 'ContractNumber', ids, (record) => record.id),
    contractsByCrmIds: (ids) => readIn('contractsByCrmIds', CONTRACT, 'Id', ids.filter(isSalesforceId), (record) => record.crmId),
    contractsByCustomerIds: (customerIds) =>
      readIn('contractsByCustomerIds', CONTRACT, 'Account.AccountNumber', customerIds, (record) => record.customerId),
    logActivity: (activity) => logActivity(client, activity),
    async accountsByIds(ids) {
      const keys = ids.filter(isSalesforceId);
      if (!keys.length) return [];
      return readIn('accountsByIds', await accountView('accountsByIds'), 'Id', keys, (record) => record.id);
    },
    async recordAccountOnboarding(update) {
      if (!isSalesforceId(update.accountId)) return null;
      const operation = 'recordAccountOnboarding';
      const fields = toOnboardingFields(update);
      return writeOncePerKey(client, await accountView(operation), { operation, id: update.accountId, fields, activity: update });
    },
    async subscriptionsByIds(ids) {
      const keys = ids.filter(isSalesforceId);
      if (!keys.length) return [];
      return readIn('subscriptionsByIds', await subscriptionView('subscriptionsByIds'), 'Id', keys, (record) => record.id);
    },
    async opportunitiesByIds(ids) {
      const keys = ids.filter(isSalesforceId);
      if (!keys.length) return [];
      return readIn('opportunitiesByIds', await opportunityView('opportunitiesByIds'), 'Id', keys, (record) => record.id);
    },
    async opportunityLinesByOpportunityIds(ids) {
      const lines = await readIn(
        'opportunityLinesByOpportunityIds',
        OPPORTUNITY_LINE,
        'OpportunityId',
        ids.filter(isSalesforceId),
        (line) => line.opportunityId,
      );
      return lines.map(({ lineId: _lineId, ...line }) => line);
    },
    async recordOpportunityOrder(update) {
      if (!isSalesforceId(update.opportunityId)) return null;
      const operation = 'recordOpportunityOrder';
      const fields = toOrderFields(update);
      return writeOncePerKey(client, await opportunityView(operation), { operation, id: update.opportunityId, fields, activity: update });
    },
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
// Views that depend on the org, and writes recorded once per key

/**
 * The fields to read of `sobject`, which depend on the org: only a multi-currency org has
 * CurrencyIsoCode (naming it elsewhere fails the query with INVALID_FIELD), and a
 * single-currency org's records are all in USD, as the embedded CRM defaults them. One describe
 * of the sObject tells, on first use; a failed describe is asked again next time.
 */
function createCurrencyView<Row, Rec>(
  client: SalesforceClient,
  sobject: string,
  viewFor: (multiCurrency: boolean) => View<Row, Rec>,
): (operation: string) => Promise<View<Row, Rec>> {
  let view: Promise<View<Row, Rec>> | null = null;
  return (operation) => {
    if (view) return view;
    const pending = client
      .send<{ fields: { name: string }[] }>(operation, {}, { method: 'GET', url: `/sobjects/${sobject}/describe` }, true)
      .then((describe) => viewFor(describe.fields.some((field) => field.name === 'CurrencyIsoCode')));
    view = pending;
    pending.catch(() => {
      if (view === pending) view = null;
    });
    return pending;
  };
}

/** Fields to write onto one record, and the completed Task that records the write, once per key. */
interface KeyedWrite {
  /** The telemetry's and resilience layer's name for the calls. */
  operation: string;
  /** The record's Id; the Task's WhatId. */
  id: string;
  fields: Record<string, string | null>;
  activity: Pick<NewActivity, 'key' | 'subject' | 'description' | 'activityDate'>;
}

/**
 * Writes the fields onto the record and records the Task, once per key. The record and a Task
 * with the key are looked up first (in parallel): no record is null, a used key returns the
 * record as it is. Otherwise one Composite request, all or none, in order: PATCH the fields,
 * create the Task on the record, read the record back.
 *
 * The Task is created, not upserted by Concord_Key__c: the org holds the key as a unique
 * external id, so a second create with it (a concurrent call, or a retry whose first answer was
 * lost) fails with DUPLICATE_VALUE, which rolls the record's update back with it; an upsert
 * would update that Task and write the record again. After a DUPLICATE_VALUE on the key the
 * adapter reads the record the winner wrote; any other DUPLICATE_VALUE (a unique field of the
 * record) is a refusal. Being all or none, the request is safe to retry.
 */
async function writeOncePerKey<Row, Rec extends { id: string }>(
  client: SalesforceClient,
  view: View<Row, Rec>,
  write: KeyedWrite,
): Promise<Rec | null> {
  const { operation, id, activity } = write;
  const read = async () => (await client.readIn(operation, view, 'Id', [id], (record) => record.id))[0] ?? null;
  const [record, recorded] = await Promise.all([read(), keyUsed(client, operation, activity.key)]);
  if (!record) return null;
  if (recorded) return record;
  try {
    return await writeWithTask(client, view, write);
  } catch (error) {
    if (!(error instanceof SalesforceError)) throw error;
    if (error.errorCode === 'DUPLICATE_VALUE' && (await keyUsed(client, operation, activity.key))) return read();
    // Deleted since it was read: there is no such record any more.
    if (NOT_FOUND_CODES.has(error.errorCode) && !(await read())) return null;
    if (REFUSAL_CODES.has(error.errorCode)) throw new CrmRefusal(salesforceMessage(error), error.errorCode);
    throw error;
  }
}

async function keyUsed(client: SalesforceClient, operation: string, key: string): Promise<boolean> {
  const rows = await client.query<{ Id: string }>(operation, `SELECT Id FROM Task WHERE Concord_Key__c = ${soqlString(key)} LIMIT 1`, {});
  return rows.length > 0;
}

interface CompositeResponse {
  compositeResponse: { body: unknown; httpHeaders: Record<string, string>; httpStatusCode: number; referenceId: string }[];
}

async function writeWithTask<Row, Rec>(client: SalesforceClient, view: View<Row, Rec>, write: KeyedWrite): Promise<Rec | null> {
  const { basePath } = client;
  const { id } = write;
  const select = `SELECT ${view.fields.join(', ')} FROM ${view.sobject} WHERE Id = ${soqlString(id)}`;
  const compositeRequest = [
    { method: 'PATCH', url: `${basePath}/sobjects/${view.sobject}/${id}`, referenceId: 'update', body: write.fields },
    { method: 'POST', url: `${basePath}/sobjects/Task`, referenceId: 'activity', body: toTaskFields(id, write.activity) },
    { method: 'GET', url: `${basePath}/query?q=${encodeURIComponent(select)}`, referenceId: 'record' },
  ];
  // Collation (the default since API 49.0) may reorder subrequests; the read must come last.
  const body = JSON.stringify({ allOrNone: true, collateSubrequests: false, compositeRequest });
  const response = await client.send<CompositeResponse>(
    write.operation,
    { subrequests: compositeRequest.length },
    { method: 'POST', url: '/composite', body, headers: JSON_BODY },
    true,
    throwCompositeFailure,
  );
  const page = response.compositeResponse.find((result) => result.referenceId === 'record')?.body as QueryPage<Row> | undefined;
  const row = page?.records[0];
  return row ? view.toRecord(row) : null;
}

/**
 * A Composite request answers 200 whatever its subrequests did. With allOrNone, the one that
 * failed carries its error and every other one 400 PROCESSING_HALTED; the failure is thrown as
 * the subrequest's own error, so a busy org (UNABLE_TO_LOCK_ROW, 5xx) is retried as a whole.
 */
function throwCompositeFailure(response: CompositeResponse): void {
  if (!Array.isArray(response?.compositeResponse)) {
    throw new SalesforceError('composite: the answer has no compositeResponse', 'ERROR_HTTP_200', { retryable: false, status: 200 });
  }
  const failures = response.compositeResponse
    .filter((result) => result.httpStatusCode >= 400)
    .map((result) => ({ result, error: firstError(result.body) }));
  const failure = failures.find(({ error }) => error.errorCode !== 'PROCESSING_HALTED') ?? failures[0];
  if (!failure) return;
  const { result, error } = failure;
  throw salesforceError(
    error.errorCode || `ERROR_HTTP_${result.httpStatusCode}`,
    `${result.referenceId}: ${error.message}`,
    result.httpStatusCode,
    error,
  );
}

/** A subrequest's error body is Salesforce's usual `[{message, errorCode, fields?}]`. */
function firstError(body: unknown): { errorCode: string; message: string; fields: unknown } {
  const entry: unknown = Array.isArray(body) ? body[0] : body;
  const { errorCode, message, fields } = (entry && typeof entry === 'object' ? entry : {}) as Record<string, unknown>;
  return { errorCode: typeof errorCode === 'string' ? errorCode : '', message: typeof message === 'string' ? message : '', fields };
}

/** Salesforce's own message for the error (a validation rule's text), without the adapter's prefixes. */
function salesforceMessage(error: SalesforceError): string {
  const cause = error.cause as { message?: unknown } | undefined;
  return typeof cause?.message === 'string' && cause.message ? cause.message : error.message;
}

/**
 * Error codes of a write the org refuses by its own rules and configuration: a validation rule
 * (or a trigger's addError), a lookup filter, an approval lock, sharing, a restricted picklist,
 * a required or unique field, a flow that threw. Sending it again gives the same answer.
 */
const REFUSAL_CODES = new Set([
  'FIELD_CUSTOM_VALIDATION_EXCEPTION',
  'FIELD_FILTER_VALIDATION_EXCEPTION',
  'FIELD_INTEGRITY_EXCEPTION',
  'ENTITY_IS_LOCKED',
  'INSUFFICIENT_ACCESS_OR_READONLY',
  'INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY',
  'INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST',
  'STRING_TOO_LONG',
  'REQUIRED_FIELD_MISSING',
  'DUPLICATE_VALUE',
  // A duplicate rule of the org (AccountNumber itself cannot be marked unique on Account).
  'DUPLICATES_DETECTED',
  'CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY',
]);

/** What a PATCH of a record deleted since it was read answers. */
const NOT_FOUND_CODES = new Set(['NOT_FOUND', 'ENTITY_IS_DELETED']);

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
  /** `/services/data/v59.0`: what Composite subrequest URLs start with. */
  const basePath = new URL(conn._baseUrl()).pathname;
  const queryPath = `${basePath}/query?q=`;

  /**
   * Sends one HTTP request: one resilience call (whose retries are the only ones: jsforce's own
   * retry of GETs on 420/429/5xx and socket errors, 5 tries 500 ms doubling, is switched off per
   * request, or each resilience try would hide up to six requests and ~15 s of sleeping behind
   * one count and one deadline). Inside it, one telemetry call per request on the wire; a 401
   * renews the session once and sends again. jsforce takes no abort signal: a request past the
   * resilience deadline is abandoned, not cancelled, and still counts against the allocation.
   */
  async function send<R>(
    operation: string,
    detail: Record<string, unknown>,
    request: HttpRequest,
    idempotent: boolean,
    inspect?: (body: R) => void,
  ): Promise<R> {
    return resilience.call(operation, { idempotent }, async () => {
      const token = conn.accessToken;
      try {
        return await exchange<R>(operation, detail, request, inspect);
      } catch (error) {
        if (!isSessionRejected(error)) throw error;
        await renewSession(operation, token, error);
      }
      try {
        return await exchange<R>(operation, detail, request, inspect);
      } catch (error) {
        if (!isSessionRejected(error)) throw error;
        throw new ConnectorError(telemetry.system, `${operation}: Salesforce rejected the renewed session too (${error.message})`, {
          cause: error,
        });
      }
    });
  }

  /**
   * Exactly one HTTP request, counted once; failures come out classified. `inspect` may throw a
   * SalesforceError for a failure reported inside a 200 answer (a Composite subrequest's), so
   * the telemetry counts it as one and the resilience layer retries it as one.
   */
  async function exchange<R>(
    operation: string,
    detail: Record<string, unknown>,
    request: HttpRequest,
    inspect?: (body: R) => void,
  ): Promise<R> {
    try {
      return await telemetry.call(operation, detail, async () => {
        let body: R;
        // jsforce reads Sforce-Limit-Info into conn.limitInfo: the org's daily allocation, for the budget.
        const spent = resilience.budget.spend();
        try {
          // A fresh headers object per send: jsforce writes Authorization into the one it gets.
          body = await conn.request<R>({ ...request, headers: { ...request.headers } }, NO_JSFORCE_RETRY);
          spent(apiUsage());
        } catch (error) {
          spent(apiUsage());
          throw classify(error);
        }
        inspect?.(body);
        return body;
      });
    } catch (error) {
      unwrapTelemetry(error);
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

  return { send, query, readIn, apiUsage, basePath };
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
  return (
    error instanceof SalesforceError &&
    verdictOf(SALESFORCE_STATUSES, error.details.status ?? 0, error.errorCode).verdict === 'refresh-auth'
  );
}

// ---------------------------------------------------------------------------------------------
// Failure classification

/**
 * What each failed answer means, by Salesforce's error code first (jsforce's error carries the
 * code; the status only where the code says it): a rejected session is renewed once; the org
 * busy (REQUEST_LIMIT_EXCEEDED, a 403: the daily allocation or the concurrent long-request
 * limit; 420, 429) or down (SERVER_UNAVAILABLE, UNKNOWN_EXCEPTION, 5xx) or a row locked by
 * another transaction (UNABLE_TO_LOCK_ROW, a 400) is worth another try; anything else is the
 * request's own fault. Salesforce sends no Retry-After.
 */
const SALESFORCE_STATUSES: StatusTable = [
  { code: /^(INVALID_SESSION_ID|ERROR_HTTP_401)$/, verdict: 'refresh-auth' },
  { code: /^REQUEST_LIMIT_EXCEEDED$/, verdict: 'rate-limited' },
  { code: /^(SERVER_UNAVAILABLE|UNKNOWN_EXCEPTION|UNABLE_TO_LOCK_ROW)$/, verdict: 'retry' },
  { status: [420, 429], verdict: 'rate-limited' },
  { status: { from: 500, to: 599 }, verdict: 'retry' },
  { verdict: 'fail' },
];

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
    return salesforceError(errorCode, message, httpStatus ? Number(httpStatus) : STATUS_OF_CODE[errorCode], error);
  }
  const code = (error as { code?: unknown } | null)?.code;
  if ((error as Error | null)?.name === 'FetchError' || (typeof code === 'string' && NETWORK_CODES.has(code))) {
    return new SystemCallError(`network: ${message}`, { retryable: true }, { cause: error });
  }
  return error instanceof Error ? error : new Error(message);
}

function salesforceError(errorCode: string, message: string, status: number | undefined, cause: unknown): SalesforceError {
  const { verdict } = verdictOf(SALESFORCE_STATUSES, status ?? 0, errorCode);
  const retryable = verdict === 'retry' || verdict === 'rate-limited';
  return new SalesforceError(`${errorCode}: ${message}`, errorCode, { retryable, status }, { cause });
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

interface AccountRow extends BillingAddressFields {
  Id: string;
  Name: string;
  AccountNumber: string | null;
  Industry: string | null;
  Segment__c: string | null;
  Owner: Lookup<'Name'>;
  Phone: string | null;
  Website: string | null;
}

interface OnboardingAccountRow extends BillingAddressFields {
  Id: string;
  Name: string;
  AccountNumber: string | null;
  Phone: string | null;
  Tax_Registration_Number__c: string | null;
  Billing_Email__c: string | null;
  /** Only in a multi-currency org. */
  CurrencyIsoCode?: string | null;
  Onboarding_Status__c: string | null;
  Onboarding_Reason__c: string | null;
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
  Id: string;
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

interface OpportunityRow {
  Id: string;
  Account: Lookup<'AccountNumber'>;
  Name: string;
  StageName: string;
  IsClosed: boolean;
  IsWon: boolean;
  CloseDate: string | null;
  Amount: number | null;
  /** Only in a multi-currency org. */
  CurrencyIsoCode?: string | null;
  ERP_Order_Number__c: string | null;
  ERP_Order_Status__c: string | null;
  Expected_Ship_Date__c: string | null;
}

interface SubscriptionRow {
  Id: string;
  /** Custom lookups come through their `__r` relationships. */
  Account__r: Lookup<'AccountNumber'>;
  Contract__r: Lookup<'ContractNumber'>;
  Plan_Code__c: string;
  Quantity__c: number;
  Support_Tier__c: string | null;
  Status__c: string | null;
  Start_Date__c: string | null;
  End_Date__c: string | null;
  Unit_Price__c: number;
  Billing_Frequency__c: string | null;
  /** Only in a multi-currency org. */
  CurrencyIsoCode?: string | null;
}

interface OpportunityLineRow {
  Id: string;
  OpportunityId: string;
  ProductCode: string | null;
  Name: string | null;
  Quantity: number;
  UnitPrice: number;
  SortOrder: number | null;
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
    return {
      id: row.AccountNumber,
      crmId: row.Id,
      name: row.Name,
      segment: row.Segment__c ? (SEGMENTS[row.Segment__c] ?? null) : null,
      industry: row.Industry,
      accountOwner: row.Owner?.Name ?? null,
      phone: row.Phone,
      website: row.Website,
      billingAddress: billingAddressOf(row),
    };
  },
};

/** The billing address, or null when every part of it is empty. */

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
  fields: [
    'Id',
    'ContractNumber',
    'Account.AccountNumber',
    'Status',
    'StartDate',
    'EndDate',
    'ContractTerm',
    'SupportTier__c',
    'SpecialTerms',
  ],
  toRecord(row) {
    // customerId is required: a contract on an account without a customer number has no customer.
    const customerId = row.Account?.AccountNumber;
    if (!customerId) return null;
    return {
      id: row.ContractNumber,
      crmId: row.Id,
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

/** The currency of every record in a single-currency org, as the embedded CRM defaults it. */
const SINGLE_CURRENCY = 'USD';

/** The picklist values of Account.Onboarding_Status__c. */

/**
 * Accounts as onboarding reads them, with or without a customer number. An account without an
 * onboarding status is from before onboarding existed and counts as active; a status the
 * adapter does not know counts as pending.
 */
function accountViewFor(multiCurrency: boolean): View<OnboardingAccountRow, AccountRecord> {
  return {
    sobject: 'Account',
    fields: [
      'Id',
      'AccountNumber',
      'Name',
      'BillingStreet',
      'BillingCity',
      'BillingState',
      'BillingPostalCode',
      'BillingCountry',
      'Phone',
      'Tax_Registration_Number__c',
      'Billing_Email__c',
      ...(multiCurrency ? ['CurrencyIsoCode'] : []),
      'Onboarding_Status__c',
      'Onboarding_Reason__c',
    ],
    toRecord: (row) => ({
      id: row.Id,
      customerId: row.AccountNumber,
      name: row.Name,
      billingAddress: billingAddressOf(row),
      phone: row.Phone,
      taxRegistrationNumber: row.Tax_Registration_Number__c,
      billingEmail: row.Billing_Email__c,
      currency: row.CurrencyIsoCode ?? SINGLE_CURRENCY,
      onboardingStatus: row.Onboarding_Status__c ? (ONBOARDING_FROM_CRM[row.Onboarding_Status__c] ?? 'PENDING') : 'ACTIVE',
      onboardingReason: row.Onboarding_Reason__c,
    }),
  };
}

/** Opportunities; the customer number comes through the Account lookup in the same query. */
function opportunityViewFor(multiCurrency: boolean): View<OpportunityRow, OpportunityRecord> {
  return {
    sobject: 'Opportunity',
    fields: [
      'Id',
      'Account.AccountNumber',
      'Name',
      'StageName',
      'IsClosed',
      'IsWon',
      'CloseDate',
      'Amount',
      ...(multiCurrency ? ['CurrencyIsoCode'] : []),
      'ERP_Order_Number__c',
      'ERP_Order_Status__c',
      'Expected_Ship_Date__c',
    ],
    toRecord: (row) => ({
      id: row.Id,
      customerId: row.Account?.AccountNumber ?? null,
      name: row.Name,
      stage: row.StageName,
      isClosed: row.IsClosed,
      isWon: row.IsWon,
      closeDate: row.CloseDate,
      amount: row.Amount === null ? null : toDecimal(row.Amount),
      currency: row.CurrencyIsoCode ?? SINGLE_CURRENCY,
      erpOrderNumber: row.ERP_Order_Number__c,
      erpOrderStatus: row.ERP_Order_Status__c,
      expectedShipDate: row.Expected_Ship_Date__c,
    }),
  };
}

/**
 * Subscriptions (the custom object Subscription__c); the customer number and the contract number
 * come through the Account__r and Contract__r lookups in the same query. A picklist value the
 * adapter does not know reads as Basic, Draft and Monthly, as in the embedded CRM.
 */
function subscriptionViewFor(multiCurrency: boolean): View<SubscriptionRow, SubscriptionRecord> {
  return {
    sobject: 'Subscription__c',
    fields: [
      'Id',
      'Account__r.AccountNumber',
      'Contract__r.ContractNumber',
      'Plan_Code__c',
      'Quantity__c',
      'Support_Tier__c',
      'Status__c',
      'Start_Date__c',
      'End_Date__c',
      'Unit_Price__c',
      'Billing_Frequency__c',
      ...(multiCurrency ? ['CurrencyIsoCode'] : []),
    ],
    toRecord: (row) => ({
      id: row.Id,
      customerId: row.Account__r?.AccountNumber ?? null,
      contractId: row.Contract__r?.ContractNumber ?? null,
      plan: row.Plan_Code__c,
      quantity: row.Quantity__c,
      tier: (row.Support_Tier__c && TIERS[row.Support_Tier__c]) || 'BASIC',
      status: (row.Status__c && SUBSCRIPTION_STATUSES[row.Status__c]) || 'DRAFT',
      startDate: row.Start_Date__c,
      endDate: row.End_Date__c,
      unitPrice: toDecimal(row.Unit_Price__c),
      frequency: (row.Billing_Frequency__c && FREQUENCIES[row.Billing_Frequency__c]) || 'MONTHLY',
      currency: row.CurrencyIsoCode ?? SINGLE_CURRENCY,
    }),
  };
}

/** A line with its own Id, which orders lines of equal SortOrder and is dropped before returning. */
type OrderedLine = OpportunityLineRecord & { lineId: string };

/**
 * Opportunity products. ProductCode and Name come from the product (read-only on the line); a
 * line whose product has no code names no ERP item and is left out. A line never sorted in
 * Salesforce has no SortOrder: 0, the embedded CRM's default.
 */
const OPPORTUNITY_LINE: View<OpportunityLineRow, OrderedLine> = {
  sobject: 'OpportunityLineItem',
  fields: ['Id', 'OpportunityId', 'ProductCode', 'Name', 'Quantity', 'UnitPrice', 'SortOrder'],
  toRecord(row) {
    if (!row.ProductCode) return null;
    return {
      lineId: row.Id,
      opportunityId: row.OpportunityId,
      sku: row.ProductCode,
      name: row.Name,
      quantity: row.Quantity,
      unitPrice: toDecimal(row.UnitPrice),
      sortOrder: row.SortOrder ?? 0,
    };
  },
  order: byOpportunityThenSortOrder,
};

/** The onboarding outcome written onto the account; a null customer number leaves AccountNumber as it is. */
function toOnboardingFields(update: AccountOnboardingUpdate): Record<string, string | null> {
  return {
    Onboarding_Status__c: ONBOARDING_TO_CRM[update.status],
    Onboarding_Reason__c: update.reason,
    ...(update.customerNumber === null ? {} : { AccountNumber: update.customerNumber }),
  };
}

/** The three order fields written back onto the opportunity. */
function toOrderFields(update: OpportunityOrderUpdate): Record<string, string | null> {
  return {
    ERP_Order_Number__c: update.orderNumber,
    ERP_Order_Status__c: update.orderStatus,
    Expected_Ship_Date__c: update.expectedShipDate,
  };
}

/**
 * A completed Task on the record `whatId` names (an account, an opportunity). WhatId, not
 * AccountId: Salesforce derives Task.AccountId from WhatId/WhoId (an opportunity's account) and
 * rejects it on insert.
 */
function toTaskFields(
  whatId: string,
  activity: Pick<NewActivity, 'key' | 'subject' | 'description' | 'activityDate'>,
): Record<string, string | null> {
  return {
    WhatId: whatId,
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

function byOpportunityThenSortOrder(a: OrderedLine, b: OrderedLine): number {
  return ascending(a.opportunityId, b.opportunityId) || a.sortOrder - b.sortOrder || ascending(a.lineId, b.lineId);
}

/** Code-unit order with null lowest (first ascending, last descending), as SQLite orders. */
function ascending(a: string | null, b: string | null): number {
  if (a === b) return 0;
  if (a === null) return -1;
  if (b === null) return 1;
  return a < b ? -1 : 1;
}
