import { ConnectorError } from './errors.ts';
import type { ConnectorTelemetry } from './connector-telemetry.ts';
import type { ApiBudget } from './metrics.ts';
import { SystemCallError, type Resilience } from './resilience.ts';

/**
 * One HTTP pipeline for the vendor adapters (Zendesk, Business Central, …): send with the
 * account's credentials, the answer classified by the vendor's own status table, a rejected
 * token renewed once, the vendor's quota headers read from every answer, each request counted
 * and traced once (connector telemetry), and the call run through the resilience layer
 * (deadline, retries with Retry-After, breaker, bulkhead). An adapter supplies its wire shapes,
 * its table, its error shape and its paging; nothing here knows a vendor.
 *
 * The resilience layer stays Concord's own (platform/resilience.ts) rather than a library's:
 * its breaker counts a vendor's 4xx as an answer (a bad request is not an outage), half-open
 * refuses the callers behind the probe at once instead of queueing them, and its clock and
 * randomness are injectable, which the adapters' record-for-record tests rely on.
 */

/** What to do with an answer that is not a success. */
export type Verdict =
  /** The vendor's own trouble (5xx, 408): worth another try. */
  | 'retry'
  /** The vendor asks to slow down (429, a quota code): another try, after its Retry-After. */
  | 'rate-limited'
  /** The token was refused: renew it once and send again; a second refusal is the answer. */
  | 'refresh-auth'
  /** The request's own fault (4xx, credentials refused): the same request fails again. */
  | 'fail';

/** One row of a vendor's status table; the first row that matches decides. */
export interface StatusRule {
  /** A status, a list of statuses, or an inclusive range `[from, to]`. */
  readonly status?: number | readonly number[] | { readonly from: number; readonly to: number };
  /** The vendor's error code in the body (e.g. `BadRequest_NotFound`, `REQUEST_LIMIT_EXCEEDED`). */
  readonly code?: RegExp;
  readonly verdict: Verdict;
  /** Read the answer's Retry-After (seconds or an HTTP date) as the earliest next try. */
  readonly retryAfter?: boolean;
}

export type StatusTable = readonly StatusRule[];

/** A vendor's answer, whatever its status; `body` is parsed JSON, else the text (null when empty). */
export interface VendorAnswer {
  readonly status: number;
  header(name: string): string | null;
  /** Each Set-Cookie header of the answer (a session an adapter must send back, e.g. S/4HANA's CSRF token). */
  readonly setCookies: readonly string[];
  readonly body: unknown;
}

export interface VendorRequest {
  readonly method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** Absolute, on the vendor's origin. */
  readonly url: string;
  readonly headers?: Readonly<Record<string, string>>;
  /** Sent as JSON. */
  readonly body?: unknown;
  /** Sent as is instead of `body` (e.g. an OData `$batch` in multipart/mixed); give its content-type in `headers`. */
  readonly raw?: string;
  /** What the request is called in messages (`GET /api/v2/tickets/show_many.json`); the URL's path when not given. */
  readonly name?: string;
}

/** The account's credentials: the Authorization header, and, where the vendor's tokens expire, a renewal. */
export interface VendorAuth {
  authorization(): string | Promise<string>;
  /** A new Authorization header after the vendor refused the current one. */
  renew?(): Promise<string>;
}

export interface VendorHttpOptions {
  /** The vendor's base URL: a next link or any request to another origin is refused (the token stays home). */
  readonly baseUrl: string;
  readonly auth: VendorAuth;
  readonly statuses: StatusTable;
  /** The vendor's error code and message in a failed answer's body. */
  errorOf(body: unknown): { code: string | null; message: string };
  /** The error an adapter throws for a failed answer (its own class, its own message). */
  failure(
    request: VendorRequest,
    answer: VendorAnswer,
    error: { code: string | null; message: string },
    details: SystemCallError['details'],
  ): SystemCallError;
  /** The error for a request that got no answer (refused, reset); always worth another try. */
  noAnswer?(request: VendorRequest, detail: string, cause: unknown): SystemCallError;
  /** The vendor's quota as an answer's headers report it (every answer, failed ones too). */
  budget?(header: (name: string) => string | null): ApiBudget | null;
  readonly telemetry: ConnectorTelemetry;
  readonly resilience: Resilience;
}

