import type { Logger } from '../../../platform/logger.ts';
import type { ServiceClient } from '../../../platform/service-client.ts';
import type { Clock } from '../../../platform/time.ts';
import type { WorkflowDefinition } from '../../../platform/workflow/engine.ts';
import type { ProcessesConfig } from '../config.ts';
import { onboardingWorkflow } from './onboarding.ts';
import { quoteToOrderWorkflow } from './quoteToOrder.ts';
import { returnWorkflow, type ReturnDeps } from './returns.ts';
import { subscriptionWorkflow } from './subscriptions.ts';

/** What a workflow's steps reach systems with: only the graph, as the service's own identity. */
export interface WorkflowDeps {
  readonly graph: ServiceClient;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly returns: Pick<ProcessesConfig['returns'], 'agentLimit' | 'agentLimitWindowHours'> & {
    readonly approvals: ReturnDeps['approvals'];
  };
}

/** The workflows this service runs, each a type with its ordered steps (docs/workflows.md). */
export function workflowsOf(deps: WorkflowDeps): WorkflowDefinition[] {
  return [
    onboardingWorkflow({ graph: deps.graph, logger: deps.logger }),
    subscriptionWorkflow({ graph: deps.graph, logger: deps.logger, clock: deps.clock }),
    quoteToOrderWorkflow({ graph: deps.graph, logger: deps.logger }),
    returnWorkflow({
      graph: deps.graph,
      logger: deps.logger,
      clock: deps.clock,
      ...deps.returns,
    }),
  ];
}
