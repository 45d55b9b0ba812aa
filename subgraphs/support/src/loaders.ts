import { listLoader, listLoaderWithArgs, recordLoader, recordLoaderWithArgs } from '../../../platform/loaders.ts';
import DataLoader from 'dataloader';
import type { CaseParts, CaseStatus, SupportConnector } from './connectors/types.ts';

/** One DataLoader per entity and list edge; a new set per request. */
export function createLoaders(desk: SupportConnector) {
  const loaders = {
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

  /**
   * A case with the parts its query selects, read in one port call, the part loaders primed
   * with what it returned: its fields then resolve from the loaders without another trip.
   */
  const caseGraph = recordLoaderWithArgs(
    async (ids: readonly string[], parts: CaseParts) => {
      const graph = await desk.caseGraphsByIds(ids, parts);
      for (const record of graph.cases) {
        loaders.case.prime(record.id, record);
        if (parts.openCaseCount && record.customerId !== null) {
          loaders.openCaseCount.prime(record.customerId, graph.openCaseCounts.get(record.customerId) ?? 0);
        }
      }
      for (const agent of graph.agents) loaders.agent.prime(agent.id, agent);
      if (parts.comments) {
        const byCase = new Map<string, typeof graph.comments>(ids.map((id) => [id, []]));
        for (const comment of graph.comments) byCase.get(comment.caseId)?.push(comment);
        for (const [id, comments] of byCase) loaders.comments.prime(id, comments);
      }
      return graph.cases;
    },
    (record) => record.id,
  );

  return { ...loaders, caseGraph };
}

export type Loaders = ReturnType<typeof createLoaders>;
