import { SystemCallError } from './resilience.ts';

/** More pages than any read of ours needs: past this, a vendor's "more" flag is not believed. */
export const MAX_PAGES = 1_000;

/**
 * Guards a paging loop against a system that keeps saying "more": each next cursor (URL,
 * locator, token) must be new, and the pages must stay below MAX_PAGES. Call `next(cursor)`
 * before fetching each page after the first.
 */
export function pagingGuard(system: string, operation: string): { next(cursor: string): void } {
  const seen = new Set<string>();
  return {
    next(cursor) {
      if (seen.has(cursor)) throw new SystemCallError(`${system} ${operation}: the next page repeats an earlier one`, { retryable: false });
      seen.add(cursor);
      if (seen.size >= MAX_PAGES) throw new SystemCallError(`${system} ${operation}: more than ${MAX_PAGES} pages`, { retryable: false });
    },
  };
}
