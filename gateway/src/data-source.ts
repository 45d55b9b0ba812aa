import { asyncSlot } from '../../platform/async-context.ts';
import { currentPriority, PRIORITY_HEADER } from '../../platform/api-budget.ts';
import { RemoteGraphQLDataSource, type GraphQLDataSourceProcessOptions } from '@apollo/gateway';
import { GraphQLError, type GraphQLFormattedError } from 'graphql';
import { Pool } from 'undici';
import { ErrorCode } from '../../platform/errors.ts';
import type { Identity } from '../../platform/identity.ts';
import type { Logger } from '../../platform/logger.ts';
import { CORRELATION_HEADER } from '../../platform/request-context.ts';
import { failSpan, inSpan, SpanKind, traceHeaders } from '../../platform/tracing.ts';
import { readsFresh, scopeOf, type EntityCache } from './cache/entity-cache.ts';
import type { SharedFetches } from './shared-fetches.ts';
import type { GatewayMetrics } from './metrics.ts';
import type { GatewayContext } from './context.ts';

/** Connections kept per subgraph: more than a gateway process has fetches in flight to one subgraph at once. */
const POOL_CONNECTIONS = 64;
/** Calls that may wait for a connection to one subgraph; one more fails at once. */
const MAX_QUEUED = 4 * POOL_CONNECTIONS;
/**
 * A call waits for a connection at most this long (and never past a quarter of its deadline): a
 * system whose every connection stays taken that long is reported busy, not waited on.
 */
const MAX_QUEUE_WAIT_MS = 1_000;

/**
 * Signs the internal token for one subgraph call. `minLifeMs`: the token must stay valid at least
 * this long (the call's remaining deadline), so it cannot expire on the way.
 */
export type InternalSigner = (identity: Identity, audience: string, minLifeMs?: number) => Promise<string>;

/** How the gateway calls subgraphs: the deadline of one call and the largest answer it reads. */
export interface SubgraphCallLimits {
  /** One call's deadline, from the moment it is made: waiting for a connection, headers and body. */
  readonly timeoutMs: number;
  /** A subgraph answer larger than this is refused, and read no further. */
  readonly maxResponseBytes: number;
}

/** Why a call failed before or while its answer was read (each becomes a GraphQL error naming the system). */
class SubgraphCallError extends Error {
  constructor(
    readonly reason: 'deadline' | 'busy' | 'too-large',
    message: string,
  ) {
    super(message);
    this.name = 'SubgraphCallError';
  }
}

/** One call as the fetcher sees it: its deadline and how to sign its token once it is sent. */
interface SubgraphCall {
  readonly signal: AbortSignal;
  readonly deadline: number;
  /** The authorization header value, signed when the call gets its connection (null: none). */
  readonly authorize: ((minLifeMs: number) => Promise<string>) | null;
}

const calls = asyncSlot<SubgraphCall>('concord.subgraph-call');

/**
 * Calls one subgraph. Every call carries the request's correlation id and has one deadline
 * (RemoteGraphQLDataSource sets none) that covers waiting for a connection, the headers and the
 * whole body; a subgraph that cannot be reached, is too busy to take the call, times out or
 * answers with a server error fails only its part of the answer, with SYSTEM_UNAVAILABLE naming
 * the system and never its URL or response body. An answer larger than the configured size is
 * refused while it arrives. A subgraph's own 4xx refusal with GraphQL errors (a validation error,
 * a bad argument) reaches the client with its own code.
 */
export class SubgraphDataSource extends RemoteGraphQLDataSource<GatewayContext> {
  private readonly timeoutMs: number;

  constructor(
    private readonly serviceName: string,
    url: string,
    private readonly logger: Logger,
    private readonly signInternal: InternalSigner | null,
    private readonly cache: EntityCache | null,
    /** The connections, and the deadline and answer size every call gets. */
    pools: SubgraphPools,
    /** Identical fetches in flight, sent once (the cache shares the same when it is on). */
    private readonly shared: SharedFetches | null = null,
  ) {
    const target = new URL(url);
    super({ url, fetcher: pools.fetcherFor(serviceName, target.origin, target.pathname + target.search) });
    this.timeoutMs = pools.limits.timeoutMs;
  }

  /** Sends the correlation id; the token is signed later, when the call gets its connection (poolFetcher). */
  override async willSendRequest({ request, context }: GraphQLDataSourceProcessOptions<GatewayContext>): Promise<void> {
    if (!context || !('identity' in context)) return;
    request.http?.headers.set(CORRELATION_HEADER, context.correlationId);
    if (currentPriority() === 'background') request.http?.headers.set(PRIORITY_HEADER, 'background');
    request.http?.headers.delete('authorization');
  }

