import { RemoteGraphQLDataSource, type GraphQLDataSourceProcessOptions } from '@apollo/gateway';
import { GraphQLError } from 'graphql';
import { Pool } from 'undici';
import { ErrorCode } from '../../platform/errors.ts';
import type { Identity } from '../../platform/identity.ts';
import type { Logger } from '../../platform/logger.ts';
import { CORRELATION_HEADER } from '../../platform/request-context.ts';
import type { EntityCache } from './cache/entity-cache.ts';
import type { GatewayContext } from './context.ts';

/** Connections kept per subgraph: more than a gateway process has fetches in flight to one subgraph at once. */
const POOL_CONNECTIONS = 64;

export type InternalSigner = (identity: Identity, audience: string) => Promise<string>;

/**
 * Calls one subgraph. Every call carries the request's correlation id and has a deadline
 * (RemoteGraphQLDataSource sets none); a subgraph that cannot be reached, times out or answers
 * with an HTTP error fails only its part of the answer, with an error naming the system and
 * never its URL or response body.
 */
export class SubgraphDataSource extends RemoteGraphQLDataSource<GatewayContext> {
  constructor(
    private readonly serviceName: string,
    url: string,
    private readonly timeoutMs: number,
    private readonly logger: Logger,
    private readonly signInternal: InternalSigner | null,
    private readonly cache: EntityCache | null = null,
    pools: SubgraphPools = new SubgraphPools(timeoutMs),
  ) {
    const target = new URL(url);
    super({ url, fetcher: poolFetcher(pools.for(target.origin), target.pathname + target.search) });
  }

  /**
   * Sends the correlation id and, in place of anything the client sent, a short-lived token the
   * gateway signs for this subgraph with the verified identity (reused for that identity while young).
   */
  override async willSendRequest({ request, context }: GraphQLDataSourceProcessOptions<GatewayContext>): Promise<void> {
    if (!context || !('identity' in context)) return;
    request.http?.headers.set(CORRELATION_HEADER, context.correlationId);
    if (!this.signInternal) return;
    request.http?.headers.set('authorization', `Bearer ${await this.signInternal(context.identity, this.serviceName)}`);
  }

  /** A fetch for a client's operation goes through the cache when there is one (cache/entity-cache.ts). */
  override async process(
    options: GraphQLDataSourceProcessOptions<GatewayContext>,
  ): ReturnType<RemoteGraphQLDataSource<GatewayContext>['process']> {
    const context = options.context as Partial<GatewayContext> | undefined;
    if (this.cache && context?.identity) {
      return this.cache.process(
        this.serviceName,
        context.identity,
        options as GraphQLDataSourceProcessOptions,
        (fetchOptions) => this.send(fetchOptions as GraphQLDataSourceProcessOptions<GatewayContext>),
        context.answerLifetime,
      );
    }
    return this.send(options);
  }

  private async send(
    options: GraphQLDataSourceProcessOptions<GatewayContext>,
  ): ReturnType<RemoteGraphQLDataSource<GatewayContext>['process']> {
    try {
      return await super.process(options);
    } catch (error) {
      const timedOut =
        error instanceof Error &&
        (error.name === 'TimeoutError' ||
          error.name === 'AbortError' ||
          error.name === 'HeadersTimeoutError' ||
          error.name === 'BodyTimeoutError');
      this.logger.warn({ err: error, subgraph: this.serviceName, url: this.url, timedOut }, `subgraph ${this.serviceName} failed`);
      throw new GraphQLError(
        timedOut
          ? `The ${this.serviceName} system did not answer within ${this.timeoutMs} ms`
          : `The ${this.serviceName} system is unavailable`,
        { extensions: { code: ErrorCode.SystemUnavailable, serviceName: this.serviceName } },
      );
    }
  }
}

/**
 * The gateway's keep-alive connection pools, one per subgraph origin. A new supergraph makes new
 * data sources; they reuse the pool of an origin they share with the old ones, and close() (the
 * gateway stopping) ends them all.
 */
export class SubgraphPools {
  private readonly pools = new Map<string, Pool>();

  constructor(private readonly timeoutMs: number) {}

  for(origin: string): Pool {
    let pool = this.pools.get(origin);
    if (!pool) {
      pool = new Pool(origin, {
        connections: POOL_CONNECTIONS,
        keepAliveTimeout: 60_000,
        keepAliveMaxTimeout: 600_000,
        headersTimeout: this.timeoutMs,
        bodyTimeout: this.timeoutMs,
      });
      this.pools.set(origin, pool);
    }
    return pool;
  }

  async close(): Promise<void> {
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(pools.map((pool) => pool.close()));
  }
}

type Fetcher = NonNullable<ConstructorParameters<typeof RemoteGraphQLDataSource>[0]>['fetcher'];

/**
 * POSTs over one subgraph's own keep-alive connection pool (undici) in place of fetch: no web
 * streams per call, and the deadline kept by the pool's timers instead of a new AbortSignal
 * timer per call. Answers with what RemoteGraphQLDataSource reads of a fetch Response.
 */
function poolFetcher(pool: Pool, path: string): Fetcher {
  const fetcher = async (_url: string, init: { headers: Record<string, string>; body: string }) => {
    const response = await pool.request({ method: 'POST', path, headers: init.headers, body: init.body });
    const text = await response.body.text();
    const headers = response.headers;
    return {
      ok: response.statusCode >= 200 && response.statusCode < 300,
      status: response.statusCode,
      statusText: String(response.statusCode),
      url: path,
      headers: {
        get: (name: string) => {
          const value = headers[name.toLowerCase()];
          return Array.isArray(value) ? value.join(', ') : (value ?? null);
        },
      },
      text: async () => text,
      json: async () => JSON.parse(text) as unknown,
    };
  };
  return fetcher as unknown as Fetcher;
}
