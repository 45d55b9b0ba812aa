import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { RawRequest, RawResponse, RawRoute } from '../../../platform/http-server.ts';
import type { Logger } from '../../../platform/logger.ts';
import type { ChangeHookConfig } from '../config.ts';

/** A record (or, without ids, every record) of a graph type whose cached answers are now stale. */
export interface Invalidation {
  readonly type: string;
  readonly ids?: readonly string[];
}

type HookRequest = RawRequest;
type HookResponse = RawResponse;

/** Notices older (or further in the future) than this are refused, so a captured one cannot be replayed later. */
const MAX_SKEW_MS = 5 * 60_000;

/** Notices remembered at once; past this a new one is answered 503 (sent again later), never let through unremembered. */
export const MAX_SEEN_NOTICES = 20_000;
/** A Business Central subscription lives at most three days: no notice is remembered longer. */
const MAX_REMEMBER_MS = 3 * 24 * 3_600_000;

/** Where the notices already applied are remembered (in a cluster, the primary's, for all workers). */
export interface NoticeLedger {
  /** 'fresh': not seen, now remembered until `untilMs`; 'seen': a replay; 'full': no room, refuse for now. */
  claim(keys: readonly string[], untilMs: readonly number[]): Promise<'fresh' | 'seen' | 'full'>;
  /** Forgets keys of a notice that could not be applied, so that the system's resend is. */
  release(keys: readonly string[]): Promise<void>;
}

/**
 * The notices seen inside their window, each until it could no longer be accepted, at most
 * `max` at once (a Map in insertion order; expired ones are swept as new ones come).
 */
export class SeenNotices implements NoticeLedger {
  readonly #seen = new Map<string, number>();
  constructor(
    private readonly max = MAX_SEEN_NOTICES,
    private readonly now = () => Date.now(),
  ) {}

  get size(): number {
    return this.#seen.size;
  }

  async claim(keys: readonly string[], untilMs: readonly number[]): Promise<'fresh' | 'seen' | 'full'> {
    return this.claimNow(keys, untilMs);
  }

