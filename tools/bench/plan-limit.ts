import { operationFromDocument, Supergraph } from '@apollo/federation-internals';
import { QueryPlanner, type PlanNode, type QueryPlan, type SubscriptionNode } from '@apollo/query-planner';
import { parse } from 'graphql';

/**
 * The physical limit of an operation over slow systems: however fast a gateway is, it cannot
 * answer before the subgraph fetches its query plan must make one after the other have come
 * back. Walking the plan with each system's latency gives that floor (a fetch costs its system's
 * latency, a sequence the sum, parallel fetches the slowest), so a latency measurement can say how
 * far above the floor a gateway answers, not just how fast.
 */

/** Simulated latency per subgraph (service) name, in ms; a name not listed costs 0. */
export type Latencies = Readonly<Record<string, number>>;

type Node = PlanNode | SubscriptionNode;

/** The query plan @apollo/gateway would execute for one operation of a supergraph. */
export function buildQueryPlan(supergraphSdl: string, operation: string, operationName?: string): QueryPlan {
  const supergraph = Supergraph.build(supergraphSdl);
  const planner = new QueryPlanner(supergraph);
  const parsed = operationFromDocument(supergraph.apiSchema(), parse(operation), operationName ? { operationName } : {});
  return planner.buildQueryPlan(parsed);
}

/**
 * Least time, in ms, to run the plan when each fetch waits its service's latency: Sequence sums,
 * Parallel takes the slowest, Flatten is its node, Condition its worse branch, Defer its primary
 * part then its slowest deferred part (the last part to arrive).
 */
export function planLimit(plan: QueryPlan | Node | undefined, latencies: Latencies): number {
  return walk(plan, (node) => latencies[node.serviceName] ?? 0);
}

/** Fetches that must run one after another on the plan's longest chain (its depth in round trips). */
export function sequentialSteps(plan: QueryPlan | Node | undefined): number {
  return walk(plan, () => 1);
}

function walk(node: QueryPlan | Node | undefined, cost: (fetch: { serviceName: string }) => number): number {
  if (!node) return 0;
  const sum = (nodes: readonly (Node | undefined)[]) => nodes.reduce((total, child) => total + walk(child, cost), 0);
  const max = (nodes: readonly (Node | undefined)[]) => nodes.reduce((worst, child) => Math.max(worst, walk(child, cost)), 0);
  switch (node.kind) {
    case 'QueryPlan':
      return walk(node.node, cost);
    case 'Fetch':
      return cost(node);
    case 'Sequence':
      return sum(node.nodes);
    case 'Parallel':
      return max(node.nodes);
    case 'Flatten':
      return walk(node.node, cost);
    case 'Condition':
      return max([node.ifClause, node.elseClause]);
    case 'Defer':
      return walk(node.primary.node, cost) + max(node.deferred.map((deferred) => deferred.node));
    case 'Subscription':
      return walk(node.primary, cost) + walk(node.rest, cost);
  }
}

/**
 * The plan as indented lines, one per node, each fetch with its service, the path it fills and
 * its latency, each group with what it costs in all: what the limit is made of.
 */
export function formatPlanSteps(plan: QueryPlan | Node | undefined, latencies: Latencies): string[] {
  const lines: string[] = [];
  const visit = (node: QueryPlan | Node | undefined, depth: number, path: string): void => {
    if (!node) return;
    const indent = '  '.repeat(depth);
    const ms = (value: number) => `${Math.round(value)} ms`;
    switch (node.kind) {
      case 'QueryPlan':
        return visit(node.node, depth, path);
      case 'Flatten':
        return visit(node.node, depth, node.path.join('.'));
      case 'Fetch':
        lines.push(`${indent}Fetch ${node.serviceName}${path ? ` → ${path}` : ''} (${ms(latencies[node.serviceName] ?? 0)})`);
        return;
      case 'Sequence':
      case 'Parallel':
        lines.push(`${indent}${node.kind} (${ms(planLimit(node, latencies))})`);
        for (const child of node.nodes) visit(child, depth + 1, '');
        return;
      case 'Condition':
        lines.push(`${indent}Condition if $${node.condition} (${ms(planLimit(node, latencies))})`);
        visit(node.ifClause, depth + 1, '');
        visit(node.elseClause, depth + 1, '');
        return;
      case 'Defer':
        lines.push(`${indent}Defer (${ms(planLimit(node, latencies))})`);
        visit(node.primary.node, depth + 1, '');
        for (const deferred of node.deferred) visit(deferred.node, depth + 1, '');
        return;
      case 'Subscription':
        lines.push(`${indent}Subscription (${ms(planLimit(node, latencies))})`);
        visit(node.primary, depth + 1, '');
        visit(node.rest, depth + 1, '');
        return;
    }
  };
  visit(plan, 0, '');
  return lines;
}
