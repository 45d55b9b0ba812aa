import type { Owners, PolicyTable } from '../../platform/authorization.ts';
import { AGENTS } from '../../platform/identity.ts';

/** Who watches the workflows: support leads (their escalations) and the operators who run them. */
const WATCHERS = ['support_lead', 'integration_operator'] as const;
/** Who decides on a parked workflow (retry, skip, compensate): the operators who run them, not the leads who watch. */
const OPERATORS = ['integration_operator'] as const;
/** Who turns won opportunities into orders. */
const ORDER_DESK = ['sales_rep', 'finance'] as const;

/**
 * Who sees what of the process service. A field not listed is visible to no one; `integration`
 * sees all. A workflow's input is not in the graph: it may hold what an operator may not see
 * (case notes, credit data).
 */
export const PROCESSES_POLICY: PolicyTable = {
  'Query.workflow': [...WATCHERS],
  'Query.workflows': [...WATCHERS],
  'WorkflowConnection.*': [...WATCHERS],
  'WorkflowPageInfo.*': [...WATCHERS],
  'Workflow.*': [...WATCHERS],
  'WorkflowStep.*': [...WATCHERS],
  'WorkflowEvent.*': [...WATCHERS],
  'Customer.id': [...WATCHERS, ...ORDER_DESK],

  // Returns: agents authorize them (up to a limit, leads any) and see the workflow's id and state.
  'Mutation.createReturnAuthorization': [...AGENTS],
  'CreateReturnAuthorizationPayload.*': [...AGENTS],
  'ReturnAuthorizationError.*': [...AGENTS],
  'ReturnAuthorization.number': [...AGENTS],
  // Quote to order: sales reps and finance's order desk turn won opportunities into orders.
  'Mutation.convertOpportunityToOrder': [...ORDER_DESK],
  'ConvertOpportunityToOrderPayload.*': [...ORDER_DESK],
  'QuoteToOrderError.*': [...ORDER_DESK],
  'Order.number': [...ORDER_DESK],

  // Onboarding: sales and finance make accounts customers.
  'Mutation.onboardAccount': [...ORDER_DESK],
  'OnboardAccountPayload.*': [...ORDER_DESK],
  'AccountOnboardingError.*': [...ORDER_DESK],

  // Subscriptions: sales and finance carry out the changes made in the CRM.
  'Mutation.applySubscriptionChange': [...ORDER_DESK],
  'ApplySubscriptionChangePayload.*': [...ORDER_DESK],
  'SubscriptionChangeError.*': [...ORDER_DESK],

  // The exception queue: an operator retries, skips or compensates a parked workflow.
  'Mutation.resolveWorkflow': [...OPERATORS],
  'ResolveWorkflowPayload.*': [...OPERATORS],
  'ResolveWorkflowError.*': [...OPERATORS],

  // Who starts a workflow sees its id and state.
  'Workflow.id': [...WATCHERS, ...AGENTS, ...ORDER_DESK],
  'Workflow.state': [...WATCHERS, ...AGENTS, ...ORDER_DESK],
};

/** No portal customer reaches a workflow: nothing is owned. */
export const PROCESSES_OWNERS: Owners = {};
