import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createInternalSigner } from '../../platform/internal-token.ts';
import { ensureDevKeys, type DevKeys } from '../../platform/keys.ts';
import { freePort } from '../../tools/bench/processes.ts';
import { seedDataDirectory } from '../../tools/seed/index.ts';
import { startSubgraphProxy, type SubgraphProxy } from '../helpers/proxy.ts';
import { postGraphQL, startStack, tokenFor, type Stack } from '../helpers/stack.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const SMALL = { customers: 5, orders: 10, cases: 10, seed: 3, asOf: '2026-11-01' };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A service's entry point as its own process, with what it prints collected line by line. */
interface Child {
  readonly process: ChildProcess;
  readonly lines: string[];
  /** Its exit code (null: ended by a signal), once it has exited. */
  readonly exited: Promise<number | null>;
}

function run(entry: string, env: Record<string, string>): Child {
  // As deployed: NODE_ENV=test (set by the test runner) changes what libraries do on a signal.
  const { NODE_ENV: _testEnv, ...inherited } = process.env;
  const child = spawn(process.execPath, ['--import', 'tsx', entry], {
    cwd: root,
    env: { ...inherited, HOST: '127.0.0.1', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  let rest = '';
  const collect = (chunk: Buffer) => {
    const text = rest + chunk.toString();
    const parts = text.split('\n');
    rest = parts.pop() ?? '';
    lines.push(...parts.filter(Boolean));
  };
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  // A process that does not end on its own is killed after a minute: the test then fails on its code.
  const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  // 'close', not 'exit': the output is read to its end before the test looks at it.
  const exited = new Promise<number | null>((resolve) =>
    child.once('close', (code) => {
      clearTimeout(killer);
      if (rest) lines.push(rest);
      resolve(code);
    }),
  );
  return { process: child, lines, exited };
}

async function waitReady(url: string, child: Child): Promise<void> {
  const deadline = Date.now() + 45_000;
  while (
    !(await fetch(url).then(
      (r) => r.ok,
      () => false,
    ))
  ) {
    if (child.process.exitCode !== null) throw new Error(`exited before it was ready:\n${child.lines.join('\n')}`);
    if (Date.now() > deadline) throw new Error(`not ready in 45 s:\n${child.lines.join('\n')}`);
    await sleep(200);
  }
}

/** The messages of the JSON log lines a process printed, in order. */
const messages = (lines: readonly string[]) =>
  lines.flatMap((line) => {
    try {
      return [(JSON.parse(line) as { msg?: string }).msg ?? ''];
    } catch {
      return [];
    }
  });

/** What a stopping service answers a new request: 503, a retry hint, SERVICE_STOPPING, and the connection ends. */
async function expectTurnedAway(graphqlUrl: string, headers: Record<string, string>): Promise<void> {
  const answer = await fetch(graphqlUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ query: '{ __typename }' }),
  });
  expect(answer.status).toBe(503);
  expect(answer.headers.get('retry-after')).toBe('1');
  expect(answer.headers.get('connection')).toBe('close');
  expect(((await answer.json()) as { errors: { extensions: { code: string } }[] }).errors[0]!.extensions.code).toBe('SERVICE_STOPPING');
}

/**
 * A service told to stop (SIGTERM, as an orchestrator does) finishes what it has started: /ready
 * answers 503 at once so the balancer sends no more, a new request is turned away with a retry
 * hint, the requests in flight get their answers, then it closes its connectors and stores, logs
 * "<name> stopped" as its last line and exits 0. A gateway with several workers that cannot
 * start (its port is taken) exits non-zero within seconds instead of restarting them for a minute.
 */