export interface VendorHttp {
  /**
   * Sends one request and reads its answer, whatever the status (a refused token renewed once
   * on a `refresh-auth` verdict). Throws only for no answer. Not counted: run it inside
   * `counted` (or use `exchange`).
   */
  send(request: VendorRequest, signal: AbortSignal): Promise<VendorAnswer>;
  /** The classified error for a failed answer, as the status table says. */
  fail(request: VendorRequest, answer: VendorAnswer): SystemCallError;
  /**
   * One request counted once by telemetry: the answer when its status is a success or one of
   * `expect`, otherwise the classified error.
   */
  exchange(
    operation: string,
    detail: Record<string, unknown>,
    request: VendorRequest,
    signal: AbortSignal,
    expect?: readonly number[],
  ): Promise<VendorAnswer>;
  /** Runs `fn` (a request and what is made of its answer) counted once by telemetry. */
  counted<T>(operation: string, detail: Record<string, unknown>, fn: () => Promise<T>): Promise<T>;
  /** One call through the resilience layer: deadline, retries (idempotent calls only), breaker, bulkhead. */
  call<T>(operation: string, options: { idempotent: boolean }, fn: (signal: AbortSignal) => Promise<T>): Promise<T>;
  /** A next link as an absolute URL, refused when it points off the vendor's origin. */
  followable(next: string, current: string): string;
  /** The quota the last answer reported; null before any answer or for a vendor that reports none. */
  budget(): ApiBudget | null;
}

