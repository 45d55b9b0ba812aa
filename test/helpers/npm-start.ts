import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';

/**
 * A free port outside the kernel's ephemeral range (32768 and up), so that no service another
 * test binds to port 0 can be handed it between this check and npm start's own listen.
 */
export async function freePort(): Promise<number> {
  for (;;) {
    const candidate = 20_000 + Math.floor(Math.random() * 10_000);
    const free = await new Promise<boolean>((resolve) => {
      const server = createServer();
      server.once('error', () => resolve(false));
      server.listen(candidate, '127.0.0.1', () => server.close(() => resolve(true)));
    });
    if (free) return candidate;
  }
}

export interface NpmStarted {
  readonly child: ChildProcess;
  readonly ports: { GATEWAY_PORT: number; CRM_PORT: number; ERP_PORT: number; SUPPORT_PORT: number; PROCESSES_PORT: number };
  /** What it printed so far (stdout and stderr). */
  output: string;
  readonly exited: Promise<number | null>;
}

/**
 * Starts `npm start` on ports of its own (none of them the defaults) and collects what it prints;
 * resolves once it says it is running (or has exited). `portsIn` writes the ports somewhere else
 * instead of the environment (a settings file).
 */
export async function npmStart(
  dataDir: string,
  env: Record<string, string> = {},
  portsIn?: (ports: Record<string, number>) => void,
): Promise<NpmStarted> {
  const ports = {
    GATEWAY_PORT: await freePort(),
    CRM_PORT: await freePort(),
    ERP_PORT: await freePort(),
    SUPPORT_PORT: await freePort(),
    PROCESSES_PORT: await freePort(),
  };
  portsIn?.(ports);
  const child = spawn(process.execPath, ['--import', 'tsx', 'tools/start.ts'], {
    env: {
      ...process.env,
      ...(portsIn ? {} : Object.fromEntries(Object.entries(ports).map(([k, v]) => [k, String(v)]))),
      DATA_DIR: dataDir,
      LOG_LEVEL: 'warn',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const started = { child, ports, output: '' };
  child.stdout.on('data', (chunk: Buffer) => (started.output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (started.output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const deadline = Date.now() + 90_000;
  while (!started.output.includes('Stop with Ctrl+C') && child.exitCode === null && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return Object.assign(started, { exited });
}