  claimNow(keys: readonly string[], untilMs: readonly number[]): 'fresh' | 'seen' | 'full' {
    const now = this.now();
    const fresh = keys.filter((key) => (this.#seen.get(key) ?? 0) <= now);
    if (fresh.length === 0) return 'seen';
    if (this.#seen.size + fresh.length > this.max) this.#sweep(now);
    if (this.#seen.size + fresh.length > this.max) return 'full';
    keys.forEach((key, index) => {
      if (!fresh.includes(key)) return;
      this.#seen.delete(key);
      this.#seen.set(key, Math.min(untilMs[index] ?? now, now + MAX_REMEMBER_MS));
    });
    return 'fresh';
  }

  async release(keys: readonly string[]): Promise<void> {
    this.releaseNow(keys);
  }

  releaseNow(keys: readonly string[]): void {
    for (const key of keys) this.#seen.delete(key);
  }

  #sweep(now: number): void {
    for (const [key, until] of this.#seen) if (until <= now) this.#seen.delete(key);
  }
}

/**
 * The change notices each system sends, turned into cache invalidations:
 *
 * - POST /hooks/zendesk: a Zendesk webhook, signed: `X-Zendesk-Webhook-Signature` is
 *   base64(HMAC-SHA256(secret, timestamp + body)) with the timestamp in
 *   `X-Zendesk-Webhook-Signature-Timestamp`. Ticket events name the case; organization and user
 *   events drop customers, contacts and agents.
 * - POST /hooks/business-central: a Business Central webhook subscription. The subscription
 *   handshake (`?validationToken=`) is answered with the token; notifications must carry the
 *   subscription's clientState. Their resource names a record by its systemId, which is not a
 *   graph key, so the whole type is dropped.
 * - POST /hooks/salesforce: Change Data Capture events (`ChangeEventHeader` with entityName and
 *   recordIds) as a relay (a CDC subscriber or a Flow callout) posts them, signed like Zendesk's
 *   with `X-Concord-Signature` and `X-Concord-Signature-Timestamp`: Salesforce itself has no
 *   signed HTTP push. Contacts are keyed by their Salesforce Id; accounts (keyed by customer
 *   number in the graph) and contracts drop the type.
 *
 * A notice that fails its check is refused with 401 and changes nothing; one that cannot be
 * read is refused with 400; one the cache store could not apply is answered 503, so that the
 * system sends it again.
 *
 * A notice is applied once. Its signature (Zendesk, Salesforce) or each notification's
 * subscription, resource, change and time (Business Central) is remembered for as long as the
 * notice could be accepted, and a notice seen before is answered 200 `{"duplicate": true}` and
 * changes nothing: 2xx, because the systems resend a notice until it is acknowledged, and a
 * resend after a lost acknowledgement must stop there; to anyone replaying a captured notice, it
 * is refused all the same. A Business Central notification past its subscription's
 * `expirationDateTime` is refused with 401.
 */
export function changeHooks(
  config: ChangeHookConfig,
  invalidate: (changes: Invalidation[]) => Promise<boolean>,
  logger: Logger,
  ledger: NoticeLedger = new SeenNotices(),
) {
  const hooks = new Map<string, RawRoute>();
  const accept = async (system: string, changes: Invalidation[], seen: { keys: string[]; untilMs: number[] }): Promise<HookResponse> => {
    const claimed = await ledger.claim(seen.keys, seen.untilMs);
    if (claimed === 'seen') {
      logger.warn({ system }, 'change notice ignored: it was applied before (a resend or a replay)');
      return { status: 200, body: JSON.stringify({ duplicate: true, accepted: 0 }) };
    }
    if (claimed === 'full') {
      logger.warn(
        { system, remembered: MAX_SEEN_NOTICES },
        'change notice not applied: it could not be remembered (too many at once, or no answer from the primary)',
      );
      return { status: 503, body: JSON.stringify({ error: 'too many notices at once; send the notice again' }) };
    }
    if (!(await invalidate(changes))) {
      await ledger.release(seen.keys);
      // The systems send a notice again when it is not acknowledged: better than a stale entry.
      logger.warn({ system, changes }, 'change notice not applied: the cache store did not answer');
      return { status: 503, body: JSON.stringify({ error: 'the cache could not be updated; send the notice again' }) };
    }
    logger.info({ system, changes }, 'change notice applied to the cache');
    return { status: 202, body: JSON.stringify({ accepted: changes.length }) };
  };

  // Zendesk, and the Salesforce relay, sign the timestamp and the body the same way.
  const signedJson =
    (system: string, secret: string, signatureHeader: string, toChanges: (body: Record<string, unknown>) => Invalidation[]): RawRoute =>
    async (request) => {
      const checked = checkSignature(secret, request, signatureHeader, `${signatureHeader}-timestamp`);
      if ('status' in checked) return checked;
      const body = parseJson(request.body);
      if (!body) return badRequest('the body is not JSON');
      // Accepted while its timestamp is within MAX_SKEW_MS of the clock: remembered that long.
      return accept(system, toChanges(body), { keys: [`${system}:${checked.signature}`], untilMs: [checked.at + MAX_SKEW_MS] });
    };

  if (config.zendeskSecret) {
    hooks.set('/hooks/zendesk', signedJson('zendesk', config.zendeskSecret, 'x-zendesk-webhook-signature', zendeskChanges));
  }
  if (config.businessCentralClientState) {
    const clientState = config.businessCentralClientState;
    hooks.set('/hooks/business-central', async (request) => {
      const validationToken = request.search.get('validationToken');
      if (validationToken !== null) return { status: 200, body: validationToken, contentType: 'text/plain; charset=utf-8' };
      const body = parseJson(request.body) as { value?: unknown } | undefined;
      if (!body || !Array.isArray(body.value)) return badRequest('expected {"value": [notifications]}');
      const notifications = body.value as BusinessCentralNotification[];
      if (
        !notifications.every((notification) => typeof notification.clientState === 'string' && same(notification.clientState, clientState))
      )
        return unauthorized('clientState does not match the subscription');
      const expires = notifications.map((notification) =>
        typeof notification.expirationDateTime === 'string' ? Date.parse(notification.expirationDateTime) : NaN,
      );
      const now = Date.now();
      if (!expires.every((at) => at > now)) return unauthorized("the subscription's expirationDateTime is missing or past");
      return accept('business-central', businessCentralChanges(notifications), {
        keys: notifications.map((notification) => `business-central:${businessCentralFingerprint(notification)}`),
        untilMs: expires,
      });
    });
  }
  if (config.salesforceSecret) {
    hooks.set(
      '/hooks/salesforce',
      signedJson('salesforce', config.salesforceSecret, 'x-concord-signature', (body) =>
        salesforceChanges(Array.isArray(body) ? body : [body]),
      ),
    );
  }
  return hooks;
}

function checkSignature(
  secret: string,
  request: HookRequest,
  signatureHeader: string,
  timestampHeader: string,
): HookResponse | { signature: string; at: number } {
  const signature = header(request, signatureHeader);
  const timestamp = header(request, timestampHeader);
  if (!signature || !timestamp) return unauthorized(`${signatureHeader} and ${timestampHeader} are required`);
  const at = Date.parse(timestamp);
  if (Number.isNaN(at) || Math.abs(Date.now() - at) > MAX_SKEW_MS) return unauthorized('the timestamp is missing, malformed or too old');
  const expected = createHmac('sha256', secret).update(timestamp).update(request.body).digest('base64');
  return same(signature, expected) ? { signature: expected, at } : unauthorized('the signature does not match');
}

/** A Business Central notification as its webhook subscription delivers it. */
interface BusinessCentralNotification {
  subscriptionId?: unknown;
  clientState?: unknown;
  expirationDateTime?: unknown;
  resource?: unknown;
  changeType?: unknown;
  lastModifiedDateTime?: unknown;
}

/** What tells one Business Central notification from another (they carry no id of their own). */
function businessCentralFingerprint(notification: BusinessCentralNotification): string {
  const { subscriptionId, resource, changeType, lastModifiedDateTime } = notification;
  return createHash('sha256')
    .update(JSON.stringify([subscriptionId, resource, changeType, lastModifiedDateTime]))
    .digest('base64url');
}

/** Zendesk event webhooks (`type`, `detail`, `subject`) and trigger webhooks with a `ticket_id`. */
export function zendeskChanges(event: Record<string, unknown>): Invalidation[] {
  const type = typeof event.type === 'string' ? event.type : '';
  const detail = (event.detail ?? {}) as Record<string, unknown>;
  const subjectId = typeof event.subject === 'string' ? /^zen:ticket:(\d+)$/.exec(event.subject)?.[1] : undefined;
  if (type.startsWith('zen:event-type:ticket.') || event.ticket_id !== undefined) {
    const id = detail.id ?? subjectId ?? event.ticket_id;
    return id === undefined ? [{ type: 'Case' }] : [{ type: 'Case', ids: [String(id)] }];
  }
  if (type.startsWith('zen:event-type:organization.')) return [{ type: 'Customer' }];
  if (type.startsWith('zen:event-type:user.')) return [{ type: 'Agent' }, { type: 'Contact' }];
  return [];
}

/** Business Central entity sets (standard API and the extension page) and the graph types they feed. */
const BUSINESS_CENTRAL_TYPES: Readonly<Record<string, readonly string[]>> = {
  customers: ['Customer'],
  salesOrders: ['Order'],
  salesOrderLines: ['Order'],
  salesInvoices: ['Invoice', 'Customer'],
  salesShipments: ['Shipment', 'Order'],
  shipments: ['Shipment', 'Order'],
  items: ['Product'],
  serialNumbers: ['Asset'],
  salesReturnOrders: ['ReturnAuthorization'],
};

export function businessCentralChanges(notifications: ReadonlyArray<{ resource?: unknown }>): Invalidation[] {
  const types = new Set<string>();
  for (const notification of notifications) {
    const resource = typeof notification.resource === 'string' ? notification.resource : '';
    const entitySet = /\/(\w+)(?:\([^)]*\))?\/?$/.exec(resource)?.[1] ?? '';
    for (const type of BUSINESS_CENTRAL_TYPES[entitySet] ?? []) types.add(type);
  }
  return [...types].map((type) => ({ type }));
}

export function salesforceChanges(events: readonly unknown[]): Invalidation[] {
  const changes: Invalidation[] = [];
  for (const event of events) {
    const header = ((event ?? {}) as { ChangeEventHeader?: { entityName?: unknown; recordIds?: unknown } }).ChangeEventHeader;
    const ids = Array.isArray(header?.recordIds) ? header.recordIds.map(String) : [];
    switch (header?.entityName) {
      case 'Contact':
        changes.push(ids.length ? { type: 'Contact', ids } : { type: 'Contact' });
        break;
      case 'Account':
        changes.push({ type: 'Customer' });
        break;
      case 'Contract':
        changes.push({ type: 'Contract' });
        break;
      case 'User':
        changes.push({ type: 'Customer' });
        break;
    }
  }
  return changes;
}

function header(request: HookRequest, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function parseJson(body: Buffer): Record<string, unknown> | undefined {
  try {
    const value = JSON.parse(body.toString('utf8')) as unknown;
    return value && typeof value === 'object' ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function same(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

const unauthorized = (message: string): HookResponse => ({ status: 401, body: JSON.stringify({ error: message }) });
const badRequest = (message: string): HookResponse => ({ status: 400, body: JSON.stringify({ error: message }) });
