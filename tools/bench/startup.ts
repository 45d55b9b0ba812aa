import { existsSync } from 'node:fs';
import { compiledEntry, PACKAGE_ROOT } from '../../platform/package-root.ts';
import { ensureSeeded } from '../seed/index.ts';
import { freePort, rssMb, startService, stopAllServices } from './processes.ts';
import { GATEWAY_NODE_FLAGS } from '../../gateway/src/node-flags.ts';

/**
 * `npm run bench:startup`: how long each service takes from its process starting to answering
 * /ready 200, and its resident memory then, run from TypeScript through tsx and compiled
 * (npm run build) with plain node, in one run on one machine. Each pair is started one after
 * the other, ROUNDS times; the figures are medians, and the last column the ratio tsx / compiled.
 * The gateway runs one worker (GATEWAY_WORKERS=1) against subgraphs that are not running: its
 * readiness needs only its supergraph.
 */
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const services = [
  { name: 'crm', entry: 'subgraphs/crm/src/index.ts', portVariable: 'CRM_PORT', flags: [] as readonly string[] },
  { name: 'erp', entry: 'subgraphs/erp/src/index.ts', portVariable: 'ERP_PORT', flags: [] as readonly string[] },
  { name: 'support', entry: 'subgraphs/support/src/index.ts', portVariable: 'SUPPORT_PORT', flags: [] as readonly string[] },
  { name: 'gateway', entry: 'gateway/src/index.ts', portVariable: 'GATEWAY_PORT', flags: GATEWAY_NODE_FLAGS },
];

async function measure(service: (typeof services)[number], compiled: boolean): Promise<{ readyMs: number; rssMb: number }> {
  const port = await freePort();
  const args = [...service.flags, ...(compiled ? [compiledEntry(service.entry)] : ['--import', 'tsx', service.entry])];
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    DATA_DIR: 'data',
    GATEWAY_WORKERS: '1',
    [service.portVariable]: String(port),
  };
  const started = performance.now();
  const running = startService(`${service.name} (${compiled ? 'compiled' : 'tsx'})`, args, env, PACKAGE_ROOT);
  try {
    for (;;) {
      if (!running.running()) throw new Error(`${running.name} exited:\n${running.output()}`);
      const ready = await fetch(`http://127.0.0.1:${port}/ready`).then(
        (answer) => answer.ok,
        () => false,
      );
      if (ready) break;
      if (performance.now() - started > 60_000) throw new Error(`${running.name} not ready in 60 s:\n${running.output()}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const readyMs = performance.now() - started;
    return { readyMs, rssMb: rssMb(running.pid) };
  } finally {
    await running.stop();
  }
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

async function main(): Promise<void> {
  if (!existsSync(`${PACKAGE_ROOT}/dist/gateway/src/index.js`)) throw new Error('no compiled services: run `npm run build` first');
  await ensureSeeded(
    { crm: `${PACKAGE_ROOT}/data/crm.sqlite`, erp: `${PACKAGE_ROOT}/data/erp.sqlite`, support: `${PACKAGE_ROOT}/data/support.sqlite` },
    { info: (message: string) => console.log(message) },
  );
  console.log(`Start-up to /ready 200 and RSS then, median of ${ROUNDS} rounds, Node ${process.versions.node}\n`);
  console.log('| service | tsx ready ms | compiled ready ms | ratio | tsx RSS MB | compiled RSS MB | ratio |');
  console.log('| ------- | -----------: | ----------------: | ----: | ---------: | --------------: | ----: |');
  for (const service of services) {
    const tsx: { readyMs: number; rssMb: number }[] = [];
    const compiled: { readyMs: number; rssMb: number }[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      // Alternating, so a machine that gets busier part-way does not favour one.
      if (round % 2 === 0) {
        tsx.push(await measure(service, false));
        compiled.push(await measure(service, true));
      } else {
        compiled.push(await measure(service, true));
        tsx.push(await measure(service, false));
      }
    }
    const [tReady, cReady] = [median(tsx.map((m) => m.readyMs)), median(compiled.map((m) => m.readyMs))];
    const [tRss, cRss] = [median(tsx.map((m) => m.rssMb)), median(compiled.map((m) => m.rssMb))];
    console.log(
      `| ${service.name} | ${tReady.toFixed(0)} | ${cReady.toFixed(0)} | ${(tReady / cReady).toFixed(2)} | ${tRss.toFixed(1)} | ${cRss.toFixed(1)} | ${(tRss / cRss).toFixed(2)} |`,
    );
  }
}

main()
  .catch((error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exitCode = 1;
  })
  .finally(() => stopAllServices());
