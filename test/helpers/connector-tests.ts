import type { ConnectorTelemetry } from '../../platform/connector-telemetry.ts';
import type { ResiliencePolicy } from '../../platform/resilience.ts';

/** Small delays keep a vendor adapter suite's retry tests fast; the breaker stays out of the way unless a test wants it. */
export const TEST_POLICY: ResiliencePolicy = {
  timeoutMs: 2_000,
  retries: 3,
  baseDelayMs: 2,
  maxDelayMs: 10,
  maxConcurrent: 8,
  breakerThreshold: 50,
  breakerOpenMs: 60_000,
};

/** Telemetry that counts calls, to check every HTTP request is counted exactly once. */
export function countingTelemetry(): ConnectorTelemetry & { calls: string[] } {
  const calls: string[] = [];
  return {
    system: 'support',
    calls,
    async call(operation, _detail, fn) {
      calls.push(operation);
      return fn();
    },
  };
}
