import type { ContractStatus, CustomerSegment, SupportTier } from './types.ts';

// Salesforce's picklist values and ours, for every adapter that reads Salesforce-shaped
// records (the embedded CRM keeps Salesforce's values too).

export const SEGMENTS: Readonly<Record<string, CustomerSegment>> = {
  Enterprise: 'ENTERPRISE',
  'Mid-Market': 'MID_MARKET',
  'Small Business': 'SMALL_BUSINESS',
};

export const CONTRACT_STATUSES: Readonly<Record<string, ContractStatus>> = { Draft: 'DRAFT', Activated: 'ACTIVATED', Expired: 'EXPIRED' };

export const TIERS: Readonly<Record<string, SupportTier>> = { Basic: 'BASIC', Standard: 'STANDARD', Premium: 'PREMIUM' };
