import type { EventBroker } from '../../../../platform/events/broker.ts';
import type { RawRoute } from '../../../../platform/http-server.ts';
import type { Logger } from '../../../../platform/logger.ts';
import { accepted, badRequest, jsonBody, same, tryAgain, unauthorized } from '../../../../platform/webhooks.ts';
import type { ErpChangedRecord, ErpChangeKind, ErpConnector } from '../connectors/types.ts';
import { deletedDraftOf } from './events.ts';
import { eventsOf, timeOf, versionedDraftOf, type VersionedDraft } from './publish.ts';
import type { ErpFeedState } from './state.ts';

/**
 * The entity sets whose notifications become canonical events: the standard API's, and the
 * extension's `shipments` (the standard salesShipments are not webhook-enabled). Others (items,
 * serial numbers, return orders) are acknowledged and left.
 */
const KINDS: Readonly<Record<string, ErpChangeKind>> = {
  customers: 'customer',
  salesOrders: 'order',
  salesInvoices: 'invoice',
  salesShipments: 'shipment',
  shipments: 'shipment',
};

/** One notification of a webhook subscription, as Business Central posts them in `{"value": [...]}`. */
interface Notification {
  subscriptionId?: unknown;
  clientState?: unknown;
  expirationDateTime?: unknown;
  resource?: unknown;
  changeType?: unknown;
  lastModifiedDateTime?: unknown;
}

/** What a notification's resource names: a record (`salesOrders({id})`), or a collection with a filter. */
interface Resource {
  readonly company: string;
  readonly set: string;
  readonly id: string | null;
  readonly query: string | null;
}

const RESOURCE = /companies\(([^)]+)\)\/(\w+)(?:\(([^)]*)\))?\/?(?:\?(.*))?$/;

function resourceOf(value: unknown): Resource | null {
  const match = typeof value === 'string' ? RESOURCE.exec(value) : null;
  if (!match) return null;
  return { company: match[1]!.toLowerCase(), set: match[2]!, id: match[3]?.replace(/^'|'$/g, '') ?? null, query: match[4] ?? null };
}

/**
 * The time a `collection` notification's filter starts from: Business Central names records
 * changed after it (`$filter=lastModifiedDateTime gt …`; its docs spell it lastDateTimeModified too).
 */
function collectionSince(query: string | null): string | null {
  const filter = new URLSearchParams(query ?? '').get('$filter') ?? '';
  const match = /(?:lastModifiedDateTime|lastDateTimeModified)\s+(?:gt|ge)\s+(\S+)/.exec(filter);
  return match && timeOf(match[1]) !== null ? match[1]! : null;
}

/**
 * `POST /hooks/business-central`: Business Central webhook notifications.
 *
 * - The handshake (`?validationToken=`, when a subscription is created or renewed) is answered
 *   200 with the token as text/plain.
 * - Every notification must carry the subscription's clientState and an expirationDateTime not
 *   yet past; otherwise the whole notice is refused (401) and nothing is published. Business
 *   Central drops a subscription that answers 4xx other than 408 and 429, which is what a notice
 *   that fails its check should cost.
 * - A created or updated record is named by its systemId: the records of a notice are read
 *   through the connector, one request per entity set, for their numbers and state, and each
 *   becomes concord.customer.updated, concord.order.updated, concord.shipment.confirmed or
 *   concord.invoice.posted, versioned by the record's lastModifiedDateTime (the notification's
 *   when the record has none) in ms: the same change notified twice, or also read by the poller,
 *   is the same event. A `collection` notification (many changes at once) is read as a poll of
 *   its filter. A deleted record, which cannot be read, is told from the keys the feed remembered
 *   of it (nothing when it never saw the record).
 * - A notice whose records cannot be read, or that the broker does not take, is answered 503:
 *   Business Central sends it again (for up to 36 hours).
 */
