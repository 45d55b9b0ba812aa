import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { HeaderMap, type ApolloServer, type ApolloServerPlugin, type BaseContext } from '@apollo/server';
import { context as otelContext, trace } from '@opentelemetry/api';
import { flushed, type Logger } from './logger.ts';
import type { Metrics } from './metrics.ts';
import { VERSION } from './package-root.ts';
import { lagTolerantTimer } from './time.ts';
import { metricsAllowed, startMetricsServer, type MetricsEndpoint } from './metrics-endpoint.ts';
import { PRIORITY_HEADER, priorityFrom } from './api-budget.ts';
import { CORRELATION_HEADER, correlationIdFrom, runInScope, type RequestScope } from './request-context.ts';
import { contextFrom, failSpan, inSpan, SpanKind, tracer, tracingEnabled } from './tracing.ts';

/** What a service needs to serve GraphQL and its operational endpoints over HTTP. */
export interface ServiceOptions<TContext extends BaseContext> {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly apollo: ApolloServer<TContext>;
  /** Builds the per-request context; runs inside the request's scope. */
  readonly context: (req: IncomingMessage, scope: RequestScope, body: unknown) => Promise<TContext>;
  /** True when the service can serve (its system reachable, its schema loaded). */
  readonly ready: () => boolean | Promise<boolean>;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly maxBodyBytes?: number;
  /** The /metrics text in place of this process's registry (a cluster worker answers for all workers). */
  readonly metricsText?: () => Promise<string>;
  /** POST endpoints besides /graphql, by path, given the raw body (webhooks verify signatures over it). */
  readonly routes?: ReadonlyMap<string, RawRoute>;
  /** Long-lived endpoints (Server-Sent Events) that answer on the raw request and response, by path. */
  readonly streams?: ReadonlyMap<string, (req: IncomingMessage, res: ServerResponse) => Promise<void>>;
  /**
   * Pages and their assets (an IDE, a console): asked first for every GET or HEAD request on a
   * path no other route serves; resolves true when it has answered.
   */
  readonly web?: (req: IncomingMessage, res: ServerResponse) => Promise<boolean>;
  /** Called when stop() begins, before requests drain: long-lived streams and sockets end here. */
  readonly onDrain?: () => Promise<void>;
  /** Where /metrics is served (default: on the API port, open). */
  readonly metricsEndpoint?: MetricsEndpoint;
  /** Its own metrics port is served by another process (a cluster's primary), not this one. */
  readonly metricsServedElsewhere?: boolean;
  /** How long stop() lets requests in flight finish before it cuts them (SHUTDOWN_GRACE_MS; default 10 s). */
  readonly shutdownGraceMs?: number;
  /** Closes what requests use (connectors, stores) once they have finished; "<name> stopped" is logged after it. */
  readonly closeAfterDrain?: () => Promise<void>;
  /** Browser origins (scheme://host[:port]) that may call /graphql from their pages; empty: none (CORS off). */
  readonly corsOrigins?: ReadonlySet<string>;
}

export interface RawRequest {
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly search: URLSearchParams;
  readonly body: Buffer;
}

export interface RawResponse {
  readonly status: number;
  readonly body: string;
  readonly contentType?: string;
}

export type RawRoute = (request: RawRequest) => Promise<RawResponse>;

/** A service listening on a port. */
export interface RunningService {
  readonly name: string;
  readonly url: string;
  readonly port: number;
  readonly httpServer: http.Server;
  /** GET /metrics when it has a port of its own (served by this process); null: on the API port, or elsewhere. */
  readonly metricsUrl: string | null;
  /** How long stop() waits for requests in flight. */
  readonly shutdownGraceMs: number;
  /**
   * Drains and closes: /ready answers 503, new requests are turned away with 503 and a retry hint,
   * requests in flight finish (for up to the grace), then the server, its connectors and stores
   * close and "<name> stopped" is logged.
   */
  stop(): Promise<void>;
}

const GRAPHQL_PATH = '/graphql';

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

/**
 * Starts an HTTP server with POST/GET /graphql, GET /health (alive), GET /ready (can serve) and
 * GET /metrics (Prometheus). Every request runs in a scope carrying its correlation id (the
 * client's `x-correlation-id` or a new one), which is returned in the response header.
 */