describe('starting right or not at all, and stopping cleanly', () => {
  const dir = mkdtempSync(join(tmpdir(), 'concord-stop-'));
  let keys: DevKeys;
  beforeAll(async () => {
    seedDataDirectory(dir, SMALL);
    keys = await ensureDevKeys(dir);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('a subgraph drains its requests on SIGTERM: /ready 503, new requests turned away, the one in flight answered, "crm stopped", exit 0', async () => {
    const port = await freePort();
    // Every call to the embedded system takes 1.5 s, so a request is in flight when the signal comes.
    const crm = run('subgraphs/crm/src/index.ts', { DATA_DIR: dir, CRM_PORT: String(port), CRM_LATENCY_MS: '1500' });
    const base = `http://127.0.0.1:${port}`;
    await waitReady(`${base}/ready`, crm);
    const db = new Database(join(dir, 'crm.sqlite'), { readonly: true });
    const account = db
      .prepare('SELECT AccountNumber AS id, Name AS name FROM Account WHERE AccountNumber IS NOT NULL ORDER BY AccountNumber LIMIT 1')
      .get() as {
      id: string;
      name: string;
    };
    db.close();
    const token = await createInternalSigner(keys.internal.privateKey)(
      { subject: 'agent@test.example', roles: ['support_agent'], customerId: null },
      'crm',
    );
    const headers = { authorization: `Bearer ${token}` };

    const inFlight = postGraphQL<{ customer: { name: string } }>(
      `${base}/graphql`,
      'query($id: ID!) { customer(id: $id) { name } }',
      { id: account.id },
      headers,
    );
    await sleep(400);
    crm.process.kill('SIGTERM');
    await sleep(200);

    const ready = await fetch(`${base}/ready`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toMatchObject({ status: 'stopping', service: 'crm' });
    await expectTurnedAway(`${base}/graphql`, headers);
    const answer = await inFlight;
    expect(answer.status).toBe(200);
    expect(answer.body).toEqual({ data: { customer: { name: account.name } } });

    expect(await crm.exited).toBe(0);
    const said = messages(crm.lines);
    expect(said).toContain('crm stopping');
    expect(said.at(-1)).toBe('crm stopped');
  }, 90_000);

  describe.each([1, 2])('the gateway with %i worker(s)', (workers) => {
    let stack: Stack;
    let proxy: SubgraphProxy;
    beforeAll(async () => {
      stack = await startStack({ keys });
      proxy = await startSubgraphProxy(stack.crm.url);
    }, 60_000);
    afterAll(async () => {
      await proxy?.stop();
      await stack?.stop();
    });

    it('drains on SIGTERM: /ready 503, new requests turned away, the request in flight answered, "gateway stopped" last, exit 0', async () => {
      const port = await freePort();
      const gateway = run('gateway/src/index.ts', {
        DATA_DIR: dir,
        GATEWAY_PORT: String(port),
        GATEWAY_WORKERS: String(workers),
        SUBGRAPH_CRM_URL: proxy.url,
        SUBGRAPH_ERP_URL: stack.erp.url,
        SUBGRAPH_SUPPORT_URL: stack.support.url,
      });
      const base = `http://127.0.0.1:${port}`;
      await waitReady(`${base}/ready`, gateway);
      // One worker answers /ready while the other may still be starting: wait for both (a worker
      // signalled before it serves just ends, with nothing to drain and nothing to log).
      if (workers > 1) {
        const deadline = Date.now() + 30_000;
        while (!messages(gateway.lines).includes('gateway workers serving') && Date.now() < deadline) await sleep(50);
      }
      const headers = { authorization: `Bearer ${await tokenFor(keys, 'support_agent')}` };
      const name = (stack.dbs.crm.prepare('SELECT Name AS name FROM Account WHERE AccountNumber = ?').get('C10001') as { name: string })
        .name;

      // The CRM holds its answer until released: the request is in flight in a worker.
      proxy.setMode({ kind: 'hold' });
      const inFlight = postGraphQL<{ customer: { name: string } }>(`${base}/graphql`, '{ customer(id: "C10001") { name } }', {}, headers);
      const deadline = Date.now() + 5_000;
      while (proxy.held() === 0 && Date.now() < deadline) await sleep(20);
      expect(proxy.held()).toBe(1);
      gateway.process.kill('SIGTERM');
      await sleep(300);

      // New connections (round robin over the workers still listening) all see a stopping gateway.
      for (let i = 0; i < 2 * workers; i++) {
        const ready = await fetch(`${base}/ready`, { headers: { connection: 'close' } });
        expect(ready.status).toBe(503);
        expect(await ready.json()).toMatchObject({ status: 'stopping' });
      }
      await expectTurnedAway(`${base}/graphql`, headers);
      proxy.release();
      const answer = await inFlight;
      expect(answer.status).toBe(200);
      expect(answer.body).toEqual({ data: { customer: { name } } });

      expect(await gateway.exited).toBe(0);
      const said = messages(gateway.lines);
      expect(said.filter((line) => line === 'gateway stopped').length).toBe(workers === 1 ? 1 : workers + 1);
      expect(said.at(-1)).toBe('gateway stopped');
      proxy.setMode({ kind: 'pass' });
    }, 90_000);
  });

  it('a gateway with two workers on a port already taken exits non-zero within seconds, saying why', async () => {
    const taken: Server = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = (taken.address() as { port: number }).port;
    try {
      const started = Date.now();
      const gateway = run('gateway/src/index.ts', { DATA_DIR: dir, GATEWAY_PORT: String(port), GATEWAY_WORKERS: '2' });
      const code = await gateway.exited;
      const tookMs = Date.now() - started;
      expect(code).not.toBe(0);
      expect(code).not.toBeNull();
      expect(gateway.lines.join('\n')).toContain('EADDRINUSE');
      expect(messages(gateway.lines)).toContain('a gateway worker exited before it served; the gateway cannot start');
      // Two workers starting (loading TypeScript, the supergraph) take a few seconds on a busy machine.
      expect(tookMs).toBeLessThan(20_000);
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  }, 60_000);
});
