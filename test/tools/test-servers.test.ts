import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { startPostgres, type PostgresServer } from '../helpers/postgres.ts';
import { DEBIAN_POSTGRES_ROOT, REQUIRED_SERVERS, locate } from '../setup/servers.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const servers = fileURLToPath(new URL('../setup/servers.ts', import.meta.url));

/** The test setup's promise: on a fresh machine the suite installs its servers, or says exactly what to run. */
describe('the servers the suite needs', () => {
  it('are on this machine after the test setup', () => {
    for (const server of REQUIRED_SERVERS) expect(locate(server.binary), server.binary).toMatch(/^\//);
  });

  it.runIf(process.getuid?.() === 0)('names the missing package and the command to install it when this user cannot', () => {
    const script = `import { ensureServers } from ${JSON.stringify(servers)};
      try { ensureServers([{ binary: 'concord-no-such-server', debianPackage: 'concord-no-such-server', usedBy: 'a check' }]); }
      catch (error) { console.log(error.message); process.exit(3); }`;
    // As an unprivileged user (nobody), who may not run apt-get.
    const run = spawnSync(
      'setpriv',
      ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '--import', 'tsx', '-e', script],
      {
        cwd: root,
        encoding: 'utf8',
        env: { ...process.env, HOME: '/tmp', TSX_TSCONFIG_PATH: `${root}/tsconfig.json` },
      },
    );
    expect(run.status, run.stderr).toBe(3);
    expect(run.stdout).toContain('concord-no-such-server (a check)');
    expect(run.stdout).toContain('Run as root: apt-get install -y --no-install-recommends concord-no-such-server');
  });
});

