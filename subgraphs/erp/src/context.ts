import type { Identity } from '../../../platform/identity.ts';
import type { Logger } from '../../../platform/logger.ts';
import type { RequestScope } from '../../../platform/request-context.ts';
import { baseContext, type BaseContext } from '../../../platform/subgraph-context.ts';
import type { Clock } from '../../../platform/time.ts';
import type { ErpConnector } from './connectors/types.ts';
import { createLoaders, type Loaders } from './loaders.ts';
import type { CustomerOnboarding } from './customers/onboarding.ts';
import type { SubscriptionBilling } from './subscriptions/billing.ts';
import type { SalesOrders } from './orders/salesOrders.ts';
import type { ReturnOrders } from './returns/orders.ts';

/** What every erp resolver gets: one instance per request. */
export interface Context extends BaseContext {
  readonly loaders: Loaders;
  /** Return orders: checked on ERP facts and created (mutations only; absent where a suite tests reads). */
  readonly returns: ReturnOrders | null;
  /** Sales orders: checked on ERP facts, created and cancelled (mutations only). */
  readonly salesOrders: SalesOrders | null;
  /** Customer onboarding: checked on ERP facts, created, blocked (mutations only). */
  readonly onboarding: CustomerOnboarding | null;
  /** Subscription billing schedules (mutations only). */
  readonly billing: SubscriptionBilling | null;
}

export function createContextFactory(deps: {
  connector: ErpConnector;
  logger: Logger;
  clock: Clock;
  returns?: ReturnOrders;
  salesOrders?: SalesOrders;
  onboarding?: CustomerOnboarding;
  billing?: SubscriptionBilling;
}) {
  return async (_req: unknown, scope: RequestScope, identity: Identity): Promise<Context> => ({
    ...baseContext(deps, scope, identity),
    loaders: createLoaders(deps.connector),
    returns: deps.returns ?? null,
    salesOrders: deps.salesOrders ?? null,
    onboarding: deps.onboarding ?? null,
    billing: deps.billing ?? null,
  });
}
