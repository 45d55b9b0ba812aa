import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { REQUIRED_SERVERS, locate } from '../setup/servers.ts';

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
