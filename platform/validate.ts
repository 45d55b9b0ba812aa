import { badUserInput } from './errors.ts';

/** An identifier argument: non-blank, at most 64 characters. Returns it trimmed. */
export function requireId(argument: string, value: string): string {
  const trimmed = value.trim();
  if (trimmed === '' || trimmed.length > 64) {
    throw badUserInput(argument, `must be a non-empty id of at most 64 characters, but got ${JSON.stringify(value.slice(0, 80))}`);
  }
  return trimmed;
}

/**
 * A list filter argument: null or absent means no filter; an empty list is refused rather than
 * read as "everything". Returns the distinct values, sorted, so equal filters look equal.
 */
export function listFilter<T extends string>(argument: string, values: readonly T[] | null | undefined): T[] | undefined {
  if (values == null) return undefined;
  if (values.length === 0) throw badUserInput(argument, 'must name at least one value, or be left out');
  return [...new Set(values)].sort();
}

/** Free text of at most `max` characters (null and absent pass); longer is BAD_USER_INPUT naming it. */
export function maxLength(argument: string, value: string | null | undefined, max: number): void {
  if (value != null && value.length > max) throw badUserInput(argument, `must be at most ${max} characters (got ${value.length})`);
}

/** A list of at most `max` items; longer is BAD_USER_INPUT naming it. */
export function maxItems(argument: string, values: readonly unknown[], max: number): void {
  if (values.length > max) throw badUserInput(argument, `must hold at most ${max} items (got ${values.length})`);
}

/** An idempotency key: non-blank, at most 128 characters. Returns it trimmed. */
export function requireKey(argument: string, value: string): string {
  const trimmed = value.trim();
  if (trimmed === '' || trimmed.length > 128) throw badUserInput(argument, 'must be 1 to 128 characters');
  return trimmed;
}
