import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EventBroker } from '../../platform/events/broker.ts';
import { embeddedBroker } from '../../platform/events/embedded-broker.ts';
import { ensureDevKeys } from '../../platform/keys.ts';
import { createLogger } from '../../platform/logger.ts';
import { freePort } from '../../tools/bench/processes.ts';
import { caseSubjectChanged, graphqlRequestsServed, postGraphQL, startStack, tokenFor, type Stack } from '../helpers/stack.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const SUBJECT = 'query($id: ID!) { case(id: $id) { id subject } }';

/**
 * The gateway as it runs in production with GATEWAY_WORKERS: its own process, a primary and two
 * workers sharing the port. Requests land on both, /metrics counts both, a change notice that
 * reaches one worker empties the in-memory caches of both, and a worker that dies is replaced.
 */
describe('the gateway with two workers', () => {
  let stack: Stack;
  let gateway: ChildProcess;
  let url: string;
  let metricsUrl: string;
  let token: string;
  let broker: EventBroker;

  beforeAll(async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'concord-workers-'));
    const keys = await ensureDevKeys(dataDir);
    broker = embeddedBroker({ file: join(dataDir, 'events.sqlite'), logger: createLogger('broker', 'silent'), pollMs: 20 });
    // The desk's own feed publishes elsewhere: only the events the test publishes reach the workers.
    stack = await startStack({
      keys,
      broker,
      support: { broker: embeddedBroker({ file: ':memory:', logger: createLogger('broker', 'silent') }) },
    });
    const port = await freePort();
    url = `http://127.0.0.1:${port}/graphql`;
    const metricsPort = await freePort();
    metricsUrl = `http://127.0.0.1:${metricsPort}/graphql`;
    gateway = spawn(process.execPath, ['--import', 'tsx', 'gateway/src/index.ts'], {
      cwd: root,
      stdio: 'ignore',
      env: {
        ...process.env,
        DATA_DIR: dataDir,
        GATEWAY_PORT: String(port),
        HOST: '127.0.0.1',
        GATEWAY_WORKERS: '2',
        METRICS_PORT: String(metricsPort),
        LOG_LEVEL: 'silent',
        CACHE_TTL: 'volatile=300',
        EVENTS_DATABASE: join(dataDir, 'events.sqlite'),
        GATEWAY_REPLICA: 'workers-test',
        SUBGRAPH_CRM_URL: stack.crm.url,
        SUBGRAPH_ERP_URL: stack.erp.url,
        SUBGRAPH_SUPPORT_URL: stack.support.url,
      },
    });
    token = `Bearer ${await tokenFor(keys, 'support_agent')}`;
    const deadline = Date.now() + 30_000;
    while (
      !(await fetch(url.replace('/graphql', '/ready')).then(
        (r) => r.ok,
        () => false,
      ))
    ) {
      if (Date.now() > deadline) throw new Error('the gateway did not become ready');
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }, 60_000);
  afterAll(async () => {
    if (gateway && gateway.exitCode === null) {
      const exited = new Promise((resolve) => gateway.once('exit', resolve));
      gateway.kill('SIGTERM');
      await exited;
    }
    await stack?.stop();
    await broker?.close();
  });

  const workers = () =>
    spawnSync('pgrep', ['-P', String(gateway.pid), '-f', 'gateway/src/index.ts'], { encoding: 'utf8' })
      .stdout.split('\n')
      .filter(Boolean)
      .map(Number);
  const subject = async (id: string) =>
    (await postGraphQL<{ case: { subject: string } }>(url, SUBJECT, { id }, { authorization: token })).body.data!.case.subject;

  it('serves from two worker processes and reports their metrics together, on the metrics port only', async () => {
    expect(workers()).toHaveLength(2);
    // The primary answers METRICS_PORT for all workers; the API port has no /metrics.
    expect((await fetch(url.replace('/graphql', '/metrics'))).status).toBe(404);
    const before = await graphqlRequestsServed(metricsUrl);
    const answers = await Promise.all(
      Array.from({ length: 20 }, () => postGraphQL(url, '{ cases(first: 1) { totalCount } }', {}, { authorization: token })),
    );
    expect(answers.every((answer) => answer.status === 200 && !answer.body.errors)).toBe(true);
    expect((await graphqlRequestsServed(metricsUrl)) - before).toBe(20);
  });

  it('reports per-process gauges once per worker, labelled, and the build once', async () => {
    const scrape = () => fetch(metricsUrl.replace('/graphql', '/metrics')).then((r) => r.text());
    let text = await scrape();
    const series = (name: string) => text.split('\n').filter((line) => line.startsWith(`${name}{`) || line.startsWith(`${name} `));
    // A worker still starting (a busy machine) answers for its metrics once it has loaded.
    const deadline = Date.now() + 20_000;
    while (series('nodejs_heap_size_used_bytes').length < 2 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      text = await scrape();
    }
    // A heap near its limit in one worker must not hide in a sum over two.
    const heap = series('nodejs_heap_size_used_bytes');
    expect(heap).toHaveLength(2);
    expect(new Set(heap.map((line) => /worker="(\d+)"/.exec(line)?.[1])).size).toBe(2);
    expect(series('process_resident_memory_bytes')).toHaveLength(2);
    // The release is the same in both: one series, value 1.
    const build = series('concord_build_info');
    expect(build).toHaveLength(1);
    expect(build[0]).toMatch(/ 1$/);
  });

  it('drops in both workers what a change event names', async () => {
    const id = (stack.dbs.support.prepare('SELECT id FROM tickets ORDER BY id LIMIT 1').get() as { id: number }).id.toString();
    // Round robin: a few requests warm both workers' caches.
    const original = await subject(id);
    for (let i = 0; i < 5; i++) expect(await subject(id)).toBe(original);
    stack.dbs.support.prepare('UPDATE tickets SET subject = ? WHERE id = ?').run('Changed while cached twice', Number(id));
    expect(await subject(id)).toBe(original);
    await broker.publish([caseSubjectChanged(id)]);
    const deadline = Date.now() + 3_000;
    for (let fresh = 0; fresh < 6;) {
      if ((await subject(id)) === 'Changed while cached twice') fresh++;
      else {
        fresh = 0;
        expect(Date.now(), 'both workers answer the change within 3 s').toBeLessThan(deadline);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
    // Each worker holds one durable consumer of its own slot.
    expect((await broker.consumers()).map((state) => state.name).filter((name) => name.startsWith('gateway-workers-test'))).toEqual([
      'gateway-workers-test-w0',
      'gateway-workers-test-w1',
    ]);
  });

  it('replaces a worker that dies', async () => {
    const [victim] = workers();
    process.kill(victim!, 'SIGKILL');
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline && (workers().length !== 2 || workers().includes(victim!))) await new Promise((r) => setTimeout(r, 200));
    expect(workers()).toHaveLength(2);
    expect(workers()).not.toContain(victim);
    // The replacement took the dead worker's slot, and so its consumer: no third one.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect((await broker.consumers()).filter((state) => state.name.startsWith('gateway-workers-test'))).toHaveLength(2);
  });
});
