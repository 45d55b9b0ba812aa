import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { GraphQLError } from 'graphql';
import { decodeJwt } from 'jose';
import { createHandler } from 'graphql-sse/lib/use/http';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocketServer } from 'ws';
import type { Identity } from '../../../platform/identity.ts';
import { auditLogger, type Logger } from '../../../platform/logger.ts';
import type { ClientVerifier } from '../auth.ts';
import type { LiveHub, LivePayload, LiveSubscription } from './hub.ts';

export interface LiveLimits {
  /** Subscriptions one WebSocket connection may hold at once (LIVE_MAX_SUBSCRIPTIONS). */
  readonly maxPerConnection: number;
  /** Connections (WebSocket and SSE) this process holds at once (LIVE_MAX_CONNECTIONS). */
  readonly maxConnections: number;
  /** Connections one identity (token subject) holds at once in this process (LIVE_MAX_CONNECTIONS_PER_SUBJECT). */
  readonly maxPerSubject: number;
  /** The verifier's maximum token age (AUTH_MAX_TOKEN_AGE_S): a connection ends when its token would be refused. */
  readonly maxTokenAgeSeconds: number;
}

interface Deps {
  readonly hub: LiveHub;
  readonly verify: ClientVerifier;
  readonly logger: Logger;
  readonly limits: LiveLimits;
}

/**
 * How long the (verified) bearer token stays valid, as the verifier counts it: until its `exp`,
 * or `iat` plus the maximum token age, whichever comes first. A live connection ends then, since
 * it was authenticated once, at its start. Null: no token to end with (measuring without
 * security); past setTimeout's range, the range's end.
 */
