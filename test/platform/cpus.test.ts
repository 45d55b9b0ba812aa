import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { cpuQuota, usableCpus, type CgroupFiles } from '../../platform/cpus.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** A /proc/self/cgroup and a /sys/fs/cgroup tree of the kernel's shape, in a temporary folder. */
function kernelFiles(membership: string, files: Record<string, string>): CgroupFiles {
  const dir = mkdtempSync(join(tmpdir(), 'concord-cgroup-'));
  writeFileSync(join(dir, 'cgroup'), membership);
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, 'fs', path)), { recursive: true });
    writeFileSync(join(dir, 'fs', path), `${text}\n`);
  }
  return { membership: join(dir, 'cgroup'), root: join(dir, 'fs') };
}

/**
 * GATEWAY_WORKERS defaults to the CPUs the process may use: in a container limited to two CPUs on
 * a 64-core host that is two workers, not 64 that the kernel then throttles in turn.
 */
describe('the CPUs a process may use', () => {
  it('reads a cgroup v2 quota (cpu.max), in the group or above it, and none when it is "max"', () => {
    const limited = kernelFiles('0::/kubepods/pod1/app\n', {
      'kubepods/pod1/app/cpu.max': 'max 100000',
      'kubepods/pod1/cpu.max': '250000 100000',
      'cpu.max': 'max 100000',
    });
    expect(cpuQuota(limited)).toBe(2.5);
    expect(usableCpus(limited, 64)).toBe(2);
    expect(usableCpus(limited, 1)).toBe(1);
    const unlimited = kernelFiles('0::/\n', { 'cpu.max': 'max 100000' });
    expect(cpuQuota(unlimited)).toBeNull();
    expect(usableCpus(unlimited, 8)).toBe(8);
  });

  it('reads a cgroup v1 quota (cpu.cfs_quota_us over cpu.cfs_period_us), -1 being none', () => {
    const limited = kernelFiles('4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n', {
      'cpu,cpuacct/docker/abc/cpu.cfs_quota_us': '50000',
      'cpu,cpuacct/docker/abc/cpu.cfs_period_us': '100000',
    });
    expect(cpuQuota(limited)).toBe(0.5);
    expect(usableCpus(limited, 16)).toBe(1);
    // Inside a container the group is mounted at the controller's root, under another name.
    const mountedAtRoot = kernelFiles('3:cpu,cpuacct:/docker/abc\n', {
      'cpu/cpu.cfs_quota_us': '300000',
      'cpu/cpu.cfs_period_us': '100000',
    });
    expect(usableCpus(mountedAtRoot, 16)).toBe(3);
    const none = kernelFiles('3:cpu,cpuacct:/\n', { 'cpu,cpuacct/cpu.cfs_quota_us': '-1', 'cpu,cpuacct/cpu.cfs_period_us': '100000' });
    expect(cpuQuota(none)).toBeNull();
  });

  it('falls back to the cores when there is no /proc (not Linux)', () => {
    expect(usableCpus({ membership: '/nonexistent/cgroup', root: '/nonexistent' }, 6)).toBe(6);
  });

  // The kernel's own files: a group with a quota of 1.5 CPUs, made where this machine allows it.
  const v1 = '/sys/fs/cgroup/cpu';
  const group = join(v1, `concord-test-${process.pid}`);
  const canMakeGroup = (() => {
    try {
      mkdirSync(group);
      rmdirSync(group);
      return true;
    } catch {
      return false;
    }
  })();
  it.skipIf(!canMakeGroup)('gives a gateway in a control group with a quota of 1.5 CPUs one worker (a real cgroup v1 group)', () => {
    mkdirSync(group);
    try {
      writeFileSync(join(group, 'cpu.cfs_period_us'), '100000');
      writeFileSync(join(group, 'cpu.cfs_quota_us'), '150000');
      const script =
        "import('./gateway/src/config.ts').then((m) => console.log(JSON.stringify({ workers: m.loadGatewayConfig({}).workers })))";
      const run = spawnSync('sh', ['-c', `echo $$ > ${group}/cgroup.procs && exec "${process.execPath}" --import tsx -e "${script}"`], {
        cwd: root,
        encoding: 'utf8',
      });
      expect(run.stderr).toBe('');
      expect(JSON.parse(run.stdout.trim().split('\n').at(-1)!)).toEqual({ workers: 1 });
    } finally {
      rmdirSync(group);
    }
  });
});
