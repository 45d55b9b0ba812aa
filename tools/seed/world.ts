import { BASE62, salesforceSuffix } from '../../subgraphs/crm/src/connectors/embedded/ids.ts';
/**
 * One consistent demo world, shared by the CRM, the ERP and the support desk. Everything comes
 * from a seeded PRNG so the same options always give the same world; each part draws from its
 * own stream, so growing one part (more cases) leaves the others unchanged.
 */

export interface SeedOptions {
  customers: number;
  orders: number;
  cases: number;
  seed: number;
  /** The day the world is seen from, YYYY-MM-DD: nothing happens on or after its midnight UTC. */
  asOf: string;
}

export type Segment = 'Enterprise' | 'Mid-Market' | 'Small Business';
export type SupportTier = 'Basic' | 'Standard' | 'Premium';
export type CurrencyCode = 'USD' | 'EUR' | 'GBP';
export type ContactRole = 'technical' | 'purchasing' | 'finance' | 'management';

export interface SalesRep {
  id: string;
  name: string;
  email: string;
  isActive: boolean;
}

export interface Address {
  street: string;
  city: string;
  state: string | null;
  postalCode: string;
  /** ISO 3166 alpha-2, as the ERP keeps it. */
  country: string;
  /** Country name, as the CRM's picklist shows it. */
  countryName: string;
}

export interface Contact {
  id: string;
  customer: Customer;
  firstName: string;
  lastName: string;
  email: string;
  phone: string;
  title: string;
  role: ContactRole;
  modifiedAt: string;
  deskUserId: number;
}

export interface Contract {
  id: string;
  number: string;
  customer: Customer;
  status: 'Activated' | 'Expired' | 'Draft';
  startDay: number;
  startDate: string;
  endDay: number;
  endDate: string;
  termMonths: number;
  specialTerms: string | null;
  tier: SupportTier;
  modifiedAt: string;
}

export interface PaymentTerms {
  id: string;
  code: string;
  displayName: string;
  dueDateCalculation: string;
  days: number;
}

export type ItemKind = 'pump' | 'valve' | 'controller' | 'sensor' | 'drive' | 'system' | 'part' | 'kit' | 'service';

export interface Item {
  id: string;
  number: string;
  displayName: string;
  description: string;
  type: 'Inventory' | 'Service';
  category: string;
  unitPriceCents: number;
  unitOfMeasure: string;
  serialized: boolean;
  warrantyMonths: number | null;
  kind: ItemKind;
  /** What a customer calls the unit in a case subject ("Pump", "Flowmeter"). */
  label: string;
}

export interface Customer {
  number: string;
  accountId: string;
  erpId: string;
  orgId: number;
  name: string;
  domain: string;
  website: string;
  phone: string;
  type: 'Customer - Direct' | 'Customer - Channel';
  industry: string;
  segment: Segment;
  ownerId: string;
  address: Address;
  annualRevenue: number;
  sinceDay: number;
  accountModifiedAt: string;
  contacts: Contact[];
  contracts: Contract[];
  activeTier: SupportTier | null;
  currency: CurrencyCode;
  paymentTerms: PaymentTerms;
  creditLimit: number;
  blocked: boolean;
  taxRegistrationNumber: string;
  billingEmail: string;
  erpModifiedAt: string;
  /** Oldest first. */
  orders: Order[];
  /** Serialized units shipped to the customer, oldest shipment first. */
  units: SerialUnit[];
  balanceDueCents: number;
  deskCreatedMs: number;
  deskCreatedAt: string;
  deskUpdatedAt: string;
  deskTags: string[];
}

export interface OrderLine {
  id: string;
  sequence: number;
  item: Item;
  quantity: number;
  unitPriceCents: number;
  amountCents: number;
  shippedQuantity: number;
  shipmentDate: string;
}

export interface Order {
  id: string;
  number: string;
  customer: Customer;
  day: number;
  orderDate: string;
  externalDocumentNumber: string | null;
  requestedDeliveryDate: string | null;
  status: 'Draft' | 'In Review' | 'Open';
  lines: OrderLine[];
  exclCents: number;
  taxCents: number;
  inclCents: number;
  fullyShipped: boolean;
  modifiedAt: string;
  shipments: Shipment[];
  invoices: Invoice[];
}

export interface ShipmentLine {
  id: string;
  sequence: number;
  item: Item;
  quantity: number;
  unitPriceCents: number;
}

export interface Shipment {
  id: string;
  number: string;
  order: Order;
  day: number;
  postingDate: string;
  shipmentMethodCode: string;
  carrier: Carrier;
  trackingNumber: string;
  deliveredDay: number | null;
  deliveredDate: string | null;
  lines: ShipmentLine[];
  units: SerialUnit[];
}

export interface SerialUnit {
  serialNumber: string;
  item: Item;
  customer: Customer;
  order: Order;
  shipment: Shipment;
  startDay: number;
  startDate: string;
  endDay: number;
  endDate: string;
  warrantyCode: 'STD' | 'EXT' | 'PARTS';
}

export interface Invoice {
  id: string;
  number: string;
  day: number;
  invoiceDate: string;
  dueDay: number;
  dueDate: string;
  customer: Customer;
  order: Order;
  shipment: Shipment;
  totalCents: number;
  remainingCents: number;
  status: 'Open' | 'Paid';
  closedDate: string | null;
}

export type Carrier = 'UPS' | 'FEDEX' | 'DHL' | 'DBSCHENKER';

export interface Agent {
  id: number;
  name: string;
  firstName: string;
  email: string;
  groupId: number;
  createdAt: string;
}

export type TicketStatus = 'new' | 'open' | 'pending' | 'hold' | 'solved' | 'closed';
export type TicketPriority = 'low' | 'normal' | 'high' | 'urgent';
export type TicketType = 'question' | 'incident' | 'problem' | 'task';

export interface TicketComment {
  id: number;
  authorId: number;
  body: string;
  public: boolean;
  ms: number;
  createdAt: string;
}

export interface Ticket {
  id: number;
  type: TicketType;
  subject: string;
  description: string;
  priority: TicketPriority;
  status: TicketStatus;
  requester: Contact;
  submitterId: number;
  assignee: Agent | null;
  customer: Customer;
  groupId: number;
  tags: string[];
  dueAt: string | null;
  createdMs: number;
  createdAt: string;
  updatedAt: string;
  orderNumber: string | null;
  serialNumber: string | null;
  comments: TicketComment[];
}

export interface SlaMetric {
  priority: TicketPriority;
  metric: 'first_reply_time' | 'next_reply_time' | 'requester_wait_time';
  /** Minutes, as Zendesk counts them. */
  target: number;
  business_hours: boolean;
}

export interface SlaPolicy {
  id: number;
  title: string;
  description: string;
  position: number;
  filterTag: string;
  metrics: SlaMetric[];
}

export interface World {
  asOf: string;
  salesReps: SalesRep[];
  customers: Customer[];
  contracts: Contract[];
  paymentTerms: PaymentTerms[];
  items: Item[];
  orders: Order[];
  shipments: Shipment[];
  units: SerialUnit[];
  invoices: Invoice[];
  agents: Agent[];
  tickets: Ticket[];
  slaPolicies: SlaPolicy[];
}

/** A mulberry32 stream with the helpers the generator needs. */
export class Random {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** A stream of its own for one part of the world, derived from the seed and a label. */
  static derive(seed: number, label: string): Random {
    let h = (Math.imul(seed >>> 0, 0x9e3779b1) ^ 0x85ebca6b) >>> 0;
    for (let i = 0; i < label.length; i++) {
      h = Math.imul(h ^ label.charCodeAt(i), 0x5bd1e995);
      h ^= h >>> 15;
    }
    return new Random(h >>> 0);
  }

  uint32(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.uint32() / 4294967296;
  }

  /** Uniform integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    return must(items[Math.floor(this.next() * items.length)]);
  }

  weighted<T>(entries: readonly (readonly [T, number])[]): T {
    let total = 0;
    for (const [, w] of entries) total += w;
    let r = this.next() * total;
    for (const [value, w] of entries) {
      r -= w;
      if (r < 0) return value;
    }
    return must(entries[entries.length - 1])[0];
  }

  digits(count: number): string {
    let s = '';
    for (let i = 0; i < count; i++) s += String(this.int(0, 9));
    return s;
  }

  chars(alphabet: string, count: number): string {
    let s = '';
    for (let i = 0; i < count; i++) s += alphabet.charAt(Math.floor(this.next() * alphabet.length));
    return s;
  }

  /** A random (version 4) GUID in lower case, as Business Central returns ids. */
  guid(): string {
    const a = hex(this.uint32());
    const b = hex(this.uint32());
    const c = hex(this.uint32());
    const d = hex(this.uint32());
    const variant = ((this.uint32() & 3) | 8).toString(16);
    return `${a}-${b.slice(0, 4)}-4${b.slice(5, 8)}-${variant}${c.slice(1, 4)}-${c.slice(4, 8)}${d}`;
  }
}

const HEX_BYTES = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** Eight hex digits by table lookup: number.toString(16) dominated GUID generation. */
function hex(n: number): string {
  return `${HEX_BYTES[n >>> 24]}${HEX_BYTES[(n >>> 16) & 255]}${HEX_BYTES[(n >>> 8) & 255]}${HEX_BYTES[n & 255]}`;
}

/** Draws from a fixed set of weighted values by binary search, for the large lists. */
class WeightedPicker<T> {
  private readonly cumulative: number[] = [];
  private readonly total: number;

  constructor(
    private readonly items: readonly T[],
    weight: (item: T) => number,
  ) {
    let sum = 0;
    for (const item of items) {
      sum += weight(item);
      this.cumulative.push(sum);
    }
    this.total = sum;
  }

  pick(rng: Random): T {
    const r = rng.next() * this.total;
    let lo = 0;
    let hi = this.cumulative.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (must(this.cumulative[mid]) > r) hi = mid;
      else lo = mid + 1;
    }
    return must(this.items[lo]);
  }
}

function must<T>(value: T | undefined): T {
  if (value === undefined) throw new Error('seed world: unexpected empty list');
  return value;
}

const DAY_MS = 86_400_000;
const HOUR_MS = 3_600_000;
const MINUTE_MS = 60_000;

/** Days since 1970-01-01 of a YYYY-MM-DD date; throws on anything else. */
export function dayOf(date: string): number {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(date)) throw new Error(`not a YYYY-MM-DD date: ${date}`);
  const ms = Date.parse(`${date}T00:00:00Z`);
  if (Number.isNaN(ms) || new Date(ms).toISOString().slice(0, 10) !== date) throw new Error(`not a calendar date: ${date}`);
  return ms / DAY_MS;
}

const dateCache = new Map<number, string>();

/** YYYY-MM-DD of a day number. */
export function dateOf(day: number): string {
  let text = dateCache.get(day);
  if (text === undefined) {
    text = new Date(day * DAY_MS).toISOString().slice(0, 10);
    dateCache.set(day, text);
  }
  return text;
}

/** Calendar months later, clamped to the month's last day (Jan 31 + 1 month = Feb 28/29). */
export function addMonths(day: number, months: number): number {
  const d = new Date(day * DAY_MS);
  const y = d.getUTCFullYear();
  const m = d.getUTCMonth() + months;
  const last = new Date(Date.UTC(y, m + 1, 0)).getUTCDate();
  return Date.UTC(y, m, Math.min(d.getUTCDate(), last)) / DAY_MS;
}

function firstOfMonth(day: number): number {
  const d = new Date(day * DAY_MS);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1) / DAY_MS;
}

/** ISO 8601 UTC to the second, the way both Zendesk and the CRM print instants. */
export function instantOf(ms: number): string {
  // Built from the cached date, as this runs a few hundred thousand times per world.
  const day = Math.floor(ms / DAY_MS);
  const secondOfDay = Math.floor((ms - day * DAY_MS) / 1000);
  const h = Math.floor(secondOfDay / 3600);
  const m = Math.floor((secondOfDay % 3600) / 60);
  const s = secondOfDay % 60;
  return `${dateOf(day)}T${h < 10 ? '0' : ''}${h}:${m < 10 ? '0' : ''}${m}:${s < 10 ? '0' : ''}${s}Z`;
}

const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];

function monthYear(day: number): string {
  const d = new Date(day * DAY_MS);
  return `${MONTHS[d.getUTCMonth()] ?? ''} ${d.getUTCFullYear()}`;
}

function longDate(day: number): string {
  const d = new Date(day * DAY_MS);
  return `${MONTHS[d.getUTCMonth()] ?? ''} ${d.getUTCDate()}, ${d.getUTCFullYear()}`;
}

function formatMoney(cents: number, currency: CurrencyCode): string {
  const whole = Math.floor(cents / 100)
    .toString()
    .replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return `${currency} ${whole}.${String(cents % 100).padStart(2, '0')}`;
}

export { salesforceSuffix };

/** Sequential Ids of one object type: key prefix, pod, reserved digit, base62 counter. */
class SalesforceIds {
  private counter: number;

  constructor(
    private readonly keyPrefix: string,
    rng: Random,
  ) {
    // Real orgs have created and deleted records before: start well past zero.
    this.counter = rng.int(62 ** 4 * 5, 62 ** 4 * 40);
  }

  next(rng: Random): string {
    this.counter += rng.chance(0.15) ? rng.int(2, 4) : 1;
    let n = this.counter;
    let body = '';
    for (let i = 0; i < 9; i++) {
      body = BASE62.charAt(n % 62) + body;
      n = Math.floor(n / 62);
    }
    const id15 = `${this.keyPrefix}5g0${body}`;
    return id15 + salesforceSuffix(id15);
  }
}

/** Fixed identifier ranges in the desk, shaped like Zendesk's. */
const DESK_IDS = {
  organization: 360_000_100_001,
  user: 360_000_200_001,
  comment: 360_001_000_001,
  sla: 360_000_060_001,
  groups: { technical: 360_000_050_001, logistics: 360_000_050_002, billing: 360_000_050_003, service: 360_000_050_004 },
} as const;

type DeskGroup = keyof typeof DESK_IDS.groups;

interface City {
  name: string;
  state: string | null;
  postal: string;
  area: string;
}