  /** A fetch for a client's operation goes through the cache when there is one (cache/entity-cache.ts). */
  override async process(
    options: GraphQLDataSourceProcessOptions<GatewayContext>,
  ): ReturnType<RemoteGraphQLDataSource<GatewayContext>['process']> {
    const context = options.context as Partial<GatewayContext> | undefined;
    const identity = context?.identity;
    const operation = 'incomingRequestContext' in options ? options.incomingRequestContext.operation?.operation : undefined;
    if (operation === 'mutation') {
      // A write: no read begun before it or while it runs is shared with a read after it.
      context?.answerLifetime?.note(0);
      this.shared?.changed();
      try {
        return await this.send(options);
      } finally {
        this.shared?.changed();
      }
    }
    if (!identity || readsFresh(identity)) return this.send(options);
    if (this.cache) {
      return this.cache.process(
        this.serviceName,
        identity,
        options as GraphQLDataSourceProcessOptions,
        (fetchOptions) => this.send(fetchOptions as GraphQLDataSourceProcessOptions<GatewayContext>),
        context.answerLifetime,
      );
    }
    if (this.shared && operation === 'query' && options.request.query) {
      const key = `${this.serviceName}\u0000${scopeOf(identity)}\u0000${options.request.query}\u0000${JSON.stringify(options.request.variables ?? {})}`;
      return this.shared.run(key, () => this.send(options));
    }
    return this.send(options);
  }

  private async send(
    options: GraphQLDataSourceProcessOptions<GatewayContext>,
  ): ReturnType<RemoteGraphQLDataSource<GatewayContext>['process']> {
    const controller = new AbortController();
    const deadline = Date.now() + this.timeoutMs;
    const timer = setTimeout(
      () => controller.abort(new SubgraphCallError('deadline', `no answer within ${this.timeoutMs} ms`)),
      this.timeoutMs,
    );
    const context = options.context as Partial<GatewayContext> | undefined;
    const identity = context?.identity;
    const sign = this.signInternal;
    const call: SubgraphCall = {
      signal: controller.signal,
      deadline,
      authorize: identity && sign ? async (minLifeMs) => `Bearer ${await sign(identity, this.serviceName, minLifeMs)}` : null,
    };
    try {
      return await calls.run(call, () => super.process(options));
    } catch (error) {
      const refusal = clientRefusalOf(error);
      if (refusal) {
        this.logger.info({ subgraph: this.serviceName, status: refusal.status }, `subgraph ${this.serviceName} refused the request`);
        return { errors: refusal.errors };
      }
      throw this.failure(controller.signal.aborted ? controller.signal.reason : error);
    } finally {
      clearTimeout(timer);
    }
  }

  private failure(error: unknown): GraphQLError {
    const reason = error instanceof SubgraphCallError ? error.reason : timedOutNatively(error) ? 'deadline' : null;
    this.logger.warn({ err: error, subgraph: this.serviceName, url: this.url, reason }, `subgraph ${this.serviceName} failed`);
    const extensions = { code: ErrorCode.SystemUnavailable as string, serviceName: this.serviceName };
    if (reason === 'deadline')
      return new GraphQLError(`The ${this.serviceName} system did not answer within ${this.timeoutMs} ms`, { extensions });
    if (reason === 'busy') return new GraphQLError(`The ${this.serviceName} system is too busy to take the request`, { extensions });
    if (reason === 'too-large')
      return new GraphQLError(`The ${this.serviceName} system's answer is larger than the gateway accepts; ask for fewer rows`, {
        extensions: { ...extensions, code: ErrorCode.ResponseTooLarge },
      });
    return new GraphQLError(`The ${this.serviceName} system is unavailable`, { extensions });
  }
}

function timedOutNatively(error: unknown): boolean {
  return (
    error instanceof Error &&
    (error.name === 'TimeoutError' ||
      error.name === 'AbortError' ||
      error.name === 'HeadersTimeoutError' ||
      error.name === 'BodyTimeoutError')
  );
}

/**
 * A subgraph's 4xx answer carrying GraphQL errors (Apollo Server answers 400 to an operation it
 * refuses: validation, variables): the client's request was at fault, not the system, so its
 * errors go on with their own codes. A 401 (the gateway's own token refused), 408 and 429 (the
 * system is busy) are the system's trouble and stay SYSTEM_UNAVAILABLE.
 */
function clientRefusalOf(error: unknown): { status: number; errors: GraphQLFormattedError[] } | null {
  if (!(error instanceof GraphQLError)) return null;
  const response = error.extensions.response as { status?: unknown; body?: unknown } | undefined;
  const status = typeof response?.status === 'number' ? response.status : 0;
  if (status < 400 || status > 499 || status === 401 || status === 408 || status === 429) return null;
  const errors = (response?.body as { errors?: unknown } | undefined)?.errors;
  if (!Array.isArray(errors) || errors.length === 0) return null;
  const refusals: GraphQLFormattedError[] = [];
  for (const item of errors as { message?: unknown; extensions?: Record<string, unknown> }[]) {
    if (typeof item?.message !== 'string' || typeof item.extensions?.code !== 'string') return null;
    const { stacktrace: _stacktrace, ...extensions } = item.extensions;
    refusals.push({ message: item.message, extensions });
  }
  return { status, errors: refusals };
}

