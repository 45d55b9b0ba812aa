import { badUserInput } from '../../../../platform/errors.ts';
import { maxLength } from '../../../../platform/validate.ts';
import type { ErpConnector, ErpCustomerRecord } from '../connectors/types.ts';

export type OnboardingErrorCode =
  | 'MISSING_BILLING_ADDRESS'
  | 'INVALID_BILLING_ADDRESS'
  | 'CUSTOMER_BLOCKED'
  | 'MISSING_BILLING_EMAIL'
  | 'INVALID_BILLING_EMAIL'
  | 'MISSING_TAX_ID'
  | 'INVALID_TAX_ID'
  | 'INVALID_CURRENCY'
  | 'DUPLICATE_CUSTOMER';

/** Why the ERP will not take the account as a customer: a code, a message, the field concerned. */
export interface OnboardingError {
  code: OnboardingErrorCode;
  message: string;
  field: string | null;
}

export interface OnboardingRequest {
  /** The CRM account: the same reference finds the customer made before. */
  reference: string;
  name: string;
  email: string | null;
  phone: string | null;
  address: { street: string | null; city: string | null; state: string | null; postalCode: string | null; country: string | null } | null;
  currency: string;
  taxRegistrationNumber: string | null;
}

export interface OnboardingOutcome {
  customer: ErpCustomerRecord | null;
  errors: OnboardingError[];
  /** Whether this call created the customer (false: found, made by an earlier call with the reference). */
  created: boolean;
}

/** What Business Central's customer fields hold (characters). */
const ADDRESS_LENGTHS = { street: 100, city: 30, state: 30, postalCode: 20 } as const;

/** The payment terms a new customer gets until finance sets others. */
export const NEW_CUSTOMER_PAYMENT_TERMS = 'NET30';

/** ISO 3166 codes of the country names the CRM's picklist holds, for the countries served. */
const COUNTRY_CODES: Readonly<Record<string, string>> = {
  'UNITED STATES': 'US',
  'UNITED KINGDOM': 'GB',
  GERMANY: 'DE',
  FRANCE: 'FR',
  NETHERLANDS: 'NL',
  ITALY: 'IT',
  SPAIN: 'ES',
};

/** The shape of a tax registration number per country (VAT numbers in the EU, the EIN in the US). */
const TAX_ID_FORMATS: Readonly<Record<string, { pattern: RegExp; example: string }>> = {
  US: { pattern: /^\d{2}-?\d{7}$/, example: '12-3456789' },
  GB: { pattern: /^GB(\d{9}|\d{12})$/, example: 'GB123456789' },
  DE: { pattern: /^DE\d{9}$/, example: 'DE123456789' },
  FR: { pattern: /^FR[0-9A-Z]{2}\d{9}$/, example: 'FR12345678901' },
  NL: { pattern: /^NL\d{9}B\d{2}$/, example: 'NL123456789B01' },
  IT: { pattern: /^IT\d{11}$/, example: 'IT12345678901' },
  ES: { pattern: /^ES[0-9A-Z]\d{7}[0-9A-Z]$/, example: 'ESB12345678' },
};

/** A country as the ERP keeps it (ISO 3166 alpha-2), from a code or a name. */
export function countryCode(country: string | null): string | null {
  if (!country) return null;
  const trimmed = country.trim().toUpperCase();
  if (/^[A-Z]{2}$/.test(trimmed)) return trimmed;
  return COUNTRY_CODES[trimmed] ?? null;
}

/**
 * Customer onboarding, as the ERP decides it: an account becomes a customer only with a complete
 * billing profile (address, billing email, a currency), a tax registration number of its
 * country's shape, and no existing customer with the same tax number or the same name at the
 * same postal code. The customer is created with the next number of the series; the reference
 * (the CRM account) finds it again on a retry, before any duplicate check.
 */
export class CustomerOnboarding {
  constructor(private readonly deps: { erp: ErpConnector }) {}

