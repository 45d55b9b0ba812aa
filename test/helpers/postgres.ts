import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { chownSync, closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { freePort } from '../../tools/bench/processes.ts';
import { locate } from '../setup/servers.ts';

export interface PostgresOptions {
  /** The database the URL names, created empty; `test` unless told. */
  readonly database?: string;
  /** The superuser initdb creates and the URL connects as (no password: the cluster trusts everyone); `postgres` unless told. */
  readonly user?: string;
  /** More server settings (`-c name=value`), over the defaults below. */
  readonly settings?: Readonly<Record<string, string | number>>;
}

/**
 * A real PostgreSQL server (Debian's package; the test setup installs it) in a throwaway cluster
 * of its own, on a free port of 127.0.0.1: nothing is shared with another test or the machine's
 * own clusters.
 */
export interface PostgresServer {
  /** `postgres://user@127.0.0.1:port/database`. */
  readonly url: string;
  readonly port: number;
  readonly user: string;
  readonly database: string;
  /** The postmaster's pid (each backend is its child, in a session of its own). Changes on restart(). */
  readonly pid: number;
  /** The cluster's folder: `data/` holds the cluster, the unix socket and `postgres.log` sit beside it. */
  readonly dir: string;
  /**
   * Fast shutdown (SIGINT: open sessions are ended, nothing waits for clients), then the folder is
   * removed. pg emits those ends as 'error' events on a Client or Pool: give it a listener.
   */
  stop(): Promise<void>;
  /**
   * SIGKILL to the postmaster and every backend at once, as a crashed server: returns once none
   * runs; restart() recovers what was committed.
   */
  kill(): void;
  /** Starts the server again on the same port and data, after kill() (crash recovery) or a fast shutdown when it runs. */
  restart(): Promise<void>;
  /** What the server logged so far. */
  log(): string;
}

/**
 * Settings that trade durability against a machine crash for speed (a test's cluster is thrown
 * away), and room for the pools of several replicas. Each can be overridden with `options.settings`.
 */
const FAST_SETTINGS: Readonly<Record<string, string | number>> = {
  fsync: 'off',
  // On, unlike the others: with fsync off a commit costs one write(), no slower measured, and it is
  // what keeps an acknowledged commit through kill() (off, the last ~200 ms of commits are lost).
  synchronous_commit: 'on',
  full_page_writes: 'off',
  max_connections: 200,
  shared_buffers: '32MB',
  // English messages whatever the machine's locale, so a failure reads the same everywhere.
  lc_messages: 'C',
};

/** The folder of one major's server programs, the one `postgres` is in: initdb and createdb must be its own. */
export function postgresBinDir(): string {
  const found = locate('postgres');
  if (!found) throw new Error('postgres is not installed: `apt-get install -y postgresql` (test/setup/servers.ts does it when it may)');
  return dirname(realpathSync(found));
}

export async function startPostgres(options: PostgresOptions = {}): Promise<PostgresServer> {
  const bin = postgresBinDir();
  const user = options.user ?? 'postgres';
  const database = options.database ?? 'test';
  const owner = clusterOwner();
  const dir = mkdtempSync(join(tmpdir(), 'concord-pg-'));
  if (owner) chownSync(dir, owner.uid, owner.gid);
  const data = join(dir, 'data');
  const logFile = join(dir, 'postgres.log');
  let running: Running | undefined;
  let port = 0;

  const launch = async (): Promise<void> => {
    const settings = { ...FAST_SETTINGS, ...options.settings, listen_addresses: '127.0.0.1', port, unix_socket_directories: dir };
    const args = ['-D', data, ...Object.entries(settings).flatMap(([name, value]) => ['-c', `${name}=${value}`])];
    const logFd = openSync(logFile, 'a');
    // Its own process group: a Ctrl-C meant for vitest is left to the cleanup below, which also removes the folder.
    const child = spawn(join(bin, 'postgres'), args, { ...as(owner, dir), stdio: ['ignore', logFd, logFd], detached: true });
    closeSync(logFd);
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.once('error', () => undefined);
    running = { child, exited, watchdog: watchdog(child, dir) };
    live.add(running);
    await untilReady(child, data, port, () => readLog(logFile));
  };

  const shutdown = async (signal: 'SIGINT' | 'SIGKILL'): Promise<void> => {
    const current = running;
    if (!current) return;
    running = undefined;
    if (current.child.exitCode === null && current.child.signalCode === null) {
      if (signal === 'SIGKILL') killServer(current.child.pid!);
      else current.child.kill('SIGINT');
      const late = setTimeout(() => killServer(current.child.pid!), 10_000);
      await current.exited;
      clearTimeout(late);
    }
    killGroup(current.watchdog, 'SIGKILL');
    live.delete(current);
  };

  try {
    const init = await run(
      join(bin, 'initdb'),
      ['-D', data, '-U', user, '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync'],
      as(owner, dir),
    );
    if (init.code !== 0) throw new Error(`initdb failed (${init.code}):\n${init.output}`);
    // freePort() closes the port before postgres binds it, so another process may take it meanwhile: then try another.
    for (let attempt = 1; ; attempt++) {
      port = await freePort();
      try {
        await launch();
        break;
      } catch (error) {
        await shutdown('SIGKILL');
        if (attempt === 3 || !/could not bind|Address already in use/.test(readLog(logFile))) throw error;
      }
    }
    if (database !== 'postgres') {
      const created = await run(join(bin, 'createdb'), ['-h', '127.0.0.1', '-p', String(port), '-U', user, '--', database], as(null, dir));
      if (created.code !== 0) throw new Error(`createdb ${database} failed (${created.code}):\n${created.output}`);
    }
  } catch (error) {
    await shutdown('SIGKILL');
    rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
    throw error;
  }

  let pid = running!.child.pid!;
  return {
    url: `postgres://${encodeURIComponent(user)}@127.0.0.1:${port}/${encodeURIComponent(database)}`,
    port,
    user,
    database,
    get pid() {
      return running?.child.pid ?? pid;
    },
    dir,
    async stop() {
      await shutdown('SIGINT');
      releaseSharedMemory(data);
      rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
    },
    kill() {
      if (running?.child.pid) killServer(running.child.pid);
    },
    async restart() {
      await shutdown(running && running.child.exitCode === null && running.child.signalCode === null ? 'SIGINT' : 'SIGKILL');
      await launch();
      pid = running!.child.pid!;
    },
    log: () => readLog(logFile),
  };
}

interface Running {
  readonly child: ChildProcess;
  readonly exited: Promise<void>;
  readonly watchdog: ChildProcess;
}

/** The servers of this process not stopped yet: a test that forgets stop() must not leave one behind when the worker exits. */
const live = new Set<Running>();
process.once('exit', () => {
  // Immediate shutdown: the postmaster ends its backends and frees its shared memory by itself, then the watchdog removes the folder.
  for (const { child } of live) if (child.exitCode === null && child.signalCode === null) child.kill('SIGQUIT');
});

/**
 * A shell that outlives this process to clean up after it when it ends without running its exit
 * handlers (SIGKILL, SIGTERM): it waits for this process to go, shuts the server down, removes the folder.
 */
function watchdog(server: ChildProcess, dir: string): ChildProcess {
  const script = `while kill -0 "$1" 2>/dev/null; do sleep 1; done
    kill -QUIT "$2" 2>/dev/null
    i=0; while kill -0 "$2" 2>/dev/null && [ "$i" -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    pkill -KILL -P "$2"; kill -KILL "$2" 2>/dev/null
    rm -rf "$3"`;
  const child = spawn('sh', ['-c', script, 'concord-pg-watchdog', String(process.pid), String(server.pid), dir], {
    stdio: 'ignore',
    detached: true,
  });
  child.unref();
  return child;
}

/** A signal to a detached child's whole process group: the watchdog's shell and its sleep. */
function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (!child.pid) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // Already gone.
  }
}

