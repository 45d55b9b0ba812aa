import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../platform/logger.ts';
import { openDatabase } from '../../platform/sqlite.ts';
import { createWorkflowEngine, type WorkflowDefinition, type WorkflowEngine } from '../../platform/workflow/engine.ts';
import { postgresExecutor, sqliteExecutor, type SqlExecutor } from '../../platform/workflow/sql.ts';
import { runWorkflowsCli } from '../../tools/workflows.ts';
import { startPostgres, type PostgresServer } from '../helpers/postgres.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));

/**
 * A system the test workflow writes to: it applies each idempotency key once, and it can refuse
 * every write (down for good, as far as the retries go) until the test lets it answer again.
 */
function system() {
  const applied = new Map<string, number>();
  return {
    refusing: true,
    deliveries: 0,
    applied,
    /** Keys of the compensations run (orders cancelled). */
    cancelled: [] as string[],
    write(key: string) {
      this.deliveries++;
      if (this.refusing) throw new Error('ERP refuses the order: customer C10001 is blocked');
      applied.set(key, (applied.get(key) ?? 0) + 1);
    },
  };
}

function orderWorkflow(erp: ReturnType<typeof system>, crm: ReturnType<typeof system>): WorkflowDefinition<{ customerId: string }> {
  return {
    type: 'test-order',
    customerOf: (input) => input.customerId,
    steps: [
      {
        name: 'create-erp-order',
        retry: { maxAttempts: 2, baseDelayMs: 1, maxDelayMs: 1 },
        run: async ({ idempotencyKey }) => erp.write(idempotencyKey),
        compensate: async ({ idempotencyKey }) => void erp.cancelled.push(idempotencyKey),
      },
      {
        name: 'confirm-in-crm',
        retry: { maxAttempts: 2, baseDelayMs: 1, maxDelayMs: 1 },
        run: async ({ idempotencyKey }) => crm.write(idempotencyKey),
      },
    ],
  };
}

