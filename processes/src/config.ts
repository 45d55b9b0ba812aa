import { hostname } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { ConfigError, flag, positiveInt, readEnv, subgraphTimeoutMs } from '../../platform/config.ts';
import { configuredEnv } from '../../platform/config-file.ts';
import { serviceIdentityEnvSchema, serviceTokenConfigOf } from '../../platform/service-identity.ts';
import { loadSubgraphConfig, type SubgraphConfig, subgraphEnvSchema, type SubgraphSystem } from '../../platform/subgraph-config.ts';
import type { TokenConfig } from '../../platform/vendor-config.ts';
import type { RetryPolicy } from '../../platform/workflow/engine.ts';

/** Where the workflows' state lives: a SQLite file (the embedded default) or a PostgreSQL database. */
export type WorkflowStoreConfig =
  | { readonly kind: 'sqlite'; readonly file: string; readonly variable: string }
  | { readonly kind: 'postgres'; readonly url: string; readonly poolSize: number };

export interface ProcessesConfig extends SubgraphConfig {
  readonly store: WorkflowStoreConfig;
  /** The gateway, through which every step reaches a system's API. */
  readonly gatewayUrl: string;
  /** How the service gets tokens for its `integration` identity; null: signed with the dev issuer key. */
  readonly serviceToken: TokenConfig | null;
  /** This replica's name in step leases. */
  readonly replica: string;
  readonly leaseMs: number;
  readonly pollMs: number;
  /** Instances one replica runs at once. */
  readonly concurrency: number;
  readonly retry: RetryPolicy;
  /** Deadline of one call to the graph, in ms. */
  readonly callTimeoutMs: number;
  /**
   * How long a request that starts a workflow (or repeats one's key) waits for the answer it
   * needs before it is answered IDEMPOTENCY_KEY_IN_PROGRESS: less than the gateway's deadline.
   */
  readonly answerWaitMs: number;
  /** Whether the CRM's subscription events start the subscription lifecycle (SUBSCRIPTIONS_FROM_CRM). */
  readonly subscriptionsFromCrm: boolean;
  readonly returns: {
    /** Largest total a support agent may authorize alone on one case within agentLimitWindowHours. */
    readonly agentLimit: number;
    readonly agentLimitWindowHours: number;
  };
}

const PROCESSES_SYSTEM: SubgraphSystem = { prefix: 'PROCESSES', defaultPort: 4004, databaseFile: 'workflows.sqlite', hasSystem: false };

/** The variables every subgraph reads, without those of an embedded system: the process service has none. */
const baseSchema = subgraphEnvSchema(PROCESSES_SYSTEM).omit({
  PROCESSES_CONNECTOR: true,
  PROCESSES_DATABASE: true,
  PROCESSES_LATENCY_MS: true,
});

const schema = serviceIdentityEnvSchema().extend({
  PROCESS_DATABASE_URL: z
    .string()
    .regex(/^(postgres(ql)?:\/\/|file:)/, 'must be a postgres:// URL or file:<path> of a SQLite file')
    .optional()
    .meta({
      description:
        "Where the workflows' state lives: `postgres://user:password@host:5432/db` for several replicas side by side (steps are leased with `FOR UPDATE SKIP LOCKED`), or `file:<path>` of a SQLite file, which one replica uses.",
      defaultText: '`file:DATA_DIR/workflows.sqlite`',
    }),
  PROCESS_DATABASE_POOL: positiveInt(10).describe('PostgreSQL connections one replica keeps open.'),
  PROCESS_REPLICA: z.string().min(1).max(128).optional().meta({
    description: "This replica's name in step leases and logs.",
    defaultText: '`<hostname>:<pid>`',
  }),
  WORKFLOW_LEASE_MS: positiveInt(30_000).describe(
    'How long a replica holds a step it runs (renewed while it runs): a replica that dies loses its steps to another after this long.',
  ),
  WORKFLOW_POLL_MS: positiveInt(500).describe('How often a replica looks for due steps, in ms (a new workflow is started at once).'),
  WORKFLOW_CONCURRENCY: positiveInt(8).describe('Workflow instances one replica runs at once.'),
  WORKFLOW_MAX_ATTEMPTS: positiveInt(12).describe(
    'Attempts of a failing step before its workflow is parked in the exception queue (`npm run workflows` lists, retries, skips or compensates it).',
  ),
  WORKFLOW_BASE_DELAY_MS: positiveInt(1_000).describe(
    'First backoff between attempts of a step, in ms; it doubles per attempt, with full jitter.',
  ),
  WORKFLOW_MAX_DELAY_MS: positiveInt(300_000).describe('Longest backoff between attempts of a step, in ms.'),
  PROCESS_CALL_TIMEOUT_MS: positiveInt(10_000).describe("Deadline of one step's call to the graph, in ms."),
  // The gateway's deadline for one subgraph call (the variable the gateway reads): the wait for
  // an answer is sized from it.
  SUBGRAPH_TIMEOUT_MS: subgraphTimeoutMs,
  IDEMPOTENCY_WAIT_MS: z.coerce
    .number({ error: 'must be a number' })
    .int('must be a whole number')
    .min(0, 'must be 0 or more')
    .optional()
    .meta({
      description:
        'How long a request waits for its workflow to decide (a return authorized or refused by the ERP, say) before it is answered `IDEMPOTENCY_KEY_IN_PROGRESS`, to be sent again with its key; must be below `SUBGRAPH_TIMEOUT_MS`.',
      defaultText: 'half of `SUBGRAPH_TIMEOUT_MS`',
    }),
  SUBSCRIPTIONS_FROM_CRM: flag(true).describe(
    "Carry the CRM's subscription changes to billing and the desk by themselves: the CRM's change events (`concord.subscription.updated`) start the subscription lifecycle, as `applySubscriptionChange` does (docs/subscriptions.md). `false`: only the mutation does.",
  ),
  RMA_AGENT_LIMIT: z.coerce
    .number({ error: 'must be an amount' })
    .positive('must be above 0')
    .default(25_000)
    .describe(
      'The largest total a support agent may authorize alone on one case within `RMA_AGENT_LIMIT_WINDOW_HOURS`; more needs a support lead, who has no limit.',
    ),
  RMA_AGENT_LIMIT_WINDOW_HOURS: positiveInt(24).describe(
    'The window `RMA_AGENT_LIMIT` applies to: all one agent authorized on one case within it counts.',
  ),
});

