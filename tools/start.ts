import { spawn, type ChildProcess } from 'node:child_process';
import { loadGatewayConfig } from '../gateway/src/config.ts';
import { GATEWAY_NODE_FLAGS } from '../gateway/src/node-flags.ts';
import { ConfigError } from '../platform/config.ts';
import {
  CONFIG_FILE_VARIABLE,
  configFileOf,
  configuredEnv,
  ENV_FILE_VARIABLE,
  envFileOf,
  type ServiceSection,
} from '../platform/config-file.ts';
import { loadCrmConfig } from '../subgraphs/crm/src/config.ts';
import { loadErpConfig } from '../subgraphs/erp/src/config.ts';
import { loadSupportConfig } from '../subgraphs/support/src/config.ts';
import { loadProcessesConfig } from '../processes/src/config.ts';
import { ensureDevKeys } from '../platform/keys.ts';
import { compiledEntry, PACKAGE_ROOT } from '../platform/package-root.ts';
import { STOP_MARGIN_MS } from '../platform/process.ts';
import { ensureSeeded } from './seed/index.ts';
import { signDevToken } from '../platform/dev-token.ts';

/**
 * `npm start`: seeds the embedded systems when they hold no data yet, starts the three
 * subgraphs, the process service and the gateway as separate processes (as they are deployed), waits until each
 * answers /ready, and prints where they are and a first query to try.
 */
const root = PACKAGE_ROOT;
/** Run compiled (npm run build, then npm run start:prod): the services are started from dist/ with plain node. */
const compiled = import.meta.url.endsWith('.js');
/** How a service's entry point (its source path) is run: compiled, or its TypeScript through tsx. */
const commandOf = (entry: string): string[] => (compiled ? [compiledEntry(entry)] : ['--import', 'tsx', entry]);
const READY_TIMEOUT_MS = 60_000;

interface Service {
  name: string;
  entry: string;
  port: number;
  host: string;
  flags?: readonly string[];
}

const children: ChildProcess[] = [];
let stopping = false;

const running = (child: ChildProcess) => child.exitCode === null && child.signalCode === null;

/** How long a service may take to stop: its grace (SHUTDOWN_GRACE_MS) and the margin after it. */
let stopLimitMs = 10_000 + STOP_MARGIN_MS;

/** Stops every service, waits for them to drain (SIGKILL after their stop limit), then exits with `code`. */
function stopAll(code: number): void {
  if (stopping) return;
  stopping = true;
  process.exitCode = code;
  const alive = children.filter(running);
  for (const child of alive) child.kill('SIGTERM');
  const killer = setTimeout(() => {
    for (const child of alive.filter(running)) child.kill('SIGKILL');
    process.exit(code);
  }, stopLimitMs + 1_000);
  Promise.all(alive.map((child) => new Promise((done) => child.once('exit', done)))).then(() => {
    clearTimeout(killer);
    process.exit(code);
  });
}