/** A throwaway PostgreSQL cluster per test, as the workflow engine's tests will start them. */
describe('startPostgres', () => {
  const started: PostgresServer[] = [];
  const clients: pg.Client[] = [];
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((client) => client.end().catch(() => undefined)));
    await Promise.all(started.splice(0).map((server) => server.stop()));
  });
  async function start(): Promise<PostgresServer> {
    const server = await startPostgres();
    started.push(server);
    return server;
  }
  async function connect(url: string): Promise<pg.Client> {
    const client = new pg.Client({ connectionString: url });
    // A server stopped under an open session ends it; that is no failure of the test.
    client.on('error', () => undefined);
    clients.push(client);
    await client.connect();
    return client;
  }

  it('finds initdb and postgres in the folder Debian installs them to, which is not on PATH', () => {
    const script = `import { locate } from ${JSON.stringify(servers)};
      console.log(JSON.stringify(['initdb', 'postgres', 'pg_ctl'].map(locate)));`;
    const run = spawnSync(process.execPath, ['--import', 'tsx', '-e', script], {
      cwd: root,
      encoding: 'utf8',
      env: { ...process.env, PATH: '/usr/bin:/bin', TSX_TSCONFIG_PATH: `${root}/tsconfig.json` },
    });
    expect(run.status, run.stderr).toBe(0);
    const newest = Math.max(
      ...readdirSync(DEBIAN_POSTGRES_ROOT)
        .filter((name) => /^\d+$/.test(name))
        .map(Number),
    );
    expect(JSON.parse(run.stdout)).toEqual(
      ['initdb', 'postgres', 'pg_ctl'].map((binary) => `${DEBIAN_POSTGRES_ROOT}/${newest}/bin/${binary}`),
    );
  });

  it('gives a URL that answers SELECT 1, in UTF-8, on a database of its own', async () => {
    const began = Date.now();
    const server = await start();
    const elapsed = Date.now() - began;
    expect(elapsed, `start-up took ${elapsed} ms`).toBeLessThan(5_000);
    expect(server.url).toBe(`postgres://postgres@127.0.0.1:${server.port}/test`);
    const client = await connect(server.url);
    const { rows } = await client.query<{ one: number; db: string; encoding: string; fsync: string; max: string }>(
      `SELECT 1 AS one, current_database() AS db, pg_encoding_to_char(encoding) AS encoding,
        current_setting('fsync') AS fsync, current_setting('max_connections') AS max
       FROM pg_database WHERE datname = current_database()`,
    );
    expect(rows).toEqual([{ one: 1, db: 'test', encoding: 'UTF8', fsync: 'off', max: '200' }]);
  });

  it('runs two servers side by side, each with its own data', async () => {
    const [a, b] = await Promise.all([start(), start()]);
    expect(a.port).not.toBe(b.port);
    const [first, second] = await Promise.all([connect(a.url), connect(b.url)]);
    await first.query('CREATE TABLE only_in_a (id int)');
    const { rows } = await second.query(`SELECT to_regclass('only_in_a') AS found`);
    expect(rows).toEqual([{ found: null }]);
  });

  it('stop() ends the server under an open session and leaves no process and no folder', async () => {
    const server = await start();
    const client = await connect(server.url);
    await client.query('SELECT 1');
    const { pid, dir } = server;
    const before = processesOf(pid, dir);
    // The postmaster, its watchdog, the session's backend and the background workers.
    expect(before.length).toBeGreaterThan(4);
    await server.stop();
    expect(stillRunning(before)).toEqual([]);
    expect(processesOf(pid, dir)).toEqual([]);
    expect(existsSync(dir)).toBe(false);
  });

  it('kill() crashes it and restart() recovers the committed data on the same port', async () => {
    const server = await start();
    const client = await connect(server.url);
    // No checkpoint: the rows come back from the WAL, replayed by crash recovery.
    await client.query('CREATE TABLE kept (id int)');
    await client.query('INSERT INTO kept VALUES (1)');
    await client.query('INSERT INTO kept VALUES (2)');
    const before = server.pid;
    const postgres = processesOf(before);
    expect(postgres.length).toBeGreaterThan(3);
    server.kill();
    // Not only the postmaster: every backend is gone when kill() returns.
    expect(stillRunning(postgres)).toEqual([]);
    await expect(client.query('SELECT 1')).rejects.toThrow();
    await server.restart();
    expect(server.pid).not.toBe(before);
    const again = await connect(server.url);
    const { rows } = await again.query('SELECT id FROM kept ORDER BY id');
    expect(rows).toEqual([{ id: 1 }, { id: 2 }]);
  });

  it('FOR UPDATE SKIP LOCKED lets a second session pass over the row the first one holds', async () => {
    const server = await start();
    const [first, second] = [await connect(server.url), await connect(server.url)];
    await first.query(`CREATE TABLE jobs (id int PRIMARY KEY); INSERT INTO jobs VALUES (1), (2)`);
    const claim = 'SELECT id FROM jobs ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED';
    await first.query('BEGIN');
    expect((await first.query(claim)).rows).toEqual([{ id: 1 }]);
    await second.query('BEGIN');
    expect((await second.query(claim)).rows).toEqual([{ id: 2 }]);
    // Without SKIP LOCKED the second session would wait for the first; NOWAIT shows the row is held.
    await expect(second.query('SELECT id FROM jobs WHERE id = 1 FOR UPDATE NOWAIT')).rejects.toThrow(/could not obtain lock/);
    await second.query('ROLLBACK');
    await first.query('COMMIT');
  });
});

/** The live processes of a server: the postmaster, the backends it forked, and any naming its folder (its watchdog). */
function processesOf(postmaster: number, dir?: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const [state, parent] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      const ours = Number(entry) === postmaster || Number(parent) === postmaster || (dir !== undefined && cmdline.includes(dir));
      if (ours && state !== 'Z') found.push(Number(entry));
    } catch {
      // Ended while being read.
    }
  }
  return found;
}

/** Which of these processes still run (a zombie does not). */
function stillRunning(pids: number[]): number[] {
  return pids.filter((pid) => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
    } catch {
      return false;
    }
  });
}
