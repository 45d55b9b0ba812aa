import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/**
 * The benchmark's services run as separate OS processes, as they are deployed, so what a gateway
 * costs can be read from the kernel for its process alone (and its workers), not guessed from the
 * load generator's side. This module starts them, stops every one of them whatever happens, and
 * reads their CPU time and memory from /proc.
 */

/** A service the benchmark started: its own process group, so stopping it stops its workers too. */
export interface Service {
  readonly name: string;
  readonly pid: number;
  readonly child: ChildProcess;
  /** Its last lines of output (stdout and stderr), to say why it failed. */
  output(): string;
  running(): boolean;
  /** SIGTERM to its process group, SIGKILL after 5 s; resolves once it has exited. */
  stop(): Promise<void>;
}

const started = new Set<Service>();
const OUTPUT_LINES = 40;

/** Starts `process.execPath args…` in `cwd` with exactly `env` (nothing inherited but what is given). */
export function startService(name: string, args: readonly string[], env: Record<string, string>, cwd: string): Service {
  const child = spawn(process.execPath, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const lines: string[] = [];
  const keep = (chunk: Buffer) => {
    lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
    if (lines.length > OUTPUT_LINES) lines.splice(0, lines.length - OUTPUT_LINES);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  if (child.pid === undefined) throw new Error(`${name} could not be started`);
  const pid = child.pid;
  const running = () => child.exitCode === null && child.signalCode === null;
  const signal = (sig: NodeJS.Signals) => {
    try {
      process.kill(-pid, sig);
    } catch {
      // The group is gone already.
    }
  };
  let stopping: Promise<void> | undefined;
  const service: Service = {
    name,
    pid,
    child,
    // Without terminal colours, so the output reads in a report.
    output: () => lines.join('\n').replace(/\x1b\[[0-9;]*m/g, ''),
    running,
    stop() {
      stopping ??= (async () => {
        if (running()) {
          signal('SIGTERM');
          const killer = setTimeout(() => signal('SIGKILL'), 5_000);
          await exited;
          clearTimeout(killer);
        }
        // Workers a primary left behind go with their group.
        signal('SIGKILL');
        started.delete(service);
      })();
      return stopping;
    },
  };
  started.add(service);
  return service;
}

/** Stops every service still running. */
export async function stopAllServices(): Promise<void> {
  await Promise.all([...started].map((service) => service.stop()));
}

/** Last resort on exit: no service outlives the benchmark, even when it is killed mid-run. */
export function killAllServicesNow(): void {
  for (const service of started) {
    try {
      process.kill(-service.pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
}

/** A TCP port free on 127.0.0.1 now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/** A service that did not come up: its message has the service's last output, its summary one line of why. */
export class ServiceStartError extends Error {
  override name = 'ServiceStartError';
  constructor(
    message: string,
    readonly summary: string,
  ) {
    super(message);
  }
}

/** The line of a service's output that says why it failed (with the next one when it ends in a colon). */
export function failureReason(output: string): string {
  const lines = output
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean);
  const at = lines.findIndex((line) => /error|invalid|cannot|failed|refused/i.test(line));
  if (at === -1) return lines.at(-1) ?? 'no output';
  const line = lines[at]!;
  return line.endsWith(':') && lines[at + 1] ? `${line} ${lines[at + 1]}` : line;
}

/** Polls `check` until it is true; fails when the service exits first or after `timeoutMs`. */
export async function waitUntil(service: Service, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!service.running()) {
      const { exitCode, signalCode } = service.child;
      const how = `${service.name} exited (${signalCode ?? `code ${exitCode}`})`;
      throw new ServiceStartError(`${how} before it was ready:\n${indent(service.output())}`, `${how}: ${failureReason(service.output())}`);
    }
    if (await check().catch(() => false)) return;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  const how = `${service.name} was not ready after ${timeoutMs / 1000} s`;
  throw new ServiceStartError(`${how}:\n${indent(service.output())}`, `${how}: ${failureReason(service.output())}`);
}

function indent(text: string): string {
  return text
    .split('\n')
    .slice(-12)
    .map((line) => `    ${line}`)
    .join('\n');
}

/** Clock ticks per second of /proc's CPU times (getconf CLK_TCK; 100 on Linux). */
export const CLOCK_TICKS = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

interface Stat {
  ppid: number;
  /** utime + stime, in clock ticks. */
  ticks: number;
}

/** /proc/<pid>/stat's ppid (field 4) and utime + stime (fields 14 and 15); null once it is gone. */
function statOf(pid: number): Stat | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // The command name (field 2) may hold spaces and parentheses: count fields after its last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { ppid: Number(fields[1]), ticks: Number(fields[11]) + Number(fields[12]) };
}

/** The process and all its descendants (workers, forks) alive now. */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = statOf(Number(entry));
    if (!stat) continue;
    const siblings = children.get(stat.ppid) ?? [];
    siblings.push(Number(entry));
    children.set(stat.ppid, siblings);
  }
  const tree: number[] = [];
  const queue = [root];
  while (queue.length) {
    const pid = queue.shift()!;
    tree.push(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return tree;
}

/** CPU time (user + system) used so far by this one process (not its children), in ms; 0 once it is gone. */
export function ownCpuMs(pid: number): number {
  return ((statOf(pid)?.ticks ?? 0) / CLOCK_TICKS) * 1000;
}

/** CPU time (user + system) used so far by the processes of these trees, in ms. */
export function cpuMs(roots: readonly number[]): number {
  let ticks = 0;
  for (const root of roots) for (const pid of processTree(root)) ticks += statOf(pid)?.ticks ?? 0;
  return (ticks / CLOCK_TICKS) * 1000;
}

/** CPU time the whole machine has spent busy so far (all cores, /proc/stat without idle and iowait), in ms. */
export function machineBusyMs(): number {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = fields;
  return ((user + nice + system + irq + softirq + steal) / CLOCK_TICKS) * 1000;
}

/** Resident memory of a process tree now (sum of VmRSS), in MB. */
export function rssMb(root: number): number {
  let kb = 0;
  for (const pid of processTree(root)) {
    try {
      const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      kb += Number(match?.[1] ?? 0);
    } catch {
      // Exited between the listing and the read.
    }
  }
  return kb / 1024;
}

/** Samples a process tree's resident memory every `everyMs` until stopped; stop() gives the peak in MB. */
export function samplePeakRss(root: number, everyMs = 100): { stop(): number } {
  let peak = rssMb(root);
  const timer = setInterval(() => {
    peak = Math.max(peak, rssMb(root));
  }, everyMs);
  return {
    stop() {
      clearInterval(timer);
      return Math.max(peak, rssMb(root));
    },
  };
}
