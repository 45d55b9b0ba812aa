import type { AgentRecord, CaseGraph, CaseParts, CaseRecord, SupportConnector } from './types.ts';

type Reads = Pick<SupportConnector, 'casesByIds' | 'commentsByCaseIds' | 'agentsByIds' | 'openCaseCounts'>;

const distinct = (values: readonly (string | null)[]) => [...new Set(values.filter((value): value is string => value !== null))];

/**
 * A case graph from the port's own reads: the comments need only the case ids, so they are read
 * beside the cases; the assignees and the customers' open-case counts follow the cases (their
 * ids come from them). `casesWithAgents`, when the desk sends the users with its tickets, stands
 * for the case read and spares the agent read.
 */
export async function composeCaseGraph(
  port: Reads,
  ids: readonly string[],
  parts: CaseParts,
  casesWithAgents?: (ids: readonly string[]) => Promise<{ cases: CaseRecord[]; agents: AgentRecord[] }>,
): Promise<CaseGraph> {
  const head = async () => {
    const found = casesWithAgents && parts.assignee ? await casesWithAgents(ids) : { cases: await port.casesByIds(ids), agents: null };
    const assignees = parts.assignee ? distinct(found.cases.map((record) => record.assigneeId)) : [];
    const customers = parts.openCaseCount ? distinct(found.cases.map((record) => record.customerId)) : [];
    const [agents, openCaseCounts] = await Promise.all([
      found.agents ?? (assignees.length ? port.agentsByIds(assignees) : []),
      customers.length ? port.openCaseCounts(customers) : new Map<string, number>(),
    ]);
    const wanted = new Set(assignees);
    return { cases: found.cases, agents: agents.filter((agent) => wanted.has(agent.id)), openCaseCounts };
  };
  const [graph, comments] = await Promise.all([head(), parts.comments ? port.commentsByCaseIds(ids) : []]);
  return { ...graph, comments };
}
