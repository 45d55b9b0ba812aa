import { spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, openSync, renameSync, rmSync, writeFileSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningService } from '../../platform/http-server.ts';
import { openDatabase } from '../../platform/sqlite.ts';
import { loadCrmConfig } from '../../subgraphs/crm/src/config.ts';
import { startCrm } from '../../subgraphs/crm/src/index.ts';
import { migrateSupport } from '../../subgraphs/support/src/connectors/embedded/tables.ts';
import { loadSupportConfig } from '../../subgraphs/support/src/config.ts';
import { startSupport } from '../../subgraphs/support/src/index.ts';
import { ensureDevKeys } from '../../platform/keys.ts';
import { seedDataDirectory } from '../../tools/seed/index.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const SMALL = { customers: 5, orders: 10, cases: 10, seed: 3, asOf: '2026-11-01' };

/** Runs a subgraph's entry point as its own process until it exits; what it printed and its code. */
function runSubgraph(system: string, env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', `subgraphs/${system}/src/index.ts`], {
      cwd: root,
      env: { ...process.env, HOST: '127.0.0.1', [`${system.toUpperCase()}_PORT`]: '0', LOG_LEVEL: 'warn', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    // A subgraph that starts anyway is stopped after 15 s: the test then fails on its exit code.
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

function overwriteStart(path: string, bytes: number): void {
  const fd = openSync(path, 'r+');
  writeSync(fd, Buffer.alloc(bytes, 0x5a), 0, bytes, 0);
  closeSync(fd);
}

/**
 * A subgraph serves its embedded system only from a database that holds it: an empty, a foreign
 * or a damaged file stops start-up with exit code 78 and a line naming the file and the variable
 * that pointed to it, and a database that cannot be read any more turns /ready to 503.
 */
describe('the embedded databases', () => {
  const dir = mkdtempSync(join(tmpdir(), 'concord-dbcheck-'));
  beforeAll(async () => {
    seedDataDirectory(join(dir, 'seeded'), SMALL);
    await ensureDevKeys(join(dir, 'seeded'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('refuses an empty file, a file that is no database, and tables without rows (exit 78, naming file and variable)', async () => {
    const empty = join(dir, 'empty.sqlite');
    writeFileSync(empty, '');
    const garbage = join(dir, 'garbage.sqlite');
    writeFileSync(garbage, Buffer.alloc(8192, 0x5a));
    const noRows = join(dir, 'no-rows.sqlite');
    const db = openDatabase(noRows);
    migrateSupport(db);
    db.close();
    const wrongSystem = join(dir, 'wrong-system.sqlite');
    copyFileSync(join(dir, 'seeded', 'crm.sqlite'), wrongSystem);
    const emptyDir = join(dir, 'empty-data-dir');
    seedDataDirectory(emptyDir, SMALL);
    writeFileSync(join(emptyDir, 'erp.sqlite'), '');

    const seeded = join(dir, 'seeded');
    const [crm, erp, support, foreign, viaDataDir] = await Promise.all([
      runSubgraph('crm', { DATA_DIR: seeded, CRM_DATABASE: empty }),
      runSubgraph('erp', { DATA_DIR: seeded, ERP_DATABASE: garbage, PROCESS_DATABASE: join(dir, 'processes.sqlite') }),
      runSubgraph('support', { DATA_DIR: seeded, SUPPORT_DATABASE: noRows }),
      runSubgraph('erp', { DATA_DIR: seeded, ERP_DATABASE: wrongSystem, PROCESS_DATABASE: join(dir, 'processes2.sqlite') }),
      runSubgraph('erp', { DATA_DIR: emptyDir }),
    ]);
    expect(crm.code, crm.output).toBe(78);
    expect(crm.output).toContain(`CRM_DATABASE: ${empty} holds none of this system's tables`);
    expect(erp.code, erp.output).toBe(78);
    expect(erp.output).toContain(`ERP_DATABASE: ${garbage} is not a readable SQLite database`);
    expect(support.code, support.output).toBe(78);
    expect(support.output).toContain(`SUPPORT_DATABASE: ${noRows} holds no rows in organizations`);
    expect(foreign.code, foreign.output).toBe(78);
    expect(foreign.output).toContain(`ERP_DATABASE: ${wrongSystem} holds none of this system's tables`);
    expect(viaDataDir.code, viaDataDir.output).toBe(78);
    expect(viaDataDir.output).toContain(`DATA_DIR: ${join(emptyDir, 'erp.sqlite')} holds none of this system's tables`);
    for (const run of [crm, erp, support, foreign, viaDataDir]) expect(run.output).not.toContain('listening');
  }, 60_000);

  describe('/ready', () => {
    const services: RunningService[] = [];
    afterAll(async () => {
      await Promise.allSettled(services.map((service) => service.stop()));
    });

    /** A subgraph over its own copy of the seeded file; the copy's path and the /ready URL. */
    async function serving(system: 'crm' | 'support', name: string) {
      const file = join(dir, `${name}.sqlite`);
      copyFileSync(join(dir, 'seeded', `${system}.sqlite`), file);
      const env = { DATA_DIR: join(dir, 'seeded'), HOST: '127.0.0.1', LOG_LEVEL: 'silent' };
      const service =
        system === 'crm'
          ? await startCrm({ ...loadCrmConfig({ ...env, CRM_DATABASE: file }), port: 0 })
          : await startSupport({ ...loadSupportConfig({ ...env, SUPPORT_DATABASE: file }), port: 0 });
      services.push(service);
      const ready = async () => (await fetch(`http://127.0.0.1:${service.port}/ready`)).status;
      expect(await ready()).toBe(200);
      return { file, ready };
    }

    it('turns 503 when the file is deleted', async () => {
      const { file, ready } = await serving('crm', 'deleted');
      for (const suffix of ['', '-wal', '-shm']) rmSync(file + suffix, { force: true });
      expect(await ready()).toBe(503);
    });

    it('turns 503 when the file is overwritten with something that is not a database', async () => {
      const { file, ready } = await serving('support', 'overwritten');
      overwriteStart(file, 4096);
      expect(await ready()).toBe(503);
    });

    it('turns 503 when another file is put in its place', async () => {
      const { file, ready } = await serving('crm', 'replaced');
      const other = join(dir, 'other.sqlite');
      copyFileSync(join(dir, 'seeded', 'crm.sqlite'), other);
      renameSync(other, file);
      expect(await ready()).toBe(503);
    });
  });
});
