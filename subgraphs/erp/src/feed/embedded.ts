import type { EventDraft } from '../../../../platform/events/cloudevent.ts';
import type { ChangeDraft, LoggedChange } from '../../../../platform/events/sqlite-change-log.ts';
import type { ErpChangedRecord, ErpChangeKind, ErpConnector } from '../connectors/types.ts';
import { INVOICE_STATUSES, ORDER_STATUSES } from '../connectors/vocabulary.ts';
import { customerUpdated, draftOf, invoicePosted, orderUpdated, shipmentConfirmed, type ChangeFacts } from './events.ts';

/** The kind of record each logged table's rows are, and the column that holds the record's id. */
const KINDS: Readonly<Record<string, { kind: ErpChangeKind; id: string }>> = {
  salesOrders: { kind: 'order', id: 'id' },
  // A line's change is its order's: the order's status counts what its lines shipped.
  salesOrderLines: { kind: 'order', id: 'documentId' },
  salesShipments: { kind: 'shipment', id: 'id' },
  salesInvoices: { kind: 'invoice', id: 'id' },
};

/**
 * The events of the embedded ERP's logged changes (connectors/embedded/tables.ts names the
 * tables and the columns kept). Orders, shipments and invoices are read through the connector
 * once per batch, by id, so their events say what the graph says (an order's status from its
 * lines); a record deleted since is told from the columns the log kept.
 */
export function embeddedErpDrafts(connector: ErpConnector) {
  return async (changes: readonly LoggedChange[]): Promise<ChangeDraft[]> => {
    const wanted = new Map<ErpChangeKind, Set<string>>();
    for (const change of changes) {
      const of = KINDS[change.table];
      const id = of && change.row[of.id];
      if (of && typeof id === 'string' && change.operation !== 'DELETE') {
        const ids = wanted.get(of.kind) ?? new Set<string>();
        wanted.set(of.kind, ids.add(id));
      }
    }
    const read = await Promise.all([...wanted].map(([kind, ids]) => connector.changedRecordsByErpIds(kind, [...ids])));
    const byId = new Map<string, ErpChangedRecord>(read.flat().map((changed) => [changed.erpId.toLowerCase(), changed]));
    const current = (id: unknown) => (typeof id === 'string' ? byId.get(id.toLowerCase()) : undefined);

    // An order created with its lines is told by its creation alone.
    const created = new Set(
      changes.filter((change) => change.table === 'salesOrders' && change.operation === 'INSERT').map((change) => change.row.id),
    );
    const drafts: ChangeDraft[] = [];
    for (const change of changes) {
      const add = (draft: EventDraft) => drafts.push({ ...draft, change });
      const { row, previous } = change;
      const deleted = change.operation === 'DELETE';
      const facts: ChangeFacts = { changes: change.changed, deleted };
      const record = deleted ? undefined : current(row[KINDS[change.table]?.id ?? 'id']);
      switch (change.table) {
        case 'customers':
          add(customerUpdated(String(row.number), facts));
          if (previous && previous.number !== row.number) add(customerUpdated(String(previous.number), { changes: ['number'] }));
          break;
        case 'salesOrders':
          add(
            record
              ? draftOf(record, facts)
              : orderUpdated(
                  {
                    number: String(row.number),
                    customerId: String(row.customerNumber),
                    status: row.fullyShipped ? 'SHIPPED' : ORDER_STATUSES[String(row.status)],
                  },
                  facts,
                ),
          );
          break;
        case 'salesOrderLines':
          // Lines deleted with their order are told by the order's own deletion.
          if (record && !created.has(row.documentId)) add(draftOf(record, { changes: ['salesOrderLines'] }));
          break;
        case 'salesShipments':
          add(
            record
              ? draftOf(record, facts)
              : shipmentConfirmed(
                  {
                    id: String(row.number),
                    orderNumber: String(row.orderNumber),
                    customerId: String(row.customerNumber),
                    shippedDate: String(row.postingDate),
                  },
                  facts,
                ),
          );
          break;
        case 'salesInvoices':
          add(
            record
              ? draftOf(record, facts)
              : invoicePosted(
                  {
                    number: String(row.number),
                    customerId: String(row.customerNumber),
                    orderNumber: typeof row.orderNumber === 'string' ? row.orderNumber : null,
                    status: INVOICE_STATUSES[String(row.status)],
                  },
                  facts,
                ),
          );
          break;
      }
    }
    return drafts;
  };
}
