import { afterAll, describe, expect, it } from 'vitest';
import { embeddedBroker } from '../../platform/events/embedded-broker.ts';
import { sourceEvent } from '../../platform/events/source.ts';
import { createLogger } from '../../platform/logger.ts';
import { parseSince, runEventsCli } from '../../tools/events.ts';

const broker = embeddedBroker({ file: ':memory:', logger: createLogger('test', 'silent'), pollMs: 20 });
const customerUpdated = (customerId: string, version: number) =>
  sourceEvent(
    { type: 'concord.customer.updated', subject: `customer/${customerId}`, data: { customerId } },
    { source: 'concord/test', version },
  );

/** `npm run events`: what an operator sees of the broker, and the replay that re-applies events. */
describe('npm run events', () => {
  afterAll(() => broker.close());
  const run = async (...argv: string[]) => {
    const lines: string[] = [];
    const code = await runEventsCli(argv, (line) => void lines.push(line), {}, { broker });
    return { code, lines };
  };

  it('tails the latest events, then each new one as it is published', async () => {
    await broker.publish([1, 2, 3].map((n) => customerUpdated(`C${n}`, n)));
    const stored = await run('tail', '--limit', '2', '--no-follow');
    expect(stored.code).toBe(0);
    expect(stored.lines).toHaveLength(2);
    expect(stored.lines[0]).toContain('customer/C2');
    expect(stored.lines[1]).toContain('customer/C3');

    const lines: string[] = [];
    let stop!: () => void;
    const until = new Promise<void>((resolve) => (stop = resolve));
    const following = runEventsCli(
      ['tail', '--type', 'concord.customer.*', '--json', '--limit', '1'],
      (line) => void lines.push(line),
      {},
      {
        broker,
        until,
      },
    );
    await new Promise((resolve) => setTimeout(resolve, 100));
    await broker.publish([customerUpdated('C4', 4)]);
    const deadline = Date.now() + 2_000;
    while (lines.length < 2 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    stop();
    expect(await following).toBe(0);
    expect(lines.map((line) => (JSON.parse(line) as { subject: string }).subject)).toEqual(['customer/C3', 'customer/C4']);
  });

  it('replays from a time: prints what was stored since, or moves a consumer back so it applies them again', async () => {
    const applied: string[] = [];
    const consumer = await broker.consume({ name: 'replayed', types: 'concord.customer.*' }, (event) => void applied.push(event.subject));
    const mark = new Date();
    await new Promise((resolve) => setTimeout(resolve, 20));
    await broker.publish([customerUpdated('C5', 5), customerUpdated('C6', 6)]);
    while (applied.length < 2) await new Promise((resolve) => setTimeout(resolve, 10));
    await consumer.stop();
    const printed = await run('replay', '--since', mark.toISOString());
    expect(printed.lines.map((line) => line.match(/customer\/C\d/)?.[0])).toEqual(['customer/C5', 'customer/C6']);

    expect((await run('replay', '--since', mark.toISOString(), '--consumer', 'replayed', '--type', 'concord.customer.*')).code).toBe(0);
    expect((await run('consumers')).lines.find((line) => line.startsWith('replayed'))).toMatch(/\s2 not yet acknowledged/);
    const again = await broker.consume({ name: 'replayed', types: 'concord.customer.*' }, (event) => void applied.push(event.subject));
    while (applied.length < 4) await new Promise((resolve) => setTimeout(resolve, 10));
    await again.stop();
    expect(applied).toEqual(['customer/C5', 'customer/C6', 'customer/C5', 'customer/C6']);
  });

  it('refuses what it cannot do with a usage error', async () => {
    expect((await run('replay')).code).toBe(2);
    expect((await run('tail', '--since', 'yesterday-ish')).code).toBe(2);
    expect((await run('rewrite')).code).toBe(2);
    expect(parseSince('2h', Date.parse('2026-12-04T12:00:00Z'))?.toISOString()).toBe('2026-12-04T10:00:00.000Z');
  });
});
