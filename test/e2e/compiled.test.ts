import { execFileSync, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureDevKeys } from '../../platform/keys.ts';
import { freePort, processTree } from '../../tools/bench/processes.ts';
import { seedDataDirectory } from '../../tools/seed/index.ts';
import { postGraphQL, tokenFor } from '../helpers/stack.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const SMALL = { customers: 5, orders: 10, cases: 10, seed: 3, asOf: '2026-11-01' };
const CASE_CONTEXT = readFileSync(join(root, 'schema/operations/agent-console/CaseContext.graphql'), 'utf8');

/**
 * The production runtime: `npm run build` compiles every service and tool into dist/, and
 * `npm run start:prod` runs them with plain node: four services, no TypeScript loader in any
 * process, the agent console's CaseContext answered with every system's fields, and a clean stop.
 */
describe('the compiled services', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'concord-compiled-'));
  beforeAll(() => {
    seedDataDirectory(dataDir, SMALL);
    execFileSync('npm', ['run', '-s', 'build'], { cwd: root, stdio: 'pipe' });
  }, 120_000);
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  /** Starts the compiled stack from `cwd` as `npm run start:prod` does, asks CaseContext, stops it. */
  async function serveCaseContext(cwd: string): Promise<void> {
    const ports = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
    const [gateway, crm, erp, support, processes] = ports.map(String) as [string, string, string, string, string];
    // As deployed: without the test runner's NODE_ENV=test.
    const { NODE_ENV: _testEnv, ...inherited } = process.env;
    // What `npm run start:prod` runs (package.json), started directly so that the signal reaches it.
    const script = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts[
      'start:prod'
    ];
    expect(script).toBe('node dist/tools/start.js');
    const start = spawn(process.execPath, ['dist/tools/start.js'], {
      cwd,
      env: {
        ...inherited,
        DATA_DIR: dataDir,
        HOST: '127.0.0.1',
        LOG_LEVEL: 'warn',
        GATEWAY_PORT: gateway,
        CRM_PORT: crm,
        ERP_PORT: erp,
        SUPPORT_PORT: support,
        PROCESSES_PORT: processes,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    start.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    start.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const closed = new Promise<number | null>((resolve) => start.once('close', resolve));
    try {
      const deadline = Date.now() + 60_000;
      while (!output.includes('Concord is running')) {
        if (start.exitCode !== null || Date.now() > deadline) throw new Error(`not running:\n${output}`);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      const commands = processTree(start.pid!).map((pid) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' '));
      const services = commands.filter((command) => command.includes('dist/'));
      // The tools' start, five services, and the gateway's workers: all compiled JavaScript.
      expect(
        services.filter((command) => /dist\/(subgraphs\/\w+|processes|gateway)\/src\/index\.js/.test(command)).length,
      ).toBeGreaterThanOrEqual(5);
      expect(commands.filter((command) => /tsx|\.ts\b/.test(command))).toEqual([]);

      const keys = await ensureDevKeys(dataDir);
      const db = new Database(join(dataDir, 'support.sqlite'), { readonly: true });
      const { id } = db.prepare('SELECT id FROM tickets ORDER BY id LIMIT 1').get() as { id: number };
      db.close();
      const answer = await postGraphQL<{ case: { subject: string; customer: { name: string } | null; order: { number: string } | null } }>(
        `http://127.0.0.1:${gateway}/graphql`,
        CASE_CONTEXT,
        { id: String(id) },
        { authorization: `Bearer ${await tokenFor(keys, 'support_agent')}` },
      );
      expect(answer.status).toBe(200);
      expect(answer.body.errors).toBeUndefined();
      expect(answer.body.data!.case.subject).toEqual(expect.any(String));
      expect(answer.body.data!.case.customer!.name).toEqual(expect.any(String));
    } finally {
      start.kill('SIGTERM');
    }
    expect(await closed).toBe(0);
  }

  it('serve CaseContext with plain node (no tsx in the process tree) and stop with exit code 0', () => serveCaseContext(root), 120_000);

  it("serve it from the image's files alone: the Dockerfile's runtime stage, production dependencies only", async () => {
    const image = mkdtempSync(join(tmpdir(), 'concord-image-'));
    try {
      // What the runtime stage copies from the build stage, read from the Dockerfile itself.
      const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8');
      const copies = [...dockerfile.matchAll(/^COPY --from=build (.+)$/gm)].map((match) => match[1]!.split(/\s+/));
      expect(copies.length).toBeGreaterThan(3);
      for (const parts of copies) {
        const target = parts.at(-1)!;
        for (const source of parts.slice(0, -1)) {
          const from = source.replace(/^\/app\//, '');
          const to = target.endsWith('/') || parts.length > 2 ? join(image, target, basename(from)) : join(image, target);
          if (from === 'node_modules') continue; // pruned below, as the build stage does
          cpSync(join(root, from), to, { recursive: true });
        }
      }
      // The build stage's `npm prune --omit=dev`, over a copy of this tree's modules.
      cpSync(join(root, 'node_modules'), join(image, 'node_modules'), { recursive: true, verbatimSymlinks: true });
      cpSync(join(root, 'package-lock.json'), join(image, 'package-lock.json'));
      execFileSync('npm', ['prune', '--omit=dev', '--offline', '--no-audit', '--no-fund'], { cwd: image, stdio: 'pipe' });
      expect(existsSync(join(image, 'node_modules', 'tsx'))).toBe(false);
      expect(existsSync(join(image, 'node_modules', 'typescript'))).toBe(false);
      await serveCaseContext(image);
    } finally {
      rmSync(image, { recursive: true, force: true });
    }
  }, 240_000);
});
