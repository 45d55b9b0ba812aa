import type { Resolvers } from '../__generated__/resolvers-types.ts';
import { Query } from './Query.ts';
import { Workflow, WorkflowStep } from './Workflow.ts';

export const resolvers: Resolvers = { Query, Workflow, WorkflowStep };