export async function startService<TContext extends BaseContext>(options: ServiceOptions<TContext>): Promise<RunningService> {
  const { apollo, logger, metrics } = options;
  const maxBodyBytes = options.maxBodyBytes ?? 1_000_000;
  const metricsEndpoint = options.metricsEndpoint ?? { port: null, token: null };
  const metricsText = async () => ({
    contentType: metrics.registry.contentType,
    text: options.metricsText ? await options.metricsText() : await metrics.registry.metrics(),
  });

  const shutdownGraceMs = options.shutdownGraceMs ?? 10_000;
  /** Set by stop(): from then on the service only finishes what it has. */
  let draining = false;
  /** Requests being answered, with what to call when the last one ends while draining. */
  let inFlight = 0;
  let onIdle: (() => void) | undefined;

  const corsOrigins = options.corsOrigins ?? new Set<string>();
  /**
   * CORS for /graphql: an allowed origin's requests carry Access-Control-Allow-Origin (and its
   * preflight is answered here, 204); another origin's get no CORS headers, so its page cannot
   * read the answer, and its preflight is refused (403). Tokens go in Authorization, never in
   * cookies, so credentials are not allowed. False when the request has been answered.
   */
  const allowCrossOrigin = (req: IncomingMessage, res: ServerResponse): boolean => {
    const origin = req.headers.origin;
    const preflight = req.method === 'OPTIONS' && req.headers['access-control-request-method'] !== undefined;
    res.setHeader('vary', 'Origin');
    if (origin === undefined || !corsOrigins.has(origin)) {
      if (!preflight) return true;
      sendJson(res, 403, { errors: [{ message: `Origin ${String(origin)} may not call this API`, extensions: { code: 'FORBIDDEN' } }] });
      return false;
    }
    res.setHeader('access-control-allow-origin', origin);
    res.setHeader('access-control-expose-headers', `${CORRELATION_HEADER}, retry-after, traceresponse`);
    if (!preflight) return true;
    res.writeHead(204, {
      'access-control-allow-methods': 'GET, POST',
      'access-control-allow-headers': `authorization, content-type, ${CORRELATION_HEADER}, ${PRIORITY_HEADER}, apollo-require-preflight, x-apollo-operation-name`,
      'access-control-max-age': '600',
      'content-length': '0',
    });
    res.end();
    return false;
  };

  const httpServer = http.createServer((req, res) => {
    inFlight++;
    res.once('close', () => {
      inFlight--;
      if (inFlight === 0) onIdle?.();
    });
    // While draining, every answer ends its connection: a client's next request opens a new one,
    // which reaches a replica that is still serving.
    if (draining) res.setHeader('connection', 'close');
    const scope: RequestScope = {
      correlationId: correlationIdFrom(req.headers[CORRELATION_HEADER]),
      priority: priorityFrom(req.headers[PRIORITY_HEADER]),
    };
    res.setHeader(CORRELATION_HEADER, scope.correlationId);
    const started = performance.now();
    const route =
      options.routes?.has(pathOf(req)) && req.method === 'POST' ? 'hook' : options.streams?.has(pathOf(req)) ? 'stream' : routeOf(req);
    if ((route === 'graphql' || route === 'stream') && corsOrigins.size > 0 && !allowCrossOrigin(req, res)) return;
    res.once('finish', () => {
      metrics.httpRequests.observe({ route, status: String(res.statusCode) }, (performance.now() - started) / 1000);
    });
    const serve = () =>
      runInScope(scope, () => {
        handle(req, res, route, scope).catch((error: unknown) => {
          if (error instanceof HttpError) {
            if (error.status === 413) hangUpAfter(req, res);
            if (error.status === 503) res.setHeader('retry-after', '1');
            sendJson(res, error.status, { errors: [{ message: error.message, extensions: { code: error.code } }] });
            return;
          }
          logger.error({ err: error, route }, 'request failed');
          if (!res.headersSent)
            sendJson(res, 500, { errors: [{ message: 'Internal server error', extensions: { code: 'INTERNAL_SERVER_ERROR' } }] });
          else res.destroy();
        });
      });
    // Probes and scrapes are not traced: they would bury the requests that are.
    if (!tracingEnabled() || route === 'health' || route === 'ready' || route === 'metrics') return serve();
    // A server span per request, the child of the caller's `traceparent` when it sent one.
    const parent = contextFrom(req.headers);
    const httpRoute = route === 'graphql' || route === 'hook' || route === 'stream' ? pathOf(req) : undefined;
    const span = tracer().startSpan(
      httpRoute ? `${req.method} ${httpRoute}` : String(req.method),
      {
        kind: SpanKind.SERVER,
        attributes: {
          'http.request.method': req.method ?? 'GET',
          'url.path': pathOf(req),
          'url.scheme': 'http',
          ...(httpRoute ? { 'http.route': httpRoute } : {}),
          'server.port': (req.socket.localPort as number | undefined) ?? 0,
          'correlation.id': scope.correlationId,
        },
      },
      parent,
    );
    // W3C Trace Context's `traceresponse`: the caller learns the trace its request is in (to look it up).
    const { traceId, spanId, traceFlags } = span.spanContext();
    if ((traceFlags & 1) === 1) res.setHeader('traceresponse', `00-${traceId}-${spanId}-01`);
    res.once('close', () => {
      span.setAttribute('http.response.status_code', res.statusCode);
      if (res.statusCode >= 500) failSpan(span, null, String(res.statusCode));
      span.end();
    });
    otelContext.with(trace.setSpan(parent, span), serve);
  });
  httpServer.keepAliveTimeout = 65_000;

  async function handle(req: IncomingMessage, res: ServerResponse, route: string, scope: RequestScope): Promise<void> {
    if (draining && (route === 'graphql' || route === 'hook' || route === 'stream'))
      throw new HttpError(503, `${options.name} is stopping; send the request again`, 'SERVICE_STOPPING');
    switch (route) {
      case 'health':
        return sendJson(res, 200, { status: 'ok', service: options.name, version: VERSION });
      case 'ready': {
        if (draining) return sendJson(res, 503, { status: 'stopping', service: options.name });
        const ready = await Promise.resolve(options.ready()).catch(() => false);
        return sendJson(res, ready ? 200 : 503, { status: ready ? 'ready' : 'not ready', service: options.name });
      }
      case 'metrics': {
        // On a port of its own, /metrics is not on the public API port at all.
        if (metricsEndpoint.port !== null) throw new HttpError(404, `No route for ${req.method} ${pathOf(req)}`, 'NOT_FOUND');
        if (!metricsAllowed(metricsEndpoint, req.headers.authorization))
          throw new HttpError(401, 'send the metrics token: Authorization: Bearer <METRICS_TOKEN>', 'UNAUTHENTICATED');
        const { contentType, text } = await metricsText();
        res.writeHead(200, { 'content-type': contentType });
        res.end(text);
        return;
      }
      case 'graphql':
        return serveGraphQL(req, res, scope);
      case 'stream':
        return options.streams!.get(pathOf(req))!(req, res);
      case 'hook': {
        const url = req.url ?? '/';
        const queryAt = url.indexOf('?');
        const answer = await options.routes!.get(pathOf(req))!({
          headers: req.headers,
          search: new URLSearchParams(queryAt === -1 ? '' : url.slice(queryAt)),
          body: await readBody(req, maxBodyBytes),
        });
        res.writeHead(answer.status, { 'content-type': answer.contentType ?? 'application/json; charset=utf-8' });
        res.end(answer.body);
        return;
      }
      default:
        if ((req.method === 'GET' || req.method === 'HEAD') && options.web && (await options.web(req, res))) return;
        throw new HttpError(404, `No route for ${req.method} ${pathOf(req)}`, 'NOT_FOUND');
    }
  }

  async function serveGraphQL(req: IncomingMessage, res: ServerResponse, scope: RequestScope): Promise<void> {
    const headers = new HeaderMap();
    for (const [key, value] of Object.entries(req.headers)) {
      if (value !== undefined) headers.set(key, Array.isArray(value) ? value.join(', ') : value);
    }
    const body = req.method === 'POST' ? await readJsonBody(req, maxBodyBytes) : undefined;
    const url = req.url ?? '/';
    const queryAt = url.indexOf('?');
    // The operation's span (graphqlSpans names it once the operation is known).
    const response = await inSpan('graphql', {}, () =>
      apollo.executeHTTPGraphQLRequest({
        httpGraphQLRequest: {
          method: (req.method ?? 'GET').toUpperCase(),
          headers,
          search: queryAt === -1 ? '' : url.slice(queryAt),
          body,
        },
        context: () => options.context(req, scope, body),
      }),
    );
    for (const [key, value] of response.headers) res.setHeader(key, value);
    res.statusCode = response.status ?? 200;
    if (response.body.kind === 'complete') {
      res.end(response.body.string);
      return;
    }
    for await (const chunk of response.body.asyncIterator) res.write(chunk);
    res.end();
  }

  apollo.addPlugin(graphqlSpans as ApolloServerPlugin<TContext>);
  await apollo.start();
  try {
    await new Promise<void>((resolve, reject) => {
      httpServer.once('error', reject);
      httpServer.listen(options.port, options.host, () => {
        httpServer.off('error', reject);
        resolve();
      });
    });
  } catch (error) {
    // A port in use: undo apollo.start() so the caller can exit or retry cleanly.
    await apollo.stop();
    throw error;
  }
  const { port } = httpServer.address() as AddressInfo;
  const shownHost = options.host === '0.0.0.0' || options.host === '::' ? 'localhost' : options.host;
  const url = `http://${shownHost}:${port}${GRAPHQL_PATH}`;
  logger.info({ url }, `${options.name} listening`);
  let metricsServer: http.Server | undefined;
  let metricsUrl: string | null = null;
  if (metricsEndpoint.port !== null && !options.metricsServedElsewhere) {
    try {
      const started = await startMetricsServer({ ...metricsEndpoint, port: metricsEndpoint.port }, options.host, metricsText, (error) =>
        logger.error({ err: error }, 'metrics failed'),
      );
      metricsServer = started.server;
      metricsUrl = `http://${shownHost}:${started.port}/metrics`;
      logger.info({ url: metricsUrl }, `${options.name} metrics listening`);
    } catch (error) {
      await new Promise((resolve) => httpServer.close(resolve));
      await apollo.stop();
      throw error;
    }
  }

  /** Resolves when no request is in flight, or after the grace, when those left are cut. */
  const drained = (): Promise<void> =>
    new Promise<void>((resolve) => {
      if (inFlight === 0) return resolve();
      const timer = setTimeout(() => {
        logger.warn({ inFlight, graceMs: shutdownGraceMs }, `${options.name}: requests still running after the grace are cut`);
        httpServer.closeAllConnections();
        resolve();
      }, shutdownGraceMs);
      onIdle = () => {
        clearTimeout(timer);
        resolve();
      };
    });

  let stopping: Promise<void> | undefined;
  const stop = async (): Promise<void> => {
    draining = true;
    logger.info({ inFlight, graceMs: shutdownGraceMs }, `${options.name} stopping`);
    // Still listening while requests finish, so /ready answers 503 and a new request a 503 with a
    // retry hint (a refused connection would tell a balancer nothing); idle keep-alives close now.
    httpServer.closeIdleConnections();
    await options.onDrain?.().catch((error: unknown) => logger.warn({ err: error }, `${options.name}: ending live connections failed`));
    await drained();
    // Nothing in flight: the connections left are idle keep-alives, which would hold close() open.
    await new Promise<void>((resolve) => {
      httpServer.close(() => resolve());
      httpServer.closeAllConnections();
    });
    // The requests are done: what served them can go (subgraph pools, plugins' hooks).
    await apollo.stop();
    if (metricsServer) await new Promise((resolve) => metricsServer!.close(resolve));
    await options.closeAfterDrain?.();
    logger.info(`${options.name} stopped`);
    // Written before the process exits: the log's writes are asynchronous.
    await flushed(logger);
  };
  return {
    name: options.name,
    url,
    port,
    httpServer,
    metricsUrl,
    shutdownGraceMs,
    stop() {
      stopping ??= stop();
      return stopping;
    },
  };
}

