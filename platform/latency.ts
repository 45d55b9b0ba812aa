import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Simulated system latency for the embedded adapters (<PREFIX>_LATENCY_MS). The embedded SQLite
 * systems answer in microseconds where Salesforce, Business Central and Zendesk take tens of
 * milliseconds, which hides what a gateway's query plan costs in round trips; this puts the wait
 * back so benchmarks see it. Every port method waits before it runs; `ping` and `close` do not,
 * so readiness and shutdown stay immediate.
 */
const UNDELAYED: ReadonlySet<PropertyKey> = new Set(['ping', 'close']);

/**
 * The connector with every method call (its async port methods) delayed by `latencyMs`; the
 * connector itself when `latencyMs` is 0. A method's own calls to its siblings are not delayed
 * again: one port call is one trip to the system.
 */
export function withLatency<T extends object>(connector: T, latencyMs: number): T {
  if (latencyMs <= 0) return connector;
  const delayed = new Map<PropertyKey, (...args: unknown[]) => Promise<unknown>>();
  return new Proxy(connector, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, receiver);
      if (typeof value !== 'function' || UNDELAYED.has(property)) return value;
      let wrapper = delayed.get(property);
      if (!wrapper) {
        const method = value as (...args: unknown[]) => unknown;
        wrapper = async (...args: unknown[]) => {
          await sleep(latencyMs);
          return method.apply(target, args);
        };
        delayed.set(property, wrapper);
      }
      return wrapper;
    },
  });
}
