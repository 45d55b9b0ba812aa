/** What the OData adapters (Business Central v4, S/4HANA V2) write into their URLs alike. */

/** An OData string literal: single quotes, a quote inside doubled. */
export function stringLiteral(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

/** `field eq 'key'`, for a filter of keys. */
export const byField =
  (field: string) =>
  (key: string): string =>
    `${field} eq ${stringLiteral(key)}`;

/**
 * Percent-encodes a query option's value exactly as it goes on the wire: fetch's URL parser
 * encodes the quote that encodeURIComponent leaves alone, and URL lengths are measured here.
 */
export function encodeOption(value: string): string {
  return encodeURIComponent(value).replace(/'/g, '%27');
}

/** A JSON object (not null, not an array). */
export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
