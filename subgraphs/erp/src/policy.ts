import type { Owners, PolicyTable, SensitiveFields } from '../../../platform/authorization.ts';
import { AGENTS, STAFF } from '../../../platform/identity.ts';
import type { AssetRecord, CustomerRef, ErpCustomerRecord, InvoiceRecord, OrderRecord, ShipmentRecord } from './connectors/types.ts';

const OWN = 'portal_customer:own';
const PORTAL = 'portal_customer';

/**
 * Who sees what of the ERP. A field not listed is visible to no one; `integration` sees all.
 * Root fields admit portal customers, and their resolvers answer only for the token's customer;
 * value types (Money, OrderLine, Warranty, …) are reached only through a field already checked.
 */
export const ERP_POLICY: PolicyTable = {
  'Query.order': [...STAFF, PORTAL],
  'Query.invoice': [...STAFF, PORTAL],
  'Query.product': [...STAFF, PORTAL],
  'Query.asset': [...AGENTS, PORTAL],
  'Query.shipment': [...AGENTS, 'sales_rep', PORTAL],

  'Customer.id': [...STAFF, OWN],
  'Customer.billing': [...AGENTS, 'finance'],
  'Customer.openBalance': [...AGENTS, 'finance', OWN],
  'Customer.orders': [...STAFF, OWN],
  'Customer.invoices': [...STAFF, OWN],

  // Agents see billing status; the credit limit and tax id are finance's.
  'BillingProfile.currency': [...AGENTS, 'finance'],
  'BillingProfile.paymentTerms': [...AGENTS, 'finance'],
  'BillingProfile.creditHold': [...AGENTS, 'finance'],
  'BillingProfile.creditLimit': ['finance'],
  'BillingProfile.taxRegistrationNumber': ['finance'],

  'Money.*': [...STAFF, PORTAL],
  'Product.*': [...STAFF, PORTAL],
  'Order.*': [...STAFF, OWN],
  'OrderLine.*': [...STAFF, PORTAL],
  'Shipment.*': [...AGENTS, 'sales_rep', OWN],
  'ShipmentLine.*': [...AGENTS, 'sales_rep', PORTAL],
  'Asset.*': [...AGENTS, OWN],
  'Warranty.*': [...AGENTS, PORTAL],

  // Agents: number, status, dates and balance. Sales: the summary with its amount. Finance: all.
  'Invoice.number': [...STAFF, OWN],
  'Invoice.invoiceDate': [...STAFF, OWN],
  'Invoice.dueDate': [...STAFF, OWN],
  'Invoice.status': [...STAFF, OWN],
  'Invoice.customer': [...STAFF, OWN],
  'Invoice.order': [...STAFF, OWN],
  'Invoice.amount': ['sales_rep', 'finance', OWN],
  'Invoice.balance': [...AGENTS, 'finance', OWN],
  'Invoice.paidDate': ['finance', OWN],

  // Returns: agents see them on their cases. The process layer authorizes them: it alone, as
  // the integration identity, creates return orders.
  'Mutation.createReturnOrder': ['integration'],
  'CreateReturnOrderPayload.*': ['integration'],
  'ReturnOrderError.*': ['integration'],
  // Sales orders: the process layer's quote-to-order writes them, as the integration identity.
  'Mutation.createSalesOrder': ['integration'],
  'Mutation.cancelSalesOrder': ['integration'],
  'CreateSalesOrderPayload.*': ['integration'],
  'SalesOrderError.*': ['integration'],
  'CancelSalesOrderPayload.*': ['integration'],
  // Onboarding: the process layer makes CRM accounts ERP customers, as the integration identity.
  'Mutation.onboardCustomer': ['integration'],
  'Mutation.blockCustomer': ['integration'],
  'OnboardCustomerPayload.*': ['integration'],
  'OnboardingError.*': ['integration'],
  'BlockCustomerPayload.*': ['integration'],
  // Subscription billing: the process layer applies subscription changes, as the integration identity.
  'Mutation.applyBillingChange': ['integration'],
  'ApplyBillingChangePayload.*': ['integration'],
  'BillingChangeError.*': ['integration'],
  'Customer.billingSchedules': [...STAFF, OWN],
  'BillingSchedule.*': [...STAFF, PORTAL],
  'ReturnAuthorization.*': [...AGENTS],
  'ReturnAuthorizationLine.*': [...AGENTS],
  'Case.id': [...AGENTS],
  'Case.returnAuthorizations': [...AGENTS],
};

export const ERP_OWNERS: Owners = {
  Customer: (customer: CustomerRef) => customer.id,
  Order: (order: OrderRecord) => order.customerId,
  Shipment: (shipment: ShipmentRecord) => shipment.customerId,
  Asset: (asset: AssetRecord) => asset.customerId,
  Invoice: (invoice: InvoiceRecord) => invoice.customerId,
};

export const ERP_SENSITIVE: SensitiveFields = {
  'BillingProfile.creditLimit': (customer: ErpCustomerRecord) => customer.id,
  'BillingProfile.taxRegistrationNumber': (customer: ErpCustomerRecord) => customer.id,
  'Customer.openBalance': (customer: CustomerRef) => customer.id,
  'Invoice.paidDate': (invoice: InvoiceRecord) => invoice.number,
  'Invoice.amount': (invoice: InvoiceRecord) => invoice.number,
  'Invoice.balance': (invoice: InvoiceRecord) => invoice.number,
};