interface Country {
  code: string;
  name: string;
  currency: CurrencyCode;
  share: number;
  cities: readonly City[];
  legalForms: readonly string[];
  firstNames: readonly string[];
  lastNames: readonly string[];
  /** UTC hours of the local working day, for when customers write in. */
  workdayUtc: readonly [number, number];
  street(rng: Random): string;
  postalCode(rng: Random, city: City): string;
  phone(rng: Random, city: City): string;
  taxId(rng: Random): string;
}

// prettier-ignore
const ENGLISH_FIRST = [
  'James', 'Mary', 'Robert', 'Patricia', 'Michael', 'Jennifer', 'David', 'Linda', 'William', 'Elizabeth', 'Richard', 'Susan',
  'Joseph', 'Jessica', 'Thomas', 'Sarah', 'Christopher', 'Karen', 'Daniel', 'Lisa', 'Matthew', 'Nancy', 'Anthony', 'Sandra',
  'Mark', 'Ashley', 'Steven', 'Emily', 'Andrew', 'Michelle', 'Joshua', 'Amanda', 'Kevin', 'Melissa', 'Brian', 'Stephanie',
  'Carlos', 'Maria', 'Jose', 'Ana', 'Luis', 'Sofia', 'Wei', 'Mei', 'Raj', 'Priya', 'Ahmed', 'Fatima', 'Kwame', 'Amara',
  'Hiroshi', 'Yuki', 'Olga', 'Ivan', 'Grace', 'Ethan', 'Olivia', 'Noah', 'Chloe', 'Liam', 'Aisha', 'Omar', 'Diego', 'Lucia',
  'Tyler', 'Hannah', 'Jordan', 'Morgan', 'Derek', 'Tamara', 'Victor', 'Rachel',
];
// prettier-ignore
const ENGLISH_LAST = [
  'Smith', 'Johnson', 'Williams', 'Brown', 'Jones', 'Garcia', 'Miller', 'Davis', 'Rodriguez', 'Martinez', 'Hernandez', 'Lopez',
  'Gonzalez', 'Wilson', 'Anderson', 'Thomas', 'Taylor', 'Moore', 'Jackson', 'Martin', 'Lee', 'Perez', 'Thompson', 'White',
  'Harris', 'Sanchez', 'Clark', 'Ramirez', 'Lewis', 'Robinson', 'Walker', 'Young', 'Allen', 'King', 'Wright', 'Scott', 'Torres',
  'Nguyen', 'Hill', 'Flores', 'Green', 'Adams', 'Nelson', 'Baker', 'Hall', 'Rivera', 'Campbell', 'Mitchell', 'Carter', 'Roberts',
  'Patel', 'Shah', 'Chen', 'Wang', 'Kim', 'Park', 'Singh', 'Okafor', 'Mensah', 'Kowalski', 'Novak', "O'Brien", 'Murphy',
  'Sullivan', 'Fischer', 'Cohen', 'Rossi', 'Tanaka', 'Sato', 'Ali', 'Hassan', 'Bennett', 'Foster', 'Hughes', 'Reyes',
];

// prettier-ignore
const US_CITIES: readonly City[] = [
  { name: 'Houston', state: 'TX', postal: '770', area: '713' }, { name: 'Dallas', state: 'TX', postal: '752', area: '214' },
  { name: 'Chicago', state: 'IL', postal: '606', area: '312' }, { name: 'Milwaukee', state: 'WI', postal: '532', area: '414' },
  { name: 'Cleveland', state: 'OH', postal: '441', area: '216' }, { name: 'Pittsburgh', state: 'PA', postal: '152', area: '412' },
  { name: 'Detroit', state: 'MI', postal: '482', area: '313' }, { name: 'Atlanta', state: 'GA', postal: '303', area: '404' },
  { name: 'Charlotte', state: 'NC', postal: '282', area: '704' }, { name: 'Denver', state: 'CO', postal: '802', area: '303' },
  { name: 'Phoenix', state: 'AZ', postal: '850', area: '602' }, { name: 'Seattle', state: 'WA', postal: '981', area: '206' },
  { name: 'Portland', state: 'OR', postal: '972', area: '503' }, { name: 'Sacramento', state: 'CA', postal: '958', area: '916' },
  { name: 'Fresno', state: 'CA', postal: '937', area: '559' }, { name: 'Los Angeles', state: 'CA', postal: '900', area: '213' },
  { name: 'Minneapolis', state: 'MN', postal: '554', area: '612' }, { name: 'St. Louis', state: 'MO', postal: '631', area: '314' },
  { name: 'Kansas City', state: 'MO', postal: '641', area: '816' }, { name: 'Tulsa', state: 'OK', postal: '741', area: '918' },
  { name: 'Baton Rouge', state: 'LA', postal: '708', area: '225' }, { name: 'Birmingham', state: 'AL', postal: '352', area: '205' },
  { name: 'Nashville', state: 'TN', postal: '372', area: '615' }, { name: 'Indianapolis', state: 'IN', postal: '462', area: '317' },
  { name: 'Columbus', state: 'OH', postal: '432', area: '614' }, { name: 'Buffalo', state: 'NY', postal: '142', area: '716' },
  { name: 'Albany', state: 'NY', postal: '122', area: '518' }, { name: 'Hartford', state: 'CT', postal: '061', area: '860' },
  { name: 'Boston', state: 'MA', postal: '021', area: '617' }, { name: 'Salt Lake City', state: 'UT', postal: '841', area: '801' },
  { name: 'Boise', state: 'ID', postal: '837', area: '208' }, { name: 'Omaha', state: 'NE', postal: '681', area: '402' },
  { name: 'Des Moines', state: 'IA', postal: '503', area: '515' }, { name: 'Richmond', state: 'VA', postal: '232', area: '804' },
  { name: 'Jacksonville', state: 'FL', postal: '322', area: '904' }, { name: 'Tampa', state: 'FL', postal: '336', area: '813' },
  { name: 'Mobile', state: 'AL', postal: '366', area: '251' }, { name: 'Corpus Christi', state: 'TX', postal: '784', area: '361' },
  { name: 'Bakersfield', state: 'CA', postal: '933', area: '661' }, { name: 'Spokane', state: 'WA', postal: '992', area: '509' },
];

const COUNTRIES: readonly Country[] = [
  {
    code: 'US',
    name: 'United States',
    currency: 'USD',
    share: 80,
    cities: US_CITIES,
    legalForms: ['', '', 'Inc.', 'Inc.', 'LLC', 'Corp.', 'Co.'],
    firstNames: ENGLISH_FIRST,
    lastNames: ENGLISH_LAST,
    workdayUtc: [13, 22],
    street: (rng) =>
      `${rng.int(100, 9900)} ${rng.pick(['Industrial', 'Commerce', 'Enterprise', 'Harbor', 'Mill', 'River', 'Lake', 'Oak', 'Maple', 'Cedar', 'Railroad', 'Airport', 'Technology', 'Gateway', 'Park', 'Canal', 'Quarry', 'Foundry', 'Depot', 'Distribution'])} ${rng.pick(['Pkwy', 'Dr', 'Rd', 'Blvd', 'Ave', 'Way', 'Ct', 'St'])}`,
    postalCode: (rng, city) => city.postal + rng.digits(2),
    // 555-01xx is the range reserved for fictional use.
    phone: (rng, city) => `(${city.area}) 555-01${rng.digits(2)}`,
    taxId: (rng) => `${rng.int(10, 98)}-${rng.digits(7)}`,
  },
  {
    code: 'GB',
    name: 'United Kingdom',
    currency: 'GBP',
    share: 7,
    cities: [
      { name: 'Manchester', state: null, postal: 'M', area: '161' },
      { name: 'Birmingham', state: null, postal: 'B', area: '121' },
      { name: 'Leeds', state: null, postal: 'LS', area: '113' },
      { name: 'Sheffield', state: null, postal: 'S', area: '114' },
      { name: 'Glasgow', state: null, postal: 'G', area: '141' },
      { name: 'Bristol', state: null, postal: 'BS', area: '117' },
      { name: 'Newcastle upon Tyne', state: null, postal: 'NE', area: '191' },
      { name: 'Nottingham', state: null, postal: 'NG', area: '115' },
    ],
    legalForms: ['Ltd', 'Ltd', 'plc'],
    firstNames: ENGLISH_FIRST,
    lastNames: ENGLISH_LAST,
    workdayUtc: [8, 17],
    street: (rng) =>
      `${rng.int(1, 240)} ${rng.pick(['Station', 'Mill', 'Canal', 'Dock', 'Quarry', 'Foundry', 'Victoria', 'Albert', 'Riverside', 'Wharf'])} ${rng.pick(['Road', 'Way', 'Lane', 'Street'])}`,
    postalCode: (rng, city) => `${city.postal}${rng.int(1, 30)} ${rng.int(1, 9)}${rng.chars('ABDEFGHJLNPQRSTUWXYZ', 2)}`,
    // 496 0xxx in each area code is set aside for drama.
    phone: (rng, city) => `+44 ${city.area} 496 0${rng.digits(3)}`,
    taxId: (rng) => `GB${rng.digits(9)}`,
  },
  {
    code: 'DE',
    name: 'Germany',
    currency: 'EUR',
    share: 5,
    cities: [
      { name: 'Hamburg', state: null, postal: '2', area: '40' },
      { name: 'Bremen', state: null, postal: '28', area: '421' },
      { name: 'Hannover', state: null, postal: '30', area: '511' },
      { name: 'Dortmund', state: null, postal: '44', area: '231' },
      { name: 'Köln', state: null, postal: '50', area: '221' },
      { name: 'Frankfurt am Main', state: null, postal: '60', area: '69' },
      { name: 'Stuttgart', state: null, postal: '70', area: '711' },
      { name: 'München', state: null, postal: '80', area: '89' },
      { name: 'Leipzig', state: null, postal: '04', area: '341' },
      { name: 'Mannheim', state: null, postal: '68', area: '621' },
    ],
    legalForms: ['GmbH', 'GmbH', 'AG', 'GmbH & Co. KG'],
    firstNames: [
      'Lukas',
      'Anna',
      'Jonas',
      'Laura',
      'Felix',
      'Julia',
      'Maximilian',
      'Lena',
      'Paul',
      'Sarah',
      'Tobias',
      'Katharina',
      'Stefan',
      'Sabine',
      'Thomas',
      'Claudia',
      'Jürgen',
      'Petra',
      'Matthias',
      'Nicole',
    ],
    lastNames: [
      'Müller',
      'Schmidt',
      'Schneider',
      'Fischer',
      'Weber',
      'Meyer',
      'Wagner',
      'Becker',
      'Schulz',
      'Hoffmann',
      'Koch',
      'Richter',
      'Klein',
      'Wolf',
      'Schröder',
      'Neumann',
      'Schwarz',
      'Zimmermann',
      'Braun',
      'Krüger',
      'Hartmann',
      'Lange',
      'Werner',
      'Krause',
    ],
    workdayUtc: [7, 16],
    street: (rng) =>
      `${rng.pick(['Industrie', 'Hafen', 'Gewerbe', 'Mühlen', 'Bahnhof', 'Kanal', 'Werk', 'Linden', 'Birken', 'Siemens'])}${rng.pick(['straße', 'weg', 'ring'])} ${rng.int(1, 140)}`,
    postalCode: (rng, city) => (city.postal + rng.digits(5)).slice(0, 5),
    phone: (rng, city) => `+49 ${city.area} ${rng.digits(7)}`,
    taxId: (rng) => `DE${rng.digits(9)}`,
  },
  {
    code: 'FR',
    name: 'France',
    currency: 'EUR',
    share: 3,
    cities: [
      { name: 'Lyon', state: null, postal: '690', area: '4' },
      { name: 'Marseille', state: null, postal: '130', area: '4' },
      { name: 'Toulouse', state: null, postal: '310', area: '5' },
      { name: 'Lille', state: null, postal: '590', area: '3' },
      { name: 'Nantes', state: null, postal: '440', area: '2' },
      { name: 'Bordeaux', state: null, postal: '330', area: '5' },
    ],
    legalForms: ['SAS', 'SAS', 'S.A.'],
    firstNames: [
      'Camille',
      'Louis',
      'Léa',
      'Hugo',
      'Manon',
      'Jules',
      'Chloé',
      'Lucas',
      'Inès',
      'Nicolas',
      'Julie',
      'Antoine',
      'Élodie',
      'Pierre',
      'Sophie',
      'Mathieu',
    ],
    lastNames: [
      'Martin',
      'Bernard',
      'Dubois',
      'Thomas',
      'Robert',
      'Richard',
      'Petit',
      'Durand',
      'Leroy',
      'Moreau',
      'Simon',
      'Laurent',
      'Lefebvre',
      'Michel',
      'Fournier',
      'Girard',
      'Lambert',
    ],
    workdayUtc: [7, 16],
    street: (rng) =>
      `${rng.int(1, 180)} ${rng.pick(["rue de l'Industrie", 'avenue de la Gare', 'rue du Port', 'boulevard de la République', 'rue des Artisans', 'allée des Forges'])}`,
    postalCode: (rng, city) => city.postal + rng.digits(2),
    phone: (rng, city) => `+33 ${city.area} ${rng.digits(2)} ${rng.digits(2)} ${rng.digits(2)} ${rng.digits(2)}`,
    taxId: (rng) => `FR${rng.digits(11)}`,
  },
  {
    code: 'NL',
    name: 'Netherlands',
    currency: 'EUR',
    share: 2,
    cities: [
      { name: 'Rotterdam', state: null, postal: '30', area: '10' },
      { name: 'Eindhoven', state: null, postal: '56', area: '40' },
      { name: 'Utrecht', state: null, postal: '35', area: '30' },
      { name: 'Groningen', state: null, postal: '97', area: '50' },
    ],
    legalForms: ['B.V.'],
    firstNames: ['Daan', 'Emma', 'Sem', 'Julia', 'Lucas', 'Sophie', 'Thijs', 'Anouk', 'Bram', 'Lotte', 'Jeroen', 'Femke', 'Ruben', 'Sanne'],
    lastNames: [
      'de Jong',
      'Jansen',
      'de Vries',
      'van den Berg',
      'van Dijk',
      'Bakker',
      'Janssen',
      'Visser',
      'Smit',
      'Meijer',
      'de Boer',
      'Mulder',
      'de Groot',
      'Bos',
    ],
    workdayUtc: [7, 16],
    street: (rng) =>
      `${rng.pick(['Industrieweg', 'Havenweg', 'Fabrieksstraat', 'Energieweg', 'Nijverheidsweg', 'Kanaalweg'])} ${rng.int(1, 200)}`,
    postalCode: (rng, city) => `${city.postal}${rng.digits(2)} ${rng.chars('ABCDEGHJKLMNPRSTVWXZ', 2)}`,
    phone: (rng, city) => `+31 ${city.area} ${rng.digits(7)}`,
    taxId: (rng) => `NL${rng.digits(9)}B01`,
  },
  {
    code: 'IT',
    name: 'Italy',
    currency: 'EUR',
    share: 1.5,
    cities: [
      { name: 'Milano', state: 'MI', postal: '201', area: '02' },
      { name: 'Torino', state: 'TO', postal: '101', area: '011' },
      { name: 'Bologna', state: 'BO', postal: '401', area: '051' },
      { name: 'Brescia', state: 'BS', postal: '251', area: '030' },
    ],
    legalForms: ['S.p.A.', 'S.r.l.', 'S.r.l.'],
    firstNames: [
      'Marco',
      'Giulia',
      'Alessandro',
      'Francesca',
      'Luca',
      'Chiara',
      'Matteo',
      'Sara',
      'Davide',
      'Elena',
      'Andrea',
      'Valentina',
    ],
    lastNames: [
      'Rossi',
      'Russo',
      'Ferrari',
      'Esposito',
      'Bianchi',
      'Romano',
      'Colombo',
      'Ricci',
      'Marino',
      'Greco',
      'Bruno',
      'Gallo',
      'Conti',
    ],
    workdayUtc: [7, 16],
    street: (rng) =>
      `${rng.pick(["Via dell'Industria", 'Via del Lavoro', 'Via Roma', 'Via dei Mille', 'Viale Europa', 'Via Artigianato'])} ${rng.int(1, 150)}`,
    postalCode: (rng, city) => city.postal + rng.digits(2),
    phone: (rng, city) => `+39 ${city.area} ${rng.digits(7)}`,
    taxId: (rng) => `IT${rng.digits(11)}`,
  },
  {
    code: 'ES',
    name: 'Spain',
    currency: 'EUR',
    share: 1.5,
    cities: [
      { name: 'Barcelona', state: 'B', postal: '080', area: '93' },
      { name: 'Bilbao', state: 'BI', postal: '480', area: '94' },
      { name: 'Valencia', state: 'V', postal: '460', area: '96' },
      { name: 'Zaragoza', state: 'Z', postal: '500', area: '976' },
    ],
    legalForms: ['S.L.', 'S.A.'],
    firstNames: ['Javier', 'Lucía', 'Pablo', 'María', 'Alejandro', 'Carmen', 'Daniel', 'Laura', 'Sergio', 'Marta', 'Álvaro', 'Elena'],
    lastNames: [
      'García',
      'Fernández',
      'González',
      'Rodríguez',
      'López',
      'Martínez',
      'Sánchez',
      'Pérez',
      'Gómez',
      'Martín',
      'Jiménez',
      'Ruiz',
      'Díaz',
    ],
    workdayUtc: [7, 16],
    street: (rng) =>
      `${rng.pick(['Calle de la Industria', 'Avenida de Europa', 'Calle del Puerto', 'Polígono Industrial Norte, Nave', 'Calle Mayor'])} ${rng.int(1, 90)}`,
    postalCode: (rng, city) => city.postal + rng.digits(2),
    phone: (rng, city) => `+34 ${city.area} ${rng.digits(9 - city.area.length)}`,
    taxId: (rng) => `ESB${rng.digits(8)}`,
  },
];

