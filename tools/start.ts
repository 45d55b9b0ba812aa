import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { loadGatewayConfig } from '../gateway/src/config.ts';
import { GATEWAY_NODE_FLAGS } from '../gateway/src/node-flags.ts';
import { ConfigError } from '../platform/config.ts';
import { loadCrmConfig } from '../subgraphs/crm/src/config.ts';
import { loadErpConfig } from '../subgraphs/erp/src/config.ts';
import { loadSupportConfig } from '../subgraphs/support/src/config.ts';
import { ensureDevKeys } from '../platform/keys.ts';
import { ensureSeeded } from './seed/index.ts';
import { signDevToken } from './token.ts';

/**
 * `npm start`: seeds the embedded systems when they hold no data yet, starts the three
 * subgraphs and the gateway as separate processes (as they are deployed), waits until each
 * answers /ready, and prints where they are and a first query to try.
 */
const root = fileURLToPath(new URL('..', import.meta.url));
const READY_TIMEOUT_MS = 60_000;

interface Service {
  name: string;
  entry: string;
  port: number;
  flags?: readonly string[];
}

const children: ChildProcess[] = [];
let stopping = false;

const running = (child: ChildProcess) => child.exitCode === null && child.signalCode === null;

/** Stops every service, waits for them (SIGKILL after 5 s), then exits with `code`. */
function stopAll(code: number): void {
  if (stopping) return;
  stopping = true;
  process.exitCode = code;
  const alive = children.filter(running);
  for (const child of alive) child.kill('SIGTERM');
  const killer = setTimeout(() => {
    for (const child of alive.filter(running)) child.kill('SIGKILL');
    process.exit(code);
  }, 5_000);
  Promise.all(alive.map((child) => new Promise((done) => child.once('exit', done)))).then(() => {
    clearTimeout(killer);
    process.exit(code);
  });
}

async function main(): Promise<void> {
  const gateway = loadGatewayConfig();
  const crm = loadCrmConfig();
  const erp = loadErpConfig();
  const support = loadSupportConfig();
  const services: Service[] = [
    { name: 'crm', entry: 'subgraphs/crm/src/index.ts', port: crm.port },
    { name: 'erp', entry: 'subgraphs/erp/src/index.ts', port: erp.port },
    { name: 'support', entry: 'subgraphs/support/src/index.ts', port: support.port },
    { name: 'gateway', entry: 'gateway/src/index.ts', port: gateway.port, flags: GATEWAY_NODE_FLAGS },
  ];
  const databases = { crm: crm.connector.database, erp: erp.connector.database, support: support.connector.database };
  if (await ensureSeeded(databases, { info: (message: string) => console.log(message) })) console.log('');

  process.once('SIGINT', () => stopAll(0));
  process.once('SIGTERM', () => stopAll(0));
  for (const service of services) {
    const child = spawn(process.execPath, [...(service.flags ?? []), '--import', 'tsx', service.entry], {
      cwd: root,
      env: process.env,
      stdio: 'inherit',
    });
    child.once('exit', (code, signal) => {
      if (stopping) return;
      console.error(`\n${service.name} exited (${signal ?? `code ${code}`}); stopping the others.`);
      stopAll(1);
    });
    children.push(child);
  }

  await Promise.all(services.map((service) => waitReady(service)));
  const graphql = `http://localhost:${gateway.port}/graphql`;
  const agentToken =
    gateway.auth.key.kind === 'dev'
      ? await signDevToken((await ensureDevKeys(gateway.dataDir)).issuer.privateKey, {
          roles: ['support_agent'],
          subject: 'npm-start@concord.example',
          ttlSeconds: 300,
        })
      : null;
  const caseId = agentToken ? await newestOpenCase(graphql, agentToken).catch(() => null) : null;
  console.log(banner(services, graphql, caseId));
}

async function waitReady(service: Service): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    const ok = await fetch(`http://localhost:${service.port}/ready`).then(
      (response) => response.ok,
      () => false,
    );
    if (ok) return;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`${service.name} was not ready on port ${service.port} after ${READY_TIMEOUT_MS / 1000} s`);
}

/** The newest open case about a unit of an order, so the first query shows all three systems. */
async function newestOpenCase(graphql: string, token: string): Promise<string | null> {
  const response = await fetch(graphql, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({
      query: '{ cases(first: 100, filter: { status: [OPEN] }) { nodes { id order { number } asset { serialNumber } } } }',
    }),
  });
  type Node = { id: string; order: unknown; asset: unknown };
  const body = (await response.json()) as { data?: { cases?: { nodes?: Node[] } } };
  const nodes = body.data?.cases?.nodes ?? [];
  return (nodes.find((node) => node.order && node.asset) ?? nodes[0])?.id ?? null;
}

function banner(services: Service[], graphql: string, caseId: string | null): string {
  const lines = services.map(
    (service) => `  ${service.name.padEnd(8)} http://localhost:${service.port}/graphql   (/health /ready /metrics)`,
  );
  const query = `query { case(id: \\"${caseId ?? '1'}\\") { subject status customer { name openBalance { amount currency } } order { number status shipments { carrier trackingNumber } } asset { serialNumber warranty { status endDate } } } }`;
  return [
    '',
    'Concord is running on the embedded demo systems.',
    ...lines,
    '',
    'A first query as a support agent, one case with fields from the support desk, the CRM and the ERP:',
    '',
    '  TOKEN=$(npm run -s token -- --role support_agent)',
    `  curl -s ${graphql} -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \\`,
    `    -d '{"query":"${query}"}'`,
    '',
    'Stop with Ctrl+C.',
    '',
  ].join('\n');
}

main().catch((error: unknown) => {
  console.error(error instanceof ConfigError ? error.message : `start: ${(error as Error).message}`);
  const code = error instanceof ConfigError ? 78 : 1;
  if (children.length) stopAll(code);
  else process.exit(code);
});
