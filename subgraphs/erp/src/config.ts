import { join } from 'node:path';
import { z } from 'zod';
import { httpUrl, positiveInt, readEnv } from '../../../platform/config.ts';
import { loadSubgraphConfig, type SubgraphConfig } from '../../../platform/subgraph-config.ts';
import { EMBEDDED_DATABASE_FILES } from '../../../platform/sqlite.ts';

/** The return process: where it keeps its state, how it reaches the graph, its limits. */
export interface ReturnsConfig {
  /** SQLite file of the process store (idempotency keys, outbox). */
  readonly processDatabase: string;
  /** The gateway, through which the process reads cases and delivers follow-on writes. */
  readonly gatewayUrl: string;
  /** A bearer token for the integration identity; null: signed with the dev issuer key. */
  readonly serviceToken: string | null;
  /** Largest total a support agent may authorize alone. */
  readonly agentLimit: number;
  readonly idempotencyTtlMs: number;
  readonly outbox: { readonly pollMs: number; readonly maxAttempts: number; readonly baseDelayMs: number; readonly maxDelayMs: number };
}

export interface ErpConfig extends SubgraphConfig {
  readonly returns: ReturnsConfig;
}

const schema = z.object({
  DATA_DIR: z.string().default('data'),
  PROCESS_DATABASE: z.string().optional(),
  GATEWAY_URL: httpUrl.default('http://localhost:4000/graphql'),
  SERVICE_TOKEN: z.string().min(20, 'must be a bearer token').optional(),
  RMA_AGENT_LIMIT: z.coerce.number({ error: 'must be an amount' }).positive('must be above 0').default(25_000),
  IDEMPOTENCY_TTL_HOURS: positiveInt(24),
  OUTBOX_POLL_MS: positiveInt(500),
  OUTBOX_MAX_ATTEMPTS: positiveInt(10),
  OUTBOX_BASE_DELAY_MS: positiveInt(1_000),
  OUTBOX_MAX_DELAY_MS: positiveInt(300_000),
});

/** The ERP subgraph's configuration, read once from the environment (ERP_PORT, ERP_CONNECTOR, ERP_DATABASE, …). */
export function loadErpConfig(env: NodeJS.ProcessEnv = process.env): ErpConfig {
  const base = loadSubgraphConfig({ prefix: 'ERP', defaultPort: 4002, databaseFile: EMBEDDED_DATABASE_FILES.erp }, env);
  const vars = readEnv(schema, env);
  return Object.freeze({
    ...base,
    returns: Object.freeze({
      processDatabase: vars.PROCESS_DATABASE ?? join(vars.DATA_DIR, 'processes.sqlite'),
      gatewayUrl: vars.GATEWAY_URL,
      serviceToken: vars.SERVICE_TOKEN ?? null,
      agentLimit: vars.RMA_AGENT_LIMIT,
      idempotencyTtlMs: vars.IDEMPOTENCY_TTL_HOURS * 3_600_000,
      outbox: Object.freeze({
        pollMs: vars.OUTBOX_POLL_MS,
        maxAttempts: vars.OUTBOX_MAX_ATTEMPTS,
        baseDelayMs: vars.OUTBOX_BASE_DELAY_MS,
        maxDelayMs: vars.OUTBOX_MAX_DELAY_MS,
      }),
    }),
  });
}