/** Retry-After (RFC 9110): a number of seconds or an HTTP date, as milliseconds from `now`. */
export function retryAfterMs(value: string | null | undefined, now: number = Date.now()): number | undefined {
  if (value === null || value === undefined || value.trim() === '') return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** The first rule of `table` that holds for the status and code; a table without a match fails the request. */
export function verdictOf(table: StatusTable, status: number, code: string | null): StatusRule {
  for (const rule of table) {
    if (rule.code && !(code !== null && rule.code.test(code))) continue;
    if (rule.status !== undefined && !statusMatches(rule.status, status)) continue;
    return rule;
  }
  return { verdict: 'fail' };
}

/**
 * What the resilience layer needs of a failed answer, as the table says: retryable for `retry`
 * and `rate-limited` (after the answer's Retry-After where the rule reads it), and the status
 * (401 and 403 read as credentials refused).
 */
export function failureDetails(
  table: StatusTable,
  answer: Pick<VendorAnswer, 'status' | 'header'>,
  code: string | null,
): SystemCallError['details'] {
  const rule = verdictOf(table, answer.status, code);
  const retryable = rule.verdict === 'retry' || rule.verdict === 'rate-limited';
  return {
    retryable,
    status: answer.status,
    retryAfterMs: retryable && rule.retryAfter ? retryAfterMs(answer.header('retry-after')) : undefined,
  };
}

function statusMatches(rule: NonNullable<StatusRule['status']>, status: number): boolean {
  if (typeof rule === 'number') return rule === status;
  if (Array.isArray(rule)) return rule.includes(status);
  const range = rule as { from: number; to: number };
  return status >= range.from && status <= range.to;
}

/**
 * Telemetry wraps a failure it takes for an outage in a ConnectorError naming the system; the
 * resilience layer decides on retries from the SystemCallError underneath, so that is what it
 * must see.
 */
export function unwrapTelemetry(error: unknown): never {
  if (error instanceof ConnectorError && error.cause instanceof SystemCallError) throw error.cause;
  throw error;
}

/** The reason a request got no answer: the deadline's own error, or the transport's code or message. */
export function noAnswerDetail(error: unknown): string {
  const cause = (error as { cause?: { code?: unknown; message?: unknown } } | null)?.cause;
  if (typeof cause?.code === 'string') return cause.code;
  if (typeof cause?.message === 'string') return cause.message;
  return String(error);
}

function parseBody(text: string): unknown {
  if (!text) return null;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

const SUCCESS = (status: number) => status >= 200 && status < 300;

/** A request as messages name it. */
export const nameOf = (request: VendorRequest): string => request.name ?? `${request.method} ${new URL(request.url).pathname}`;

export function createVendorHttp(options: VendorHttpOptions): VendorHttp {
  const origin = new URL(options.baseUrl).origin;
  let budget: ApiBudget | null = null;

  const noAnswer =
    options.noAnswer ??
    ((request: VendorRequest, detail: string, cause: unknown) =>
      new SystemCallError(`${nameOf(request)} failed: ${detail}`, { retryable: true }, { cause }));

  async function once(request: VendorRequest, signal: AbortSignal, authorization: string): Promise<VendorAnswer> {
    if (new URL(request.url).origin !== origin) {
      throw new SystemCallError(`refusing to send a request to ${new URL(request.url).origin}`, { retryable: false });
    }
    const headers: Record<string, string> = { accept: 'application/json', authorization, ...request.headers };
    if (request.body !== undefined && request.raw === undefined) headers['content-type'] ??= 'application/json';
    let response: Response;
    let text: string;
    const spent = options.resilience.budget.spend();
    try {
      response = await fetch(request.url, {
        method: request.method,
        headers,
        body: request.raw ?? (request.body === undefined ? undefined : JSON.stringify(request.body)),
        signal,
      });
      text = await response.text();
    } catch (error) {
      // The deadline aborts the request with the resilience layer's own (retryable) error.
      spent(null);
      if (signal.aborted && signal.reason instanceof SystemCallError) throw signal.reason;
      if (error instanceof SystemCallError) throw error;
      throw noAnswer(request, signal.aborted ? 'request aborted' : noAnswerDetail(error), error);
    }
    const header = (name: string) => response.headers.get(name);
    const reported = options.budget?.(header);
    if (reported) budget = reported;
    spent(reported ?? null);
    return { status: response.status, header, setCookies: response.headers.getSetCookie(), body: parseBody(text) };
  }

  async function send(request: VendorRequest, signal: AbortSignal): Promise<VendorAnswer> {
    const answer = await once(request, signal, await options.auth.authorization());
    if (SUCCESS(answer.status) || !options.auth.renew) return answer;
    const rule = verdictOf(options.statuses, answer.status, options.errorOf(answer.body).code);
    // One new token per request, never a loop: a second refusal is the answer.
    if (rule.verdict !== 'refresh-auth') return answer;
    return once(request, signal, await options.auth.renew());
  }

  function fail(request: VendorRequest, answer: VendorAnswer): SystemCallError {
    const error = options.errorOf(answer.body);
    return options.failure(request, answer, error, failureDetails(options.statuses, answer, error.code));
  }

  function counted<T>(operation: string, detail: Record<string, unknown>, fn: () => Promise<T>): Promise<T> {
    return options.telemetry.call(operation, detail, fn).catch(unwrapTelemetry);
  }

  return {
    send,
    fail,
    counted,
    exchange(operation, detail, request, signal, expect = []) {
      return counted(operation, detail, async () => {
        const answer = await send(request, signal);
        if (!SUCCESS(answer.status) && !expect.includes(answer.status)) throw fail(request, answer);
        return answer;
      });
    },
    call: (operation, callOptions, fn) => options.resilience.call(operation, callOptions, fn),
    followable(next, current) {
      const url = new URL(next, current);
      if (url.origin !== origin) throw new SystemCallError(`refusing to follow a next link to ${url.origin}`, { retryable: false });
      return url.href;
    },
    budget: () => budget,
  };
}

/** `X-Rate-Limit` / `X-Rate-Limit-Remaining` (Zendesk, per minute; Freshdesk's `X-RateLimit-*` read the same way). */
export function rateLimitHeaders(
  limitHeader: string,
  remainingHeader: string,
): (header: (name: string) => string | null) => ApiBudget | null {
  return (header) => {
    const limit = Number(header(limitHeader));
    const remaining = Number(header(remainingHeader));
    return Number.isFinite(limit) && limit > 0 && Number.isFinite(remaining) && header(remainingHeader) !== null
      ? { limit, remaining }
      : null;
  };
}
