import type {
  AddressRecord,
  BillingFrequency,
  ContractStatus,
  CustomerSegment,
  OnboardingStatus,
  SubscriptionStatus,
  SupportTier,
} from './types.ts';

// Salesforce's picklist values and ours, for every adapter that reads Salesforce-shaped
// records (the embedded CRM keeps Salesforce's values too).

export const SEGMENTS: Readonly<Record<string, CustomerSegment>> = {
  Enterprise: 'ENTERPRISE',
  'Mid-Market': 'MID_MARKET',
  'Small Business': 'SMALL_BUSINESS',
};

export const CONTRACT_STATUSES: Readonly<Record<string, ContractStatus>> = { Draft: 'DRAFT', Activated: 'ACTIVATED', Expired: 'EXPIRED' };

export const TIERS: Readonly<Record<string, SupportTier>> = { Basic: 'BASIC', Standard: 'STANDARD', Premium: 'PREMIUM' };

/** The picklist values of Subscription__c.Status__c and Billing_Frequency__c. */
export const SUBSCRIPTION_STATUSES: Readonly<Record<string, SubscriptionStatus>> = {
  Draft: 'DRAFT',
  Active: 'ACTIVE',
  Suspended: 'SUSPENDED',
  Expired: 'EXPIRED',
};
export const FREQUENCIES: Readonly<Record<string, BillingFrequency>> = { Monthly: 'MONTHLY', Annual: 'ANNUAL' };

/** The picklist values of Account.Onboarding_Status__c. */
export const ONBOARDING_TO_CRM: Readonly<Record<OnboardingStatus, string>> = { PENDING: 'Pending', ACTIVE: 'Active', REJECTED: 'Rejected' };
export const ONBOARDING_FROM_CRM: Readonly<Record<string, OnboardingStatus>> = {
  Pending: 'PENDING',
  Active: 'ACTIVE',
  Rejected: 'REJECTED',
};

/** An Account's billing address fields, as Salesforce names them. */
export interface BillingAddressFields {
  BillingStreet: string | null;
  BillingCity: string | null;
  BillingState: string | null;
  BillingPostalCode: string | null;
  BillingCountry: string | null;
}

/** The billing address of an Account; null when it has none at all. */
export function billingAddressOf(row: BillingAddressFields): AddressRecord | null {
  const address = [row.BillingStreet, row.BillingCity, row.BillingState, row.BillingPostalCode, row.BillingCountry];
  return address.some(Boolean)
    ? {
        street: row.BillingStreet,
        city: row.BillingCity,
        state: row.BillingState,
        postalCode: row.BillingPostalCode,
        country: row.BillingCountry,
      }
    : null;
}
