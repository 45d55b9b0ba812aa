import { ConnectorError } from './errors.ts';
import type { Logger } from './logger.ts';
import type { Metrics } from './metrics.ts';
import { inSpan, inSystemCallOf, SpanKind, tracingEnabled } from './tracing.ts';

/**
 * Counts, times and logs every call an adapter makes to the system behind it, and turns the
 * system's outages into ConnectorErrors naming it. Adapters wrap each call to their system (one
 * SQL statement, one HTTP request) in `call`, so `concord_connector_calls_total` counts what the
 * system really sees.
 */
export interface ConnectorTelemetry {
  readonly system: string;
  call<T>(operation: string, detail: Record<string, unknown>, fn: () => T | Promise<T>): Promise<T>;
}

/**
 * @param isOutage tells a failure of the system (unreachable, timed out, locked) from a bug in
 *   the adapter. Only an outage reaches clients as the system being unavailable; anything else
 *   is rethrown as it is and masked as an internal error.
 */
export function createConnectorTelemetry(
  system: string,
  metrics: Metrics,
  logger: Logger,
  isOutage: (error: unknown) => boolean = () => true,
): ConnectorTelemetry {
  const log = logger.child({ system });
  const telemetry: ConnectorTelemetry = {
    system,
    call(operation, detail, fn) {
      if (!tracingEnabled()) return measured(operation, detail, fn);
      // A span per request the system sees: named for the call, or, as one attempt of a call
      // through the resilience layer (its parent span), for the request (`GET /api/v2/…`).
      const request = typeof detail.request === 'string' ? detail.request : undefined;
      const name = inSystemCallOf(system) ? (request ?? operation) : `${system} ${operation}`;
      const attributes = { 'concord.system': system, 'concord.operation': operation, ...(request ? { 'concord.request': request } : {}) };
      return inSpan(name, { kind: SpanKind.CLIENT, attributes }, () => measured(operation, detail, fn));
    },
  };
  return telemetry;

  async function measured<T>(operation: string, detail: Record<string, unknown>, fn: () => T | Promise<T>): Promise<T> {
    const started = performance.now();
    let outcome: 'ok' | 'error' = 'ok';
    try {
      return await fn();
    } catch (error) {
      outcome = 'error';
      if (error instanceof ConnectorError || !isOutage(error)) throw error;
      const message = error instanceof Error ? error.message : String(error);
      throw new ConnectorError(system, `${operation} failed: ${message}`, { cause: error });
    } finally {
      const ms = performance.now() - started;
      metrics.connectorCalls.inc({ system, operation, outcome });
      metrics.connectorDuration.observe({ system, operation }, ms / 1000);
      const fields = { operation, outcome, ms: Math.round(ms * 100) / 100, ...detail };
      if (outcome === 'ok') log.info(fields, 'connector call');
      else log.warn(fields, 'connector call');
    }
  }
}

/** Telemetry that records nothing, for adapters used outside a service (seeding, scripts). */
export const silentTelemetry = (system: string): ConnectorTelemetry => ({
  system,
  call: async (_operation, _detail, fn) => fn(),
});
