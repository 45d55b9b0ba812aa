import { spawnSync } from 'node:child_process';
import { accessSync, constants, readdirSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The real servers the suite runs against, each a Debian package. The suite gets them itself:
 * a missing one is installed with apt-get when this user may (root, or sudo without a
 * password), so `npm test` passes on a fresh machine; otherwise it stops before any test with
 * the exact command to run.
 */
export const REQUIRED_SERVERS: readonly { readonly binary: string; readonly debianPackage: string; readonly usedBy: string }[] = [
  { binary: 'redis-server', debianPackage: 'redis-server', usedBy: 'the gateway cache shared by replicas' },
  { binary: 'postgres', debianPackage: 'postgresql', usedBy: "the process layer's durable workflows" },
  { binary: 'nats-server', debianPackage: 'nats-server', usedBy: 'the event broker (NATS JetStream)' },
  { binary: 'prometheus', debianPackage: 'prometheus', usedBy: 'scraping the services and checking the alert rules (promtool)' },
  { binary: 'chromium', debianPackage: 'chromium', usedBy: 'the browser tests of the operations console and the GraphQL IDE' },
];

/**
 * Where Debian puts each PostgreSQL major's server programs (initdb, postgres, pg_ctl): off PATH,
 * since several majors can be installed side by side and /usr/bin only has pg_wrapper's clients.
 */
export const DEBIAN_POSTGRES_ROOT = '/usr/lib/postgresql';

/**
 * The absolute path of `binary` on PATH (or in the sbin folders apt installs servers to), else in
 * the newest PostgreSQL major's folder Debian installed, or null.
 */
export function locate(binary: string): string | null {
  const found = spawnSync('sh', ['-c', `PATH="$PATH:/usr/sbin:/sbin:/usr/local/sbin" command -v ${binary}`], { encoding: 'utf8' });
  const path = found.stdout.trim();
  return found.status === 0 && path ? path : inDebianPostgres(binary);
}

function inDebianPostgres(binary: string): string | null {
  let majors: number[];
  try {
    majors = readdirSync(DEBIAN_POSTGRES_ROOT)
      .filter((name) => /^\d+$/.test(name))
      .map(Number)
      .sort((a, b) => b - a);
  } catch {
    return null;
  }
  for (const major of majors) {
    const path = join(DEBIAN_POSTGRES_ROOT, String(major), 'bin', binary);
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      // Not in this major (a client-only install has no server programs); an older one may have it.
    }
  }
  return null;
}

function canInstall(): 'root' | 'sudo' | null {
  if (process.getuid?.() === 0) return 'root';
  return spawnSync('sudo', ['-n', 'true'], { stdio: 'ignore' }).status === 0 ? 'sudo' : null;
}

function aptGet(as: 'root' | 'sudo', args: string[]): { ok: boolean; output: string } {
  const command = as === 'sudo' ? 'sudo' : 'apt-get';
  const argv = as === 'sudo' ? ['-n', 'apt-get', ...args] : args;
  const run = spawnSync(command, argv, { encoding: 'utf8', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, timeout: 600_000 });
  return { ok: run.status === 0, output: `${run.stdout ?? ''}${run.stderr ?? ''}`.trim() };
}

/**
 * Installs the packages of every missing server (an `apt-get update` only when the package
 * lists do not know one), then checks each binary is there. Throws, naming what is missing and
 * how to get it, when that cannot be done.
 */
export function ensureServers(
  servers: typeof REQUIRED_SERVERS = REQUIRED_SERVERS,
  log: (line: string) => void = (line) => console.log(line),
): Record<string, string> {
  const missing = servers.filter((server) => !locate(server.binary));
  if (missing.length) {
    const packages = missing.map((server) => server.debianPackage);
    const how = `apt-get install -y --no-install-recommends ${packages.join(' ')}`;
    const as = canInstall();
    if (!as) {
      throw new Error(
        `The tests need ${missing.map((server) => `${server.binary} (${server.usedBy})`).join(', ')}, which this machine does not have, ` +
          `and this user cannot install packages. Run as root: ${how}`,
      );
    }
    log(`test setup: installing ${packages.join(', ')} from Debian's packages (${how})`);
    const install = ['install', '-y', '-qq', '--no-install-recommends', ...packages];
    let result = aptGet(as, install);
    if (!result.ok) {
      const update = aptGet(as, ['update', '-qq']);
      if (!update.ok)
        throw new Error(`test setup: apt-get update failed, so ${packages.join(', ')} cannot be installed:\n${update.output}`);
      result = aptGet(as, install);
    }
    if (!result.ok) throw new Error(`test setup: \`${how}\` failed:\n${result.output}`);
  }
  const paths: Record<string, string> = {};
  for (const server of servers) {
    const path = locate(server.binary);
    if (!path) throw new Error(`test setup: ${server.binary} is still missing after installing ${server.debianPackage}`);
    paths[server.binary] = path;
  }
  return paths;
}