  async onboard(request: OnboardingRequest): Promise<OnboardingOutcome> {
    checkLimits(request);
    const { erp } = this.deps;
    const earlier = await erp.customerByReference(request.reference);
    // Made before for this account; blocked since (an onboarding undone): finance decides.
    if (earlier?.creditHold)
      return {
        customer: null,
        created: false,
        errors: [
          {
            code: 'CUSTOMER_BLOCKED',
            message: `ERP customer ${earlier.id} was made for this account and is blocked; finance must release it.`,
            field: null,
          },
        ],
      };
    if (earlier) return { customer: earlier, errors: [], created: false };
    const errors: OnboardingError[] = [];
    const fail = (code: OnboardingErrorCode, message: string, field: string | null = null) => errors.push({ code, message, field });

    const address = request.address;
    const country = countryCode(address?.country ?? null);
    const missing = (['street', 'city', 'postalCode'] as const).filter((field) => !address?.[field]?.trim());
    if (!address || missing.length || !country)
      fail(
        'MISSING_BILLING_ADDRESS',
        !country && address?.country
          ? `The billing country ${address.country} is not one the ERP serves.`
          : `The billing address lacks ${[...missing, ...(country ? [] : ['country'])].join(', ')}.`,
        'address',
      );
    for (const field of ['street', 'city', 'state', 'postalCode'] as const) {
      const value = address?.[field]?.trim() ?? '';
      if (value.length > ADDRESS_LENGTHS[field])
        fail(
          'INVALID_BILLING_ADDRESS',
          `The billing ${field} holds at most ${ADDRESS_LENGTHS[field]} characters in the ERP (got ${value.length}).`,
          'address',
        );
    }
    const email = request.email?.trim() ?? '';
    if (!email) fail('MISSING_BILLING_EMAIL', 'An invoice address (billing email) is needed.', 'email');
    else if (!/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(email)) fail('INVALID_BILLING_EMAIL', `${email} is not an email address.`, 'email');
    if (!/^[A-Z]{3}$/.test(request.currency)) fail('INVALID_CURRENCY', `${request.currency} is not an ISO 4217 currency code.`, 'currency');
    const taxId = request.taxRegistrationNumber?.replace(/\s+/g, '').toUpperCase() ?? '';
    if (!taxId) fail('MISSING_TAX_ID', 'A tax registration number is needed to invoice the customer.', 'taxRegistrationNumber');
    else if (country && TAX_ID_FORMATS[country] && !TAX_ID_FORMATS[country].pattern.test(taxId))
      fail(
        'INVALID_TAX_ID',
        `${taxId} is not a ${country} tax registration number (like ${TAX_ID_FORMATS[country].example}).`,
        'taxRegistrationNumber',
      );

    // Duplicates: the same tax number, or the same name at the same postal code.
    const [sameTaxId, sameName] = await Promise.all([
      taxId ? erp.customersByTaxRegistrationNumbers([taxId]) : Promise.resolve([]),
      address?.postalCode ? erp.customersByNameAndPostalCode(request.name, address.postalCode) : Promise.resolve([]),
    ]);
    for (const existing of sameTaxId)
      fail(
        'DUPLICATE_CUSTOMER',
        `Customer ${existing.id} (${existing.name}) has the tax registration number ${taxId}.`,
        'taxRegistrationNumber',
      );
    for (const existing of sameName.filter((c) => !sameTaxId.some((t) => t.id === c.id)))
      fail('DUPLICATE_CUSTOMER', `Customer ${existing.id} has the name ${existing.name} at postal code ${address!.postalCode}.`, 'name');
    if (errors.length) return { customer: null, errors, created: false };

    const customer = await erp.createCustomer({
      reference: request.reference,
      name: request.name.trim(),
      email,
      phone: request.phone,
      address: {
        street: address!.street!.trim(),
        city: address!.city!.trim(),
        state: address!.state?.trim() || null,
        postalCode: address!.postalCode!.trim(),
        country: country!,
      },
      currency: request.currency,
      taxRegistrationNumber: taxId,
      paymentTermsCode: NEW_CUSTOMER_PAYMENT_TERMS,
      taxArea: address!.state?.trim() ? `${country}-${address!.state.trim()}` : country!,
    });
    return { customer, errors: [], created: true };
  }

  /** Blocks a customer for everything (an onboarding undone); false when there is none. */
  block(number: string): Promise<boolean> {
    return this.deps.erp.blockCustomer(number);
  }
}

function checkLimits(request: OnboardingRequest): void {
  if (request.reference.trim() === '' || request.reference.length > 128)
    throw badUserInput('input.reference', 'must be 1 to 128 characters');
  if (request.name.trim() === '') throw badUserInput('input.name', 'must not be blank');
  maxLength('input.name', request.name, 100);
  maxLength('input.email', request.email, 80);
  maxLength('input.phone', request.phone, 30);
  maxLength('input.taxRegistrationNumber', request.taxRegistrationNumber, 20);
  for (const field of ['street', 'city', 'state', 'postalCode', 'country'] as const)
    maxLength(`input.address.${field}`, request.address?.[field], 100);
}
