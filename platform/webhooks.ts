import { createHmac, timingSafeEqual } from 'node:crypto';
import type { RawRequest, RawResponse } from './http-server.ts';

/** A signed notice older (or further in the future) than this is refused, so a captured one cannot be replayed later. */
export const MAX_SKEW_MS = 5 * 60_000;

/**
 * Checks a notice signed as Zendesk signs its webhooks: `signatureHeader` is
 * base64(HMAC-SHA256(secret, timestamp + body)), the timestamp in `timestampHeader`, within
 * MAX_SKEW_MS of the clock. Returns the 401 to answer, or the signature and the time.
 */
export function checkSignature(
  secret: string,
  request: RawRequest,
  signatureHeader: string,
  timestampHeader: string,
  now = Date.now(),
): RawResponse | { signature: string; at: number } {
  const signature = headerOf(request, signatureHeader);
  const timestamp = headerOf(request, timestampHeader);
  if (!signature || !timestamp) return unauthorized(`${signatureHeader} and ${timestampHeader} are required`);
  const at = Date.parse(timestamp);
  if (Number.isNaN(at) || Math.abs(now - at) > MAX_SKEW_MS) return unauthorized('the timestamp is missing, malformed or too old');
  const expected = createHmac('sha256', secret).update(timestamp).update(request.body).digest('base64');
  return same(signature, expected) ? { signature: expected, at } : unauthorized('the signature does not match');
}

export function headerOf(request: RawRequest, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** The body as a JSON object or array, or undefined when it is not JSON. */
export function jsonBody(body: Buffer): Record<string, unknown> | unknown[] | undefined {
  try {
    const value = JSON.parse(body.toString('utf8')) as unknown;
    return value && typeof value === 'object' ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** Compares secrets in constant time. */
export function same(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

const json = (status: number, body: unknown): RawResponse => ({ status, body: JSON.stringify(body) });
export const unauthorized = (message: string): RawResponse => json(401, { error: message });
export const badRequest = (message: string): RawResponse => json(400, { error: message });
/** The system sends a notice again when it is not acknowledged: better than one lost. */
export const tryAgain = (message: string): RawResponse => json(503, { error: message });
export const accepted = (count: number): RawResponse => json(202, { accepted: count });
