import type { EventDraft } from '../../../../platform/events/cloudevent.ts';
import type { ChangeDraft, LoggedChange } from '../../../../platform/events/sqlite-change-log.ts';
import { toDecimal } from '../../../../platform/sql.ts';
import type { CrmConnector } from '../connectors/types.ts';
import { CONTRACT_STATUSES, FREQUENCIES, ONBOARDING_FROM_CRM, SUBSCRIPTION_STATUSES, TIERS } from '../connectors/vocabulary.ts';
import {
  accountUpdated,
  contactUpdated,
  contractUpdated,
  customerUpdated,
  opportunityUpdated,
  subscriptionUpdated,
  type ChangeFacts,
} from './events.ts';

/**
 * The events of the embedded CRM's logged changes (connectors/embedded/tables.ts names the
 * tables and the columns kept). Each event tells the record as the change left it, from the
 * columns the log kept; what the log does not hold is read through the connector once per
 * batch: the customer numbers of the accounts named, and an opportunity whose products changed.
 */
export function embeddedCrmDrafts(connector: CrmConnector) {
  return async (changes: readonly LoggedChange[]): Promise<ChangeDraft[]> => {
    const accountIds = new Set<string>();
    const contractIds = new Set<string>();
    const lineOpportunities = new Set<string>();
    for (const change of changes) {
      for (const row of [change.row, change.previous]) {
        for (const column of ['AccountId', 'Account__c']) if (typeof row?.[column] === 'string') accountIds.add(row[column]);
      }
      if (change.table === 'Subscription__c' && typeof change.row.Contract__c === 'string') contractIds.add(change.row.Contract__c);
      if (change.table === 'OpportunityLineItem' && typeof change.row.OpportunityId === 'string')
        lineOpportunities.add(change.row.OpportunityId);
    }
    const [accounts, contracts, opportunities] = await Promise.all([
      accountIds.size ? connector.accountsByIds([...accountIds]) : [],
      contractIds.size ? connector.contractsByCrmIds([...contractIds]) : [],
      lineOpportunities.size ? connector.opportunitiesByIds([...lineOpportunities]) : [],
    ]);
    const numbers = new Map(accounts.map((account) => [account.id, account.customerId]));
    const contractNumbers = new Map(contracts.map((contract) => [contract.crmId, contract.id]));
    const opportunityById = new Map(opportunities.map((opportunity) => [opportunity.id, opportunity]));
    const customerOf = (accountId: unknown) => (typeof accountId === 'string' ? (numbers.get(accountId) ?? null) : null);

    const drafts: ChangeDraft[] = [];
    for (const change of changes) {
      const add = (draft: EventDraft) => drafts.push({ ...draft, change });
      const { row, previous } = change;
      const facts: ChangeFacts = { changes: change.changed, deleted: change.operation === 'DELETE' };
      // The customer a record left, when an update moved it to another account: its lists changed too.
      const formerCustomer = (column: string, kind: string) => {
        const former = previous && previous[column] !== row[column] ? customerOf(previous[column]) : null;
        if (former && former !== customerOf(row[column])) add(customerUpdated(former, [kind]));
      };
      switch (change.table) {
        case 'Account': {
          const customerId = text(row.AccountNumber);
          const before = previous ? text(previous.AccountNumber) : customerId;
          if (customerId) add(customerUpdated(customerId, change.changed));
          if (before && before !== customerId) add(customerUpdated(before, ['AccountNumber']));
          // A prospect is told as an account; so is the moment an account gets its number, and its deletion.
          if (!customerId || before !== customerId || facts.deleted)
            add(
              accountUpdated(
                {
                  accountId: String(row.Id),
                  customerId: before !== customerId ? customerId : null,
                  onboardingStatus: onboardingOf(row.Onboarding_Status__c),
                },
                facts,
              ),
            );
          break;
        }
        case 'Contact':
          add(contactUpdated(String(row.Id), customerOf(row.AccountId), facts));
          formerCustomer('AccountId', 'Contact');
          break;
        case 'Contract':
          add(
            contractUpdated(
              {
                id: String(row.ContractNumber),
                customerId: customerOf(row.AccountId),
                status: CONTRACT_STATUSES[String(row.Status)] ?? 'DRAFT',
                supportTier: TIERS[String(row.SupportTier__c)] ?? 'BASIC',
                startDate: text(row.StartDate),
                endDate: text(row.EndDate),
              },
              facts,
            ),
          );
          formerCustomer('AccountId', 'Contract');
          break;
        case 'Opportunity':
          add(
            opportunityUpdated(
              {
                id: String(row.Id),
                customerId: customerOf(row.AccountId),
                stage: text(row.StageName) ?? undefined,
                isClosed: Boolean(row.IsClosed),
                isWon: Boolean(row.IsWon),
                erpOrderNumber: text(row.ERP_Order_Number__c),
              },
              facts,
            ),
          );
          formerCustomer('AccountId', 'Opportunity');
          break;
        case 'OpportunityLineItem': {
          // Its products are part of the opportunity; one deleted with its lines is told by its own change.
          const opportunity = opportunityById.get(String(row.OpportunityId));
          if (opportunity) add(opportunityUpdated(opportunity, { changes: ['OpportunityLineItem'] }));
          break;
        }
        case 'Subscription__c':
          add(
            subscriptionUpdated(
              {
                id: String(row.Id),
                customerId: customerOf(row.Account__c),
                contractId: typeof row.Contract__c === 'string' ? (contractNumbers.get(row.Contract__c) ?? null) : null,
                plan: String(row.Plan_Code__c),
                quantity: Number(row.Quantity__c),
                tier: TIERS[String(row.Support_Tier__c)] ?? 'BASIC',
                status: SUBSCRIPTION_STATUSES[String(row.Status__c)] ?? 'DRAFT',
                startDate: text(row.Start_Date__c),
                endDate: text(row.End_Date__c),
                unitPrice: toDecimal(Number(row.Unit_Price__c)),
                frequency: FREQUENCIES[String(row.Billing_Frequency__c)] ?? 'MONTHLY',
                currency: text(row.CurrencyIsoCode) ?? 'USD',
              },
              facts,
            ),
          );
          formerCustomer('Account__c', 'Subscription__c');
          break;
      }
    }
    return drafts;
  };
}

function text(value: unknown): string | null {
  return typeof value === 'string' && value !== '' ? value : null;
}

/** As the adapter reads it: an account from before onboarding existed (no status) counts as active. */
function onboardingOf(value: unknown) {
  return typeof value === 'string' && value ? (ONBOARDING_FROM_CRM[value] ?? 'PENDING') : 'ACTIVE';
}
