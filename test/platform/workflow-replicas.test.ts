import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../platform/logger.ts';
import { createWorkflowEngine, type WorkflowEngine } from '../../platform/workflow/engine.ts';
import { postgresExecutor, type SqlExecutor } from '../../platform/workflow/sql.ts';
import { startPostgres } from '../helpers/postgres.ts';
import { REPLICA_STEPS, REPLICA_WORKFLOW, replicatedWorkflow } from '../helpers/workflow-replica.ts';

/**
 * A system as the system APIs behave: each write carries an idempotency key and is applied
 * once per key; every arrival is counted, so re-deliveries show. It answers after 100–300 ms,
 * so a replica killed at any moment is likely to be in the middle of some step.
 */
function startSystem(options: { down: () => boolean }) {
  const applied = new Map<string, { step: string; instance: string }>();
  const arrivals = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      const write = JSON.parse(body) as { key: string; step: string; instance: string };
      if (options.down()) {
        res.writeHead(503).end();
        return;
      }
      setTimeout(
        () => {
          arrivals.set(write.key, (arrivals.get(write.key) ?? 0) + 1);
          if (!applied.has(write.key)) applied.set(write.key, { step: write.step, instance: write.instance });
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: true }));
        },
        100 + Math.random() * 200,
      );
    });
  });
  return new Promise<{ url: string; applied: typeof applied; arrivals: typeof arrivals; close: () => Promise<void> }>((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({
        url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/write`,
        applied,
        arrivals,
        close: () => new Promise((done) => server.close(() => done())),
      }),
    ),
  );
}

/** How long the system is down in the outage test: a minute, as an ERP restart takes. */
const OUTAGE_MS = 60_000;

/** The replicas' data folder: the development keys their subgraph verifies tokens with. */
const dataDir = mkdtempSync(join(tmpdir(), 'concord-replicas-'));

function startReplica(name: string, databaseUrl: string, systemUrl: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/helpers/workflow-replica.ts'], {
    env: {
      ...process.env,
      REPLICA: name,
      DATA_DIR: dataDir,
      PROCESS_DATABASE_URL: databaseUrl,
      SYSTEM_URL: systemUrl,
      LEASE_MS: '1000',
      CONCURRENCY: '4',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('replica ready')) resolve(child);
    });
    child.once('exit', (code) => reject(new Error(`replica ${name} exited with ${code} before it was ready`)));
  });
}

/**
 * Several replicas of a process service on one PostgreSQL database, as production runs them,
 * with replicas killed (SIGKILL) while they run steps.
 */
describe('workflow replicas on PostgreSQL', () => {
  let postgres: Awaited<ReturnType<typeof startPostgres>>;
  let sql: SqlExecutor;
  let engine: WorkflowEngine;
  let systemDown = false;
  let system: Awaited<ReturnType<typeof startSystem>>;
  const replicas = new Map<string, ChildProcess>();

  beforeAll(async () => {
    postgres = await startPostgres();
    system = await startSystem({ down: () => systemDown });
    sql = postgresExecutor({ url: postgres.url, max: 4 });
    // The test's own engine only starts workflows and reads them; the replicas run them.
    engine = await createWorkflowEngine({ sql, workflows: [replicatedWorkflow(system.url)], logger: createLogger('test', 'silent') });
  }, 60_000);

  afterAll(async () => {
    for (const child of replicas.values()) child.kill('SIGKILL');
    await engine?.stop(100);
    await sql?.close();
    await system?.close();
    await postgres?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('finishes every workflow, each step applied once, while a replica is killed at each fifth of the work', async () => {
    let generation = 0;
    for (const name of ['r1', 'r2', 'r3']) replicas.set(name, await startReplica(`${name}.${generation}`, postgres.url, system.url));

    const ids: string[] = [];
    for (let n = 0; n < 200; n++)
      ids.push((await engine.start(REPLICA_WORKFLOW, { n }, { idempotencyKey: `order-${n}`, correlationId: `test-${n}` })).instance.id);

    // The kills follow the work, not the clock: one each time another fifth of the workflows is
    // done, so a fast machine gets as many kills as a slow one, each while steps are in flight.
    const killAt = [40, 80, 120, 160];
    let kills = 0;
    const replacements: Promise<void>[] = [];
    const started = Date.now();
    let counts = await engine.counts();
    while (counts.done < 200 && Date.now() - started < 120_000) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      counts = await engine.counts();
      if (counts.done === 200 || kills >= killAt.length || counts.done < killAt[kills]!) continue;
      // Kill one replica mid-flight, and start a new one in its place (as an orchestrator would).
      const names = [...replicas.keys()];
      // One survivor at least, while replacements start.
      if (names.length < 2) continue;
      const victim = names[Math.floor(Math.random() * names.length)]!;
      replicas.get(victim)!.kill('SIGKILL');
      replicas.delete(victim);
      kills++;
      generation++;
      // Not awaited: on a slow machine the survivors would finish the work while the new replica
      // starts, and the next fifth would pass without its kill.
      replacements.push(
        startReplica(`${victim}.${generation}`, postgres.url, system.url).then((child) => void replicas.set(victim, child)),
      );
    }
    await Promise.all(replacements);
    const elapsedMs = Date.now() - started;

    counts = await engine.counts();
    const deliveries = [...system.arrivals.values()].reduce((sum, n) => sum + n, 0);
    const redelivered = [...system.arrivals.values()].filter((n) => n > 1).length;
    const figures = {
      workflows: ids.length,
      kills,
      elapsedMs,
      steps: ids.length * REPLICA_STEPS.length,
      applied: system.applied.size,
      deliveries,
      redelivered,
      counts,
    };
    console.log(`replica kill figures: ${JSON.stringify(figures)}`);

    expect(counts).toMatchObject({ done: 200, failed: 0, running: 0, waiting: 0 });
    expect(kills).toBeGreaterThanOrEqual(3);
    // Every step of every workflow reached its system, and none was lost.
    for (const id of ids) for (const step of REPLICA_STEPS) expect(system.applied.get(`${id}:${step}`)?.instance).toBe(id);
    expect(system.applied.size).toBe(600);
    // A step is sent again only when the replica that ran it died before recording it: at most
    // what the killed replicas had in flight (4 each), never a step already recorded done.
    expect(deliveries - system.applied.size).toBeLessThanOrEqual(kills * 4);
    for (const id of ids.slice(0, 20)) {
      const detail = await engine.get(id);
      expect(detail?.steps.every((step) => step.state === 'done')).toBe(true);
    }
  }, 180_000);

  it(
    'keeps steps waiting while a system is down for a minute, and finishes them once it is back',
    async () => {
      systemDown = true;
      const downAt = Date.now();
      const ids: string[] = [];
      for (let n = 0; n < 20; n++)
        ids.push(
          (await engine.start(REPLICA_WORKFLOW, { n }, { idempotencyKey: `outage-${n}`, correlationId: `outage-${n}` })).instance.id,
        );
      await new Promise((resolve) => setTimeout(resolve, OUTAGE_MS));
      const during = await engine.list({ since: 0, limit: 1000 });
      const mine = during.filter((instance) => ids.includes(instance.id));
      expect(mine.every((instance) => instance.state === 'waiting' || instance.state === 'running')).toBe(true);
      expect(mine.some((instance) => instance.lastError === 'system answered 503')).toBe(true);
      systemDown = false;
      const backAt = Date.now();
      const deadline = Date.now() + 30_000;
      while (Date.now() < deadline) {
        const states = await Promise.all(ids.map(async (id) => (await engine.get(id))?.state));
        if (states.every((state) => state === 'done')) break;
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
      const finishedAt = Date.now();
      for (const id of ids) {
        expect((await engine.get(id))?.state).toBe('done');
        for (const step of REPLICA_STEPS) expect(system.arrivals.get(`${id}:${step}`)).toBe(1);
      }
      console.log(
        `outage figures: ${JSON.stringify({ workflows: ids.length, downMs: backAt - downAt, doneAfterBackMs: finishedAt - backAt, failed: 0 })}`,
      );
    },
    OUTAGE_MS + 60_000,
  );

  it('stops a replica on SIGTERM with exit code 0, its steps finished or handed on, none lost', async () => {
    // Run alone, this test starts its own replicas.
    for (const name of ['r1', 'r2', 'r3'])
      if (!replicas.has(name)) replicas.set(name, await startReplica(`${name}.drain`, postgres.url, system.url));
    const ids: string[] = [];
    for (let n = 0; n < 40; n++)
      ids.push((await engine.start(REPLICA_WORKFLOW, { n }, { idempotencyKey: `drain-${n}`, correlationId: `drain-${n}` })).instance.id);
    await new Promise((resolve) => setTimeout(resolve, 500));
    const [name, victim] = [...replicas.entries()][0]!;
    const exited = new Promise<number | null>((resolve) => victim.once('exit', (code) => resolve(code)));
    victim.kill('SIGTERM');
    expect(await exited).toBe(0);
    replicas.delete(name);
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      const states = await Promise.all(ids.map(async (id) => (await engine.get(id))?.state));
      if (states.every((state) => state === 'done')) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    for (const id of ids) {
      expect((await engine.get(id))?.state).toBe('done');
      for (const step of REPLICA_STEPS) expect(system.applied.get(`${id}:${step}`)?.instance).toBe(id);
    }
  }, 60_000);
});
