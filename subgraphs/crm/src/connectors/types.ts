/**
 * The CRM port: what the CRM subgraph asks of the CRM, in canonical terms. Adapters (embedded
 * SQLite, Salesforce) map their system's records and ids to these shapes; resolvers see nothing
 * else. Batch methods take many keys and return the records found, in any order.
 */
export interface CrmConnector {
  /** Accounts by customer number (Account.AccountNumber). */
  customersByIds(ids: readonly string[]): Promise<CustomerRecord[]>;
  contactsByIds(ids: readonly string[]): Promise<ContactRecord[]>;
  contactsByCustomerIds(customerIds: readonly string[]): Promise<ContactRecord[]>;
  /** Contracts by contract number. */
  contractsByIds(ids: readonly string[]): Promise<ContractRecord[]>;
  contractsByCustomerIds(customerIds: readonly string[]): Promise<ContractRecord[]>;
  /** Contracts by their CRM id (Contract.Id), as change events name them. */
  contractsByCrmIds(ids: readonly string[]): Promise<ContractRecord[]>;
  /**
   * Records a completed activity (a Task) on the customer's account, once per key: a key
   * already used returns the activity it created. Null when no account has that number.
   */
  logActivity(activity: NewActivity): Promise<ActivityRecord | null>;
  /** Accounts by their CRM id (Account.Id), whether or not they have a customer number yet. */
  accountsByIds(ids: readonly string[]): Promise<AccountRecord[]>;
  /**
   * Writes the outcome of an account's onboarding onto it (its status and reason, and the
   * customer number the ERP gave it) and records a completed activity, once per key: a key
   * already used changes nothing again. Null when there is no such account; a CRM rule refusing
   * the change throws a CrmRefusal.
   */
  recordAccountOnboarding(update: AccountOnboardingUpdate): Promise<AccountRecord | null>;
  /** Subscriptions (the CRM-owned contract lines, Subscription__c) by their CRM id. */
  subscriptionsByIds(ids: readonly string[]): Promise<SubscriptionRecord[]>;
  /** Opportunities by their CRM id (Opportunity.Id, 18 characters). */
  opportunitiesByIds(ids: readonly string[]): Promise<OpportunityRecord[]>;
  /** The products of opportunities (OpportunityLineItem), in their sort order. */
  opportunityLinesByOpportunityIds(ids: readonly string[]): Promise<OpportunityLineRecord[]>;
  /**
   * Writes the ERP order an opportunity became onto it (its order fields) and records a
   * completed activity on it, once per key: a key already used changes nothing again. Null
   * when there is no such opportunity. A CRM rule refusing the change throws a CrmRefusal.
   */
  recordOpportunityOrder(update: OpportunityOrderUpdate): Promise<OpportunityRecord | null>;
  /** Resolves when the CRM answers; rejects otherwise. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export type CustomerSegment = 'ENTERPRISE' | 'MID_MARKET' | 'SMALL_BUSINESS';
export type ContractStatus = 'DRAFT' | 'ACTIVATED' | 'EXPIRED';
export type SupportTier = 'BASIC' | 'STANDARD' | 'PREMIUM';

export interface AddressRecord {
  street: string | null;
  city: string | null;
  state: string | null;
  postalCode: string | null;
  country: string | null;
}

export interface CustomerRecord {
  /** Customer number: the canonical key. */
  id: string;
  /** The CRM's own id for the account. */
  crmId: string;
  name: string;
  segment: CustomerSegment | null;
  industry: string | null;
  accountOwner: string | null;
  phone: string | null;
  website: string | null;
  billingAddress: AddressRecord | null;
}

export interface ContactRecord {
  id: string;
  /** Customer number of the contact's account. */
  customerId: string | null;
  firstName: string | null;
  lastName: string;
  email: string | null;
  phone: string | null;
  title: string | null;
}

export interface ContractRecord {
  /** Contract number. */
  id: string;
  /** The CRM's own id for the contract (Contract.Id). */
  crmId: string;
  customerId: string;
  status: ContractStatus;
  startDate: string | null;
  endDate: string | null;
  termMonths: number | null;
  supportTier: SupportTier;
  specialTerms: string | null;
}

export interface NewActivity {
  key: string;
  customerId: string;
  subject: string;
  description?: string | undefined;
  activityDate: string;
}

export interface ActivityRecord {
  id: string;
  customerId: string;
  subject: string;
  description: string | null;
  activityDate: string | null;
}

/** Where an opportunity is in the sales process (Salesforce's StageName). */
export interface OpportunityRecord {
  /** The CRM's id (Opportunity.Id). */
  id: string;
  /** Customer number of its account. */
  customerId: string | null;
  name: string;
  stage: string;
  isClosed: boolean;
  isWon: boolean;
  closeDate: string | null;
  amount: string | null;
  currency: string;
  /** The ERP order it became, once the process layer wrote it back. */
  erpOrderNumber: string | null;
  erpOrderStatus: string | null;
  expectedShipDate: string | null;
}

export interface OpportunityLineRecord {
  opportunityId: string;
  /** The product's code: the ERP item number. */
  sku: string;
  name: string | null;
  quantity: number;
  unitPrice: string;
  sortOrder: number;
}

export interface OpportunityOrderUpdate {
  key: string;
  opportunityId: string;
  orderNumber: string;
  orderStatus: string;
  expectedShipDate: string | null;
  subject: string;
  description?: string | undefined;
  activityDate: string;
}

/** The CRM refused a write by its own rules (a validation rule, a locked record): no retry helps. */
export class CrmRefusal extends Error {
  override name = 'CrmRefusal';
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

/** Where an account is in its onboarding: pending until the ERP has validated it. */
export type OnboardingStatus = 'PENDING' | 'ACTIVE' | 'REJECTED';

/** An account as onboarding reads it: what the ERP's customer is made from. */
export interface AccountRecord {
  /** The CRM's id (Account.Id). */
  id: string;
  /** The customer number; null until the account is onboarded. */
  customerId: string | null;
  name: string;
  billingAddress: AddressRecord | null;
  phone: string | null;
  /** Tax_Registration_Number__c. */
  taxRegistrationNumber: string | null;
  /** Billing_Email__c: where invoices go. */
  billingEmail: string | null;
  currency: string;
  /** Onboarding_Status__c; accounts from before onboarding existed (no status) count as active. */
  onboardingStatus: OnboardingStatus;
  onboardingReason: string | null;
}

export interface AccountOnboardingUpdate {
  key: string;
  accountId: string;
  status: 'ACTIVE' | 'REJECTED';
  /** The ERP's customer number, written to AccountNumber (ACTIVE only). */
  customerNumber: string | null;
  reason: string | null;
  subject: string;
  description?: string | undefined;
  activityDate: string;
}

export type SubscriptionStatus = 'DRAFT' | 'ACTIVE' | 'SUSPENDED' | 'EXPIRED';
export type BillingFrequency = 'MONTHLY' | 'ANNUAL';

/** A subscription as the CRM owns it: a contract line with its plan, quantity, tier and term. */
export interface SubscriptionRecord {
  /** The CRM's id (Subscription__c.Id). */
  id: string;
  /** Customer number of its account. */
  customerId: string | null;
  /** Contract number of the contract it belongs to. */
  contractId: string | null;
  /** The plan: the ERP item it is billed as (Plan_Code__c). */
  plan: string;
  quantity: number;
  tier: SupportTier;
  status: SubscriptionStatus;
  startDate: string | null;
  endDate: string | null;
  /** Per unit and billing period. */
  unitPrice: string;
  frequency: BillingFrequency;
  currency: string;
}
