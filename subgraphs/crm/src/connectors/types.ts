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
  /**
   * Records a completed activity (a Task) on the customer's account, once per key: a key
   * already used returns the activity it created. Null when no account has that number.
   */
  logActivity(activity: NewActivity): Promise<ActivityRecord | null>;
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
