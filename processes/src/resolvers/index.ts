import type { Resolvers } from '../__generated__/resolvers-types.ts';
import { Mutation } from './Mutation.ts';
import { Query } from './Query.ts';
import { Workflow, WorkflowStep } from './Workflow.ts';

export const resolvers: Resolvers = { Query, Mutation, Workflow, WorkflowStep };
