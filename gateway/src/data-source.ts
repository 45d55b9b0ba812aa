import { RemoteGraphQLDataSource, type GraphQLDataSourceProcessOptions } from '@apollo/gateway';
import { GraphQLError } from 'graphql';
import { ErrorCode } from '../../platform/errors.ts';
import type { Identity } from '../../platform/identity.ts';
import type { Logger } from '../../platform/logger.ts';
import { CORRELATION_HEADER } from '../../platform/request-context.ts';
import type { EntityCache } from './cache/entity-cache.ts';
import type { GatewayContext } from './context.ts';

export type InternalSigner = (identity: Identity, audience: string, correlationId: string) => Promise<string>;

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
  ) {
    super({ url, fetcher: timeoutFetcher(timeoutMs) });
  }

  /**
   * Sends the correlation id and, in place of anything the client sent, a short-lived token the
   * gateway signs for this subgraph with the verified identity (one per request and subgraph).
   */
  override async willSendRequest({ request, context }: GraphQLDataSourceProcessOptions<GatewayContext>): Promise<void> {
    if (!context || !('identity' in context)) return;
    request.http?.headers.set(CORRELATION_HEADER, context.correlationId);
    if (!this.signInternal) return;
    let token = context.internalTokens.get(this.serviceName);
    if (!token) {
      token = this.signInternal(context.identity, this.serviceName, context.correlationId);
      context.internalTokens.set(this.serviceName, token);
    }
    request.http?.headers.set('authorization', `Bearer ${await token}`);
  }

  /** A fetch for a client's operation goes through the cache when there is one (cache/entity-cache.ts). */
  override async process(
    options: GraphQLDataSourceProcessOptions<GatewayContext>,
  ): ReturnType<RemoteGraphQLDataSource<GatewayContext>['process']> {
    const context = options.context as Partial<GatewayContext> | undefined;
    if (this.cache && context?.identity) {
      return this.cache.process(this.serviceName, context.identity, options as GraphQLDataSourceProcessOptions, (fetchOptions) =>
        this.send(fetchOptions as GraphQLDataSourceProcessOptions<GatewayContext>),
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
      const timedOut = error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError');
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

type Fetcher = NonNullable<ConstructorParameters<typeof RemoteGraphQLDataSource>[0]>['fetcher'];

/** Node's fetch (keep-alive connection pools) with a deadline on every call. */
function timeoutFetcher(timeoutMs: number): Fetcher {
  const fetcher = (url: string, init?: RequestInit) => fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs) });
  return fetcher as unknown as Fetcher;
}
