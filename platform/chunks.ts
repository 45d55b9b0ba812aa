/** Splits values into runs of at most `size`, in order, duplicates kept. */
export function slices<T>(values: readonly T[], size: number): T[][] {
  const result: T[][] = [];
  for (let i = 0; i < values.length; i += size) result.push(values.slice(i, i + size));
  return result;
}

/** Splits values into chunks of at most `size`, dropping duplicates (the first of each is kept, in order). */
export function chunked<T>(values: readonly T[], size: number): T[][] {
  return slices([...new Set(values)], size);
}
