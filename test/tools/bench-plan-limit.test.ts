import { readFileSync } from 'node:fs';
import type { FetchNode, PlanNode, QueryPlan } from '@apollo/query-planner';
import { OperationTypeNode } from 'graphql';
import { describe, expect, it } from 'vitest';
import { buildQueryPlan, formatPlanSteps, planLimit, sequentialSteps } from '../../tools/bench/plan-limit.ts';

/** The physical limit the latency benchmark compares gateways against, walked from query plans. */
describe('plan limit', () => {
  const fetch = (serviceName: string): FetchNode => ({
    kind: 'Fetch',
    serviceName,
    operation: '{ __typename }',
    operationName: undefined,
    operationKind: OperationTypeNode.QUERY,
  });
  const flatten = (path: string, node: PlanNode): PlanNode => ({ kind: 'Flatten', path: path.split('.'), node });
  const latencies = { crm: 80, erp: 120, support: 60 };

  it('sums a sequence, takes the slowest of parallel fetches and sees through Flatten', () => {
    const plan: QueryPlan = {
      kind: 'QueryPlan',
      node: {
        kind: 'Sequence',
        nodes: [
          fetch('support'),
          {
            kind: 'Parallel',
            nodes: [
              flatten('case.customer', fetch('erp')),
              {
                kind: 'Sequence',
                nodes: [flatten('case.customer', fetch('crm')), flatten('case.customer.activeContract', fetch('support'))],
              },
            ],
          },
        ],
      },
    };
    // support, then the slower of erp (120) and crm → support (80 + 60).
    expect(planLimit(plan, latencies)).toBe(60 + 140);
    expect(sequentialSteps(plan)).toBe(3);
    expect(planLimit(plan, { ...latencies, erp: 500 })).toBe(560);
    expect(planLimit(plan, {})).toBe(0);
  });

  it('takes the worse branch of a condition, and a deferred part after its primary', () => {
    const condition: PlanNode = { kind: 'Condition', condition: 'withOrder', ifClause: fetch('erp'), elseClause: fetch('crm') };
    expect(planLimit(condition, latencies)).toBe(120);
    const defer: PlanNode = {
      kind: 'Defer',
      primary: { node: fetch('support') },
      deferred: [
        { depends: [], queryPath: [], node: fetch('crm') },
        { depends: [], queryPath: [], node: fetch('erp') },
      ],
    };
    expect(planLimit(defer, latencies)).toBe(60 + 120);
    expect(planLimit({ kind: 'QueryPlan' }, latencies)).toBe(0);
  });

  it('walks the real CaseContext plan: several round trips, between one latency and all of them at every step', () => {
    const sdl = readFileSync(new URL('../../schema/supergraph.graphql', import.meta.url), 'utf8');
    const operation = readFileSync(new URL('../../schema/operations/agent-console/CaseContext.graphql', import.meta.url), 'utf8');
    const plan = buildQueryPlan(sdl, operation, 'CaseContext');
    const steps = sequentialSteps(plan);
    const limit = planLimit(plan, latencies);
    const all = Object.values(latencies);
    expect(steps).toBeGreaterThanOrEqual(2);
    expect(limit).toBeGreaterThanOrEqual(Math.max(...all));
    expect(limit).toBeLessThanOrEqual(all.reduce((sum, ms) => sum + ms, 0) * steps);
    const lines = formatPlanSteps(plan, latencies);
    expect(lines[0]).toBe(`Sequence (${limit} ms)`);
    expect(lines).toContain('  Fetch support (60 ms)');
    expect(lines.some((line) => /Fetch erp → case\.order \(120 ms\)/.test(line))).toBe(true);
  });
});
