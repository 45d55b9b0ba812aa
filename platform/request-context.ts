import { randomUUID } from 'node:crypto';
import { asyncSlot } from './async-context.ts';

/** What every log line and outgoing call of one request needs to know about it. */
export interface RequestScope {
  readonly correlationId: string;
  /** `background` when the caller said so (PRIORITY_HEADER): its vendor calls yield to interactive ones near a limit. */
  readonly priority?: 'interactive' | 'background';
}

const storage = asyncSlot<RequestScope>('concord.request-scope');

export const CORRELATION_HEADER = 'x-correlation-id';

const acceptable = /^[A-Za-z0-9._:@/+=-]{1,128}$/;

/** The client's correlation id when it is a sane token, otherwise a new one. */
export function correlationIdFrom(header: string | string[] | undefined): string {
  const value = Array.isArray(header) ? header[0] : header;
  return value && acceptable.test(value) ? value : randomUUID();
}

/** Runs `fn` with `scope` visible to everything it calls, synchronously or not. */
export function runInScope<T>(scope: RequestScope, fn: () => T): T {
  return storage.run(scope, fn);
}

/** The scope of the request being served, or undefined outside one. */
export function currentScope(): RequestScope | undefined {
  return storage.get();
}
