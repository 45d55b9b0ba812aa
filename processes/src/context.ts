import DataLoader from 'dataloader';
import type { Identity } from '../../platform/identity.ts';
import type { Logger } from '../../platform/logger.ts';
import type { RequestScope } from '../../platform/request-context.ts';
import { baseContext, type BaseContext } from '../../platform/subgraph-context.ts';
import type { Clock } from '../../platform/time.ts';
import type { WorkflowDetail, WorkflowEngine } from '../../platform/workflow/engine.ts';
import type { OnboardingRequests } from './workflows/onboarding.ts';
import type { QuoteToOrderRequests } from './workflows/quoteToOrder.ts';
import type { ReturnRequests } from './workflows/returns.ts';
import type { SubscriptionRequests } from './workflows/subscriptions.ts';

/** What every processes resolver gets: one instance per request. */
export interface Context extends BaseContext {
  readonly engine: WorkflowEngine;
  /** An instance with its steps and history, once per request however many fields ask. */
  readonly details: DataLoader<string, WorkflowDetail | null>;
  readonly returns: ReturnRequests;
  readonly quoteToOrder: QuoteToOrderRequests;
  readonly onboarding: OnboardingRequests;
  readonly subscriptions: SubscriptionRequests;
}

export function createContextFactory(deps: {
  engine: WorkflowEngine;
  returns: ReturnRequests;
  quoteToOrder: QuoteToOrderRequests;
  onboarding: OnboardingRequests;
  subscriptions: SubscriptionRequests;
  logger: Logger;
  clock: Clock;
}) {
  return async (_req: unknown, scope: RequestScope, identity: Identity): Promise<Context> => ({
    ...baseContext(deps, scope, identity),
    engine: deps.engine,
    returns: deps.returns,
    quoteToOrder: deps.quoteToOrder,
    onboarding: deps.onboarding,
    subscriptions: deps.subscriptions,
    details: new DataLoader((ids) => Promise.all(ids.map((id) => deps.engine.get(id)))),
  });
}
