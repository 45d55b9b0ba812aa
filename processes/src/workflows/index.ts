import type { Logger } from '../../../platform/logger.ts';
import type { ServiceClient } from '../../../platform/service-client.ts';
import type { Clock } from '../../../platform/time.ts';
import type { WorkflowDefinition } from '../../../platform/workflow/engine.ts';

/** What a workflow's steps reach systems with: only the graph, as the service's own identity. */
export interface WorkflowDeps {
  readonly graph: ServiceClient;
  readonly logger: Logger;
  readonly clock: Clock;
}

/** The workflows this service runs, each a type with its ordered steps (docs/workflows.md). */
export function workflowsOf(_deps: WorkflowDeps): WorkflowDefinition[] {
  return [];
}
