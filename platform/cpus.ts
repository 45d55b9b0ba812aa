import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';

/** Where the kernel says which control groups a process is in and what they allow (tests point these elsewhere). */
export interface CgroupFiles {
  /** /proc/self/cgroup */
  readonly membership: string;
  /** /sys/fs/cgroup */
  readonly root: string;
}

const SYSTEM: CgroupFiles = { membership: '/proc/self/cgroup', root: '/sys/fs/cgroup' };

/**
 * The CPUs this process may use: the cores it may run on (affinity, cpuset), capped by its
 * control group's CPU quota when it has one (a container's `--cpus`, a Kubernetes CPU limit),
 * rounded down, at least 1. A host's core count is not what a container with a quota of two
 * CPUs can use: workers beyond the quota only take turns being throttled.
 */
export function usableCpus(files: CgroupFiles = SYSTEM, cores = availableParallelism()): number {
  const quota = cpuQuota(files);
  return Math.max(1, quota === null ? cores : Math.min(cores, Math.floor(quota)));
}

/** The CPU quota of the process's control group, in CPUs (1.5: one and a half), or null when it has none. */
export function cpuQuota(files: CgroupFiles = SYSTEM): number | null {
  let membership: string;
  try {
    membership = readFileSync(files.membership, 'utf8');
  } catch {
    return null; // Not Linux, or no /proc: no quota known.
  }
  const quotas: number[] = [];
  for (const line of membership.split('\n')) {
    const [, controllers, path] = /^\d+:([^:]*):(.*)$/.exec(line.trim()) ?? [];
    if (path === undefined) continue;
    if (controllers === '') {
      // cgroup v2: cpu.max is "<quota> <period>" or "max <period>", in this group and those above it.
      for (const dir of ancestors(path)) {
        const [quota, period] = read(join(files.root, dir, 'cpu.max'))?.split(/\s+/) ?? [];
        if (quota && quota !== 'max' && Number(period) > 0) quotas.push(Number(quota) / Number(period));
      }
    } else if (controllers!.split(',').includes('cpu')) {
      // cgroup v1: cpu.cfs_quota_us (-1: none) over cpu.cfs_period_us, under the cpu controller's mount.
      for (const mount of [controllers!, 'cpu', 'cpu,cpuacct']) {
        for (const dir of ancestors(path)) {
          const quota = Number(read(join(files.root, mount, dir, 'cpu.cfs_quota_us')));
          const period = Number(read(join(files.root, mount, dir, 'cpu.cfs_period_us')));
          if (quota > 0 && period > 0) quotas.push(quota / period);
        }
      }
    }
  }
  return quotas.length ? Math.min(...quotas) : null;
}

/** A group's path and each group above it, up to the root ("/a/b" → "/a/b", "/a", "/"). */
function ancestors(path: string): string[] {
  const parts = path.split('/').filter(Boolean);
  return parts.map((_, index) => `/${parts.slice(0, parts.length - index).join('/')}`).concat('/');
}

function read(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return undefined;
  }
}