// prettier-ignore
const NAME_STEMS = [
  'Northwind', 'Contoso', 'Fabrikam', 'Adatum', 'Litware', 'Tailspin', 'Wingtip', 'Proseware', 'Lucerne', 'Coho', 'Woodgrove',
  'Alpine', 'Apex', 'Atlas', 'Beacon', 'Birchwood', 'Bluewater', 'Boulder', 'Brightwater', 'Cascade', 'Cedar Creek', 'Clearwater',
  'Cobalt', 'Copperfield', 'Crescent', 'Crystal Springs', 'Delta', 'Eagle Ridge', 'Eastgate', 'Elmwood', 'Evergreen', 'Falcon',
  'Fairview', 'Foxhill', 'Frontier', 'Glacier', 'Granite', 'Great Lakes', 'Greenfield', 'Harbor', 'Hawthorne', 'Heritage',
  'Highland', 'Horizon', 'Iron Creek', 'Keystone', 'Lakeside', 'Liberty', 'Lighthouse', 'Meridian', 'Midland', 'Mill Creek',
  'Monarch', 'Mountain View', 'Oakridge', 'Olympic', 'Orion', 'Pacific Rim', 'Palisade', 'Pine Valley', 'Pinnacle', 'Pioneer',
  'Prairie', 'Quarry Hill', 'Rainier', 'Red Rock', 'Redwood', 'Ridgeline', 'River Bend', 'Riverside', 'Rockport', 'Sagebrush',
  'Sandstone', 'Sequoia', 'Shoreline', 'Silver Lake', 'Skyline', 'Southport', 'Sterling', 'Stonebridge', 'Summit', 'Sunrise',
  'Tidewater', 'Timberline', 'Trailhead', 'Tri-County', 'Twin Rivers', 'Union', 'Vanguard', 'Westbrook', 'Westfield',
  'Whitewater', 'Wildrose', 'Willow Creek', 'Windmill', 'Zenith', 'Bayview', 'Blackwell', 'Bridgewater', 'Canyon', 'Coastal',
  'Fieldstone', 'Ironwood', 'Kingsbury', 'Northstar', 'Oakmont', 'Silverton', 'Thornbury',
];

// prettier-ignore
const NAME_NOUNS: readonly (readonly [string, string])[] = [
  ['Pumps', 'Machinery'], ['Fluid Systems', 'Machinery'], ['Hydraulics', 'Machinery'], ['Process Equipment', 'Machinery'],
  ['Machine Works', 'Machinery'], ['Manufacturing', 'Manufacturing'], ['Industries', 'Manufacturing'], ['Fabrication', 'Manufacturing'],
  ['Precision Works', 'Manufacturing'], ['Metalworks', 'Manufacturing'], ['Water Works', 'Utilities'], ['Water Services', 'Utilities'],
  ['Utilities', 'Utilities'], ['Power & Light', 'Utilities'], ['Energy', 'Energy'], ['Petroleum', 'Energy'], ['Renewables', 'Energy'],
  ['Power Systems', 'Energy'], ['Oil & Gas', 'Energy'], ['Chemicals', 'Chemicals'], ['Polymers', 'Chemicals'], ['Coatings', 'Chemicals'],
  ['Process Solutions', 'Chemicals'], ['Foods', 'Food & Beverage'], ['Dairy', 'Food & Beverage'], ['Brewing', 'Food & Beverage'],
  ['Beverages', 'Food & Beverage'], ['Bottling', 'Food & Beverage'], ['Farms', 'Agriculture'], ['Irrigation', 'Agriculture'],
  ['Growers', 'Agriculture'], ['Construction', 'Construction'], ['Builders', 'Construction'], ['Infrastructure', 'Construction'],
  ['Environmental', 'Environmental'], ['Wastewater Solutions', 'Environmental'], ['Recycling', 'Environmental'],
  ['Clean Water', 'Environmental'], ['Engineering', 'Engineering'], ['Technical Services', 'Engineering'], ['Biologics', 'Biotechnology'],
  ['Life Sciences', 'Biotechnology'], ['Marine', 'Shipping'], ['Port Services', 'Shipping'], ['Mining', 'Machinery'],
];

const TITLES: Record<ContactRole, readonly string[]> = {
  technical: [
    'Maintenance Manager',
    'Plant Engineer',
    'Reliability Engineer',
    'Maintenance Supervisor',
    'Process Engineer',
    'Facilities Manager',
    'Instrumentation Technician',
  ],
  purchasing: ['Purchasing Manager', 'Procurement Specialist', 'Buyer', 'Supply Chain Manager'],
  finance: ['Accounts Payable Specialist', 'Controller', 'Finance Manager'],
  management: ['Operations Director', 'Plant Manager', 'VP Operations', 'General Manager'],
};

const SPECIAL_TERMS = [
  'Includes on-site commissioning for new installations.',
  'Four-hour response for line-down events, 24/7.',
  'Two preventive maintenance visits per year included.',
  'Spare parts at 10% off list price.',
  'Loaner units provided during warranty repairs.',
  'Annual operator training (one day) included.',
  'Coverage limited to the main plant site.',
];

interface CatalogEntry {
  number: string;
  name: string;
  kind: ItemKind;
  label: string;
  price: number;
  warranty?: number;
  description: string;
}