/** One subgraph origin's connections and the calls waiting for one. */
interface OriginPool {
  readonly pool: Pool;
  readonly slots: Slots;
}

/**
 * The gateway's keep-alive connection pools, one per subgraph origin. A new supergraph makes new
 * data sources; they reuse the pool of an origin they share with the old ones, and close() (the
 * gateway stopping) ends them all.
 */
export class SubgraphPools {
  private readonly pools = new Map<string, OriginPool>();
  readonly limits: SubgraphCallLimits;

  constructor(
    timeoutMs: number,
    maxResponseBytes: number,
    private readonly metrics: GatewayMetrics | null = null,
  ) {
    this.limits = { timeoutMs, maxResponseBytes };
  }

  private for(origin: string): OriginPool {
    let entry = this.pools.get(origin);
    if (!entry) {
      entry = {
        pool: new Pool(origin, {
          connections: POOL_CONNECTIONS,
          keepAliveTimeout: 60_000,
          keepAliveMaxTimeout: 600_000,
          // The call's own deadline (an AbortSignal) bounds the whole exchange; these only catch
          // a connection gone silent past it.
          headersTimeout: this.limits.timeoutMs,
          bodyTimeout: this.limits.timeoutMs,
        }),
        slots: new Slots(POOL_CONNECTIONS, MAX_QUEUED),
      };
      this.pools.set(origin, entry);
    }
    return entry;
  }

  /** The fetch RemoteGraphQLDataSource calls, over this origin's pool (see poolFetcher). */
  fetcherFor(serviceName: string, origin: string, path: string): Fetcher {
    return poolFetcher(serviceName, () => this.for(origin), path, this.limits, this.metrics);
  }

  async close(): Promise<void> {
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(pools.map(({ pool }) => pool.close()));
  }
}

/**
 * Connections in use to one origin, and the calls waiting for one, first come first served. The
 * pool would queue without limit; this takes that queue over so that its length and each wait
 * are bounded, and a call learns it will not be served instead of waiting out its deadline.
 */
class Slots {
  private inUse = 0;
  private readonly waiting: { grant: () => void }[] = [];

  constructor(
    private readonly size: number,
    private readonly maxWaiting: number,
  ) {}

  /** Resolves with a release function once a connection is free; rejects when busy past `waitMs` or aborted. */
  acquire(signal: AbortSignal, waitMs: number, serviceName: string): Promise<() => void> {
    if (signal.aborted) return Promise.reject(signal.reason as Error);
    const release = () => {
      const next = this.waiting.shift();
      if (next) next.grant();
      else this.inUse -= 1;
    };
    if (this.inUse < this.size) {
      this.inUse += 1;
      return Promise.resolve(once(release));
    }
    if (this.waiting.length >= this.maxWaiting)
      return Promise.reject(new SubgraphCallError('busy', `${serviceName}: ${this.waiting.length} calls already wait for a connection`));
    return new Promise((resolve, reject) => {
      const waiter = {
        grant: () => {
          cleanup();
          resolve(once(release));
        },
      };
      const leave = (error: Error) => {
        const at = this.waiting.indexOf(waiter);
        if (at !== -1) this.waiting.splice(at, 1);
        cleanup();
        reject(error);
      };
      const timer = setTimeout(
        () => leave(new SubgraphCallError('busy', `${serviceName}: no connection free within ${Math.round(waitMs)} ms`)),
        waitMs,
      );
      const onAbort = () => leave(signal.reason as Error);
      const cleanup = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(waiter);
    });
  }
}

function once(release: () => void): () => void {
  let done = false;
  return () => {
    if (done) return;
    done = true;
    release();
  };
}

type Fetcher = NonNullable<ConstructorParameters<typeof RemoteGraphQLDataSource>[0]>['fetcher'];

/**
 * POSTs over one subgraph's own keep-alive connection pool (undici) in place of fetch: no web
 * streams per call. The call first waits (bounded) for a free connection; only then is its
 * token signed, with more life left than the call's remaining deadline, so a call that queued
 * never carries a token that expired while it waited. The call's AbortSignal ends the exchange
 * at its deadline, however slowly the subgraph trickles bytes, and the body is read only up to
 * the configured size. Answers with what RemoteGraphQLDataSource reads of a fetch Response.
 */