/**
 * SIGKILL to the postmaster and every process it forked, back once none runs. Each backend is in
 * a session of its own (PostgreSQL calls setsid()), so the postmaster's process group does not
 * reach them; and a signal lands a moment after kill() returns, when a query sent meanwhile could
 * still be answered. Linux's /proc.
 */
function killServer(pid: number): void {
  try {
    // Stopped, it forks no backend between the listing and the kill.
    process.kill(pid, 'SIGSTOP');
  } catch {
    return;
  }
  const doomed = [pid, ...childrenOf(pid)];
  for (const target of doomed) {
    try {
      process.kill(target, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  const pause = new Int32Array(new SharedArrayBuffer(4));
  const deadline = Date.now() + 5_000;
  while (Date.now() < deadline && doomed.some(runs)) Atomics.wait(pause, 0, 0, 1);
}

function childrenOf(parent: number): number[] {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  return entries.filter((entry) => /^\d+$/.test(entry) && stat(Number(entry))?.parent === parent).map(Number);
}

/** Whether the process runs still: a zombie does not, it is dead and only not reaped. */
function runs(pid: number): boolean {
  const state = stat(pid)?.state;
  return state !== undefined && state !== 'Z' && state !== 'X';
}

function stat(pid: number): { state: string; parent: number } | undefined {
  try {
    const line = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // After the command's name, in parentheses: the state, then the parent.
    const [state, parent] = line.slice(line.lastIndexOf(')') + 2).split(' ');
    return state && parent ? { state, parent: Number(parent) } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * PostgreSQL refuses to run as root, and CI runs the suite as root: then the cluster is owned and
 * run by the `postgres` system user Debian's package creates. Null when this user may run it.
 */
function clusterOwner(): { uid: number; gid: number } | null {
  if (process.getuid?.() !== 0) return null;
  const uid = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
  const gid = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
  if (uid.status !== 0 || gid.status !== 0)
    throw new Error(
      "PostgreSQL does not run as root and there is no `postgres` user to run it as (Debian's postgresql package creates one)",
    );
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

/** How to spawn the server programs: as the cluster's owner, from a folder it can read, without the caller's PG* variables. */
function as(owner: { uid: number; gid: number } | null, cwd: string): SpawnOptions {
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('PG')));
  return { cwd, env, ...(owner ?? {}) };
}

/** Resolves once the postmaster says it accepts connections (postmaster.pid's status line), rejects if it exits first. */
async function untilReady(child: ChildProcess, data: string, port: number, log: () => string): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`postgres exited (${child.exitCode ?? child.signalCode}) before accepting connections on port ${port}:\n${log()}`);
    // The pid too: after kill() the file still says the dead postmaster was ready.
    const pidFile = readPidFile(data);
    if (pidFile[0]?.trim() === String(child.pid) && pidFile[7]?.trim() === 'ready') return;
    if (Date.now() > deadline) throw new Error(`postgres did not accept connections on port ${port} within 15 s:\n${log()}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * After a SIGKILL the postmaster cannot free its System V segment; a restart() would, but a
 * server stopped after kill() would leave one behind for good, one per test run.
 */
function releaseSharedMemory(data: string): void {
  const shmid = readPidFile(data)[6]?.trim().split(/\s+/)[1];
  if (shmid && /^\d+$/.test(shmid)) spawnSync('ipcrm', ['-m', shmid], { stdio: 'ignore' });
}

function readPidFile(data: string): string[] {
  try {
    return readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n');
  } catch {
    return [];
  }
}

function readLog(file: string): string {
  return existsSync(file) ? readFileSync(file, 'utf8') : '';
}

function run(command: string, args: string[], options: SpawnOptions): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('error', (error) => resolve({ code: null, output: `${output}${error.message}` }));
    child.once('close', (code) => resolve({ code, output: output.trim() }));
  });
}