// prettier-ignore
const CATALOG: readonly CatalogEntry[] = [
  { number: 'PMP-1100', name: 'Centrifugal Pump CP-1100, 1.5 kW', kind: 'pump', label: 'Pump', price: 2450, warranty: 24, description: 'End-suction centrifugal pump, cast iron casing, 1.5 kW IE3 motor.' },
  { number: 'PMP-2200', name: 'Centrifugal Pump CP-2200, 4 kW', kind: 'pump', label: 'Pump', price: 4890, warranty: 24, description: 'End-suction centrifugal pump, stainless impeller, 4 kW IE3 motor.' },
  { number: 'PMP-3300', name: 'Centrifugal Pump CP-3300, 11 kW', kind: 'pump', label: 'Pump', price: 9650, warranty: 24, description: 'Heavy-duty centrifugal pump for process water, 11 kW IE3 motor.' },
  { number: 'PMP-4400', name: 'Multistage Booster Pump MB-4400', kind: 'pump', label: 'Booster pump', price: 14800, warranty: 36, description: 'Vertical multistage booster pump, up to 25 bar.' },
  { number: 'PMP-5500', name: 'Submersible Pump SP-5500', kind: 'pump', label: 'Submersible pump', price: 7320, warranty: 24, description: 'Submersible wastewater pump with vortex impeller.' },
  { number: 'PMP-6600', name: 'Diaphragm Metering Pump DM-6600', kind: 'pump', label: 'Metering pump', price: 3180, warranty: 12, description: 'Motor-driven diaphragm metering pump for chemical dosing.' },
  { number: 'PMP-7700', name: 'Progressive Cavity Pump PC-7700', kind: 'pump', label: 'Pump', price: 11250, warranty: 36, description: 'Progressive cavity pump for viscous and abrasive media.' },
  { number: 'PMP-8800', name: 'Sanitary Lobe Pump SL-8800', kind: 'pump', label: 'Lobe pump', price: 8940, warranty: 24, description: 'Hygienic rotary lobe pump, 3-A certified, CIP capable.' },
  { number: 'VLV-3100', name: 'Electric Actuated Ball Valve DN50', kind: 'valve', label: 'Valve', price: 1890, warranty: 12, description: 'Stainless ball valve DN50 with 24 V electric actuator.' },
  { number: 'VLV-3150', name: 'Electric Actuated Ball Valve DN100', kind: 'valve', label: 'Valve', price: 3240, warranty: 12, description: 'Stainless ball valve DN100 with 24 V electric actuator.' },
  { number: 'VLV-3200', name: 'Pneumatic Butterfly Valve DN150', kind: 'valve', label: 'Valve', price: 2760, warranty: 12, description: 'Wafer butterfly valve DN150 with double-acting pneumatic actuator.' },
  { number: 'VLV-3300', name: 'Control Valve CV-300 with Positioner', kind: 'valve', label: 'Control valve', price: 5480, warranty: 24, description: 'Globe control valve with smart digital positioner, 4-20 mA / HART.' },
  { number: 'VLV-3400', name: 'Pressure Reducing Valve PRV-400', kind: 'valve', label: 'Valve', price: 1340, warranty: 12, description: 'Pilot-operated pressure reducing valve, ductile iron.' },
  { number: 'CTL-500', name: 'Pump Controller PC-500', kind: 'controller', label: 'Controller', price: 2150, warranty: 24, description: 'Single-pump controller with level and pressure control modes.' },
  { number: 'CTL-510', name: 'Duplex Pump Controller PC-510', kind: 'controller', label: 'Controller', price: 3380, warranty: 24, description: 'Duplex pump controller with alternation and Modbus RTU.' },
  { number: 'CTL-700', name: 'Process Controller PX-700', kind: 'controller', label: 'Controller', price: 4720, warranty: 36, description: 'Multi-loop process controller with Ethernet/IP and Modbus TCP.' },
  { number: 'CTL-900', name: 'Remote Telemetry Unit RTU-900', kind: 'controller', label: 'RTU', price: 2890, warranty: 24, description: 'Cellular remote telemetry unit for lift stations.' },
  { number: 'SNS-110', name: 'Pressure Transmitter PT-110', kind: 'sensor', label: 'Transmitter', price: 685, warranty: 12, description: 'Pressure transmitter 0-16 bar, 4-20 mA.' },
  { number: 'SNS-120', name: 'Level Transmitter LT-120', kind: 'sensor', label: 'Transmitter', price: 940, warranty: 12, description: 'Hydrostatic level transmitter with 10 m cable.' },
  { number: 'SNS-210', name: 'Electromagnetic Flowmeter MF-210 DN80', kind: 'sensor', label: 'Flowmeter', price: 2380, warranty: 24, description: 'Electromagnetic flowmeter DN80 with remote display.' },
  { number: 'SNS-220', name: 'Ultrasonic Flowmeter UF-220', kind: 'sensor', label: 'Flowmeter', price: 3150, warranty: 24, description: 'Clamp-on ultrasonic flowmeter for pipes DN25-DN1000.' },
  { number: 'SNS-310', name: 'Vibration Sensor VS-310', kind: 'sensor', label: 'Sensor', price: 560, warranty: 12, description: 'Wireless vibration and temperature sensor for rotating equipment.' },
  { number: 'SNS-410', name: 'Water Quality Analyzer WQ-410', kind: 'sensor', label: 'Analyzer', price: 6890, warranty: 24, description: 'Multi-parameter analyzer: pH, conductivity, turbidity, chlorine.' },
  { number: 'DRV-075', name: 'Variable Frequency Drive VFD 7.5 kW', kind: 'drive', label: 'Drive', price: 2640, warranty: 24, description: 'Variable frequency drive 7.5 kW, IP55, pump application macros.' },
  { number: 'DRV-150', name: 'Variable Frequency Drive VFD 15 kW', kind: 'drive', label: 'Drive', price: 3980, warranty: 24, description: 'Variable frequency drive 15 kW, IP55, pump application macros.' },
  { number: 'DRV-370', name: 'Variable Frequency Drive VFD 37 kW', kind: 'drive', label: 'Drive', price: 7260, warranty: 36, description: 'Variable frequency drive 37 kW, IP54, harmonic filter.' },
  { number: 'SFT-200', name: 'Soft Starter SS-200', kind: 'drive', label: 'Soft starter', price: 1180, warranty: 12, description: 'Soft starter for motors up to 30 kW with bypass contactor.' },
  { number: 'SKD-1000', name: 'Booster Pump Skid BPS-1000', kind: 'system', label: 'Booster skid', price: 38500, warranty: 36, description: 'Packaged triplex booster set with controls and drives.' },
  { number: 'SKD-2000', name: 'Chemical Dosing Skid CDS-2000', kind: 'system', label: 'Dosing skid', price: 24900, warranty: 36, description: 'Duplex chemical dosing skid with containment and controls.' },
  { number: 'SKD-3000', name: 'Packaged Lift Station LS-3000', kind: 'system', label: 'Lift station', price: 52800, warranty: 36, description: 'Prefabricated wastewater lift station with duplex pumps and RTU.' },
  { number: 'SPR-1101', name: 'Mechanical Seal Kit for CP-1100', kind: 'part', label: 'Seal kit', price: 185, description: 'Replacement mechanical seal, carbon/SiC faces, EPDM elastomers.' },
  { number: 'SPR-2201', name: 'Mechanical Seal Kit for CP-2200', kind: 'part', label: 'Seal kit', price: 245, description: 'Replacement mechanical seal, SiC/SiC faces, Viton elastomers.' },
  { number: 'SPR-2202', name: 'Impeller CP-2200, Stainless', kind: 'part', label: 'Impeller', price: 620, description: 'Closed impeller, stainless steel 316.' },
  { number: 'SPR-3301', name: 'Mechanical Seal Kit for CP-3300', kind: 'part', label: 'Seal kit', price: 390, description: 'Cartridge mechanical seal for CP-3300.' },
  { number: 'SPR-3302', name: 'Bearing Set CP-3300', kind: 'part', label: 'Bearing set', price: 275, description: 'Drive-end and non-drive-end bearings with shims.' },
  { number: 'SPR-4401', name: 'Wear Ring Set MB-4400', kind: 'part', label: 'Wear rings', price: 310, description: 'Stage wear rings for MB-4400 booster pumps.' },
  { number: 'SPR-5501', name: 'Cable Gland Assembly SP-5500', kind: 'part', label: 'Cable gland', price: 96, description: 'Watertight cable entry for submersible pumps.' },
  { number: 'SPR-6601', name: 'Diaphragm PTFE DM-6600', kind: 'part', label: 'Diaphragm', price: 142, description: 'PTFE-faced dosing diaphragm.' },
  { number: 'SPR-6602', name: 'Check Valve Cartridge DM-6600', kind: 'part', label: 'Check valve', price: 88, description: 'Suction/discharge check valve cartridge, PVDF.' },
  { number: 'SPR-7701', name: 'Stator PC-7700', kind: 'part', label: 'Stator', price: 1240, description: 'NBR stator for PC-7700.' },
  { number: 'SPR-7702', name: 'Rotor PC-7700', kind: 'part', label: 'Rotor', price: 1680, description: 'Hard-chrome plated rotor for PC-7700.' },
  { number: 'SPR-8801', name: 'Lobe Rotor Set SL-8800', kind: 'part', label: 'Rotor set', price: 1420, description: 'Tri-lobe rotor pair, stainless 316L.' },
  { number: 'SPR-9001', name: 'O-Ring Assortment, Viton', kind: 'part', label: 'O-rings', price: 64, description: 'Assorted Viton O-rings, 200 pieces.' },
  { number: 'SPR-9002', name: 'Gasket Set, EPDM', kind: 'part', label: 'Gaskets', price: 48, description: 'Flange gasket set DN25-DN150.' },
  { number: 'SPR-9003', name: 'Coupling Insert', kind: 'part', label: 'Coupling insert', price: 37.5, description: 'Elastomer insert for jaw couplings.' },
  { number: 'SPR-9004', name: 'Suction Strainer Basket', kind: 'part', label: 'Strainer', price: 129, description: 'Stainless strainer basket, 3 mm perforation.' },
  { number: 'SPR-9005', name: 'Pressure Gauge 0-16 bar', kind: 'part', label: 'Gauge', price: 42, description: 'Glycerin-filled pressure gauge, 100 mm dial.' },
  { number: 'SPR-9006', name: 'Actuator Gearbox Assembly', kind: 'part', label: 'Gearbox', price: 460, description: 'Replacement gearbox for electric valve actuators.' },
  { number: 'SPR-9007', name: 'Valve Seat & Seal Kit DN50', kind: 'part', label: 'Seat kit', price: 118, description: 'PTFE seats and stem seals for DN50 ball valves.' },
  { number: 'SPR-9008', name: 'Valve Seat & Seal Kit DN100', kind: 'part', label: 'Seat kit', price: 196, description: 'PTFE seats and stem seals for DN100 ball valves.' },
  { number: 'SPR-9009', name: 'Positioner Feedback Module', kind: 'part', label: 'Feedback module', price: 385, description: 'Position feedback module for CV-300 positioners.' },
  { number: 'SPR-9010', name: 'Controller Display Module', kind: 'part', label: 'Display module', price: 215, description: 'Replacement display for PC-500/PC-510 controllers.' },
  { number: 'SPR-9011', name: 'I/O Expansion Card', kind: 'part', label: 'I/O card', price: 340, description: '8 DI / 4 AI expansion card for PX-700.' },
  { number: 'SPR-9012', name: 'VFD Cooling Fan', kind: 'part', label: 'Cooling fan', price: 74, description: 'Heatsink fan for VFD 7.5-15 kW.' },
  { number: 'SPR-9013', name: 'Flowmeter Electrode Set', kind: 'part', label: 'Electrodes', price: 265, description: 'Hastelloy measuring electrodes for MF-210.' },
  { number: 'SPR-9014', name: 'Filter Cartridge 10 micron (pack of 6)', kind: 'part', label: 'Filters', price: 58, description: 'Polypropylene filter cartridges, 10 micron.' },
  { number: 'KIT-100', name: 'Annual Service Kit CP-1100/2200', kind: 'kit', label: 'Service kit', price: 395, description: 'Seal, O-rings, bearings and coupling insert for one annual service.' },
  { number: 'KIT-200', name: 'Annual Service Kit CP-3300', kind: 'kit', label: 'Service kit', price: 560, description: 'Cartridge seal, bearings and gaskets for one annual service.' },
  { number: 'KIT-300', name: 'Overhaul Kit MB-4400', kind: 'kit', label: 'Overhaul kit', price: 1290, description: 'Complete overhaul kit: wear rings, seal, bearings, gaskets.' },
  { number: 'KIT-400', name: 'Preventive Maintenance Kit DM-6600', kind: 'kit', label: 'PM kit', price: 240, description: 'Diaphragm, check valves and O-rings for yearly maintenance.' },
  { number: 'KIT-500', name: 'Preventive Maintenance Kit PC-7700', kind: 'kit', label: 'PM kit', price: 1850, description: 'Stator, joint seals and grease for scheduled maintenance.' },
  { number: 'SVC-100', name: 'Field Service Technician (per hour)', kind: 'service', label: 'Field service', price: 165, description: 'On-site service by a certified technician, billed per hour.' },
  { number: 'SVC-200', name: 'Commissioning Service (per day)', kind: 'service', label: 'Commissioning', price: 1450, description: 'Start-up, parameterization and acceptance test on site.' },
  { number: 'SVC-300', name: 'Operator Training (per day)', kind: 'service', label: 'Training', price: 1250, description: 'On-site operator and maintenance training, up to 8 people.' },
];

const CATEGORY: Record<ItemKind, string> = {
  pump: 'PUMPS',
  valve: 'VALVES',
  controller: 'CONTROLS',
  sensor: 'SENSORS',
  drive: 'DRIVES',
  system: 'SYSTEMS',
  part: 'PARTS',
  kit: 'KITS',
  service: 'SERVICES',
};

const EXCHANGE_RATE: Record<CurrencyCode, number> = { USD: 1, EUR: 0.92, GBP: 0.79 };
const TAX_RATE = 0.08;

/** Builds the whole world from the options; pure: the same options give an equal world. */
export function generateWorld(options: SeedOptions): World {
  const asOfDay = dayOf(options.asOf);
  const salesReps = buildSalesReps(Random.derive(options.seed, 'sales-reps'));
  const customers = buildCustomers(Random.derive(options.seed, 'customers'), options.customers, asOfDay, salesReps);
  const contracts = buildContracts(Random.derive(options.seed, 'contracts'), customers, asOfDay);
  const erpRng = Random.derive(options.seed, 'erp-master');
  const paymentTerms = buildPaymentTerms(erpRng);
  const items = buildItems(erpRng);
  assignBillingProfiles(erpRng, customers, paymentTerms, asOfDay);
  const orders = buildOrders(Random.derive(options.seed, 'orders'), customers, items, options.orders, asOfDay);
  const { shipments, units } = buildShipments(Random.derive(options.seed, 'shipments'), orders, asOfDay);
  const invoices = buildInvoices(Random.derive(options.seed, 'invoices'), shipments, customers, asOfDay);
  const deskRng = Random.derive(options.seed, 'desk');
  const agents = buildAgents(deskRng, asOfDay);
  prepareOrganizations(deskRng, customers, asOfDay);
  const tickets = buildTickets(Random.derive(options.seed, 'tickets'), customers, agents, items, options.cases, asOfDay);
  return {
    asOf: options.asOf,
    salesReps,
    customers,
    contracts,
    paymentTerms,
    items,
    orders,
    shipments,
    units,
    invoices,
    agents,
    tickets,
    slaPolicies: buildSlaPolicies(),
  };
}

function uniquePeople(rng: Random, count: number, first: readonly string[], last: readonly string[]): [string, string][] {
  const seen = new Set<string>();
  const people: [string, string][] = [];
  while (people.length < count) {
    const f = rng.pick(first);
    const l = rng.pick(last);
    if (seen.has(`${f} ${l}`)) continue;
    seen.add(`${f} ${l}`);
    people.push([f, l]);
  }
  return people;
}

/** Lower-case ASCII for an e-mail local part or a domain label. */
function asciiSlug(text: string): string {
  return text
    .toLowerCase()
    .replace(/ä/g, 'ae')
    .replace(/ö/g, 'oe')
    .replace(/ü/g, 'ue')
    .replace(/ß/g, 'ss')
    .normalize('NFD')
    .replace(/[^a-z0-9]/g, '');
}

const COMPANY_DOMAIN = 'concord-demo.example';

/** Each customer's country profile, for the names, phones and hours of its people. */
const countryOf = new WeakMap<Customer, Country>();

function buildSalesReps(rng: Random): SalesRep[] {
  const ids = new SalesforceIds('005', rng);
  return uniquePeople(rng, 20, ENGLISH_FIRST, ENGLISH_LAST).map(([first, last], i) => ({
    id: ids.next(rng),
    name: `${first} ${last}`,
    email: `${asciiSlug(first)}.${asciiSlug(last)}@${COMPANY_DOMAIN}`,
    // Two reps have left; their accounts were handed over, so they own nothing.
    isActive: i < 18,
  }));
}

const SEGMENT_WEIGHTS: readonly (readonly [Segment, number])[] = [
  ['Enterprise', 15],
  ['Mid-Market', 35],
  ['Small Business', 50],
];

