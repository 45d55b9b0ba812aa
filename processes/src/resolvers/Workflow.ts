import type { WorkflowEvent, WorkflowPhase, WorkflowResolvers, WorkflowStepResolvers } from '../__generated__/resolvers-types.ts';
import type { WorkflowInstance } from '../../../platform/workflow/engine.ts';

/** A customer the process service knows only by its number; the CRM and the ERP resolve the rest. */
export interface CustomerRefModel {
  id: string;
}

/** A sales order the process service knows only by its number; the ERP resolves the rest. */
export interface OrderRefModel {
  number: string;
}

/** A return order the process service knows only by its number; the ERP resolves the rest. */
export interface ReturnAuthorizationRefModel {
  number: string;
}

const iso = (ms: number) => new Date(ms).toISOString();
const phaseOf = (phase: WorkflowInstance['phase']): WorkflowPhase => (phase === 'forward' ? 'FORWARD' : 'COMPENSATING');

export const Workflow: WorkflowResolvers = {
  __resolveReference: (reference, { details }) => details.load(reference.id),
  state: (workflow) => workflow.state.toUpperCase() as Uppercase<typeof workflow.state>,
  phase: (workflow) => phaseOf(workflow.phase),
  customer: (workflow) => (workflow.customerId ? { id: workflow.customerId } : null),
  // Only while a later attempt is scheduled: a settled or parked instance runs no step next.
  nextRunAt: (workflow) => (workflow.state === 'waiting' || workflow.state === 'running' ? iso(workflow.nextRunAt) : null),
  steps: async (workflow, _args, { details }) => [...((await details.load(workflow.id))?.steps ?? [])],
  history: async (workflow, _args, { details }): Promise<WorkflowEvent[]> =>
    ((await details.load(workflow.id))?.history ?? []).map((entry) => ({ at: iso(entry.at), event: entry.event, detail: entry.detail })),
  createdAt: (workflow) => iso(workflow.createdAt),
  updatedAt: (workflow) => iso(workflow.updatedAt),
};

export const WorkflowStep: WorkflowStepResolvers = {
  phase: (step) => phaseOf(step.phase),
  state: (step) => step.state.toUpperCase() as Uppercase<typeof step.state>,
  startedAt: (step) => (step.startedAt === null ? null : iso(step.startedAt)),
  finishedAt: (step) => (step.finishedAt === null ? null : iso(step.finishedAt)),
};