function poolFetcher(
  serviceName: string,
  origin: () => OriginPool,
  path: string,
  limits: SubgraphCallLimits,
  metrics: GatewayMetrics | null,
): Fetcher {
  const fetcher = async (_url: string, init: { headers: Record<string, string>; body: string }) => {
    const call = calls.get();
    if (!call) throw new Error('a subgraph call outside SubgraphDataSource.send');
    const started = performance.now();
    const done = (code: string | null, answerErrors: string[] = []) => {
      metrics?.subgraphRequests.inc({ subgraph: serviceName, outcome: code || answerErrors.length ? 'error' : 'ok' });
      metrics?.subgraphDuration.observe({ subgraph: serviceName }, (performance.now() - started) / 1000);
      if (code) metrics?.subgraphErrors.inc({ subgraph: serviceName, code });
      for (const answerCode of answerErrors) metrics?.subgraphErrors.inc({ subgraph: serviceName, code: answerCode });
    };
    try {
      const answer = await pooled(call, init);
      done(answer.status >= 400 ? `HTTP_${answer.status}` : null, metrics ? errorCodesIn(await answer.text()) : []);
      return answer;
    } catch (error) {
      done(failureCode(error, call.signal));
      throw error;
    }
  };
  // The same for every fetch from this subgraph.
  const spanName = `subgraph ${serviceName}`;
  const spanOptions = {
    kind: SpanKind.CLIENT,
    attributes: { 'http.request.method': 'POST', 'url.path': path, 'concord.subgraph': serviceName },
  };
  const pooled = async (call: SubgraphCall, init: { headers: Record<string, string>; body: string }) => {
    const { pool, slots } = origin();
    const release = await slots.acquire(
      call.signal,
      Math.min(MAX_QUEUE_WAIT_MS, limits.timeoutMs / 4, call.deadline - Date.now()),
      serviceName,
    );
    try {
      return await inSpan(spanName, spanOptions, async (span) => {
        const headers = { ...init.headers, ...traceHeaders() };
        if (call.authorize) headers.authorization = await call.authorize(Math.max(0, call.deadline - Date.now()));
        const response = await pool.request({ method: 'POST', path, headers, body: init.body, signal: call.signal });
        span?.setAttribute('http.response.status_code', response.statusCode);
        if (span && response.statusCode >= 500) failSpan(span, null, String(response.statusCode));
        return answerOf(response, await readBody(response, limits.maxResponseBytes, serviceName), path);
      });
    } finally {
      release();
    }
  };
  return fetcher as unknown as Fetcher;
}

/** The codes of the errors in a subgraph's answer (most answers have none: the text is only parsed when it names errors). */
function errorCodesIn(text: string): string[] {
  if (!text.includes('"errors"')) return [];
  try {
    const errors = (JSON.parse(text) as { errors?: { extensions?: { code?: unknown } }[] }).errors ?? [];
    return errors.map((error) => (typeof error.extensions?.code === 'string' ? error.extensions.code : 'INTERNAL_SERVER_ERROR'));
  } catch {
    return ['INVALID_ANSWER'];
  }
}

/** What a failed fetch is counted as: its deadline, a pool with no connection free, an answer too large, or the subgraph unreachable. */
function failureCode(error: unknown, signal: AbortSignal): string {
  if (error instanceof SubgraphCallError) return error.reason === 'deadline' ? 'TIMEOUT' : error.reason === 'busy' ? 'BUSY' : 'TOO_LARGE';
  return signal.aborted ? 'TIMEOUT' : 'UNREACHABLE';
}

/** What RemoteGraphQLDataSource reads of a fetch Response, from an undici answer and its body. */
function answerOf(response: Awaited<ReturnType<Pool['request']>>, text: string, path: string) {
  const responseHeaders = response.headers;
  return {
    ok: response.statusCode >= 200 && response.statusCode < 300,
    status: response.statusCode,
    statusText: String(response.statusCode),
    url: path,
    headers: {
      get: (name: string) => {
        const value = responseHeaders[name.toLowerCase()];
        return Array.isArray(value) ? value.join(', ') : (value ?? null);
      },
    },
    text: async () => text,
    json: async () => JSON.parse(text) as unknown,
  };
}

/** The body as text, refused (and the connection dropped) as soon as it passes `maxBytes`. */
async function readBody(response: Awaited<ReturnType<Pool['request']>>, maxBytes: number, serviceName: string): Promise<string> {
  const tooLarge = () =>
    new SubgraphCallError('too-large', `${serviceName}: answer larger than ${maxBytes} bytes (SUBGRAPH_MAX_RESPONSE_MB)`);
  const declared = Number(response.headers['content-length']);
  if (Number.isFinite(declared) && declared > maxBytes) {
    response.body.destroy();
    throw tooLarge();
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of response.body as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) {
      response.body.destroy();
      throw tooLarge();
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size).toString('utf8');
}
