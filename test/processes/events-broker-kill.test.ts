import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { onceEach, type EventBroker } from '../../platform/events/broker.ts';
import { natsBroker } from '../../platform/events/nats-broker.ts';
import { createLogger } from '../../platform/logger.ts';
import { openDatabase } from '../../platform/sqlite.ts';
import { createWorkflowEngine, type WorkflowDefinition, type WorkflowEngine } from '../../platform/workflow/engine.ts';
import { sqliteExecutor, type SqlExecutor } from '../../platform/workflow/sql.ts';
import { startNats, type NatsServer } from '../helpers/nats.ts';

const logger = createLogger('test', 'silent');
const TOTAL = 300;

/**
 * A real nats-server killed while workflows publish through the outbox: what the broker could
 * not take waits in the outbox, the durable consumer resumes after its last acknowledgement
 * once the server is back, and every event arrives; those delivered twice are applied once.
 */
describe('the broker killed mid-stream', () => {
  let nats: NatsServer;
  let publisher: EventBroker;
  let subscriber: EventBroker;
  let engine: WorkflowEngine;
  let sql: SqlExecutor;

  beforeAll(async () => {
    nats = await startNats();
    publisher = await natsBroker({
      servers: [nats.url],
      logger,
      streamMaxAgeMs: 3_600_000,
      replicas: 1,
      name: 'publisher',
      timeoutMs: 2_000,
    });
    subscriber = await natsBroker({
      servers: [nats.url],
      logger,
      streamMaxAgeMs: 3_600_000,
      replicas: 1,
      name: 'subscriber',
      ackWaitMs: 2_000,
      retryBaseMs: 50,
    });
    sql = sqliteExecutor(openDatabase(':memory:'));
    const workflow: WorkflowDefinition<{ n: number }> = {
      type: 'test.announce',
      steps: [
        {
          name: 'announce',
          run: async (context) => {
            const customerId = `C${String(context.input.n).padStart(5, '0')}`;
            context.emit({ type: 'concord.customer.updated', subject: `customer/${customerId}`, data: { customerId, changes: ['test'] } });
            return null;
          },
        },
      ],
    };
    engine = await createWorkflowEngine({
      sql,
      workflows: [workflow],
      logger,
      owner: 'test',
      pollMs: 50,
      concurrency: 8,
      events: { broker: publisher, source: 'concord/processes' },
    });
  });
  afterAll(async () => {
    await engine?.stop(1_000);
    await subscriber?.close();
    await publisher?.close();
    await sql?.close();
    await nats?.stop();
  });

  it('loses none: the outbox holds them while the broker is down, the consumer resumes, duplicates are applied once', async () => {
    const delivered: string[] = [];
    const applied = new Set<string>();
    const consumer = await subscriber.consume(
      { name: 'counter', types: 'concord.customer.*', startAt: 'all' },
      (event) => void delivered.push(event.id),
    );
    const once = onceEach((event) => void applied.add(event.subject));
    const applying = await subscriber.consume({ name: 'applier', types: 'concord.customer.*', startAt: 'all' }, once);
    engine.startPolling();
    let killedAt = 0;
    let restartedAt = 0;
    let queuedWhileDown = 0;
    for (let n = 0; n < TOTAL; n++) {
      await engine.start('test.announce', { n }, { idempotencyKey: `k${n}`, correlationId: `c${n}` });
      if (n === 100) {
        await new Promise((resolve) => setTimeout(resolve, 200));
        await nats.kill();
        killedAt = Date.now();
      }
      if (n === 200) {
        // Down for a second and a half, while the steps go on.
        await new Promise((resolve) => setTimeout(resolve, 1_500));
        // Workflows ran and recorded their events meanwhile: the outbox holds what the broker could not take.
        const [row] = await sql.query<{ n: number }>(
          "SELECT count(*) AS n FROM workflow_events WHERE published_at IS NULL AND subject LIKE 'customer/%'",
        );
        queuedWhileDown = Number(row!.n);
        await nats.restart();
        restartedAt = Date.now();
      }
    }
    const downMs = restartedAt - killedAt;
    const deadline = Date.now() + 60_000;
    while ((new Set(delivered).size < TOTAL || applied.size < TOTAL) && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 50));
    await consumer.stop();
    await applying.stop();
    const distinct = new Set(delivered).size;
    const lost = TOTAL - distinct;
    const duplicates = delivered.length - distinct;
    console.log(
      `broker kill: ${TOTAL} events, ${queuedWhileDown} queued in the outbox while the broker was down (${downMs} ms), ` +
        `${lost} lost, ${duplicates} delivered twice, ${applied.size} applied once each`,
    );
    expect(queuedWhileDown).toBeGreaterThan(0);
    expect(lost).toBe(0);
    expect(applied.size).toBe(TOTAL);
    // The rest (the workflows' own changes) follows within the relay's backoff, 5 s at most.
    const unpublished = async () =>
      Number((await sql.query<{ n: number }>('SELECT count(*) AS n FROM workflow_events WHERE published_at IS NULL'))[0]!.n);
    const drained = Date.now() + 10_000;
    while ((await unpublished()) > 0 && Date.now() < drained) await new Promise((resolve) => setTimeout(resolve, 100));
    expect(await unpublished()).toBe(0);
  }, 120_000);
});
