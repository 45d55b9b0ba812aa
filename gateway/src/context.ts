import type { RequestScope } from '../../platform/request-context.ts';

/** What the gateway keeps per request and hands to each subgraph call. */
export interface GatewayContext {
  readonly correlationId: string;
}

export async function createGatewayContext(_req: unknown, scope: RequestScope): Promise<GatewayContext> {
  return { correlationId: scope.correlationId };
}
