/**
 * The support desk port: what the support subgraph asks of the desk, in canonical terms.
 * Adapters (embedded SQLite, Zendesk) map tickets, users and organizations to these shapes:
 * a ticket's organization becomes a customer number, its requester a CRM contact id, its custom
 * fields an order and a serial number. Batch methods return the records found, in any order.
 */
export interface SupportConnector {
  casesByIds(ids: readonly string[]): Promise<CaseRecord[]>;
  /** One page of cases matching the filter, newest first, after the given case id. */
  searchCases(query: CaseSearch): Promise<CasePage>;
  countCases(filter: CaseFilterInput): Promise<number>;
  /** The `limit` newest cases of each customer, optionally in the given statuses. */
  casesByCustomerIds(
    customerIds: readonly string[],
    query: { statuses?: readonly CaseStatus[] | undefined; limit: number },
  ): Promise<CaseRecord[]>;
  /** Number of cases not solved or closed, per customer number (missing = 0). */
  openCaseCounts(customerIds: readonly string[]): Promise<Map<string, number>>;
  casesByContactIds(contactIds: readonly string[], limit: number): Promise<CaseRecord[]>;
  casesByOrderNumbers(numbers: readonly string[]): Promise<CaseRecord[]>;
  casesBySerialNumbers(serialNumbers: readonly string[]): Promise<CaseRecord[]>;
  commentsByCaseIds(caseIds: readonly string[]): Promise<CommentRecord[]>;
  /**
   * Cases with the parts asked for (their comments, their assignees, their customers' open-case
   * counts), in as few round trips as the desk allows: what one case of a query will need,
   * fetched before its fields run instead of one trip per dependent field. Only the parts asked
   * for are read.
   */
  caseGraphsByIds(ids: readonly string[], parts: CaseParts): Promise<CaseGraph>;
  agentsByIds(ids: readonly string[]): Promise<AgentRecord[]>;
  slaPoliciesByTiers(tiers: readonly SupportTier[]): Promise<SlaPolicyRecord[]>;
  /**
   * Adds an internal note and/or sets the status of a case, once per key: a key already
   * applied changes nothing. Resolves to the case as it is afterwards (null if unknown).
   */
  applyCaseUpdate(update: CaseUpdate): Promise<CaseRecord | null>;
  /**
   * Records the products an order put at a customer's site (the installed base: Zendesk custom
   * object records), each upserted by its external id (order number and SKU), so recording an
   * order twice changes nothing. Null when no organization has that customer number.
   */
  recordInstalledBase(update: InstalledBaseUpdate): Promise<InstalledProductRecord[] | null>;
  /**
   * Records what a subscription entitles its customer to (a custom object record `entitlement`
   * per subscription, upserted by the subscription id) and gives the organization the tag of
   * the highest tier among its active entitlements (`tier_premium`, …), which picks its SLA
   * policy. Setting the same state twice changes nothing. Null when no organization has that
   * customer number. Resolves to the customer's entitlements afterwards.
   */
  setEntitlement(update: EntitlementUpdate): Promise<EntitlementRecord[] | null>;
  entitlementsByCustomerIds(customerIds: readonly string[]): Promise<EntitlementRecord[]>;
  /** The installed base of each customer, newest first. */
  installedBaseByCustomerIds(customerIds: readonly string[]): Promise<InstalledProductRecord[]>;
  /** Resolves when the desk answers; rejects otherwise. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export type CaseStatus = 'NEW' | 'OPEN' | 'PENDING' | 'ON_HOLD' | 'SOLVED' | 'CLOSED';
export type CasePriority = 'LOW' | 'NORMAL' | 'HIGH' | 'URGENT';
export type CaseType = 'QUESTION' | 'INCIDENT' | 'PROBLEM' | 'TASK';
export type SupportTier = 'BASIC' | 'STANDARD' | 'PREMIUM';

export const OPEN_CASE_STATUSES: readonly CaseStatus[] = ['NEW', 'OPEN', 'PENDING', 'ON_HOLD'];

export interface CaseFilterInput {
  statuses?: readonly CaseStatus[] | undefined;
  priorities?: readonly CasePriority[] | undefined;
  customerId?: string | undefined;
  assigneeId?: string | undefined;
}

export interface CaseSearch {
  filter: CaseFilterInput;
  limit: number;
  /** Return only cases older than this case id (the cursor). */
  afterId?: string | undefined;
}

export interface CasePage {
  records: CaseRecord[];
  hasNextPage: boolean;
}

export interface CaseRecord {
  /** Ticket number. */
  id: string;
  subject: string;
  description: string | null;
  status: CaseStatus;
  priority: CasePriority;
  type: CaseType | null;
  tags: string[];
  createdAt: string;
  updatedAt: string;
  dueAt: string | null;
  assigneeId: string | null;
  /** CRM contact id of the requester, when the desk knows it. */
  requesterContactId: string | null;
  /** Customer number of the ticket's organization. */
  customerId: string | null;
  orderNumber: string | null;
  serialNumber: string | null;
}

export interface CommentRecord {
  id: string;
  caseId: string;
  body: string;
  public: boolean;
  authorName: string | null;
  createdAt: string;
}

export interface AgentRecord {
  id: string;
  name: string;
  email: string | null;
}

export interface SlaPolicyRecord {
  tier: SupportTier;
  name: string;
  businessHoursOnly: boolean;
  targets: SlaTargetRecord[];
}

export interface SlaTargetRecord {
  priority: CasePriority;
  firstResponseHours: number;
  resolutionHours: number;
}

/** References to entities other systems own, as the desk's fields receive them. */
export interface CustomerRef {
  id: string;
}
export interface ContactRef {
  id: string;
}
export interface OrderRef {
  number: string;
}
export interface AssetRef {
  serialNumber: string;
}
export interface ContractRef {
  id: string;
  /** Provided by the CRM through @requires. */
  supportTier: SupportTier | null;
}

export interface CaseUpdate {
  key: string;
  caseId: string;
  internalNote?: string | undefined;
  status?: CaseStatus | undefined;
}

export interface InstalledBaseUpdate {
  customerId: string;
  orderNumber: string;
  items: readonly { sku: string; name: string | null; quantity: number; warrantyMonths: number | null }[];
}

/** One product of an order at a customer's site, as the desk knows it (entitlement included). */
export interface InstalledProductRecord {
  /** `${orderNumber}:${sku}`: the record's external id. */
  id: string;
  customerId: string;
  orderNumber: string;
  sku: string;
  name: string | null;
  quantity: number;
  /** The warranty the order entitles the customer to, in months; null: none. */
  warrantyMonths: number | null;
  recordedAt: string;
}

export interface EntitlementUpdate {
  customerId: string;
  subscriptionId: string;
  tier: SupportTier;
  /** False while the subscription is suspended: it entitles to nothing then. */
  active: boolean;
  /** The subscription's end date, if it has one. */
  until: string | null;
}

export interface EntitlementRecord {
  subscriptionId: string;
  customerId: string;
  tier: SupportTier;
  active: boolean;
  until: string | null;
  updatedAt: string;
}

/** The parts of a case a query selects beside the case itself. */
export interface CaseParts {
  readonly comments: boolean;
  readonly assignee: boolean;
  /** The open-case count of the case's customer. */
  readonly openCaseCount: boolean;
}

/** Cases found and the parts asked for; a part not asked for is empty. */
export interface CaseGraph {
  cases: CaseRecord[];
  comments: CommentRecord[];
  agents: AgentRecord[];
  /** Per customer number of the cases found (missing = 0). */
  openCaseCounts: Map<string, number>;
}