async function main(): Promise<void> {
  // The services start in the package folder: they are handed the files found from here.
  const files: NodeJS.ProcessEnv = {};
  const configFile = configFileOf(process.env, process.cwd());
  const envFile = envFileOf(process.env, process.cwd());
  if (configFile) files[CONFIG_FILE_VARIABLE] = configFile;
  if (envFile) files[ENV_FILE_VARIABLE] = envFile;
  const settingsOf = (service: ServiceSection) => configuredEnv(service, { ...process.env, ...files });
  const gateway = loadGatewayConfig(settingsOf('gateway'));
  const crm = loadCrmConfig(settingsOf('crm'));
  const erp = loadErpConfig(settingsOf('erp'));
  const support = loadSupportConfig(settingsOf('support'));
  const processes = loadProcessesConfig(settingsOf('processes'));
  stopLimitMs =
    Math.max(gateway.shutdownGraceMs, ...[crm, erp, support, processes].map((service) => service.shutdownGraceMs ?? 0)) + STOP_MARGIN_MS;
  const services: Service[] = [
    { name: 'crm', entry: 'subgraphs/crm/src/index.ts', port: crm.port, host: crm.host },
    { name: 'erp', entry: 'subgraphs/erp/src/index.ts', port: erp.port, host: erp.host },
    { name: 'support', entry: 'subgraphs/support/src/index.ts', port: support.port, host: support.host },
    { name: 'processes', entry: 'processes/src/index.ts', port: processes.port, host: processes.host },
    { name: 'gateway', entry: 'gateway/src/index.ts', port: gateway.port, host: gateway.host, flags: GATEWAY_NODE_FLAGS },
  ];
  const at = (service: Service) => `http://${dialHost(service.host)}:${service.port}`;
  const [crmService, erpService, supportService, processesService, gatewayService] = services as [
    Service,
    Service,
    Service,
    Service,
    Service,
  ];
  // The services find each other at the ports they were given here, unless told otherwise: a
  // gateway on the supergraph's default URLs would call other ports than these.
  const envOf = (service: Service): NodeJS.ProcessEnv => {
    const env: NodeJS.ProcessEnv = { ...process.env, ...files };
    // Libraries' production settings (graphql-js skips its development-only checks on every
    // value it validates); Concord's own environment (CONCORD_ENV) is a setting of its own.
    env.NODE_ENV ??= 'production';
    if (service === gatewayService) {
      for (const subgraph of [crmService, erpService, supportService, processesService]) {
        if (!gateway.subgraphUrls[subgraph.name]) env[`SUBGRAPH_${subgraph.name.toUpperCase()}_URL`] = `${at(subgraph)}/graphql`;
      }
    }
    if (service === erpService && !settingsOf('erp').GATEWAY_URL) env.GATEWAY_URL = `${at(gatewayService)}/graphql`;
    if (service === processesService && !settingsOf('processes').GATEWAY_URL) env.GATEWAY_URL = `${at(gatewayService)}/graphql`;
    return env;
  };
  const databases = { crm: crm.connector.database, erp: erp.connector.database, support: support.connector.database };
  if (await ensureSeeded(databases, { info: (message: string) => console.log(message) })) console.log('');

  process.once('SIGINT', () => stopAll(0));
  process.once('SIGTERM', () => stopAll(0));
  for (const service of services) {
    const child = spawn(process.execPath, [...(service.flags ?? []), ...commandOf(service.entry)], {
      cwd: root,
      env: envOf(service),
      stdio: 'inherit',
    });
    child.once('exit', (code, signal) => {
      if (stopping) return;
      console.error(`\n${service.name} exited (${signal ?? `code ${code}`}); stopping the others.`);
      stopAll(1);
    });
    children.push(child);
  }

  await Promise.all(services.map((service) => waitReady(service, at(service))));
  const graphql = `${at(gatewayService)}/graphql`;
  if (gateway.auth.key.kind !== 'dev') {
    // Tokens come from the configured issuer: the graph cannot be asked from here.
    console.log(banner(services, graphql, null, false));
    return;
  }
  const agentToken = await signDevToken((await ensureDevKeys(gateway.dataDir)).issuer.privateKey, {
    roles: ['support_agent'],
    subject: 'npm-start@concord.example',
    ttlSeconds: 300,
  });
  const checked = await firstAnswer(graphql, agentToken);
  if ('problem' in checked) {
    console.error(`\nThe services started, but the graph does not answer as it should: ${checked.problem}\nStopping.`);
    stopAll(1);
    return;
  }
  const embedded = [crm, erp, support].every((system) => system.connectorKind === 'embedded');
  console.log(banner(services, graphql, checked.caseId, embedded));
}

/** The host a client dials for a service listening on `host` (all interfaces: this machine). */
function dialHost(host: string | undefined): string {
  if (!host || host === '0.0.0.0') return '127.0.0.1';
  if (host === '::') return '[::1]';
  return host.includes(':') ? `[${host}]` : host;
}