/**
 * Names the operation's span as OpenTelemetry's GraphQL conventions say (`query CaseContext`,
 * with `graphql.operation.type` and `graphql.operation.name`) and marks it failed with the first
 * error's code. Neither the document nor variables nor values are recorded: they may hold
 * customer data.
 */
const graphqlSpans: ApolloServerPlugin<BaseContext> = {
  async requestDidStart() {
    const span = tracingEnabled() ? trace.getActiveSpan() : undefined;
    if (!span) return;
    return {
      async didResolveOperation({ operation, operationName }) {
        if (!operation) return;
        const type = operation.operation;
        const name = operationName?.slice(0, 100);
        span.updateName(name ? `${type} ${name}` : type);
        span.setAttribute('graphql.operation.type', type);
        if (name) span.setAttribute('graphql.operation.name', name);
      },
      async willSendResponse({ response, errors }) {
        const body = response.body;
        const found = errors?.length ? errors : body.kind === 'single' ? (body.singleResult.errors ?? []) : [];
        if (!found.length) return;
        const codes = [...new Set(found.map((error) => String(error.extensions?.code ?? 'INTERNAL_SERVER_ERROR')))];
        span.setAttribute('graphql.error.codes', codes);
        failSpan(span, null, codes[0]);
      },
    };
  },
};

