import { createHash } from 'node:crypto';
import { BASE62, salesforceSuffix } from '../../subgraphs/crm/src/connectors/embedded/ids.ts';
import type { Contract, World } from './world.ts';

/** A Salesforce-style 18-character Id derived from a name, the same on every seed. */
export function derivedId(prefix: string, name: string): string {
  const digest = createHash('sha256').update(name).digest();
  let id15 = prefix;
  for (let i = 0; id15.length < 15; i++) id15 += BASE62.charAt(digest[i]! % 62);
  return id15 + salesforceSuffix(id15);
}

/** The support plans subscriptions are billed as: an ERP item per tier, priced per unit and month. */
export const PLANS = {
  Basic: { number: 'CARE-BASIC', name: 'Care plan Basic (per unit and month)', cents: 2_500 },
  Standard: { number: 'CARE-STANDARD', name: 'Care plan Standard (per unit and month)', cents: 6_000 },
  Premium: { number: 'CARE-PREMIUM', name: 'Care plan Premium (per unit and month)', cents: 12_000 },
} as const;

/** One subscription per contract: its plan by the contract's tier, billed monthly or (long terms) annually. */
export interface SeedSubscription {
  id: string;
  contract: Contract;
  plan: (typeof PLANS)[keyof typeof PLANS];
  quantity: number;
  status: 'Active' | 'Expired' | 'Draft';
  frequency: 'Monthly' | 'Annual';
  /** Per unit and billing period. */
  unitPriceCents: number;
}

/** The demo subscriptions, derived from the contracts (no random draw: the rest of the world is unchanged). */
export function subscriptionsOf(world: World): SeedSubscription[] {
  return world.contracts.map((contract, i) => {
    const plan = PLANS[contract.tier];
    const frequency = contract.termMonths >= 24 ? 'Annual' : 'Monthly';
    const inTerm = contract.status === 'Activated' && contract.startDate <= world.asOf && contract.endDate >= world.asOf;
    return {
      id: derivedId('a0S', contract.number),
      contract,
      plan,
      quantity: 1 + (i % 5),
      status: inTerm ? 'Active' : contract.status === 'Draft' ? 'Draft' : 'Expired',
      frequency,
      unitPriceCents: frequency === 'Annual' ? plan.cents * 12 : plan.cents,
    };
  });
}

/** The first of the month after `date` (YYYY-MM-DD): when an active schedule invoices next. */
export function nextMonthStart(date: string): string {
  const day = new Date(`${date.slice(0, 7)}-01T00:00:00Z`);
  day.setUTCMonth(day.getUTCMonth() + 1);
  return day.toISOString().slice(0, 10);
}