async function waitReady(service: Service, origin: string): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    const ok = await fetch(`${origin}/ready`).then(
      (response) => response.ok,
      () => false,
    );
    if (ok) return;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`${service.name} was not ready on port ${service.port} after ${READY_TIMEOUT_MS / 1000} s`);
}

/**
 * The query the banner offers, asked for real before it is offered: the newest open case about a
 * unit of an order, with a field from each system. The case is shown only when every system
 * answered it; otherwise what failed.
 */
async function firstAnswer(graphql: string, token: string): Promise<{ caseId: string } | { problem: string }> {
  const ask = async (query: string, variables: Record<string, unknown> = {}) => {
    const response = await fetch(graphql, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ query, variables }),
      signal: AbortSignal.timeout(30_000),
    });
    const body = (await response.json().catch(() => ({}))) as {
      data?: Record<string, unknown> | null;
      errors?: { message: string; extensions?: { serviceName?: string } }[];
    };
    const failed = body.errors?.map((error) => `${error.extensions?.serviceName ?? 'gateway'}: ${error.message}`);
    if (!response.ok || failed?.length) throw new Error(failed?.join('; ') || `HTTP ${response.status}`);
    return body.data ?? {};
  };
  type Node = { id: string; order: unknown; asset: unknown };
  try {
    const list = await ask('{ cases(first: 100, filter: { status: [OPEN] }) { nodes { id order { number } asset { serialNumber } } } }');
    const nodes = (list.cases as { nodes?: Node[] } | undefined)?.nodes ?? [];
    const caseId = (nodes.find((node) => node.order && node.asset) ?? nodes[0])?.id;
    if (!caseId) return { problem: 'the support desk holds no open case' };
    const answer = await ask(FIRST_QUERY, { id: caseId });
    const found = answer.case as { subject?: string; customer?: { name?: string; openBalance?: unknown } | null } | null;
    if (!found?.subject) return { problem: `case ${caseId} has no subject (support desk)` };
    if (!found.customer?.name) return { problem: `case ${caseId} has no customer name (CRM)` };
    if (!found.customer.openBalance) return { problem: `case ${caseId}'s customer has no open balance (ERP)` };
    return { caseId };
  } catch (error) {
    return { problem: (error as Error).message };
  }
}

const FIRST_QUERY =
  'query($id: ID!) { case(id: $id) { subject status customer { name openBalance { amount currency } } order { number status shipments { carrier trackingNumber } } asset { serialNumber warranty { status endDate } } } }';

function banner(services: Service[], graphql: string, caseId: string | null, embedded: boolean): string {
  const lines = services.map(
    (service) => `  ${service.name.padEnd(10)} http://localhost:${service.port}/graphql   (/health /ready /metrics)`,
  );
  const firstQuery = caseId
    ? [
        'A first query as a support agent, one case with fields from the support desk, the CRM and the ERP',
        '(asked once already, and every system answered it):',
        '',
        '  TOKEN=$(npm run -s token -- --role support_agent)',
        `  curl -s ${graphql} -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \\`,
        `    -d '{"query":"${FIRST_QUERY.replace(/"/g, '\\"')}","variables":{"id":"${caseId}"}}'`,
        '',
      ]
    : ['Tokens come from the configured issuer (AUTH_JWKS_URL or AUTH_PUBLIC_KEY).', ''];
  const gatewayService = services.find((service) => service.name === 'gateway');
  const consoleLines = gatewayService
    ? [
        `Operations console: http://localhost:${gatewayService.port}/console`,
        caseId !== null
          ? '  (dev sign-in: choose a role there, e.g. integration_operator; or paste a token from npm run -s token -- --role integration_operator)'
          : '  (sign in with a bearer token from the identity provider: integration_operator, support_lead or finance)',
        '',
      ]
    : [];
  return [
    '',
    `Concord is running${embedded ? ' on the embedded demo systems' : ''}.`,
    ...lines,
    '',
    ...consoleLines,
    ...firstQuery,
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
