import type { CasePriority, CaseStatus, CaseType, SupportTier } from './types.ts';

// Zendesk's values and ours, for every adapter that reads Zendesk-shaped records (the embedded
// desk keeps Zendesk's values too).

export const STATUS_FROM_DESK: Readonly<Record<string, CaseStatus>> = {
  new: 'NEW',
  open: 'OPEN',
  pending: 'PENDING',
  hold: 'ON_HOLD',
  solved: 'SOLVED',
  closed: 'CLOSED',
};

export const STATUS_TO_DESK: Readonly<Record<CaseStatus, string>> = {
  NEW: 'new',
  OPEN: 'open',
  PENDING: 'pending',
  ON_HOLD: 'hold',
  SOLVED: 'solved',
  CLOSED: 'closed',
};

export const PRIORITY_FROM_DESK: Readonly<Record<string, CasePriority>> = { low: 'LOW', normal: 'NORMAL', high: 'HIGH', urgent: 'URGENT' };
export const PRIORITY_TO_DESK: Readonly<Record<CasePriority, string>> = { LOW: 'low', NORMAL: 'normal', HIGH: 'high', URGENT: 'urgent' };
export const TYPE_FROM_DESK: Readonly<Record<string, CaseType>> = {
  question: 'QUESTION',
  incident: 'INCIDENT',
  problem: 'PROBLEM',
  task: 'TASK',
};

/** Organization tags that choose a support tier's SLA policy. */
export const TIER_TAG: Readonly<Record<SupportTier, string>> = { BASIC: 'tier_basic', STANDARD: 'tier_standard', PREMIUM: 'tier_premium' };

/** The tiers from lowest to highest: an organization's tag is its highest active one. */
export const TIER_ORDER: readonly SupportTier[] = ['BASIC', 'STANDARD', 'PREMIUM'];