export function expiresInMs(authorization: string | undefined, maxTokenAgeSeconds: number, now = Date.now()): number | null {
  const token = /^Bearer (\S+)$/i.exec(authorization ?? '')?.[1];
  let claims: { exp?: number; iat?: number } = {};
  try {
    claims = token ? decodeJwt(token) : {};
  } catch {
    claims = {};
  }
  const ends = [claims.exp, claims.iat === undefined ? undefined : claims.iat + maxTokenAgeSeconds].filter(
    (at): at is number => typeof at === 'number',
  );
  if (ends.length === 0) return null;
  return Math.min(2 ** 31 - 1, Math.max(0, Math.min(...ends) * 1000 - now));
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

  /**
   * Connection slots, taken before the token is checked (so that connections arriving together
   * cannot pass the limit between the check and the count) and given back exactly once.
   */
  const bySubject = new Map<string, number>();
  const take = (): (() => void) | null => {
    if (connections >= limits.maxConnections) return null;
    connections++;
    let given = false;
    return () => {
      if (given) return;
      given = true;
      connections--;
    };
  };
  const takeSubject = (subject: string): (() => void) | null => {
    const held = bySubject.get(subject) ?? 0;
    if (held >= limits.maxPerSubject) return null;
    bySubject.set(subject, held + 1);
    let given = false;
    return () => {
      if (given) return;
      given = true;
      const left = (bySubject.get(subject) ?? 1) - 1;
      if (left === 0) bySubject.delete(subject);
      else bySubject.set(subject, left);
    };
  };
  const refusedTooMany = (subject?: string) =>
    audit.info({ audit: true, event: 'live_connection_refused', reason: 'too many connections', who: subject }, 'audit');

  const wsServer = new WebSocketServer({ server: httpServer, path: '/graphql', maxPayload: 256 * 1024 });
  type Extra = { identity?: Identity; held?: Map<string, LiveSubscription>; release?: () => void };
  const ws = useServer<Record<string, unknown>, Extra>(
    {
      connectionInitWaitTimeout: 5_000,
      onConnect: async (ctx) => {
        const slot = take();
        if (!slot) {
          refusedTooMany();
          return false;
        }
        const fromParams = ctx.connectionParams?.authorization;
        const authorization = typeof fromParams === 'string' ? fromParams : ctx.extra.request.headers.authorization;
        const identity = await authenticate(authorization, ctx.extra.request.socket.remoteAddress);
        const subjectSlot = identity ? takeSubject(identity.subject) : null;
        if (!identity || !subjectSlot) {
          slot();
          if (identity) refusedTooMany(identity.subject);
          return false;
        }
        const release = () => {
          slot();
          subjectSlot();
        };
        ctx.extra.release = release;
        ctx.extra.identity = identity;
        ctx.extra.held = new Map();
        // Authenticated once: the connection ends when the token does (4401), and the client connects again with a new one.
        const expiresIn = expiresInMs(authorization, limits.maxTokenAgeSeconds);
        const expiry =
          expiresIn === null
            ? null
            : setTimeout(() => ctx.extra.socket.close(4401, 'the token expired; connect again with a new one'), expiresIn);
        ctx.extra.socket.once('close', () => {
          if (expiry) clearTimeout(expiry);
          release();
          for (const subscription of ctx.extra.held?.values() ?? []) void subscription.return();
        });
        return true;
      },
      onSubscribe: (ctx, id, payload) => {
        const held = ctx.extra.held!;
        if (held.size >= limits.maxPerConnection)
          return [tooMany(`a connection holds at most ${limits.maxPerConnection} subscriptions; complete one first`)];
        const opened = hub.open(ctx.extra.identity!, payload as LivePayload);
        if ('errors' in opened) return opened.errors;
        held.set(id, opened.subscription);
        return {
          schema: opened.schema,
          document: opened.document,
          // The operation hub.open chose: without it, a document of several operations names none to run.
          operationName: opened.operationName,
          rootValue: opened.subscription,
          variableValues: payload.variables ?? {},
        };
      },
      // An error after the subscription was accepted (graphql-ws could not run it): nothing of it stays.
      onError: (ctx, id) => {
        void ctx.extra.held?.get(id)?.return();
        ctx.extra.held?.delete(id);
      },
      onComplete: (ctx, id) => {
        void ctx.extra.held?.get(id)?.return();
        ctx.extra.held?.delete(id);
      },
      subscribe: (args) => args.rootValue as AsyncIterableIterator<never>,
      execute: () => ({ errors: [new GraphQLError('send queries and mutations to POST /graphql')] }),
    },
    wsServer,
  );

  const sse = createHandler({
    onSubscribe: async (req, params) => {
      const raw = req.raw as IncomingMessage;
      const busy = () =>
        [
          JSON.stringify({
            errors: [{ message: 'too many live connections; try again later', extensions: { code: 'TOO_MANY_SUBSCRIPTIONS' } }],
          }),
          { status: 503, statusText: 'Service Unavailable', headers: { 'content-type': 'application/json', 'retry-after': '5' } },
        ] as const;
      const slot = take();
      if (!slot) {
        refusedTooMany();
        return busy();
      }
      const identity = await authenticate(raw.headers.authorization, raw.socket.remoteAddress);
      if (!identity) {
        slot();
        return [
          JSON.stringify({ errors: [{ message: 'send a valid bearer token', extensions: { code: 'UNAUTHENTICATED' } }] }),
          { status: 401, statusText: 'Unauthorized', headers: { 'content-type': 'application/json' } },
        ];
      }
      const subjectSlot = takeSubject(identity.subject);
      if (!subjectSlot) {
        slot();
        refusedTooMany(identity.subject);
        return busy();
      }
      // The handler has read the body into params (its query, variables and operation name).
      const opened = hub.open(identity, params as LivePayload);
      if ('errors' in opened) {
        slot();
        subjectSlot();
        return [
          JSON.stringify({ errors: opened.errors.map((error) => error.toJSON()) }),
          { status: 400, statusText: 'Bad Request', headers: { 'content-type': 'application/json' } },
        ];
      }
      // The stream ends (complete) when the token does; the client subscribes again with a new one.
      const expiresIn = expiresInMs(raw.headers.authorization, limits.maxTokenAgeSeconds);
      const expiry = expiresIn === null ? null : setTimeout(() => void opened.subscription.return(), expiresIn);
      // The response, not the socket: a keep-alive socket outlives the stream it carried.
      const res = (req.context as { res?: ServerResponse } | undefined)?.res;
      const ended = () => {
        if (expiry) clearTimeout(expiry);
        slot();
        subjectSlot();
        void opened.subscription.return();
      };
      if (res) res.once('close', ended);
      else raw.socket.once('close', ended);
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