/** Every variable the process service reads, for the configuration reference. */
export function processesVariables() {
  return [baseSchema, schema];
}

/** The process service's configuration, read once from the environment (PROCESSES_PORT, PROCESS_DATABASE_URL, …). */
export function loadProcessesConfig(env: NodeJS.ProcessEnv = configuredEnv('processes')): ProcessesConfig {
  const base = loadSubgraphConfig(PROCESSES_SYSTEM, env);
  const vars = readEnv(schema, env);
  const production = base.environment === 'production';
  if (production && !vars.PROCESS_DATABASE_URL?.startsWith('postgres'))
    throw new ConfigError(
      'Invalid configuration:\n  PROCESS_DATABASE_URL: required when CONCORD_ENV=production (postgres://…: a SQLite file serves one replica only)',
    );
  if (vars.WORKFLOW_BASE_DELAY_MS > vars.WORKFLOW_MAX_DELAY_MS)
    throw new ConfigError(
      `Invalid configuration:\n  WORKFLOW_BASE_DELAY_MS: must be at most WORKFLOW_MAX_DELAY_MS (${vars.WORKFLOW_MAX_DELAY_MS}, got ${vars.WORKFLOW_BASE_DELAY_MS})`,
    );
  const answerWaitMs = vars.IDEMPOTENCY_WAIT_MS ?? Math.floor(vars.SUBGRAPH_TIMEOUT_MS / 2);
  if (answerWaitMs >= vars.SUBGRAPH_TIMEOUT_MS)
    throw new ConfigError(
      `Invalid configuration:\n  IDEMPOTENCY_WAIT_MS: must be less than SUBGRAPH_TIMEOUT_MS (${vars.SUBGRAPH_TIMEOUT_MS}), ` +
        `or the gateway gives up before the client hears IDEMPOTENCY_KEY_IN_PROGRESS (got ${answerWaitMs})`,
    );
  const url = vars.PROCESS_DATABASE_URL;
  const store: WorkflowStoreConfig = url?.startsWith('postgres')
    ? { kind: 'postgres', url, poolSize: vars.PROCESS_DATABASE_POOL }
    : url
      ? { kind: 'sqlite', file: url.slice('file:'.length), variable: 'PROCESS_DATABASE_URL' }
      : { kind: 'sqlite', file: join(base.dataDir, PROCESSES_SYSTEM.databaseFile), variable: 'DATA_DIR' };
  return Object.freeze({
    ...base,
    connectorKind: store.kind,
    store: Object.freeze(store),
    gatewayUrl: vars.GATEWAY_URL,
    serviceToken: serviceTokenConfigOf(vars, production),
    replica: vars.PROCESS_REPLICA ?? `${hostname()}:${process.pid}`,
    leaseMs: vars.WORKFLOW_LEASE_MS,
    pollMs: vars.WORKFLOW_POLL_MS,
    concurrency: vars.WORKFLOW_CONCURRENCY,
    retry: Object.freeze({
      maxAttempts: vars.WORKFLOW_MAX_ATTEMPTS,
      baseDelayMs: vars.WORKFLOW_BASE_DELAY_MS,
      maxDelayMs: vars.WORKFLOW_MAX_DELAY_MS,
    }),
    callTimeoutMs: vars.PROCESS_CALL_TIMEOUT_MS,
    answerWaitMs,
    subscriptionsFromCrm: vars.SUBSCRIPTIONS_FROM_CRM,
    returns: Object.freeze({ agentLimit: vars.RMA_AGENT_LIMIT, agentLimitWindowHours: vars.RMA_AGENT_LIMIT_WINDOW_HOURS }),
  });
}
