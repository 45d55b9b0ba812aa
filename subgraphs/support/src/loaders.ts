import { listLoader, listLoaderWithArgs, recordLoader } from '../../../platform/loaders.ts';
import DataLoader from 'dataloader';
import type { CaseStatus, SupportConnector } from './connectors/types.ts';

/** One DataLoader per entity and list edge; a new set per request. */
export function createLoaders(desk: SupportConnector) {
  return {
    case: recordLoader(
      (ids: readonly string[]) => desk.casesByIds(ids),
      (record) => record.id,
    ),
    agent: recordLoader(
      (ids: readonly string[]) => desk.agentsByIds(ids),
      (record) => record.id,
    ),
    comments: listLoader(
      (ids: readonly string[]) => desk.commentsByCaseIds(ids),
      (record) => record.caseId,
    ),
    casesByCustomer: listLoaderWithArgs(
      (ids: readonly string[], query: { statuses?: CaseStatus[] | undefined; limit: number }) => desk.casesByCustomerIds(ids, query),
      (record) => record.customerId ?? '',
    ),
    casesByContact: listLoaderWithArgs(
      (ids: readonly string[], limit: number) => desk.casesByContactIds(ids, limit),
      (record) => record.requesterContactId ?? '',
    ),
    casesByOrder: listLoader(
      (numbers: readonly string[]) => desk.casesByOrderNumbers(numbers),
      (record) => record.orderNumber ?? '',
    ),
    casesBySerial: listLoader(
      (serials: readonly string[]) => desk.casesBySerialNumbers(serials),
      (record) => record.serialNumber ?? '',
    ),
    entitlements: listLoader(
      (ids: readonly string[]) => desk.entitlementsByCustomerIds(ids),
      (record) => record.customerId,
    ),
    installedBase: listLoader(
      (ids: readonly string[]) => desk.installedBaseByCustomerIds(ids),
      (record) => record.customerId,
    ),
    openCaseCount: new DataLoader<string, number>(async (ids) => {
      const counts = await desk.openCaseCounts(ids);
      return ids.map((id) => counts.get(id) ?? 0);
    }),
    slaPolicy: recordLoader(
      (tiers: readonly ('BASIC' | 'STANDARD' | 'PREMIUM')[]) => desk.slaPoliciesByTiers(tiers),
      (record) => record.tier,
    ),
  };
}

export type Loaders = ReturnType<typeof createLoaders>;