function buildCustomers(rng: Random, count: number, asOfDay: number, reps: SalesRep[]): Customer[] {
  const usedNames = new Set<string>();
  const usedDomains = new Set<string>();
  const owners = reps.filter((r) => r.isActive);
  const countryPicks = COUNTRIES.map((c) => [c, c.share] as const);
  const drafts: Customer[] = [];
  for (let i = 0; i < count; i++) {
    const country = rng.weighted(countryPicks);
    const city = rng.pick(country.cities);
    const segment = rng.weighted(SEGMENT_WEIGHTS);
    let base = '';
    let industry = '';
    for (let attempt = 0; attempt < 40 && base === ''; attempt++) {
      const [noun, ind] = rng.pick(NAME_NOUNS);
      const candidate = `${rng.pick(NAME_STEMS)} ${noun}`;
      if (!usedNames.has(candidate)) {
        base = candidate;
        industry = ind;
      }
    }
    if (base === '') {
      // The word lists run out near five thousand names; larger worlds add the city.
      const [noun, ind] = rng.pick(NAME_NOUNS);
      industry = ind;
      base = `${rng.pick(NAME_STEMS)} ${noun} ${city.name}`;
      for (let n = 2; usedNames.has(base); n++) base = `${rng.pick(NAME_STEMS)} ${noun} ${city.name} ${n}`;
    }
    usedNames.add(base);
    const legal = rng.pick(country.legalForms);
    const name = legal === '' ? base : `${base} ${legal}`;
    let domain = `${asciiSlug(base)}.example`;
    for (let n = 2; usedDomains.has(domain); n++) domain = `${asciiSlug(base)}${n}.example`;
    usedDomains.add(domain);
    // Three in four customers predate the four years of order history; the rest joined since.
    const sinceDay = rng.chance(0.75) ? asOfDay - rng.int(1461, 4380) : asOfDay - rng.int(30, 1460);
    const revenue =
      segment === 'Enterprise'
        ? rng.int(50, 2000) * 10_000_000
        : segment === 'Mid-Market'
          ? rng.int(50, 500) * 1_000_000
          : rng.int(20, 500) * 100_000;
    const customer: Customer = {
      number: '',
      accountId: '',
      erpId: '',
      orgId: 0,
      name,
      domain,
      website: `https://www.${domain}`,
      phone: country.phone(rng, city),
      type: rng.chance(0.8) ? 'Customer - Direct' : 'Customer - Channel',
      industry,
      segment,
      ownerId: rng.pick(owners).id,
      address: {
        street: country.street(rng),
        city: city.name,
        state: city.state,
        postalCode: country.postalCode(rng, city),
        country: country.code,
        countryName: country.name,
      },
      annualRevenue: revenue,
      sinceDay,
      accountModifiedAt: instantOf(
        rng.int(Math.max(sinceDay, asOfDay - 400), asOfDay - 1) * DAY_MS + rng.int(13, 22) * HOUR_MS + rng.int(0, 3599) * 1000,
      ),
      contacts: [],
      contracts: [],
      activeTier: null,
      currency: country.currency,
      paymentTerms: { id: '', code: '', displayName: '', dueDateCalculation: '', days: 0 },
      creditLimit: 0,
      blocked: false,
      taxRegistrationNumber: country.taxId(rng),
      billingEmail: `${rng.pick(['ap', 'accounts.payable', 'invoices', 'billing'])}@${domain}`,
      erpModifiedAt: '',
      orders: [],
      units: [],
      balanceDueCents: 0,
      deskCreatedMs: 0,
      deskCreatedAt: '',
      deskUpdatedAt: '',
      deskTags: [],
    };
    countryOf.set(customer, country);
    drafts.push(customer);
  }
  // Customer numbers, like CRM Ids, follow the order in which customers came on board.
  const customers = drafts
    .map((c, i) => [c, i] as const)
    .sort((a, b) => a[0].sinceDay - b[0].sinceDay || a[1] - b[1])
    .map(([c]) => c);
  const accountIds = new SalesforceIds('001', rng);
  const contactIds = new SalesforceIds('003', rng);
  customers.forEach((customer, index) => {
    customer.number = `C${10001 + index}`;
    customer.accountId = accountIds.next(rng);
    customer.orgId = DESK_IDS.organization + index;
  });
  for (const customer of customers) {
    const country = countryOf.get(customer) ?? must(COUNTRIES[0]);
    const count = rng.int(2, 5);
    const roles: ContactRole[] = ['technical', 'purchasing'];
    while (roles.length < count)
      roles.push(
        rng.weighted([
          ['technical', 4],
          ['purchasing', 2],
          ['finance', 2],
          ['management', 2],
        ] as const),
      );
    const emails = new Set<string>();
    for (const role of roles) {
      const firstName = rng.pick(country.firstNames);
      const lastName = rng.pick(country.lastNames);
      let local = `${asciiSlug(firstName)}.${asciiSlug(lastName)}`;
      if (emails.has(local)) local = `${asciiSlug(firstName).charAt(0)}${asciiSlug(lastName)}`;
      for (let n = 2; emails.has(local); n++) local = `${asciiSlug(firstName)}.${asciiSlug(lastName)}${n}`;
      emails.add(local);
      const city = country.cities.find((c) => c.name === customer.address.city) ?? must(country.cities[0]);
      customer.contacts.push({
        id: contactIds.next(rng),
        customer,
        firstName,
        lastName,
        email: `${local}@${customer.domain}`,
        phone: country.phone(rng, city),
        title: rng.pick(TITLES[role]),
        role,
        modifiedAt: instantOf(
          rng.int(Math.max(customer.sinceDay, asOfDay - 900), asOfDay - 1) * DAY_MS + rng.int(8, 20) * HOUR_MS + rng.int(0, 3599) * 1000,
        ),
        deskUserId: 0,
      });
    }
  }
  return customers;
}

function tierFor(rng: Random, segment: Segment): SupportTier {
  if (segment === 'Enterprise')
    return rng.weighted([
      ['Premium', 60],
      ['Standard', 35],
      ['Basic', 5],
    ] as const);
  if (segment === 'Mid-Market')
    return rng.weighted([
      ['Premium', 20],
      ['Standard', 55],
      ['Basic', 25],
    ] as const);
  return rng.weighted([
    ['Premium', 3],
    ['Standard', 32],
    ['Basic', 65],
  ] as const);
}

const LOWER_TIER: Record<SupportTier, SupportTier> = { Premium: 'Standard', Standard: 'Basic', Basic: 'Basic' };

function buildContracts(rng: Random, customers: Customer[], asOfDay: number): Contract[] {
  const all: Contract[] = [];
  const make = (customer: Customer, status: Contract['status'], startDay: number, termMonths: number, tier: SupportTier): Contract => {
    const endDay = addMonths(startDay, termMonths) - 1;
    const modifiedDay =
      status === 'Expired'
        ? Math.min(endDay + 1, asOfDay - 1)
        : status === 'Draft'
          ? asOfDay - rng.int(1, 20)
          : Math.min(startDay, asOfDay - 1) - rng.int(0, 14);
    const contract: Contract = {
      id: '',
      number: '',
      customer,
      status,
      startDay,
      startDate: dateOf(startDay),
      endDay,
      endDate: dateOf(endDay),
      termMonths,
      specialTerms: rng.chance(0.2) ? rng.pick(SPECIAL_TERMS) : null,
      tier,
      modifiedAt: instantOf(modifiedDay * DAY_MS + rng.int(7, 20) * HOUR_MS + rng.int(0, 3599) * 1000),
    };
    customer.contracts.push(contract);
    all.push(contract);
    return contract;
  };
  const terms = [
    [12, 50],
    [24, 30],
    [36, 20],
  ] as const;
  for (const customer of customers) {
    const activeShare = customer.segment === 'Enterprise' ? 0.95 : customer.segment === 'Mid-Market' ? 0.88 : 0.8;
    const tier = tierFor(rng, customer.segment);
    if (rng.chance(activeShare)) {
      const term = rng.weighted(terms);
      // Starts on the first of a month no later than this one and runs past asOf.
      let start = addMonths(firstOfMonth(asOfDay), -rng.int(0, term - 1));
      if (start < customer.sinceDay) start = firstOfMonth(asOfDay);
      const active = make(customer, 'Activated', start, term, tier);
      customer.activeTier = tier;
      const previousTerm = rng.weighted(terms);
      const previousStart = addMonths(start, -previousTerm);
      if (previousStart >= customer.sinceDay && rng.chance(0.7)) {
        make(customer, 'Expired', previousStart, previousTerm, rng.chance(0.3) ? LOWER_TIER[tier] : tier);
      }
      if (rng.chance(0.05)) make(customer, 'Draft', active.endDay + 1, rng.pick([12, 24]), tier);
    } else {
      const lapsedEnd = addMonths(firstOfMonth(asOfDay), -rng.int(1, 18)) - 1;
      const term = rng.weighted(terms);
      const start = addMonths(lapsedEnd + 1, -term);
      if (start >= customer.sinceDay && rng.chance(0.6)) make(customer, 'Expired', start, term, tier);
      if (rng.chance(0.25)) make(customer, 'Draft', addMonths(firstOfMonth(asOfDay), 1), 12, tier);
    }
  }
  // Numbers and Ids were handed out as the contracts were created, roughly by start date.
  const ordered = all
    .map((c, i) => [c, i] as const)
    .sort((a, b) => a[0].startDay - b[0].startDay || a[1] - b[1])
    .map(([c]) => c);
  const ids = new SalesforceIds('800', rng);
  ordered.forEach((contract, i) => {
    contract.id = ids.next(rng);
    contract.number = String(101 + i).padStart(8, '0');
  });
  for (const customer of customers) customer.contracts.sort((a, b) => a.startDay - b.startDay);
  return ordered;
}

function buildPaymentTerms(rng: Random): PaymentTerms[] {
  return [
    { code: '14 DAYS', displayName: 'Net 14 days', days: 14 },
    { code: 'NET30', displayName: 'Net 30 days', days: 30 },
    { code: 'NET45', displayName: 'Net 45 days', days: 45 },
    { code: 'NET60', displayName: 'Net 60 days', days: 60 },
  ].map((t) => ({ id: rng.guid(), code: t.code, displayName: t.displayName, dueDateCalculation: `${t.days}D`, days: t.days }));
}

function buildItems(rng: Random): Item[] {
  return CATALOG.map((entry) => ({
    id: rng.guid(),
    number: entry.number,
    displayName: entry.name,
    description: entry.description,
    type: entry.kind === 'service' ? 'Service' : 'Inventory',
    category: CATEGORY[entry.kind],
    unitPriceCents: Math.round(entry.price * 100),
    unitOfMeasure: entry.kind === 'service' ? (entry.number === 'SVC-100' ? 'HOUR' : 'DAY') : 'PCS',
    serialized: entry.warranty !== undefined,
    warrantyMonths: entry.warranty ?? null,
    kind: entry.kind,
    label: entry.label,
  }));
}

function termsByCode(terms: PaymentTerms[], code: string): PaymentTerms {
  return must(terms.find((t) => t.code === code));
}

function assignBillingProfiles(rng: Random, customers: Customer[], terms: PaymentTerms[], asOfDay: number): void {
  for (const customer of customers) {
    customer.erpId = rng.guid();
    const code =
      customer.segment === 'Enterprise'
        ? rng.weighted([
            ['NET60', 50],
            ['NET45', 40],
            ['NET30', 10],
          ] as const)
        : customer.segment === 'Mid-Market'
          ? rng.weighted([
              ['NET30', 60],
              ['NET45', 30],
              ['14 DAYS', 10],
            ] as const)
          : rng.weighted([
              ['NET30', 60],
              ['14 DAYS', 40],
            ] as const);
    customer.paymentTerms = termsByCode(terms, code);
    const [low, high] = customer.segment === 'Enterprise' ? [50, 200] : customer.segment === 'Mid-Market' ? [10, 50] : [2, 10];
    customer.creditLimit = rng.int(low, high) * 5000 * EXCHANGE_RATE[customer.currency];
    customer.creditLimit = Math.round(customer.creditLimit / 1000) * 1000;
    customer.erpModifiedAt = instantOf(
      rng.int(Math.max(customer.sinceDay, asOfDay - 200), asOfDay - 1) * DAY_MS + rng.int(6, 18) * HOUR_MS + rng.int(0, 3599) * 1000,
    );
  }
  // Exactly 3% (rounded) on credit hold, so even a small world shows one.
  const pool = [...customers];
  for (let left = Math.round(customers.length * 0.03); left > 0 && pool.length > 0; left--) {
    const [picked] = pool.splice(Math.floor(rng.next() * pool.length), 1);
    if (picked) picked.blocked = true;
  }
}

function priceIn(cents: number, currency: CurrencyCode): number {
  return Math.round(cents * EXCHANGE_RATE[currency]);
}

function pad6(n: number): string {
  return String(n).padStart(6, '0');
}

function buildOrders(rng: Random, customers: Customer[], items: Item[], count: number, asOfDay: number): Order[] {
  const historyStart = asOfDay - 1461;
  const segmentWeight: Record<Segment, number> = { Enterprise: 6, 'Mid-Market': 2.5, 'Small Business': 1 };
  const activity = new Map<Customer, number>();
  for (const c of customers) {
    const window = asOfDay - Math.max(c.sinceDay + 7, historyStart);
    activity.set(c, (segmentWeight[c.segment] * (0.25 + rng.next() * 1.75) * Math.max(window, 14)) / 1461);
  }
  const customerPicker = new WeightedPicker(customers, (c) => activity.get(c) ?? 1);
  const serialized = items.filter((i) => i.serialized);
  const equipmentWeight: Record<ItemKind, number> = {
    pump: 5,
    valve: 3,
    controller: 2.5,
    sensor: 3,
    drive: 2,
    system: 0.25,
    part: 0,
    kit: 0,
    service: 0,
  };
  const equipmentPicker = new WeightedPicker(serialized, (i) => equipmentWeight[i.kind]);
  const spares = items.filter((i) => i.kind === 'part' || i.kind === 'kit');
  const services = items.filter((i) => i.kind === 'service');
  const poStyle = new Map<Customer, number>();

  const drafts: { order: Order; seq: number }[] = [];
  for (let k = 0; k < count; k++) {
    const customer = customerPicker.pick(rng);
    const lo = Math.max(customer.sinceDay + 7, historyStart);
    const hi = asOfDay - 1;
    const span = Math.max(hi - lo + 1, 1);
    // Denser toward asOf: the business has grown.
    const day = hi - Math.floor(span * rng.next() ** 1.35);
    const picked: Item[] = [];
    const profile = rng.weighted([
      ['equipment', 45],
      ['project', customer.segment === 'Small Business' ? 3 : 12],
      ['spares', 45],
    ] as const);
    const want =
      profile === 'spares'
        ? rng.weighted([
            [1, 35],
            [2, 30],
            [3, 20],
            [4, 15],
          ] as const)
        : profile === 'project'
          ? rng.int(2, 4)
          : rng.weighted([
              [1, 40],
              [2, 30],
              [3, 20],
              [4, 10],
            ] as const);
    const add = (item: Item) => {
      if (!picked.includes(item)) picked.push(item);
    };
    if (profile !== 'spares') add(equipmentPicker.pick(rng));
    if (profile === 'project') {
      add(equipmentPicker.pick(rng));
      if (picked.length < want) add(rng.pick(services));
    }
    for (let guard = 0; picked.length < want && guard < 20; guard++) {
      add(profile === 'spares' || rng.chance(0.8) ? rng.pick(spares) : rng.pick(services));
    }
    const lines: OrderLine[] = picked.map((item, i) => {
      const quantity = item.serialized
        ? item.kind === 'system'
          ? 1
          : rng.weighted([
              [1, 60],
              [2, 25],
              [3, 15],
            ] as const)
        : item.kind === 'service'
          ? rng.int(1, item.unitOfMeasure === 'HOUR' ? 16 : 3)
          : 1 + Math.floor(19 * rng.next() ** 2.2);
      const unitPriceCents = priceIn(item.unitPriceCents, customer.currency);
      return {
        id: rng.guid(),
        sequence: (i + 1) * 10000,
        item,
        quantity,
        unitPriceCents,
        amountCents: quantity * unitPriceCents,
        shippedQuantity: 0,
        shipmentDate: dateOf(day + rng.int(3, 10)),
      };
    });
    const exclCents = lines.reduce((sum, l) => sum + l.amountCents, 0);
    const taxCents = Math.round(exclCents * TAX_RATE);
    const age = asOfDay - day;
    const status: Order['status'] =
      age <= 14
        ? rng.weighted([
            ['Open', 85],
            ['Draft', 8],
            ['In Review', 7],
          ] as const)
        : 'Open';
    let style = poStyle.get(customer);
    if (style === undefined) {
      style = rng.int(0, 2);
      poStyle.set(customer, style);
    }
    const externalDocumentNumber = rng.chance(0.75)
      ? style === 0
        ? `PO-${rng.digits(6)}`
        : style === 1
          ? `4500${rng.digits(6)}`
          : `P${rng.digits(5)}`
      : null;
    drafts.push({
      seq: k,
      order: {
        id: rng.guid(),
        number: '',
        customer,
        day,
        orderDate: dateOf(day),
        externalDocumentNumber,
        requestedDeliveryDate: rng.chance(0.6) ? dateOf(day + rng.int(7, 45)) : null,
        status,
        lines,
        exclCents,
        taxCents,
        inclCents: exclCents + taxCents,
        fullyShipped: false,
        modifiedAt: instantOf(day * DAY_MS + rng.int(13, 23) * HOUR_MS + rng.int(0, 3599) * 1000),
        shipments: [],
        invoices: [],
      },
    });
  }
  drafts.sort((a, b) => a.order.day - b.order.day || a.seq - b.seq);
  const orders = drafts.map((d) => d.order);
  orders.forEach((order, i) => {
    order.number = `SO-${pad6(100001 + i)}`;
    order.customer.orders.push(order);
  });
  return orders;
}