function pathOf(req: IncomingMessage): string {
  const url = req.url ?? '/';
  const queryAt = url.indexOf('?');
  return queryAt === -1 ? url : url.slice(0, queryAt);
}

function routeOf(req: IncomingMessage): string {
  const path = pathOf(req);
  const method = req.method ?? 'GET';
  if (path === GRAPHQL_PATH) return 'graphql';
  if (method !== 'GET' && method !== 'HEAD') return 'unknown';
  if (path === '/health') return 'health';
  if (path === '/ready') return 'ready';
  if (path === '/metrics') return 'metrics';
  return 'unknown';
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** How long a client that keeps sending after a 413 has to read it before the connection is cut. */
const HANG_UP_GRACE_MS = 1_000;

/**
 * A refused body is not read to its end (it may be gigabytes, or never end): the answer says
 * `Connection: close`, the connection is ended after it, and a client still sending is cut off
 * after a short grace, in which it can read the answer.
 */
function hangUpAfter(req: IncomingMessage, res: ServerResponse): void {
  res.setHeader('connection', 'close');
  const socket = req.socket;
  // Node's server ends an answer marked `Connection: close` with `socket.destroySoon()`: the
  // socket is destroyed as soon as the answer is written, with the client's unread body in the
  // kernel's buffer, and that sends a reset that discards the answer where the client has not
  // read it yet. Only the write side is ended here; the grace below destroys the socket.
  socket.destroySoon = () => socket.end();
  res.once('finish', () => {
    socket.end();
    // Lingering close: what the client still sends is read and dropped until the grace ends, so
    // the kernel does not answer it with a reset that can discard the 413 before it is read.
    req.resume();
    // A grace the process did not live through (a stalled event loop) is given again: a client's
    // read of the answer may be among the work that was held up.
    lagTolerantTimer(HANG_UP_GRACE_MS, () => socket.destroy(), { unref: true });
  });
}

async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  // A declared length over the limit is refused before a byte of the body is read.
  if (Number(req.headers['content-length']) > limit)
    throw new HttpError(413, `Request body larger than ${limit} bytes`, 'PAYLOAD_TOO_LARGE');
  // Read by events, not `for await`: leaving that loop early destroys the request under the
  // response still to be sent; hangUpAfter ends the connection instead.
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.off('data', onData).off('end', onEnd).off('error', reject);
        req.pause();
        reject(new HttpError(413, `Request body larger than ${limit} bytes`, 'PAYLOAD_TOO_LARGE'));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => resolve(Buffer.concat(chunks, size));
    req.on('data', onData).once('end', onEnd).once('error', reject);
  });
}

async function readJsonBody(req: IncomingMessage, limit: number): Promise<unknown> {
  const type = req.headers['content-type'] ?? '';
  const body = await readBody(req, limit);
  // Apollo rejects a POST without a JSON body itself, with the message clients expect.
  if (!/^application\/(.+\+)?json/i.test(type)) return undefined;
  if (body.length === 0) return undefined;
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    throw new HttpError(400, 'Request body is not valid JSON', 'BAD_REQUEST');
  }
}
