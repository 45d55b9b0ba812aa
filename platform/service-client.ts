import { ConnectorError } from './errors.ts';
import type { Logger } from './logger.ts';
import { currentPriority, PRIORITY_HEADER } from './api-budget.ts';
import { CORRELATION_HEADER } from './request-context.ts';
import { failSpan, inSpan, SpanKind, traceHeaders, tracingEnabled } from './tracing.ts';

export interface GraphQLReply<T> {
  data?: T | null;
  errors?: { message: string; path?: (string | number)[]; extensions?: Record<string, unknown> }[];
}

/**
 * A GraphQL client for Concord's own processes: they reach other systems through the graph,
 * as the `integration` service identity, with the correlation id of the request they serve.
 */
export interface ServiceClient {
  request<T>(query: string, variables: Record<string, unknown>, correlationId: string): Promise<GraphQLReply<T>>;
}

/**
 * @param url the gateway's /graphql
 * @param token a bearer token for the service identity (fetched or signed, cached by the caller)
 * Network failures, timeouts and HTTP errors throw a ConnectorError naming `system`.
 */
export function createServiceClient(options: {
  url: string | (() => string);
  token: () => Promise<string>;
  timeoutMs: number;
  logger: Logger;
  system?: string;
}): ServiceClient {
  const system = options.system ?? 'gateway';
  const client: ServiceClient = {
    request<T>(query: string, variables: Record<string, unknown>, correlationId: string): Promise<GraphQLReply<T>> {
      if (!tracingEnabled()) return send<T>(query, variables, correlationId);
      const operation = /^\s*(query|mutation|subscription)\s+(\w+)/.exec(query);
      const attributes = {
        'http.request.method': 'POST',
        ...(operation ? { 'graphql.operation.type': operation[1]!, 'graphql.operation.name': operation[2]! } : {}),
      };
      return inSpan(operation ? `${system} ${operation[2]}` : system, { kind: SpanKind.CLIENT, attributes }, async (span) => {
        const reply = await send<T>(query, variables, correlationId);
        const code = reply.errors?.[0]?.extensions?.code;
        if (span && reply.errors?.length) failSpan(span, null, typeof code === 'string' ? code : 'GRAPHQL_ERROR');
        return reply;
      });
    },
  };
  return client;

  async function send<T>(query: string, variables: Record<string, unknown>, correlationId: string): Promise<GraphQLReply<T>> {
    const url = typeof options.url === 'function' ? options.url() : options.url;
    let response: Response;
    try {
      response = await fetch(url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          authorization: `Bearer ${await options.token()}`,
          [CORRELATION_HEADER]: correlationId,
          ...(currentPriority() === 'background' ? { [PRIORITY_HEADER]: 'background' } : {}),
          ...traceHeaders(),
        },
        body: JSON.stringify({ query, variables }),
        signal: AbortSignal.timeout(options.timeoutMs),
      });
    } catch (error) {
      throw new ConnectorError(system, `request to the graph failed: ${(error as Error).message}`, { cause: error });
    }
    const text = await response.text();
    if (response.status >= 500 || response.status === 401 || response.status === 403) {
      throw new ConnectorError(system, `the graph answered ${response.status}: ${text.slice(0, 300)}`);
    }
    try {
      return JSON.parse(text) as GraphQLReply<T>;
    } catch {
      throw new ConnectorError(system, `the graph answered ${response.status} with a body that is not JSON`);
    }
  }
}
