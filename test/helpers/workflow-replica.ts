/**
 * One replica of a process service, as the replica tests run it in a process of its own: an
 * engine over PostgreSQL that runs a three-step workflow whose every step writes to a system
 * (an HTTP server of the test) with the step's idempotency key. It polls until it is killed.
 *
 *   PROCESS_DATABASE_URL=postgres://… SYSTEM_URL=http://127.0.0.1:…/write REPLICA=r1 node --import tsx test/helpers/workflow-replica.ts
 */
import { createLogger } from '../../platform/logger.ts';
import { createWorkflowEngine, type WorkflowDefinition } from '../../platform/workflow/engine.ts';
import { postgresExecutor } from '../../platform/workflow/sql.ts';

export const REPLICA_WORKFLOW = 'test.replicated';
export const REPLICA_STEPS = ['erp-order', 'crm-confirmation', 'desk-entitlement'] as const;

/** The workflow: each step one write, retried quickly while the system answers errors. */
export function replicatedWorkflow(systemUrl: string): WorkflowDefinition<{ n: number }> {
  return {
    type: REPLICA_WORKFLOW,
    steps: REPLICA_STEPS.map((name) => ({
      name,
      retry: { maxAttempts: 50, baseDelayMs: 50, maxDelayMs: 500 },
      run: async (context) => {
        const response = await fetch(systemUrl, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ key: context.idempotencyKey, step: name, instance: context.instanceId }),
          signal: AbortSignal.any([context.signal, AbortSignal.timeout(5_000)]),
        });
        if (!response.ok) throw new Error(`system answered ${response.status}`);
        return (await response.json()) as unknown;
      },
    })),
  };
}

if (process.env.REPLICA) {
  const sql = postgresExecutor({ url: process.env.PROCESS_DATABASE_URL!, max: 4, applicationName: process.env.REPLICA });
  const engine = await createWorkflowEngine({
    sql,
    workflows: [replicatedWorkflow(process.env.SYSTEM_URL!)],
    logger: createLogger(process.env.REPLICA, 'warn'),
    owner: process.env.REPLICA,
    leaseMs: Number(process.env.LEASE_MS ?? 1_000),
    pollMs: 50,
    concurrency: Number(process.env.CONCURRENCY ?? 4),
  });
  engine.startPolling();
  process.stdout.write('replica ready\n');
  process.once('SIGTERM', () => {
    void engine.stop(2_000).then(() => sql.close().then(() => process.exit(0)));
  });
}