async function until(engine: WorkflowEngine, id: string, state: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const found = await engine.get(id);
    if (found?.state === state) return;
    if (Date.now() > deadline) throw new Error(`workflow ${id} is ${found?.state}, not ${state}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const stores: [string, () => Promise<{ sql: () => SqlExecutor; close: () => Promise<void> }>][] = [
  [
    'SQLite',
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'concord-wf-cli-'));
      const file = join(dir, 'workflows.sqlite');
      return { sql: () => sqliteExecutor(openDatabase(file)), close: async () => rmSync(dir, { recursive: true, force: true }) };
    },
  ],
  [
    'PostgreSQL',
    async () => {
      const server: PostgresServer = await startPostgres();
      return { sql: () => postgresExecutor({ url: server.url, max: 2 }), close: () => server.stop() };
    },
  ],
];

describe.each(stores)('npm run workflows on %s', (_name, open) => {
  let store: Awaited<ReturnType<(typeof stores)[number][1]>>;
  let service: WorkflowEngine;
  let serviceSql: SqlExecutor;
  let cliSql: SqlExecutor;
  const erp = system();
  const crm = system();
  const workflow = orderWorkflow(erp, crm);
  const lines: string[] = [];
  const cli = (...argv: string[]) => {
    lines.length = 0;
    return runWorkflowsCli(argv, (line) => lines.push(line), {}, { sql: cliSql, extraWorkflows: [workflow] });
  };

  beforeAll(async () => {
    store = await open();
    serviceSql = store.sql();
    // The CLI has a connection of its own, as a separate process would.
    cliSql = store.sql();
    service = await createWorkflowEngine({
      sql: serviceSql,
      workflows: [workflow],
      logger: createLogger('processes', 'silent'),
      pollMs: 50,
    });
    service.startPolling();
  }, 60_000);

  afterAll(async () => {
    await service?.stop(1_000);
    await serviceSql?.close();
    await cliSql?.close();
    await store?.close();
  });

  it('lists a parked workflow in the exception queue with its reason, and a retry finishes it with one write per system', async () => {
    erp.refusing = true;
    const { instance } = await service.start(
      'test-order',
      { customerId: 'C10001' },
      { idempotencyKey: 'order-1', correlationId: 'corr-1' },
    );
    service.wake();
    await until(service, instance.id, 'failed');

    expect(await cli('list', '--state', 'failed')).toBe(0);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(instance.id);
    expect(lines[0]).toContain('at create-erp-order (attempt 2)');
    expect(lines[0]).toContain('customer C10001 is blocked');

    expect(await cli('show', instance.id, '--json')).toBe(0);
    const shown = JSON.parse(lines.join('\n')) as {
      state: string;
      correlationId: string;
      steps: { name: string; state: string; attempts: number }[];
    };
    expect(shown.state).toBe('failed');
    expect(shown.correlationId).toBe('corr-1');
    expect(shown.steps.map((step) => [step.name, step.state, step.attempts])).toEqual([
      ['create-erp-order', 'failed', 2],
      ['confirm-in-crm', 'pending', 0],
    ]);

    // The cause is fixed in the ERP; the operator retries.
    erp.refusing = false;
    crm.refusing = false;
    expect(await cli('retry', instance.id, '--operator', 'olga', '--reason', 'x'.repeat(501))).toBe(2);
    expect(lines[0]).toContain('at most 500');
    expect(await cli('retry', instance.id, '--operator', 'olga', '--reason', 'the ERP took the order by hand')).toBe(0);
    expect(lines[0]).toContain('retry recorded (by olga)');
    await until(service, instance.id, 'done');
    expect([...erp.applied.entries()]).toEqual([[`${instance.id}:create-erp-order`, 1]]);
    expect([...crm.applied.entries()]).toEqual([[`${instance.id}:confirm-in-crm`, 1]]);
    const history = (await service.get(instance.id))!.history.map((entry) => `${entry.event} ${entry.detail ?? ''}`);
    expect(history.some((line) => line.includes('operator: retry') && line.includes('by olga): the ERP took the order by hand'))).toBe(
      true,
    );

    expect(await cli('list', '--state', 'failed')).toBe(0);
    expect(lines).toEqual(['The exception queue is empty.']);
  });

  it('skips a parked step the operator did by hand, and compensates another', async () => {
    erp.refusing = false;
    crm.refusing = true;
    const skipped = (await service.start('test-order', { customerId: 'C10002' }, { idempotencyKey: 'order-2', correlationId: 'corr-2' }))
      .instance;
    const undone = (await service.start('test-order', { customerId: 'C10003' }, { idempotencyKey: 'order-3', correlationId: 'corr-3' }))
      .instance;
    service.wake();
    await until(service, skipped.id, 'failed');
    await until(service, undone.id, 'failed');

    expect(await cli('skip', skipped.id)).toBe(0);
    await until(service, skipped.id, 'done');
    const afterSkip = (await service.get(skipped.id))!;
    expect(afterSkip.steps.map((step) => step.state)).toEqual(['done', 'skipped']);

    expect(await cli('compensate', undone.id)).toBe(0);
    await until(service, undone.id, 'compensated');
    const afterUndo = (await service.get(undone.id))!;
    expect(afterUndo.steps.map((step) => [step.name, step.phase, step.state])).toEqual([
      ['create-erp-order', 'forward', 'done'],
      ['confirm-in-crm', 'forward', 'failed'],
      ['create-erp-order', 'compensating', 'compensated'],
    ]);
    // Only the order of the compensated workflow was cancelled, once; the skipped one stands.
    expect(erp.cancelled).toHaveLength(1);
    expect(erp.cancelled[0]).toMatch(new RegExp(`^${undone.id}:`));
  });

  it('refuses what does not apply, with exit 1, and a mistyped command with exit 2', async () => {
    expect(await cli('retry', 'wf_no_such_workflow')).toBe(1);
    expect(lines[0]).toBe('No workflow wf_no_such_workflow');
    const done = (await service.list({ state: 'done', limit: 1 }))[0]!;
    expect(await cli('compensate', done.id)).toBe(1);
    expect(lines[0]).toContain('not parked');
    expect(await cli('list', '--state', 'broken')).toBe(2);
    expect(lines[0]).toContain('--state must be one of running, waiting, done, failed, compensated');
    expect(await cli('retry')).toBe(2);
    expect(await cli('restart', done.id)).toBe(2);
    expect(await cli('show', 'wf_no_such_workflow')).toBe(1);
  });
});

describe('npm run workflows as a command', () => {
  it('reads the store the configuration names and says so when the queue is empty', () => {
    const dir = mkdtempSync(join(tmpdir(), 'concord-wf-cmd-'));
    try {
      const run = spawnSync(process.execPath, ['--import', 'tsx', 'tools/workflows.ts', 'list', '--state', 'failed'], {
        cwd: root,
        encoding: 'utf8',
        env: { ...process.env, DATA_DIR: dir, TSX_TSCONFIG_PATH: join(root, 'tsconfig.json') },
      });
      expect(run.status, run.stderr).toBe(0);
      expect(run.stdout.trim()).toBe('The exception queue is empty.');
      const bad = spawnSync(process.execPath, ['--import', 'tsx', 'tools/workflows.ts', 'list'], {
        cwd: root,
        encoding: 'utf8',
        env: { ...process.env, DATA_DIR: dir, PROCESS_DATABASE_URL: 'mysql://nowhere' },
      });
      expect(bad.status).toBe(78);
      expect(bad.stdout).toContain('PROCESS_DATABASE_URL');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
