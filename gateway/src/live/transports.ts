import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { GraphQLError } from 'graphql';
import { decodeJwt } from 'jose';
import { createHandler } from 'graphql-sse/lib/use/http';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocketServer } from 'ws';
import type { Identity } from '../../../platform/identity.ts';
import { auditLogger, type Logger } from '../../../platform/logger.ts';
import type { ClientVerifier } from '../auth.ts';
import type { LiveHub, LivePayload } from './hub.ts';

export interface LiveLimits {
  /** Subscriptions one WebSocket connection may hold at once (LIVE_MAX_SUBSCRIPTIONS). */
  readonly maxPerConnection: number;
  /** Connections (WebSocket and SSE) this process holds at once (LIVE_MAX_CONNECTIONS). */
  readonly maxConnections: number;
}

interface Deps {
  readonly hub: LiveHub;
  readonly verify: ClientVerifier;
  readonly logger: Logger;
  readonly limits: LiveLimits;
}

/**
 * When the (verified) bearer token stops being valid: a live connection ends then, since it was
 * authenticated once, at its start. Past setTimeout's range, the range's end.
 */
function expiresInMs(authorization: string | undefined): number {
  const token = /^Bearer (\S+)$/i.exec(authorization ?? '')?.[1];
  let exp: number | undefined;
  try {
    exp = token ? decodeJwt(token).exp : undefined;
  } catch {
    exp = undefined;
  }
  return Math.min(2 ** 31 - 1, Math.max(0, (exp ?? 0) * 1000 - Date.now()));
}

const tooMany = (message: string) => new GraphQLError(message, { extensions: { code: 'TOO_MANY_SUBSCRIPTIONS' } });

/**
 * The two ways consoles receive live updates:
 *
 * - graphql-ws over WebSocket at /graphql: the token comes in the connection's init payload
 *   (`{ "authorization": "Bearer …" }`) or the upgrade request's Authorization header and is
 *   verified once, at connection time (a refused one closes the socket with 4403), and the
 *   connection is closed with 4401 when the token expires; each connection holds at most
 *   `maxPerConnection` subscriptions.
 * - Server-Sent Events at /graphql/stream (graphql-sse, its distinct-connections mode): one
 *   subscription per request, the token in the request's Authorization header (401 otherwise);
 *   the stream completes when the token expires.
 */
export function serveLive(httpServer: Server, deps: Deps) {
  const { hub, verify, logger, limits } = deps;
  const audit = auditLogger(logger);
  let connections = 0;
  const authenticate = async (authorization: string | undefined, remoteAddress: string | undefined): Promise<Identity | null> => {
    try {
      return await verify(authorization);
    } catch (error) {
      audit.info(
        { audit: true, event: 'authentication_refused', transport: 'live', reason: (error as Error).message, remoteAddress },
        'audit',
      );
      return null;
    }
  };

  const wsServer = new WebSocketServer({ server: httpServer, path: '/graphql', maxPayload: 256 * 1024 });
  type Extra = { identity?: Identity; held?: Set<string>; counted?: boolean };
  const ws = useServer<Record<string, unknown>, Extra>(
    {
      connectionInitWaitTimeout: 5_000,
      onConnect: async (ctx) => {
        if (connections >= limits.maxConnections) return false;
        const fromParams = ctx.connectionParams?.authorization;
        const authorization = typeof fromParams === 'string' ? fromParams : ctx.extra.request.headers.authorization;
        const identity = await authenticate(authorization, ctx.extra.request.socket.remoteAddress);
        if (!identity) return false;
        // Authenticated once: the connection ends when the token does (4401), and the client connects again with a new one.
        const expiry = setTimeout(
          () => ctx.extra.socket.close(4401, 'the token expired; connect again with a new one'),
          expiresInMs(authorization),
        );
        ctx.extra.socket.once('close', () => clearTimeout(expiry));
        connections++;
        ctx.extra.counted = true;
        ctx.extra.identity = identity;
        ctx.extra.held = new Set();
        return true;
      },
      onDisconnect: (ctx) => {
        if (ctx.extra.counted) connections--;
        ctx.extra.counted = false;
      },
      onClose: (ctx) => {
        if (ctx.extra.counted) connections--;
        ctx.extra.counted = false;
      },
      onSubscribe: (ctx, id, payload) => {
        const held = ctx.extra.held!;
        if (held.size >= limits.maxPerConnection)
          return [tooMany(`a connection holds at most ${limits.maxPerConnection} subscriptions; complete one first`)];
        const opened = hub.open(ctx.extra.identity!, payload as LivePayload);
        if ('errors' in opened) return opened.errors;
        held.add(id);
        return {
          schema: opened.schema,
          document: opened.document,
          rootValue: opened.subscription,
          variableValues: payload.variables ?? {},
        };
      },
      onComplete: (ctx, id) => void ctx.extra.held?.delete(id),
      subscribe: (args) => args.rootValue as AsyncIterableIterator<never>,
      execute: () => ({ errors: [new GraphQLError('send queries and mutations to POST /graphql')] }),
    },
    wsServer,
  );

  const sse = createHandler({
    onSubscribe: async (req, params) => {
      const raw = req.raw as IncomingMessage;
      if (connections >= limits.maxConnections)
        return [
          JSON.stringify({
            errors: [{ message: 'too many live connections; try again later', extensions: { code: 'TOO_MANY_SUBSCRIPTIONS' } }],
          }),
          { status: 503, statusText: 'Service Unavailable', headers: { 'content-type': 'application/json', 'retry-after': '5' } },
        ];
      const identity = await authenticate(raw.headers.authorization, raw.socket.remoteAddress);
      if (!identity)
        return [
          JSON.stringify({ errors: [{ message: 'send a valid bearer token', extensions: { code: 'UNAUTHENTICATED' } }] }),
          { status: 401, statusText: 'Unauthorized', headers: { 'content-type': 'application/json' } },
        ];
      // The handler has read the body into params (its query, variables and operation name).
      const opened = hub.open(identity, params as LivePayload);
      if ('errors' in opened)
        return [
          JSON.stringify({ errors: opened.errors.map((error) => error.toJSON()) }),
          { status: 400, statusText: 'Bad Request', headers: { 'content-type': 'application/json' } },
        ];
      connections++;
      // The stream ends (complete) when the token does; the client subscribes again with a new one.
      const expiry = setTimeout(() => void opened.subscription.return(), expiresInMs(raw.headers.authorization));
      raw.socket.once('close', () => {
        clearTimeout(expiry);
        connections--;
        void opened.subscription.return();
      });
      return opened.subscription;
    },
  });

  return {
    /** Serves POST/GET /graphql/stream (an SSE stream per request). */
    stream: (req: IncomingMessage, res: ServerResponse) => sse(req, res),
    get connections() {
      return connections;
    },
    /** Ends every subscription and connection: the gateway is stopping (clients reconnect to another replica). */
    async close(): Promise<void> {
      hub.closeAll();
      for (const client of wsServer.clients) client.close(1001, 'the gateway is stopping');
      await ws.dispose();
      await new Promise<void>((resolve) => wsServer.close(() => resolve()));
    },
  };
}
