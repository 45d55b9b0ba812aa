import { afterAll, describe, expect, it } from 'vitest';
import { onceEach, type EventBroker } from '../../platform/events/broker.ts';
import { canonicalEvent, type CanonicalEvent } from '../../platform/events/cloudevent.ts';
import { createLogger } from '../../platform/logger.ts';

/**
 * The contract every broker keeps (platform/events/broker.ts), run against each broker's own test
 * (test/platform/event-broker.test.ts: the embedded log and NATS JetStream).
 */
export interface BrokerUnderTest {
  /** A broker over the same stored events each time it is called (a restart of a consumer's process). */
  open(): Promise<EventBroker>;
  cleanup(): Promise<void>;
}

const logger = createLogger('test', 'silent');
let counter = 0;
export const eventOf = (type: string, key: string, sequence = 1): CanonicalEvent =>
  canonicalEvent(
    { type, subject: `${type.split('.')[1]}/${key}`, data: { n: ++counter } },
    { source: 'concord/test', correlationId: 'c', sequence, at: new Date() },
  );

export const until = async (check: () => boolean, ms = 5_000) => {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
};

export function brokerContract(name: string, make: () => BrokerUnderTest): void {
  describe(`${name}: the broker contract`, () => {
    const under = make();
    afterAll(() => under.cleanup());

    it('a durable consumer gets what was published, in order, and resumes after what it acknowledged', async () => {
      const broker = await under.open();
      const received: string[] = [];
      const consumer = await broker.consume({ name: 'resumes', types: 'concord.case.*' }, (event) => void received.push(event.id));
      const first = [1, 2, 3].map((n) => eventOf('concord.case.updated', 'c1', n));
      await broker.publish([...first, eventOf('concord.order.created', 'o1')]);
      await until(() => received.length === 3);
      expect(received).toEqual(first.map((event) => event.id));
      await consumer.stop();
      // Published while the consumer is away; a new broker (another process) resumes it.
      const later = [4, 5].map((n) => eventOf('concord.case.updated', 'c1', n));
      await broker.publish(later);
      await broker.close();
      const again = await under.open();
      const resumed: string[] = [];
      const back = await again.consume({ name: 'resumes', types: 'concord.case.*' }, (event) => void resumed.push(event.id));
      await until(() => resumed.length === 2);
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(resumed).toEqual(later.map((event) => event.id));
      expect((await again.consumers()).find((state) => state.name === 'resumes')?.pending).toBe(0);
      await back.stop();
      await again.close();
    });

    it('a handler that throws gets the same event again; a second publish of an id is stored once', async () => {
      const broker = await under.open();
      const attempts: string[] = [];
      const applied: string[] = [];
      let failing = 2;
      const consumer = await broker.consume({ name: 'retries', types: ['concord.invoice.posted'] }, (event) => {
        attempts.push(event.id);
        if (failing-- > 0) throw new Error('not now');
        applied.push(event.id);
      });
      const event = eventOf('concord.invoice.posted', 'I1');
      await broker.publish([event]);
      await broker.publish([event]);
      const next = eventOf('concord.invoice.posted', 'I2');
      await broker.publish([next]);
      await until(() => applied.length === 2, 15_000);
      expect(attempts).toEqual([event.id, event.id, event.id, next.id]);
      expect(applied).toEqual([event.id, next.id]);
      const stored = await broker.read({ types: 'concord.invoice.posted' });
      expect(stored.map((entry) => entry.event.id)).toEqual([event.id, next.id]);
      await consumer.stop();
      await broker.close();
    });

    it('live subscribers get what is published from then on; rewind replays from a time', async () => {
      const broker = await under.open();
      const before = eventOf('concord.shipment.confirmed', 'S1');
      await broker.publish([before]);
      await new Promise((resolve) => setTimeout(resolve, 50));
      const pushed: string[] = [];
      const unsubscribe = await broker.subscribe('concord.shipment.*', (event) => void pushed.push(event.id));
      const mark = new Date();
      await new Promise((resolve) => setTimeout(resolve, 50));
      const after = [eventOf('concord.shipment.confirmed', 'S2'), eventOf('concord.shipment.confirmed', 'S3')];
      await broker.publish(after);
      await until(() => pushed.length === 2);
      expect(pushed).toEqual(after.map((event) => event.id));
      await unsubscribe();

      await broker.rewind('replayer', 'concord.shipment.*', { time: mark });
      const replayed: string[] = [];
      const consumer = await broker.consume({ name: 'replayer', types: 'concord.shipment.*' }, (event) => void replayed.push(event.id));
      await until(() => replayed.length === 2);
      expect(replayed).toEqual(after.map((event) => event.id));
      expect((await broker.read({ types: 'concord.shipment.*', since: mark })).map((entry) => entry.event.id)).toEqual(
        after.map((event) => event.id),
      );
      await consumer.stop();
      await broker.close();
    });

    it('stop() resolves once the running handler finished and was acknowledged; the name resumes after that event', async () => {
      const broker = await under.open();
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      const started: string[] = [];
      const consumer = await broker.consume({ name: 'stops', types: 'concord.return.*' }, async (event) => {
        started.push(event.id);
        await gate;
      });
      const events = [eventOf('concord.return.authorized', 'R1'), eventOf('concord.return.authorized', 'R2')];
      await broker.publish(events);
      await until(() => started.length === 1);
      let stopped = false;
      const stopping = consumer.stop().then(() => (stopped = true));
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(stopped).toBe(false);
      release();
      await stopping;
      expect(started).toEqual([events[0]!.id]);
      await broker.close();
      const again = await under.open();
      const resumed: string[] = [];
      const back = await again.consume({ name: 'stops', types: 'concord.return.*' }, (event) => void resumed.push(event.id));
      await until(() => resumed.length === 1);
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(resumed).toEqual([events[1]!.id]);
      await back.stop();
      await again.close();
    });

    it('replays from a position: a consumer rewound after one event gets the ones stored after it', async () => {
      const broker = await under.open();
      const events = [1, 2, 3, 4].map((n) => eventOf('concord.contract.updated', `K${n}`));
      await broker.publish(events);
      const stored = (await broker.read({ types: 'concord.contract.*' })).filter((entry) =>
        events.some((event) => event.id === entry.event.id),
      );
      expect(stored.map((entry) => entry.event.id)).toEqual(events.map((event) => event.id));
      await broker.rewind('from-position', 'concord.contract.*', { after: stored[1]!.position });
      const replayed: string[] = [];
      const consumer = await broker.consume(
        { name: 'from-position', types: 'concord.contract.*' },
        (event) => void replayed.push(event.id),
      );
      await until(() => replayed.length === 2);
      expect(replayed).toEqual([events[2]!.id, events[3]!.id]);
      await consumer.stop();
      await broker.close();
    });

    it('onceEach applies a redelivered id once', async () => {
      const applied: string[] = [];
      const handler = onceEach((event) => void applied.push(event.id));
      const event = eventOf('concord.case.updated', 'c9');
      await handler(event);
      await handler(event);
      expect(applied).toEqual([event.id]);
    });
  });
}
