import { AsyncLocalStorage } from 'node:async_hooks';
import { createContextKey, ROOT_CONTEXT, type Context, type ContextManager } from '@opentelemetry/api';

/**
 * The one AsyncLocalStorage of a Concord process. Each AsyncLocalStorage in use adds its own
 * work to every promise and callback the process makes (on Node 20, a hook copying its store to
 * each new async resource), so the request's scope, the gateway's subgraph call and
 * OpenTelemetry's context share this one: its store is an OpenTelemetry Context (an immutable
 * map), each of them a key in it, and OpenTelemetry is given `sharedContextManager` as its
 * context manager.
 */
const storage = new AsyncLocalStorage<Context>();

const current = (): Context => storage.getStore() ?? ROOT_CONTEXT;

/** A value carried through everything `run` calls, synchronously or not. */
export interface AsyncSlot<T> {
  run<R>(value: T, fn: () => R): R;
  get(): T | undefined;
}

export function asyncSlot<T>(name: string): AsyncSlot<T> {
  const key = createContextKey(name);
  return {
    run: (value, fn) => storage.run(current().setValue(key, value), fn),
    get: () => current().getValue(key) as T | undefined,
  };
}

/** OpenTelemetry's context manager over the shared store (platform/tracing.ts hands it to the SDK). */
export const sharedContextManager: ContextManager = {
  active: current,
  with(context, fn, thisArg, ...args) {
    return storage.run(context, () => fn.apply(thisArg, args));
  },
  bind(context, target) {
    if (typeof target !== 'function') return target;
    const fn = target as unknown as (...args: unknown[]) => unknown;
    return function (this: unknown, ...args: unknown[]) {
      return storage.run(context, () => fn.apply(this, args));
    } as unknown as typeof target;
  },
  enable() {
    return sharedContextManager;
  },
  disable() {
    return sharedContextManager;
  },
};
