/**
 * Records every port call a subgraph makes to its system, with when it started and ended, to
 * tell how many round trips one after the other a request cost: a call that starts after
 * another has ended may have waited for it, so the depth is the longest chain of calls each
 * started after the one before it ended. With the system's latency on, that depth is what a
 * request's time is made of.
 */
export interface TripRecorder<T> {
  connector: T;
  /** The calls since the last reset, in the order they started. */
  calls(): readonly { method: string; start: number; end: number }[];
  /** Round trips one after the other since the last reset. */
  depth(): number;
  reset(): void;
}

export function recordTrips<T extends object>(inner: T): TripRecorder<T> {
  let calls: { method: string; start: number; end: number }[] = [];
  const connector = new Proxy(inner, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, receiver);
      if (typeof value !== 'function' || property === 'ping' || property === 'close') return value;
      const method = value as (...args: unknown[]) => Promise<unknown>;
      return async (...args: unknown[]) => {
        const call = { method: String(property), start: performance.now(), end: Number.POSITIVE_INFINITY };
        calls.push(call);
        try {
          return await method.apply(target, args);
        } finally {
          call.end = performance.now();
        }
      };
    },
  });
  return {
    connector,
    calls: () => calls,
    depth() {
      const chain = new Map<object, number>();
      for (const call of calls) {
        const before = calls.filter((other) => other !== call && other.end <= call.start).map((other) => chain.get(other) ?? 1);
        chain.set(call, 1 + Math.max(0, ...before));
      }
      return Math.max(0, ...chain.values());
    },
    reset() {
      calls = [];
    },
  };
}
