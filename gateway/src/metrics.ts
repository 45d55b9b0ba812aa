import type { ApolloServerPlugin } from '@apollo/server';
import { Counter, Histogram, type Registry } from 'prom-client';
import type { GatewayContext } from './context.ts';

/**
 * The gateway's request metrics, as a stock GraphQL dashboard reads them: per operation, its
 * requests, their duration and the errors by code; per subgraph, the fetches the gateway made,
 * their duration and failures. Counters, so a gateway's workers are summed.
 */
export interface GatewayMetrics {
  readonly requests: Counter<'operation' | 'type' | 'outcome'>;
  readonly duration: Histogram<'operation' | 'type'>;
  readonly errors: Counter<'operation' | 'code'>;
  readonly subgraphRequests: Counter<'subgraph' | 'outcome'>;
  readonly subgraphDuration: Histogram<'subgraph'>;
  readonly subgraphErrors: Counter<'subgraph' | 'code'>;
}

const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export function createGatewayMetrics(registry: Registry): GatewayMetrics {
  return {
    requests: new Counter({
      name: 'concord_graphql_requests_total',
      help: 'GraphQL operations answered, by operation name, type (query, mutation, subscription) and outcome (ok, error: the answer holds an error).',
      labelNames: ['operation', 'type', 'outcome'],
      registers: [registry],
    }),
    duration: new Histogram({
      name: 'concord_graphql_request_duration_seconds',
      help: 'Time from a GraphQL request read to its answer sent, by operation name and type.',
      labelNames: ['operation', 'type'],
      buckets: BUCKETS,
      registers: [registry],
    }),
    errors: new Counter({
      name: 'concord_graphql_errors_total',
      help: 'Errors in GraphQL answers, by operation name and code (extensions.code).',
      labelNames: ['operation', 'code'],
      registers: [registry],
    }),
    subgraphRequests: new Counter({
      name: 'concord_subgraph_requests_total',
      help: 'Fetches the gateway made from a subgraph (cache hits make none), by subgraph and outcome (ok, error).',
      labelNames: ['subgraph', 'outcome'],
      registers: [registry],
    }),
    subgraphDuration: new Histogram({
      name: 'concord_subgraph_request_duration_seconds',
      help: "Duration of the gateway's fetches from a subgraph, waiting for a connection included.",
      labelNames: ['subgraph'],
      buckets: BUCKETS,
      registers: [registry],
    }),
    subgraphErrors: new Counter({
      name: 'concord_subgraph_errors_total',
      help: 'Failed subgraph fetches and errors in subgraph answers, by subgraph and code (TIMEOUT, UNREACHABLE, BUSY, TOO_LARGE, HTTP_<status>, or the error code in the answer).',
      labelNames: ['subgraph', 'code'],
      registers: [registry],
    }),
  };
}

/** Operation names kept as label values; past this many, a new name counts as `other`. */
const MAX_OPERATION_NAMES = 500;
const NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

/**
 * The `operation` label: the operation's name, `anonymous` without one, `other` for a name that
 * is not a GraphQL name or once MAX_OPERATION_NAMES names have been seen (a client sending a
 * new name per request cannot grow the series without bound).
 */
export function operationLabeller(limit = MAX_OPERATION_NAMES): (name: string | null | undefined) => string {
  const seen = new Set<string>();
  return (name) => {
    if (!name) return 'anonymous';
    if (seen.has(name)) return name;
    if (!NAME.test(name) || seen.size >= limit) return 'other';
    seen.add(name);
    return name;
  };
}

/** Counts and times every GraphQL request the gateway answers (the live subscriptions' own queries excluded). */
export function operationMetrics(metrics: GatewayMetrics): ApolloServerPlugin<GatewayContext> {
  const labelOf = operationLabeller();
  return {
    async requestDidStart({ contextValue }) {
      if (contextValue.live) return;
      const started = performance.now();
      return {
        async willSendResponse({ operation, request, response, errors }) {
          const name = labelOf(operation?.name?.value ?? request.operationName);
          const type = operation?.operation ?? 'unknown';
          const body = response.body;
          const found = errors?.length ? errors : body.kind === 'single' ? (body.singleResult.errors ?? []) : [];
          metrics.requests.inc({ operation: name, type, outcome: found.length ? 'error' : 'ok' });
          metrics.duration.observe({ operation: name, type }, (performance.now() - started) / 1000);
          for (const error of found)
            metrics.errors.inc({ operation: name, code: String(error.extensions?.code ?? 'INTERNAL_SERVER_ERROR') });
        },
      };
    },
  };
}
