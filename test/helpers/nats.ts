import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../tools/bench/processes.ts';
import { locate } from '../setup/servers.ts';

/**
 * A real nats-server with JetStream (Debian's package; the test setup installs it) on a free port
 * of 127.0.0.1, its store in a throwaway folder: nothing is shared with another test.
 */
export interface NatsServer {
  /** `nats://127.0.0.1:port`. */
  readonly url: string;
  readonly port: number;
  /** The server's pid; changes on restart(). */
  readonly pid: number;
  /** Stops the server (SIGKILL, nothing to flush in a test) and removes its folder. */
  stop(): Promise<void>;
  /** SIGKILL, as a crashed server: returns once it is gone; restart() recovers the store. */
  kill(): Promise<void>;
  /** Starts the server again on the same port and store (after kill(), or stops it first when it runs). */
  restart(): Promise<void>;
  /** What the server logged so far. */
  log(): string;
}

export function natsServerPath(): string {
  const found = locate('nats-server');
  if (!found) throw new Error('nats-server is not installed: `apt-get install -y nats-server` (test/setup/servers.ts does it when it may)');
  return found;
}

export async function startNats(): Promise<NatsServer> {
  const binary = natsServerPath();
  const dir = mkdtempSync(join(tmpdir(), 'concord-nats-'));
  const store = join(dir, 'store');
  const logFile = join(dir, 'nats.log');
  let port = 0;
  let running: Running | undefined;

  const launch = async (): Promise<void> => {
    const args = ['-js', '-a', '127.0.0.1', '-p', String(port), '-sd', store, '-l', logFile];
    const child = spawn(binary, args, { stdio: 'ignore' });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.once('error', () => undefined);
    running = { child, exited, watchdog: watchdog(child, dir) };
    live.add(running);
    await untilReady(child, port, () => readLog(logFile));
  };

  const shutdown = async (): Promise<void> => {
    const current = running;
    if (!current) return;
    running = undefined;
    if (current.child.exitCode === null && current.child.signalCode === null) {
      current.child.kill('SIGKILL');
      await current.exited;
    }
    killGroup(current.watchdog);
    live.delete(current);
  };

  try {
    // freePort() closes the port before nats-server binds it, so another process may take it meanwhile: then try another.
    for (let attempt = 1; ; attempt++) {
      port = await freePort();
      try {
        await launch();
        break;
      } catch (error) {
        await shutdown();
        if (attempt === 3 || !/address already in use/i.test(readLog(logFile))) throw error;
      }
    }
  } catch (error) {
    rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
    throw error;
  }

  let pid = running!.child.pid!;
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    get pid() {
      return running?.child.pid ?? pid;
    },
    async stop() {
      await shutdown();
      rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
    },
    kill: shutdown,
    async restart() {
      await shutdown();
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
  for (const { child } of live) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

/**
 * A shell that outlives this process to clean up after it when it ends without running its exit
 * handlers (SIGKILL, SIGTERM): it waits for this process to go, kills the server, removes the folder.
 */
function watchdog(server: ChildProcess, dir: string): ChildProcess {
  const script = `while kill -0 "$1" 2>/dev/null; do sleep 1; done
    kill -KILL "$2" 2>/dev/null
    rm -rf "$3"`;
  const child = spawn('sh', ['-c', script, 'concord-nats-watchdog', String(process.pid), String(server.pid), dir], {
    stdio: 'ignore',
    detached: true,
  });
  child.unref();
  return child;
}

/** SIGKILL to a detached child's whole process group: the watchdog's shell and its sleep. */
function killGroup(child: ChildProcess): void {
  if (!child.pid) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
}

/**
 * Resolves once the server greets a client with an INFO that offers JetStream (the store is
 * recovered by then), rejects if it exits first or takes over 15 s.
 */
async function untilReady(child: ChildProcess, port: number, log: () => string): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`nats-server exited (${child.exitCode ?? child.signalCode}) before accepting connections on port ${port}:\n${log()}`);
    if (await offersJetStream(port)) return;
    if (Date.now() > deadline) throw new Error(`nats-server did not accept connections on port ${port} within 15 s:\n${log()}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function offersJetStream(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let greeting = '';
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500);
    socket.on('data', (data) => {
      greeting += data.toString();
      if (greeting.includes('\r\n')) done(greeting.startsWith('INFO ') && /"jetstream"\s*:\s*true/.test(greeting));
    });
    socket.once('error', () => done(false));
    socket.once('timeout', () => done(false));
  });
}

function readLog(file: string): string {
  return existsSync(file) ? readFileSync(file, 'utf8') : '';
}
