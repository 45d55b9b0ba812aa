import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { BudgetSnapshot } from './api-budget.ts';
import { VERSION } from './package-root.ts';

/** One service's Prometheus registry and the metrics every service shares. */
export interface Metrics {
  readonly registry: Registry;
  /** One increment per call to the system behind a connector. */
  readonly connectorCalls: Counter<'system' | 'operation' | 'outcome'>;
  readonly connectorDuration: Histogram<'system' | 'operation'>;
  /** One increment per attempt sent again by a system's resilience layer. */
  readonly connectorRetries: Counter<'system' | 'operation'>;
  /** Each system's circuit breaker, read at every scrape (`concord_connector_breaker_state`). */
  readonly breakers: Map<string, () => BreakerState>;
  /** Each system's API budget as its resilience layer keeps it (platform/api-budget.ts), read at every scrape. */
  readonly budgets: Map<string, () => BudgetSnapshot>;
  /** Background calls given up on because a vendor's budget was kept for interactive work. */
  readonly budgetShed: Counter<'system'>;
  readonly httpRequests: Histogram<'route' | 'status'>;
}

export type BreakerState = 'closed' | 'half-open' | 'open';
/** The breaker state as a number a rule can compare: closed 0, half-open 1, open 2. */
export const BREAKER_STATE_VALUE: Readonly<Record<BreakerState, number>> = { closed: 0, 'half-open': 1, open: 2 };

/**
 * A registry per service instance (not prom-client's global one), so several services can run
 * in one process, as the tests do.
 */
export function createMetrics(service: string, options: { processMetrics?: boolean } = {}): Metrics {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  // Node's and the process's own metrics under their standard names (process_cpu_seconds_total,
  // nodejs_eventloop_lag_seconds, …), as stock dashboards and alerts expect them.
  if (options.processMetrics) collectDefaultMetrics({ register: registry });
  const breakers = new Map<string, () => BreakerState>();
  new Gauge({
    name: 'concord_connector_breaker_state',
    help: "Each system's circuit breaker: 0 closed (calls go through), 1 half-open (one probe may), 2 open (calls fail fast).",
    labelNames: ['system'],
    registers: [registry],
    // Per system and process: the highest over a gateway's workers is the one to see.
    aggregator: 'max',
    collect() {
      for (const [system, state] of breakers) this.set({ system }, BREAKER_STATE_VALUE[state()]);
    },
  });
  const budgets = new Map<string, () => BudgetSnapshot>();
  new Gauge({
    name: 'concord_vendor_api_background_waiting',
    help: "Background calls (workflow steps, feed polls, bulk reads) waiting because the vendor's API budget is down to the share kept for interactive work, by system.",
    labelNames: ['system'],
    registers: [registry],
    collect() {
      for (const [system, snapshot] of budgets) this.set({ system }, snapshot().waiting);
    },
  });
  new Gauge({
    name: 'concord_vendor_api_reserve',
    help: "The calls of the vendor's API budget kept for interactive work (background work waits below it), by system; absent until the vendor has reported its limit.",
    labelNames: ['system'],
    registers: [registry],
    aggregator: 'max',
    collect() {
      for (const [system, snapshot] of budgets) {
        const floor = snapshot().floor;
        if (floor !== null) this.set({ system }, floor);
      }
    },
  });
  new Gauge({
    name: 'concord_build_info',
    help: 'Always 1; its labels say which Concord version runs, on which Node.js.',
    labelNames: ['version', 'node'],
    // One process or several workers of one gateway: the same release, reported once.
    aggregator: 'first',
    registers: [registry],
  }).set({ version: VERSION, node: process.versions.node }, 1);
  return {
    registry,
    connectorCalls: new Counter({
      name: 'concord_connector_calls_total',
      help: 'Calls made to the system behind a connector, by system and operation.',
      labelNames: ['system', 'operation', 'outcome'],
      registers: [registry],
    }),
    connectorDuration: new Histogram({
      name: 'concord_connector_call_duration_seconds',
      help: 'Duration of calls to the system behind a connector.',
      labelNames: ['system', 'operation'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    connectorRetries: new Counter({
      name: 'concord_connector_retries_total',
      help: 'Attempts sent again to the system behind a connector (after a timeout, a refused connection, a 429 or a 5xx), by system and operation.',
      labelNames: ['system', 'operation'],
      registers: [registry],
    }),
    breakers,
    budgets,
    budgetShed: new Counter({
      name: 'concord_vendor_api_shed_total',
      help: "Background calls given up on after waiting for the vendor's API budget (or with too many waiting), by system.",
      labelNames: ['system'],
      registers: [registry],
    }),
    httpRequests: new Histogram({
      name: 'concord_http_request_duration_seconds',
      help: 'Duration of HTTP requests served, by route and status.',
      labelNames: ['route', 'status'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
  };
}

/** What a vendor says of its API allocation: calls used (Salesforce) or left (Zendesk), of a limit. */
export interface ApiBudget {
  limit: number;
  used?: number;
  remaining?: number;
}

/**
 * Exports a vendor's API budget as `concord_vendor_api_budget{system,measure}` (limit, used,
 * remaining), read from the adapter's last answer at each scrape: every call spends the
 * allocation, and an operator should see it run low before the vendor refuses.
 */
export function exportApiBudget(metrics: Metrics, system: string, read: () => ApiBudget | null): void {
  new Gauge({
    name: 'concord_vendor_api_budget',
    help: "The vendor's API allocation as its last answer reported it, by system and measure (limit, used, remaining).",
    labelNames: ['system', 'measure'],
    registers: [metrics.registry],
    collect() {
      const budget = read();
      if (!budget) return;
      this.set({ system, measure: 'limit' }, budget.limit);
      if (budget.used !== undefined) this.set({ system, measure: 'used' }, budget.used);
      if (budget.remaining !== undefined) this.set({ system, measure: 'remaining' }, budget.remaining);
    },
  });
}
