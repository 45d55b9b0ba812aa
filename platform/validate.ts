import { badUserInput } from './errors.ts';

/** An identifier argument: non-blank, at most 64 characters. Returns it trimmed. */
export function requireId(argument: string, value: string): string {
  const trimmed = value.trim();
  if (trimmed === '' || trimmed.length > 64) {
    throw badUserInput(argument, `must be a non-empty id of at most 64 characters, but got ${JSON.stringify(value.slice(0, 80))}`);
  }
  return trimmed;
}

/** A page size argument between 1 and `max`. */
export function requirePageSize(argument: string, value: number | null | undefined, max: number, fallback: number): number {
  const size = value ?? fallback;
  if (!Number.isInteger(size) || size < 1 || size > max) {
    throw badUserInput(argument, `must be between 1 and ${max}, but got ${size}`);
  }
  return size;
}