export function businessCentralHook(deps: {
  readonly clientState: string;
  /** The company whose records are told; notifications of another are acknowledged and left. */
  readonly companyId: string | null;
  readonly connector: ErpConnector;
  readonly broker: EventBroker;
  readonly state: ErpFeedState;
  readonly source: string;
  readonly logger: Logger;
}): RawRoute {
  const { connector, broker, state, source, logger } = deps;
  const company = deps.companyId?.toLowerCase() ?? null;
  return async (request) => {
    const validationToken = request.search.get('validationToken');
    if (validationToken !== null) return { status: 200, body: validationToken, contentType: 'text/plain; charset=utf-8' };
    const body = jsonBody(request.body) as { value?: unknown } | undefined;
    if (!body || Array.isArray(body) || !Array.isArray(body.value)) return badRequest('expected {"value": [notifications]}');
    const notifications = body.value as Notification[];
    if (!notifications.every((item) => typeof item?.clientState === 'string' && same(item.clientState, deps.clientState))) {
      logger.warn('business central notice refused: its clientState does not match the subscription');
      return unauthorized('clientState does not match the subscription');
    }
    const now = Date.now();
    if (!notifications.every((item) => (timeOf(item.expirationDateTime as string) ?? 0) > now)) {
      logger.warn("business central notice refused: a subscription's expirationDateTime is missing or past");
      return unauthorized("the subscription's expirationDateTime is missing or past");
    }

    const byId = new Map<ErpChangeKind, Map<string, string | undefined>>();
    const collections: { kind: ErpChangeKind; since: string }[] = [];
    const drafts: VersionedDraft[] = [];
    for (const item of notifications) {
      const resource = resourceOf(item.resource);
      const kind = resource && KINDS[resource.set];
      if (!resource || !kind) continue;
      if (company && resource.company !== company) {
        logger.warn({ company: resource.company }, 'business central notification of another company left');
        continue;
      }
      const notified = typeof item.lastModifiedDateTime === 'string' ? item.lastModifiedDateTime : undefined;
      if (item.changeType === 'collection' || !resource.id) {
        const since = collectionSince(resource.query);
        if (since) collections.push({ kind, since });
        else logger.warn({ resource: item.resource }, 'business central collection notification without a time filter left');
      } else if (item.changeType === 'deleted') {
        const known = state.known(resource.id);
        const draft = known && deletedDraftOf(known);
        const version = timeOf(notified);
        if (draft && version !== null) drafts.push({ draft, version, at: new Date(version) });
        else logger.warn({ resource: item.resource }, 'business central deletion not told: the record was never seen');
      } else {
        const ids = byId.get(kind) ?? new Map<string, string | undefined>();
        byId.set(kind, ids.set(resource.id.toLowerCase(), notified));
      }
    }

    let records: { changed: ErpChangedRecord; notified?: string | undefined }[];
    try {
      const read = await Promise.all([
        ...[...byId].map(async ([kind, ids]) =>
          (await connector.changedRecordsByErpIds(kind, [...ids.keys()])).map((changed) => ({
            changed,
            notified: ids.get(changed.erpId.toLowerCase()),
          })),
        ),
        ...collections.map(async ({ kind, since }) => (await connector.changedRecordsAfter(kind, since)).map((changed) => ({ changed }))),
      ]);
      records = read.flat();
    } catch (error) {
      logger.warn({ err: error }, 'business central notice not published: its records could not be read');
      return tryAgain('Business Central could not be read; send the notifications again');
    }
    for (const { changed, notified } of records) {
      const versioned = versionedDraftOf(changed, notified);
      if (versioned) drafts.push(versioned);
    }
    const events = eventsOf(drafts, source, logger);
    try {
      if (events.length) await broker.publish(events);
    } catch (error) {
      logger.warn({ err: error, events: events.length }, 'business central notice not published: the broker did not take it');
      return tryAgain('the events could not be published; send the notifications again');
    }
    state.remember(records.map(({ changed }) => changed));
    logger.info({ notifications: notifications.length, published: events.length }, 'business central notice published');
    return accepted(events.length);
  };
}