const TRANSIT_DAYS: Record<Carrier, readonly [number, number]> = { UPS: [1, 5], FEDEX: [1, 4], DHL: [2, 6], DBSCHENKER: [3, 9] };

/** A tracking number in the carrier's own format. */
function trackingNumber(rng: Random, carrier: Carrier): string {
  switch (carrier) {
    case 'UPS': {
      // 1Z + shipper account + service + package number + the UPS check digit.
      const body = `8W47R2${rng.pick(['01', '02', '03'])}${rng.digits(7)}`;
      let sum = 0;
      for (let i = 0; i < body.length; i++) {
        const ch = body.charCodeAt(i);
        const value = ch >= 65 ? (ch - 63) % 10 : ch - 48;
        sum += i % 2 === 1 ? value * 2 : value;
      }
      return `1Z${body}${(10 - (sum % 10)) % 10}`;
    }
    case 'FEDEX':
      return `7${rng.digits(11)}`;
    case 'DHL':
      return rng.digits(10);
    case 'DBSCHENKER':
      return `1${rng.digits(9)}`;
  }
}

function buildShipments(rng: Random, orders: Order[], asOfDay: number): { shipments: Shipment[]; units: SerialUnit[] } {
  const lastDay = asOfDay - 1;
  const drafts: { shipment: Shipment; seq: number }[] = [];
  const serials = new Set<string>();
  const tracking = new Set<string>();
  let seq = 0;

  const post = (order: Order, day: number, parts: [OrderLine, number][]) => {
    const customer = order.customer;
    const heavy = parts.some(([line]) => line.item.kind === 'system') || order.exclCents > 2_500_000;
    const carrier: Carrier = heavy
      ? 'DBSCHENKER'
      : customer.address.country === 'US'
        ? rng.weighted([
            ['UPS', 50],
            ['FEDEX', 42],
            ['DBSCHENKER', 8],
          ] as const)
        : rng.weighted([
            ['DHL', 60],
            ['UPS', 25],
            ['DBSCHENKER', 15],
          ] as const);
    let number = trackingNumber(rng, carrier);
    while (tracking.has(number)) number = trackingNumber(rng, carrier);
    tracking.add(number);
    const [minTransit, maxTransit] = TRANSIT_DAYS[carrier];
    const deliveredDay = day + rng.int(minTransit, maxTransit);
    const delivered = deliveredDay <= lastDay;
    const shipment: Shipment = {
      id: rng.guid(),
      number: '',
      order,
      day,
      postingDate: dateOf(day),
      shipmentMethodCode: customer.address.country === 'US' ? (heavy ? 'CPT' : 'FOB') : rng.pick(['DAP', 'DAP', 'DDP']),
      carrier,
      trackingNumber: number,
      deliveredDay: delivered ? deliveredDay : null,
      deliveredDate: delivered ? dateOf(deliveredDay) : null,
      lines: [],
      units: [],
    };
    parts.forEach(([line, quantity], i) => {
      line.shippedQuantity += quantity;
      line.shipmentDate = shipment.postingDate;
      shipment.lines.push({ id: rng.guid(), sequence: (i + 1) * 10000, item: line.item, quantity, unitPriceCents: line.unitPriceCents });
      if (!line.item.serialized) return;
      for (let u = 0; u < quantity; u++) {
        let serial = `SN${rng.chars('ABCDEFGHJKLMNPQRSTUVWXYZ0123456789', 8)}`;
        while (serials.has(serial)) serial = `SN${rng.chars('ABCDEFGHJKLMNPQRSTUVWXYZ0123456789', 8)}`;
        serials.add(serial);
        const code = rng.weighted([
          ['STD', 80],
          ['EXT', 15],
          ['PARTS', 5],
        ] as const);
        const months = (line.item.warrantyMonths ?? 12) + (code === 'EXT' ? 24 : 0);
        const endDay = addMonths(day, months);
        shipment.units.push({
          serialNumber: serial,
          item: line.item,
          customer,
          order,
          shipment,
          startDay: day,
          startDate: shipment.postingDate,
          endDay,
          endDate: dateOf(endDay),
          warrantyCode: code,
        });
      }
    });
    order.shipments.push(shipment);
    order.modifiedAt = instantOf(day * DAY_MS + rng.int(13, 22) * HOUR_MS + rng.int(0, 3599) * 1000);
    drafts.push({ shipment, seq: seq++ });
  };

  /** Splits the order's lines in two: the first part ships now, the rest later (or not yet). */
  const split = (order: Order): [[OrderLine, number][], [OrderLine, number][]] | null => {
    const lines = order.lines;
    if (lines.length >= 2) {
      const cut = rng.int(1, lines.length - 1);
      return [lines.slice(0, cut).map((l) => [l, l.quantity]), lines.slice(cut).map((l) => [l, l.quantity])];
    }
    const only = lines[0];
    if (only === undefined || only.quantity < 2) return null;
    const first = rng.int(1, only.quantity - 1);
    return [[[only, first]], [[only, only.quantity - first]]];
  };

  for (const order of orders) {
    if (order.status !== 'Open') continue;
    const age = asOfDay - order.day;
    const all = (): [OrderLine, number][] => order.lines.map((l) => [l, l.quantity]);
    if (age > 14) {
      const lead = 1 + Math.floor(5 * rng.next() ** 1.5);
      const parts = rng.chance(0.03) ? split(order) : null;
      if (parts) {
        post(order, order.day + lead, parts[0]);
        post(order, order.day + lead + rng.int(2, 7), parts[1]);
      } else {
        post(order, order.day + lead + (rng.chance(0.2) ? rng.int(1, 4) : 0), all());
      }
      order.fullyShipped = true;
      continue;
    }
    if (age < 2) continue;
    const plan = rng.weighted([
      ['full', 50],
      ['partial', 20],
      ['none', 30],
    ] as const);
    const lead = rng.int(1, Math.min(6, age - 1));
    if (plan === 'full') {
      post(order, order.day + lead, all());
      order.fullyShipped = true;
    } else if (plan === 'partial') {
      const parts = split(order);
      if (parts) post(order, order.day + lead, parts[0]);
    }
  }

  drafts.sort((a, b) => a.shipment.day - b.shipment.day || a.seq - b.seq);
  const shipments = drafts.map((d) => d.shipment);
  const units: SerialUnit[] = [];
  shipments.forEach((shipment, i) => {
    shipment.number = `SHP-${pad6(400001 + i)}`;
    for (const unit of shipment.units) {
      units.push(unit);
      shipment.order.customer.units.push(unit);
    }
  });
  return { shipments, units };
}

function buildInvoices(rng: Random, shipments: Shipment[], customers: Customer[], asOfDay: number): Invoice[] {
  const lastDay = asOfDay - 1;
  const invoices: Invoice[] = [];
  const invoicedPerOrder = new Map<Order, number>();
  shipments.forEach((shipment, i) => {
    const order = shipment.order;
    const customer = order.customer;
    const before = invoicedPerOrder.get(order) ?? 0;
    const isLast = order.fullyShipped && shipment === order.shipments[order.shipments.length - 1];
    let totalCents: number;
    if (isLast) {
      // The last invoice takes what is left, so the order's invoices add up to its total.
      totalCents = order.inclCents - before;
    } else {
      const excl = shipment.lines.reduce((sum, l) => sum + l.quantity * l.unitPriceCents, 0);
      totalCents = excl + Math.round(excl * TAX_RATE);
    }
    invoicedPerOrder.set(order, before + totalCents);
    const day = shipment.day;
    const dueDay = day + customer.paymentTerms.days;
    let status: Invoice['status'] = 'Open';
    let remainingCents = totalCents;
    let closedDay: number | null = null;
    if (dueDay >= asOfDay) {
      const r = rng.next();
      if (r < 0.2 && lastDay > day) {
        status = 'Paid';
        closedDay = rng.int(day + 1, lastDay);
      } else if (r < 0.3) {
        remainingCents = partial(rng, totalCents);
      }
    } else {
      const pastDue = asOfDay - dueDay;
      // Most late payers settle eventually, so the older an invoice, the less likely still open.
      const overdueChance = pastDue <= 60 ? 0.45 : pastDue <= 180 ? 0.28 : pastDue <= 365 ? 0.17 : 0.09;
      if (rng.chance(overdueChance)) {
        if (rng.chance(0.35)) remainingCents = partial(rng, totalCents);
      } else {
        status = 'Paid';
        const delay = Math.round(customer.paymentTerms.days * (0.5 + rng.next() * 0.8)) + rng.int(-3, 12);
        closedDay = Math.min(Math.max(day + 1, day + delay), lastDay);
      }
    }
    if (status === 'Paid') remainingCents = 0;
    const invoice: Invoice = {
      id: rng.guid(),
      number: `INV-${pad6(700001 + i)}`,
      day,
      invoiceDate: shipment.postingDate,
      dueDay,
      dueDate: dateOf(dueDay),
      customer,
      order,
      shipment,
      totalCents,
      remainingCents,
      status,
      closedDate: closedDay === null ? null : dateOf(closedDay),
    };
    order.invoices.push(invoice);
    invoices.push(invoice);
  });
  // A customer on credit hold is there for a reason: give each one an overdue invoice.
  const latestPastDue = new Map<Customer, Invoice>();
  const hasOverdue = new Set<Customer>();
  for (const invoice of invoices) {
    if (invoice.dueDay >= asOfDay) continue;
    latestPastDue.set(invoice.customer, invoice);
    if (invoice.status === 'Open') hasOverdue.add(invoice.customer);
  }
  for (const customer of customers) {
    const invoice = latestPastDue.get(customer);
    if (!customer.blocked || hasOverdue.has(customer) || invoice === undefined) continue;
    invoice.status = 'Open';
    invoice.remainingCents = invoice.totalCents;
    invoice.closedDate = null;
  }
  for (const invoice of invoices) {
    if (invoice.status === 'Open') invoice.customer.balanceDueCents += invoice.remainingCents;
  }
  return invoices;
}

function partial(rng: Random, totalCents: number): number {
  if (totalCents < 2) return totalCents;
  return Math.min(totalCents - 1, Math.max(1, Math.round(totalCents * (0.15 + rng.next() * 0.7))));
}

const AGENT_GROUPS: readonly (readonly [DeskGroup, number])[] = [
  ['technical', 10],
  ['logistics', 5],
  ['billing', 5],
  ['service', 5],
];

function buildAgents(rng: Random, asOfDay: number): Agent[] {
  const people = uniquePeople(rng, 25, ENGLISH_FIRST, ENGLISH_LAST);
  const agents: Agent[] = [];
  let next = 0;
  for (const [group, size] of AGENT_GROUPS) {
    for (let i = 0; i < size; i++) {
      const [first, last] = must(people[next]);
      agents.push({
        id: DESK_IDS.user + next,
        name: `${first} ${last}`,
        firstName: first,
        email: `${asciiSlug(first)}.${asciiSlug(last)}@${COMPANY_DOMAIN}`,
        groupId: DESK_IDS.groups[group],
        // Everyone on the team has been there since the desk went live.
        createdAt: instantOf((asOfDay - 1095 - rng.int(1, 60)) * DAY_MS + rng.int(8, 17) * HOUR_MS + rng.int(0, 3599) * 1000),
      });
      next++;
    }
  }
  return agents;
}

const TIER_TAG: Record<SupportTier, string> = { Basic: 'tier_basic', Standard: 'tier_standard', Premium: 'tier_premium' };
const SEGMENT_TAG: Record<Segment, string> = {
  Enterprise: 'segment_enterprise',
  'Mid-Market': 'segment_mid_market',
  'Small Business': 'segment_small_business',
};

function prepareOrganizations(rng: Random, customers: Customer[], asOfDay: number): void {
  // The desk went live three years ago; older customers were imported then.
  const launchDay = asOfDay - 1095;
  let nextUser = DESK_IDS.user + 25;
  for (const customer of customers) {
    const createdDay = Math.max(customer.sinceDay, launchDay);
    customer.deskCreatedMs = createdDay * DAY_MS + rng.int(7, 20) * HOUR_MS + rng.int(0, 3599) * 1000;
    customer.deskCreatedAt = instantOf(customer.deskCreatedMs);
    const active = customer.contracts.find((c) => c.status === 'Activated');
    // The tier tag was last set when the current contract started.
    const touched =
      active && active.startDay * DAY_MS > customer.deskCreatedMs ? active.startDay * DAY_MS + 9 * HOUR_MS : customer.deskCreatedMs;
    customer.deskUpdatedAt = instantOf(Math.min(touched, asOfDay * DAY_MS - HOUR_MS));
    customer.deskTags = customer.activeTier
      ? [TIER_TAG[customer.activeTier], SEGMENT_TAG[customer.segment]]
      : [SEGMENT_TAG[customer.segment]];
    for (const contact of customer.contacts) contact.deskUserId = nextUser++;
  }
}

