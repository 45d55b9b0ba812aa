import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_TIER_TTLS_S } from '../../gateway/src/cache/policy.ts';
import { startGateway } from '../../gateway/src/gateway.ts';
import type { EventBroker } from '../../platform/events/broker.ts';
import { natsBroker } from '../../platform/events/nats-broker.ts';
import { createLogger } from '../../platform/logger.ts';
import { startNats, type NatsServer } from '../helpers/nats.ts';
import { startRedis, type RedisServer } from '../helpers/redis.ts';
import { gatewayConfig, postGraphQL, startStack, type Stack } from '../helpers/stack.ts';

const logger = createLogger('test', 'silent');
const SUBJECT = 'query($id: ID!) { case(id: $id) { id subject } }';

/**
 * Three gateway replicas on one real NATS JetStream, each with a cache of its own that outlives
 * it (its own Redis database): a change in the desk reaches all three, and the one that was
 * down when it happened drops the entity when it starts again under its name, since its durable
 * consumer resumes after the last event it acknowledged.
 */
describe('gateway replicas following the broker', () => {
  let nats: NatsServer;
  let redis: RedisServer;
  let stack: Stack;
  const brokers: EventBroker[] = [];
  type Gateway = Awaited<ReturnType<typeof startGateway>>;
  const running = new Map<string, Gateway>();

  const connect = async (name: string) => {
    const broker = await natsBroker({ servers: [nats.url], logger, streamMaxAgeMs: 3_600_000, replicas: 1, name });
    brokers.push(broker);
    return broker;
  };
  /** A replica by name, its cache in Redis database `db`. */
  const replica = async (name: string, db: number) => {
    const gateway = await startGateway(
      gatewayConfig({
        replica: name,
        subgraphUrls: { crm: stack.crm.url, erp: stack.erp.url, support: stack.support.url, processes: stack.processes.url },
        cache: {
          ...gatewayConfig().cache,
          store: 'redis',
          redisUrl: `${redis.url}/${db}`,
          ttls: { ...DEFAULT_TIER_TTLS_S, volatile: 300 },
        },
      }),
      {
        logger,
        keys: { issuerPublicKey: stack.keys.issuer.publicKey, internalPrivateKey: stack.keys.internal.privateKey },
        broker: await connect(name),
      },
    );
    running.set(name, gateway);
    return gateway;
  };
  const subjectOn = async (gateway: Gateway, id: string) =>
    (await postGraphQL<{ case: { subject: string } }>(gateway.url, SUBJECT, { id }, { authorization: await stack.bearer('support_agent') }))
      .body.data!.case.subject;
  const within = async (ms: number, check: () => Promise<boolean>) => {
    const deadline = Date.now() + ms;
    while (!(await check())) {
      if (Date.now() > deadline) return false;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return true;
  };

  beforeAll(async () => {
    [nats, redis] = await Promise.all([startNats(), startRedis()]);
    stack = await startStack({ broker: await connect('stack') });
  });
  afterAll(async () => {
    for (const gateway of running.values()) await gateway.stop();
    await stack?.stop();
    for (const broker of brokers) await broker.close();
    await Promise.all([nats?.stop(), redis?.stop()]);
  });

  it('all three drop a case changed in the desk, the restarted one included', async () => {
    const id = (stack.dbs.support.prepare("SELECT id FROM tickets WHERE status = 'open' ORDER BY id LIMIT 1").get() as { id: number }).id;
    const caseId = String(id);
    const [r1, r2] = [await replica('r1', 1), await replica('r2', 2)];
    let r3 = await replica('r3', 3);
    const original = await subjectOn(r1, caseId);
    for (const gateway of [r1, r2, r3]) expect(await subjectOn(gateway, caseId)).toBe(original);
    for (const gateway of [r1, r2, r3]) await gateway.cache?.flush();

    // r3 goes away; the desk changes the case meanwhile.
    await r3.stop();
    running.delete('r3');
    stack.dbs.support
      .prepare('UPDATE tickets SET subject = ?, updated_at = ? WHERE id = ?')
      .run('Renamed in the desk', new Date().toISOString(), id);
    const changed = Date.now();
    expect(await within(2_000, async () => (await subjectOn(r1, caseId)) === 'Renamed in the desk')).toBe(true);
    expect(await within(2_000, async () => (await subjectOn(r2, caseId)) === 'Renamed in the desk')).toBe(true);
    const liveMs = Date.now() - changed;

    // What r3 cached is still in its Redis: a replica new to the broker (it starts with new events) serves it.
    const stranger = await replica('r3-stranger', 3);
    expect(await subjectOn(stranger, caseId)).toBe(original);
    await stranger.stop();
    running.delete('r3-stranger');

    // r3 again, under its name: it takes the event it missed and drops the case.
    r3 = await replica('r3', 3);
    expect(await within(2_000, async () => (await subjectOn(r3, caseId)) === 'Renamed in the desk')).toBe(true);
    const invalidated = [r1, r2, r3].length;
    console.log(`replicas invalidated: ${invalidated} of 3 (one restarted after the event); the two running within ${liveMs} ms`);
  }, 60_000);
});
