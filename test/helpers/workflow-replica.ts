/**
 * One replica of the process service, as the replica tests run it in a process of its own: the
 * real service over PostgreSQL (its engine, store, subgraph and stop), running besides its own
 * workflows a three-step test workflow whose every step writes to a system (an HTTP server of the
 * test) with the step's idempotency key. It runs until it is killed or stopped.
 *
 *   PROCESS_DATABASE_URL=postgres://… SYSTEM_URL=http://127.0.0.1:…/write REPLICA=r1 DATA_DIR=… node --import tsx test/helpers/workflow-replica.ts
 */
import { runMain } from '../../platform/process.ts';
import type { WorkflowDefinition } from '../../platform/workflow/engine.ts';
import { loadProcessesConfig } from '../../processes/src/config.ts';
import { startProcesses } from '../../processes/src/index.ts';

export const REPLICA_WORKFLOW = 'test.replicated';
export const REPLICA_STEPS = ['erp-order', 'crm-confirmation', 'desk-entitlement'] as const;

/** The workflow: each step one write, retried quickly while the system answers errors. */
export function replicatedWorkflow(systemUrl: string): WorkflowDefinition<{ n: number }> {
  return {
    type: REPLICA_WORKFLOW,
    steps: REPLICA_STEPS.map((name) => ({
      name,
      // Enough attempts, at most 5 s apart, to wait out a system down for a minute or more.
      retry: { maxAttempts: 60, baseDelayMs: 50, maxDelayMs: 5_000 },
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
  // The real process service (its entry point's code path), with the test's workflow beside its own.
  const config = loadProcessesConfig({
    ...process.env,
    PROCESSES_PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    PROCESS_REPLICA: process.env.REPLICA,
    WORKFLOW_LEASE_MS: process.env.LEASE_MS ?? '1000',
    WORKFLOW_POLL_MS: '50',
    WORKFLOW_CONCURRENCY: process.env.CONCURRENCY ?? '4',
    PROCESS_DATABASE_POOL: '4',
    SHUTDOWN_GRACE_MS: '2000',
    // Each replica its own broker in memory: the events are not what this test counts.
    EVENTS_DATABASE: process.env.EVENTS_DATABASE ?? ':memory:',
  });
  runMain('processes', async () => {
    const service = await startProcesses(config, { extraWorkflows: [replicatedWorkflow(process.env.SYSTEM_URL!)] });
    process.stdout.write(`replica ready ${service.url}\n`);
    return service;
  });
}