type Category = 'unit' | 'shipping' | 'invoice' | 'order' | 'general';

const CATEGORY_GROUP: Record<Category, DeskGroup> = {
  unit: 'technical',
  shipping: 'logistics',
  invoice: 'billing',
  order: 'service',
  general: 'service',
};

const SYMPTOMS: Record<string, readonly string[]> = {
  pump: [
    'leaking after install',
    'leaking at the mechanical seal',
    'vibrating excessively',
    'not reaching rated flow',
    'tripping on overload',
    'making a grinding noise',
    'losing prime on start-up',
    'running hot at the bearing housing',
  ],
  valve: [
    'not sealing fully',
    'actuator not responding',
    'reporting wrong position feedback',
    'sticking at mid-stroke',
    'leaking at the stem packing',
  ],
  controller: [
    'showing fault code E{nn}',
    'dropping Modbus communication',
    'rebooting intermittently',
    'display blank after power cycle',
    'failing the firmware update',
  ],
  sensor: [
    'reading drifts over time',
    'output stuck at 4 mA',
    'showing a zero offset after install',
    'giving no output signal',
    'giving intermittent readings',
  ],
  drive: ['tripping on overcurrent', 'showing fault F{nnn}', 'cooling fan noisy', 'not starting the motor'],
  system: [
    'alarming on low suction pressure',
    'PLC panel faulted after a power outage',
    'dosing rate unstable',
    'one duty pump not starting',
  ],
};

const CARRIER_NAME: Record<Carrier, string> = { UPS: 'UPS', FEDEX: 'FedEx', DHL: 'DHL Express', DBSCHENKER: 'DB Schenker' };

interface CaseDraft {
  category: Category;
  type: TicketType;
  priority: TicketPriority;
  subject: string;
  body: string;
  tags: string[];
  replies: string[];
  notes: string[];
  followUps: string[];
  resolution: string;
  order: Order | null;
  unit: SerialUnit | null;
}

function fill(text: string, rng: Random): string {
  return text.replace('{nnn}', String(rng.int(1, 999)).padStart(3, '0')).replace('{nn}', String(rng.int(10, 99)));
}

/** Index of the first element whose key is >= bound, in a list sorted by key. */
function countBefore<T>(list: readonly T[], key: (t: T) => number, bound: number): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (key(must(list[mid])) < bound) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** An element among the first n, favouring the most recent ones. */
function recent<T>(rng: Random, list: readonly T[], n: number): T {
  return must(list[n - 1 - Math.floor(n * rng.next() ** 2.5)]);
}

function signature(contact: Contact): string {
  return `${contact.firstName} ${contact.lastName}\n${contact.title}, ${contact.customer.name}`;
}

/**
 * What a case is about: about 40% concern a unit the customer received, another 30% one of its
 * orders (shipping, invoice, changes), the rest general questions.
 */
function draftCase(rng: Random, customer: Customer, day: number, items: Item[], requesterFor: (category: Category) => Contact): CaseDraft {
  const r = rng.next();
  const orderCount = countBefore(customer.orders, (o) => o.day, day);
  const unitCount = countBefore(customer.units, (u) => u.startDay, day);
  if (r < 0.43 && unitCount > 0) return unitCase(rng, recent(rng, customer.units, unitCount), requesterFor('unit'), day);
  if (r < 0.72 && orderCount > 0) {
    const kind = rng.weighted([
      ['shipping', 45],
      ['invoice', 25],
      ['order', 30],
    ] as const);
    // Shipping questions come while an order is on its way or just arrived.
    const sinceRecent = countBefore(customer.orders, (o) => o.day, day - 45);
    if (kind === 'shipping' && sinceRecent < orderCount) {
      const order = must(customer.orders[sinceRecent + Math.floor(rng.next() * (orderCount - sinceRecent))]);
      return shippingCase(rng, order, requesterFor('shipping'), day);
    }
    const order = recent(rng, customer.orders, orderCount);
    const invoices = order.invoices.filter((i) => i.day < day);
    if (kind !== 'order' && invoices.length > 0) return invoiceCase(rng, order, rng.pick(invoices), requesterFor('invoice'));
    return orderCase(rng, order, requesterFor('order'), day);
  }
  return generalCase(rng, customer, requesterFor('general'), items);
}

function unitCase(rng: Random, unit: SerialUnit, requester: Contact, day: number): CaseDraft {
  const item = unit.item;
  const sn = unit.serialNumber;
  const fresh = day - unit.startDay <= 60;
  const symptoms = (SYMPTOMS[item.kind] ?? SYMPTOMS['pump'] ?? []).filter((s) => fresh || !s.includes('install'));
  const symptom = fill(rng.pick(symptoms), rng);
  const inWarranty = unit.endDay >= day;
  const priority = rng.weighted([
    ['urgent', 12],
    ['high', 30],
    ['normal', 48],
    ['low', 10],
  ] as const);
  const form = rng.weighted([
    ['fault', 60],
    ['warranty', inWarranty ? 20 : 0],
    ['rma', 10],
    ['parts', 10],
  ] as const);
  const subject =
    form === 'fault'
      ? `${item.label} ${item.number} (${sn}) ${symptom}`
      : form === 'warranty'
        ? `Warranty claim: ${item.label} ${item.number} (${sn}) ${symptom}`
        : form === 'rma'
          ? `RMA request for ${item.label} ${item.number} (${sn})`
          : `Spare parts needed for ${item.number} (${sn})`;
  const context = rng.pick([
    'It ran fine until yesterday.',
    'The unit sits on our main process line.',
    'We already checked the wiring and the supply voltage.',
    'This started after a planned shutdown.',
    'Our operators noticed it during the morning rounds.',
    'We replaced the fuses but the problem came back.',
  ]);
  const urgency = priority === 'urgent' ? ' The line is down until this is fixed.' : '';
  const ask = rng.pick([
    'Can you send a technician?',
    'Please advise on next steps.',
    'Is this covered under warranty?',
    'Could you send replacement parts?',
    'Can someone call me back today?',
  ]);
  const body = `Hello,\n\nOur ${item.label.toLowerCase()} ${item.number} (serial ${sn}), delivered on order ${unit.order.number} in ${monthYear(unit.startDay)}, has a problem: ${symptom}. ${context}${urgency} ${ask}\n\nRegards,\n${signature(requester)}`;
  const warrantyNote = `Warranty ${unit.warrantyCode} on ${sn}: ${unit.startDate} to ${unit.endDate}, ${inWarranty ? 'still covered' : 'expired'}.`;
  return {
    category: 'unit',
    type: form === 'rma' || form === 'parts' ? 'task' : rng.chance(0.15) ? 'problem' : 'incident',
    priority,
    subject,
    body,
    tags: ['technical', item.kind, inWarranty ? 'in_warranty' : 'out_of_warranty', ...(priority === 'urgent' ? ['line_down'] : [])],
    replies: [
      `Thanks for the details on ${sn}. Could you send photos of the nameplate and the installation, and the pressure and flow when the problem occurs?`,
      `I have reviewed the data you sent for ${item.number} ${sn}. Please check the items in the attached troubleshooting guide and let us know the result.`,
      inWarranty
        ? `${sn} is covered under warranty until ${longDate(unit.endDay)}, so parts and labour are on us.`
        : `The warranty on ${sn} ended on ${longDate(unit.endDay)}; I can send a quote for the repair.`,
    ],
    notes: [
      warrantyNote,
      'Asked field service for a technician slot this week.',
      `Checked the service history of ${sn}: no earlier repairs.`,
      `Similar reports on ${item.number} this quarter; flagged to product engineering.`,
    ],
    followUps: [
      'Attached the photos you asked for.',
      'We are still seeing the problem.',
      'Any update on this?',
      'Our operator confirmed the settings you suggested.',
    ],
    resolution: rng.pick([
      'A replacement part is on its way and our technician will fit it.',
      'Our technician replaced the faulty part on site and the unit is back in service.',
      'The parameter change fixed the fault.',
      inWarranty
        ? 'We approved the RMA; a replacement unit ships this week.'
        : 'The repair quote is attached; we will schedule the work once approved.',
    ]),
    order: unit.order,
    unit,
  };
}

function shippingCase(rng: Random, order: Order, requester: Contact, day: number): CaseDraft {
  const so = order.number;
  const shipped = order.shipments.filter((s) => s.day < day);
  const po = order.externalDocumentNumber ? ` (our PO ${order.externalDocumentNumber})` : '';
  const base = {
    category: 'shipping' as const,
    order,
    unit: null,
    followUps: ['Thanks for the quick reply.', 'Any update on this?', 'Our receiving team is asking again.'],
  };
  const last = shipped[shipped.length - 1];
  if (last === undefined) {
    return {
      ...base,
      type: 'question',
      priority: rng.weighted([
        ['normal', 65],
        ['high', 25],
        ['low', 10],
      ] as const),
      subject: rng.pick([`When will ${so} ship?`, `Ship date for ${so}`, `Expedite request for ${so}`]),
      body: `Hi,\n\nWe placed order ${so}${po} on ${longDate(order.day)} and have not received a shipping confirmation yet. Can you confirm when it will ship?\n\nThanks,\n${signature(requester)}`,
      tags: ['shipping', 'not_shipped'],
      replies: [
        `Order ${so} is scheduled to ship on ${longDate(order.day + 5)}. I will send the tracking number as soon as it leaves our warehouse.`,
      ],
      notes: [`Checked with the warehouse: ${so} is being picked.`, `Asked planning to prioritise ${so}.`],
      resolution: `Order ${so} has shipped; the tracking number is in your shipping confirmation.`,
    };
  }
  const carrier = CARRIER_NAME[last.carrier];
  const deliveredBefore = last.deliveredDay !== null && last.deliveredDay < day;
  if (!deliveredBefore) {
    return {
      ...base,
      type: 'question',
      priority: rng.weighted([
        ['normal', 60],
        ['high', 25],
        ['low', 10],
        ['urgent', 5],
      ] as const),
      subject: rng.pick([`Where is my shipment for ${so}`, `Tracking for ${so} not updating`, `Delivery status of ${so}`]),
      body: `Hi,\n\nOrder ${so}${po} shipped on ${longDate(last.day)} but we have not received it yet and the tracking does not show progress. Can you check with the carrier?\n\nThanks,\n${signature(requester)}`,
      tags: ['shipping', 'in_transit'],
      replies: [
        `Order ${so} shipped on ${longDate(last.day)} with ${carrier}, tracking number ${last.trackingNumber}. I have asked ${carrier} for an update.`,
      ],
      notes: [
        `Checked ERP: ${last.number} posted ${last.postingDate}, ${carrier} ${last.trackingNumber}.`,
        `Called ${carrier}: package is at the regional hub.`,
      ],
      resolution: `${carrier} confirms delivery of ${last.number}.`,
    };
  }
  const problem = rng.pick(['damaged', 'missing', 'wrong'] as const);
  const subject =
    problem === 'damaged'
      ? `${so} arrived damaged`
      : problem === 'missing'
        ? `Missing items in shipment ${last.number} (${so})`
        : `Wrong item received on ${so}`;
  const what =
    problem === 'damaged'
      ? 'arrived with a damaged crate and a dented part'
      : problem === 'missing'
        ? 'was incomplete: one line is missing'
        : 'contained an item we did not order';
  return {
    ...base,
    type: 'incident',
    priority: rng.weighted([
      ['normal', 50],
      ['high', 35],
      ['urgent', 5],
      ['low', 10],
    ] as const),
    subject,
    body: `Hi,\n\nShipment ${last.number} for order ${so}${po}, delivered by ${carrier} on ${longDate(last.deliveredDay ?? last.day)}, ${what}. Photos attached. Please advise.\n\nThanks,\n${signature(requester)}`,
    tags: ['shipping', 'delivery_issue', problem],
    replies: [
      `Sorry about the trouble with ${last.number}. I have opened a claim with ${carrier} and will arrange a replacement shipment.`,
    ],
    notes: [`Packing list for ${last.number} checked against the order lines.`, `Claim filed with ${carrier} for ${last.trackingNumber}.`],
    resolution: `A replacement shipment for ${so} is on its way.`,
  };
}

function invoiceCase(rng: Random, order: Order, invoice: Invoice, requester: Contact): CaseDraft {
  const inv = invoice.number;
  const amount = formatMoney(invoice.totalCents, order.customer.currency);
  const form = rng.pick(['dispute', 'copy', 'payment', 'po', 'tax'] as const);
  const subject = {
    dispute: `Invoice ${inv} amount disputed`,
    copy: `Copy of invoice ${inv} needed`,
    payment: `Payment for ${inv} sent - please confirm`,
    po: `PO number missing on invoice ${inv}`,
    tax: `Question about tax on ${inv}`,
  }[form];
  const ask = {
    dispute: `The amount of ${amount} does not match the quote we agreed for order ${order.number}. Please review.`,
    copy: `Our accounts payable system lost the PDF of ${inv} for order ${order.number}. Could you send a copy?`,
    payment: `We paid ${inv} (${amount}) last week. Can you confirm you received it?`,
    po: `Invoice ${inv} does not show our purchase order number, so we cannot process it. Please reissue it.`,
    tax: `We believe the sales tax on ${inv} should not apply to order ${order.number}. Can you check?`,
  }[form];
  return {
    category: 'invoice',
    type: 'question',
    priority: rng.weighted([
      ['normal', 60],
      ['low', 35],
      ['high', 5],
    ] as const),
    subject,
    body: `Hello,\n\n${ask}\n\nBest regards,\n${signature(requester)}`,
    tags: ['billing', `invoice_${form}`],
    replies: [`I have checked invoice ${inv} (${amount}) against order ${order.number} and passed it to our billing team.`],
    notes: [
      `Billing: ${inv} dated ${invoice.invoiceDate}, due ${invoice.dueDate}, ${amount}.`,
      `Verified pricing on ${order.number} against the price list.`,
    ],
    followUps: ['Thanks, waiting for the corrected document.', 'Any news on this?'],
    resolution: rng.pick([
      'We issued a credit note for the difference.',
      'The requested document is attached.',
      'Payment received and applied, thank you.',
      'A corrected invoice is attached.',
    ]),
    order,
    unit: null,
  };
}

