import { silentTelemetry } from '../../platform/connector-telemetry.ts';
import { createEmbeddedErpConnector } from '../../subgraphs/erp/src/connectors/embedded/index.ts';
import { createEmbeddedSupportConnector } from '../../subgraphs/support/src/connectors/embedded/index.ts';
import type { Databases } from '../helpers/stack.ts';
import { AS_OF } from '../helpers/stack.ts';

/** Records of one customer that reach every type of the graph, read from the seeded systems. */
export interface OwnRecords {
  customerId: string;
  caseId: string;
  orderNumber: string;
  shipmentId: string;
  serialNumber: string;
  invoiceNumber: string;
  sku: string;
  contractId: string;
  /** The won opportunity the order came from. */
  opportunityId: string;
  /** The customer's account in the CRM (its CRM id). */
  accountId: string;
  /** A subscription of the customer, billed in the ERP and entitling it in the desk (addSubscription). */
  subscriptionId: string;
}

/**
 * A customer with a contract in force and a case that has everything: an assignee, an internal
 * note, an order with a shipment and invoice, and a unit; plus those records' ids.
 */
export function ownRecords(dbs: Databases, options: { notOf?: string } = {}): OwnRecords {
  const candidates = dbs.support
    .prepare(
      `SELECT t.id AS caseId, o.external_id AS customerId, fo.value AS orderNumber, fs.value AS serialNumber
       FROM tickets t
       JOIN organizations o ON o.id = t.organization_id
       JOIN ticket_custom_fields fo ON fo.ticket_id = t.id AND fo.field_id = 360000000101
       JOIN ticket_custom_fields fs ON fs.ticket_id = t.id AND fs.field_id = 360000000102
       WHERE t.assignee_id IS NOT NULL AND o.external_id <> ?
         AND EXISTS (SELECT 1 FROM ticket_comments c WHERE c.ticket_id = t.id AND c.public = 0)
       ORDER BY t.id`,
    )
    .all(options.notOf ?? '') as { caseId: number; customerId: string; orderNumber: string; serialNumber: string }[];
  for (const candidate of candidates) {
    const contract = dbs.crm
      .prepare(
        `SELECT k.ContractNumber FROM Contract k JOIN Account a ON a.Id = k.AccountId
         WHERE a.AccountNumber = ? AND k.Status = 'Activated' AND k.StartDate <= ? AND k.EndDate >= ?`,
      )
      .get(candidate.customerId, AS_OF, AS_OF) as { ContractNumber: string } | undefined;
    const shipment = dbs.erp
      .prepare('SELECT shipmentNumber AS id FROM serialNumbers WHERE serialNumber = ?')
      .get(candidate.serialNumber) as { id: string } | undefined;
    const invoice = dbs.erp.prepare('SELECT number FROM salesInvoices WHERE orderNumber = ? LIMIT 1').get(candidate.orderNumber) as
      { number: string } | undefined;
    const line = dbs.erp
      .prepare(
        'SELECT l.lineObjectNumber AS sku FROM salesOrderLines l JOIN salesOrders o ON o.id = l.documentId WHERE o.number = ? LIMIT 1',
      )
      .get(candidate.orderNumber) as { sku: string } | undefined;
    const opportunity = dbs.crm.prepare('SELECT Id FROM Opportunity WHERE ERP_Order_Number__c = ?').get(candidate.orderNumber) as
      { Id: string } | undefined;
    if (contract && shipment && invoice && line && opportunity) {
      return {
        customerId: candidate.customerId,
        caseId: String(candidate.caseId),
        orderNumber: candidate.orderNumber,
        shipmentId: shipment.id,
        serialNumber: candidate.serialNumber,
        invoiceNumber: invoice.number,
        sku: line.sku,
        contractId: contract.ContractNumber,
        opportunityId: opportunity.Id,
        accountId: (dbs.crm.prepare('SELECT Id FROM Account WHERE AccountNumber = ?').get(candidate.customerId) as { Id: string }).Id,
        subscriptionId: `a0S${candidate.customerId.padEnd(12, '0').slice(0, 12)}AAA`,
      };
    }
  }
  throw new Error('the seeded data has no customer with every kind of record');
}

/** A return order in the ERP for the records' case (for suites that read return authorizations). */
export async function addReturnOrder(dbs: Databases, records: OwnRecords): Promise<string> {
  const erp = createEmbeddedErpConnector(dbs.erp, silentTelemetry('erp'));
  const [asset] = await erp.assetsBySerialNumbers([records.serialNumber]);
  const created = await erp.createReturnOrder({
    externalDocumentNumber: `fixture-${records.caseId}`,
    customerId: records.customerId,
    caseId: records.caseId,
    resolution: 'REPLACE',
    currency: 'USD',
    lines: [
      {
        sku: asset!.sku,
        quantity: 1,
        unitPrice: '100.00',
        reason: 'DEFECTIVE',
        serialNumber: records.serialNumber,
        orderNumber: asset!.orderNumber,
        orderLineSequence: null,
        appliesToInvoiceNumber: null,
      },
    ],
  });
  return created.number;
}

/** The records' order in the customer's installed base in the desk (for suites that read it). */
export async function addInstalledProduct(dbs: Databases, records: OwnRecords): Promise<void> {
  const desk = createEmbeddedSupportConnector(dbs.support, silentTelemetry('support'));
  await desk.recordInstalledBase({
    customerId: records.customerId,
    orderNumber: records.orderNumber,
    items: [{ sku: records.sku, name: null, quantity: 1, warrantyMonths: 24 }],
  });
}

/** The records' subscription: in the CRM, its billing schedule in the ERP, its entitlement in the desk. */
export async function addSubscription(dbs: Databases, records: OwnRecords): Promise<void> {
  dbs.crm
    .prepare(
      `INSERT INTO Subscription__c (Id, Account__c, Plan_Code__c, Quantity__c, Support_Tier__c, Status__c, Start_Date__c, Unit_Price__c,
         Billing_Frequency__c, LastModifiedDate)
       VALUES (?, ?, ?, 1, 'Standard', 'Active', ?, 10, 'Monthly', ?)`,
    )
    .run(records.subscriptionId, records.accountId, records.sku, AS_OF, `${AS_OF}T08:00:00Z`);
  const erp = createEmbeddedErpConnector(dbs.erp, silentTelemetry('erp'));
  await erp.applyBillingChange({
    key: `fixture-${records.subscriptionId}`,
    subscriptionId: records.subscriptionId,
    customerId: records.customerId,
    sku: records.sku,
    quantity: 1,
    unitPrice: '10.00',
    frequency: 'MONTHLY',
    status: 'ACTIVE',
    startDate: AS_OF,
    endDate: null,
    currency: 'USD',
  });
  const desk = createEmbeddedSupportConnector(dbs.support, silentTelemetry('support'));
  await desk.setEntitlement({
    customerId: records.customerId,
    subscriptionId: records.subscriptionId,
    tier: 'STANDARD',
    active: true,
    until: null,
  });
}