function orderCase(rng: Random, order: Order, requester: Contact, day: number): CaseDraft {
  const so = order.number;
  const po = order.externalDocumentNumber ? ` (our PO ${order.externalDocumentNumber})` : '';
  const lastShipment = order.shipments[order.shipments.length - 1];
  // Changes only make sense before everything has left; afterwards customers ask for paperwork.
  const completed = order.fullyShipped && lastShipment !== undefined && lastShipment.day < day;
  const [subject, request] = rng.pick<readonly [string, string]>(
    completed
      ? [
          [
            `Certificate of conformity for ${so}`,
            `Could you send the certificates of conformity for the items on ${so}? Our quality team needs them for the audit file.`,
          ],
          [`Packing list for ${so}`, `We cannot find the packing list for ${so}. Could you send a copy?`],
          [`Reorder the items from ${so}`, `We would like to order the same items as on ${so} again. Could you send an updated quote?`],
          [`Order confirmation for ${so} needed`, `Our finance team needs the order confirmation for ${so} to close the purchase order.`],
        ]
      : [
          [
            `Change delivery address for ${so}`,
            `Please ship ${so} to our second site instead of the billing address. The new address is in the attached note.`,
          ],
          [`Add items to order ${so}`, `Could you add two extra seal kits to ${so} so they ship together?`],
          [`Cancel a line on ${so}`, `We no longer need the last line on ${so}. Please cancel it before it ships.`],
          [
            `Update requested delivery date for ${so}`,
            `Our site will not be ready in time. Please move the delivery date of ${so} back by two weeks.`,
          ],
          [`Order confirmation for ${so} needed`, `We have not received the order confirmation for ${so} yet. Could you send it?`],
        ],
  );
  return {
    category: 'order',
    type: rng.chance(0.5) ? 'task' : 'question',
    priority: rng.weighted([
      ['normal', 60],
      ['low', 25],
      ['high', 12],
      ['urgent', 3],
    ] as const),
    subject,
    body: `Hello,\n\nRegarding our order ${so}${po} from ${longDate(order.day)}: ${request}\n\nThank you,\n${signature(requester)}`,
    tags: [completed ? 'order_documents' : 'order_change'],
    replies: [`Thanks, I have noted the request on ${so} and will confirm once it is updated.`],
    notes: [`${so}: ${order.lines.length} line(s), status ${order.status}.`, 'Checked with order management.'],
    followUps: ['Thanks!', 'Could you confirm once done?'],
    resolution: completed ? `The requested documents for ${so} are attached.` : `Order ${so} has been updated as requested.`,
    order,
    unit: null,
  };
}

function generalCase(rng: Random, customer: Customer, requester: Contact, items: Item[]): CaseDraft {
  const item = rng.pick(items.filter((i) => i.serialized));
  const subject = rng.pick([
    'Request for preventive maintenance quote',
    `Need installation manual for ${item.number}`,
    'Customer portal access for a new colleague',
    'Update our billing contact',
    `Recommended spare parts list for ${item.number}`,
    `Operator training for our ${item.label.toLowerCase()}s`,
    'Site visit scheduling',
  ]);
  return {
    category: 'general',
    type: rng.chance(0.3) ? 'task' : 'question',
    priority: rng.weighted([
      ['low', 45],
      ['normal', 50],
      ['high', 5],
    ] as const),
    subject,
    body: `Hello,\n\n${subject}: could you help us with this for ${customer.name}?\n\nKind regards,\n${signature(requester)}`,
    tags: ['general'],
    replies: ['Happy to help. I have attached the information and copied your account manager.'],
    notes: ['Forwarded to the account manager.', 'Looked up the installed base for this customer.'],
    followUps: ['Thanks, that helps.', 'One more question on this.'],
    resolution: rng.pick([
      'The documents are attached.',
      'Access has been set up.',
      'Your account manager will follow up with the quote.',
      'The visit is scheduled.',
    ]),
    order: null,
    unit: null,
  };
}

function tierAt(customer: Customer, day: number): SupportTier | null {
  for (const c of customer.contracts) {
    if (c.status !== 'Draft' && c.startDay <= day && day <= c.endDay) return c.tier;
  }
  return null;
}

const RESOLUTION_DAYS: Record<TicketPriority, readonly [number, number]> = {
  urgent: [0.05, 2],
  high: [0.2, 5],
  normal: [0.5, 10],
  low: [1, 20],
};

function buildTickets(rng: Random, customers: Customer[], agents: Agent[], items: Item[], count: number, asOfDay: number): Ticket[] {
  const nowMs = asOfDay * DAY_MS;
  const windowStart = asOfDay - 730;
  const picker = new WeightedPicker(customers, (c) => 2 + c.orders.length);
  const agentsByGroup = new Map<number, Agent[]>();
  for (const agent of agents) agentsByGroup.set(agent.groupId, [...(agentsByGroup.get(agent.groupId) ?? []), agent]);
  const roleFor: Record<Category, readonly ContactRole[]> = {
    unit: ['technical'],
    shipping: ['purchasing', 'technical'],
    invoice: ['finance', 'purchasing'],
    order: ['purchasing'],
    general: ['technical', 'purchasing', 'finance', 'management'],
  };
  const drafts: { ticket: Ticket; seq: number }[] = [];
  for (let k = 0; k < count; k++) {
    const customer = picker.pick(rng);
    const country = countryOf.get(customer) ?? must(COUNTRIES[0]);
    const lo = Math.max(Math.floor(customer.deskCreatedMs / DAY_MS) + 1, windowStart);
    const hi = asOfDay - 1;
    let day = hi - Math.floor(Math.max(hi - lo + 1, 1) * rng.next() ** 1.25);
    const weekday = new Date(day * DAY_MS).getUTCDay();
    if ((weekday === 0 || weekday === 6) && rng.chance(0.75)) day = Math.max(lo, Math.min(hi, day + (weekday === 6 ? -1 : 1)));
    const [startHour, endHour] = country.workdayUtc;
    const createdMs = Math.min(day * DAY_MS + rng.int(startHour, endHour - 1) * HOUR_MS + rng.int(0, 3599) * 1000, nowMs - 2 * HOUR_MS);

    let requester = must(customer.contacts[0]);
    const draft = draftCase(rng, customer, day, items, (category) => {
      const preferred = customer.contacts.filter((c) => roleFor[category].includes(c.role));
      requester = preferred.length > 0 && rng.chance(0.8) ? rng.pick(preferred) : rng.pick(customer.contacts);
      return requester;
    });

    const groupId = DESK_IDS.groups[CATEGORY_GROUP[draft.category]];
    const ageDays = (nowMs - createdMs) / DAY_MS;
    const [minDays, maxDays] = RESOLUTION_DAYS[draft.priority];
    // Most cases close within days; a long tail lingers, which keeps a backlog open.
    const stuck = rng.chance(0.25);
    const resolutionDays = stuck ? 20 * 60 ** rng.next() : minDays + (maxDays - minDays) * rng.next() ** 2;
    const resolved = resolutionDays < ageDays;
    let status: TicketStatus;
    let endMs: number;
    let updatedMs: number;
    if (resolved) {
      endMs = Math.min(createdMs + resolutionDays * DAY_MS, nowMs - 10 * MINUTE_MS);
      // Zendesk closes solved tickets four days after they were solved.
      const closedMs = endMs + 4 * DAY_MS;
      if (closedMs < nowMs) {
        status = 'closed';
        updatedMs = closedMs;
      } else {
        status = 'solved';
        updatedMs = endMs;
      }
    } else {
      status =
        ageDays < 3 && rng.chance(0.5)
          ? 'new'
          : rng.weighted([
              ['open', 50],
              ['pending', 35],
              ['hold', 15],
            ] as const);
      endMs = createdMs + (nowMs - HOUR_MS - createdMs) * (0.2 + 0.8 * rng.next());
      updatedMs = endMs;
    }
    const groupAgents = agentsByGroup.get(groupId) ?? agents;
    const assignee = status === 'new' && rng.chance(0.65) ? null : rng.pick(groupAgents);
    const commentCount = status === 'new' ? 1 : rng.int(2, 5);
    const comments = buildComments(rng, draft, requester, assignee, status, createdMs, endMs, commentCount);
    const lastCommentMs = must(comments[comments.length - 1]).ms;
    updatedMs = Math.max(updatedMs, lastCommentMs);
    const tier = tierAt(customer, day);
    const tags = [...draft.tags, ...(tier ? [TIER_TAG[tier]] : []), SEGMENT_TAG[customer.segment]];
    drafts.push({
      seq: k,
      ticket: {
        id: 0,
        type: draft.type,
        subject: draft.subject,
        description: draft.body,
        priority: draft.priority,
        status,
        requester,
        submitterId: assignee !== null && rng.chance(0.08) ? assignee.id : requester.deskUserId,
        assignee,
        customer,
        groupId,
        tags,
        dueAt: draft.type === 'task' ? instantOf(Math.floor((createdMs + rng.int(2, 10) * DAY_MS) / HOUR_MS) * HOUR_MS) : null,
        createdMs,
        createdAt: instantOf(createdMs),
        updatedAt: instantOf(updatedMs),
        orderNumber: draft.order?.number ?? null,
        serialNumber: draft.unit?.serialNumber ?? null,
        comments,
      },
    });
  }
  drafts.sort((a, b) => a.ticket.createdMs - b.ticket.createdMs || a.seq - b.seq);
  const tickets = drafts.map((d) => d.ticket);
  tickets.forEach((t, i) => {
    t.id = i + 1;
  });
  // Comment ids grow with time across the whole desk, as Zendesk's do.
  const all = tickets.flatMap((t) => t.comments.map((c, i) => ({ c, t: t.id, i })));
  all.sort((a, b) => a.c.ms - b.c.ms || a.t - b.t || a.i - b.i);
  all.forEach(({ c }, i) => {
    c.id = DESK_IDS.comment + i;
  });
  return tickets;
}

function greet(text: string, requester: Contact, agent: Agent): string {
  return `Hi ${requester.firstName},\n\n${text}\n\nBest regards,\n${agent.name}`;
}

function buildComments(
  rng: Random,
  draft: CaseDraft,
  requester: Contact,
  assignee: Agent | null,
  status: TicketStatus,
  createdMs: number,
  endMs: number,
  count: number,
): TicketComment[] {
  const times = [createdMs];
  for (let i = 1; i < count; i++) times.push(createdMs + (endMs - createdMs) * rng.next());
  times.sort((a, b) => a - b);
  for (let i = 1; i < times.length; i++) {
    // Whole seconds, strictly increasing within the ticket.
    const t = Math.floor(must(times[i]) / 1000) * 1000;
    times[i] = Math.max(t, must(times[i - 1]) + MINUTE_MS);
  }
  const comments: TicketComment[] = [
    { id: 0, authorId: requester.deskUserId, body: draft.body, public: true, ms: createdMs, createdAt: instantOf(createdMs) },
  ];
  let lastPublicByAgent = false;
  let reply = 0;
  for (let i = 1; i < count; i++) {
    const ms = must(times[i]);
    const isLast = i === count - 1;
    let authorId: number;
    let body: string;
    let isPublic = true;
    if (assignee === null) {
      authorId = requester.deskUserId;
      body = rng.pick(draft.followUps);
    } else if (isLast && (status === 'solved' || status === 'closed')) {
      authorId = assignee.id;
      body = greet(`${draft.resolution}\n\nI am marking this ticket as solved; just reply if anything else comes up.`, requester, assignee);
    } else if (rng.chance(0.3)) {
      authorId = assignee.id;
      body = rng.pick(draft.notes);
      isPublic = false;
    } else if (!lastPublicByAgent) {
      authorId = assignee.id;
      body = greet(draft.replies[reply % draft.replies.length] ?? draft.resolution, requester, assignee);
      reply++;
      lastPublicByAgent = true;
    } else {
      authorId = requester.deskUserId;
      body = rng.pick(draft.followUps);
      lastPublicByAgent = false;
    }
    comments.push({ id: 0, authorId, body, public: isPublic, ms, createdAt: instantOf(ms) });
  }
  return comments;
}

function buildSlaPolicies(): SlaPolicy[] {
  // Minutes per priority: [first reply, next reply, resolution].
  const plans: readonly {
    tier: SupportTier;
    businessHours: boolean;
    targets: Record<TicketPriority, readonly [number, number, number]>;
  }[] = [
    {
      tier: 'Premium',
      businessHours: false,
      targets: { urgent: [60, 120, 240], high: [120, 240, 480], normal: [240, 480, 1440], low: [480, 960, 2880] },
    },
    {
      tier: 'Standard',
      businessHours: true,
      targets: { urgent: [120, 240, 480], high: [240, 480, 1440], normal: [480, 960, 2880], low: [960, 1440, 5760] },
    },
    {
      tier: 'Basic',
      businessHours: true,
      targets: { urgent: [240, 480, 1440], high: [480, 960, 2880], normal: [1440, 2880, 5760], low: [2880, 2880, 10080] },
    },
  ];
  const priorities: readonly TicketPriority[] = ['urgent', 'high', 'normal', 'low'];
  return plans.map((plan, i) => ({
    id: DESK_IDS.sla + i,
    title: `${plan.tier} support`,
    description: `Targets for customers with a ${plan.tier} support contract${plan.businessHours ? ', in business hours' : ', around the clock'}.`,
    position: i + 1,
    filterTag: TIER_TAG[plan.tier],
    metrics: priorities.flatMap((priority) => {
      const [first, next, resolution] = plan.targets[priority];
      return [
        { priority, metric: 'first_reply_time' as const, target: first, business_hours: plan.businessHours },
        { priority, metric: 'next_reply_time' as const, target: next, business_hours: plan.businessHours },
        { priority, metric: 'requester_wait_time' as const, target: resolution, business_hours: plan.businessHours },
      ];
    }),
  }));
}
