import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { loadGatewayConfig } from '../../gateway/src/config.ts';
import { startGateway } from '../../gateway/src/gateway.ts';
import type { RunningService } from '../../platform/http-server.ts';
import type { Identity } from '../../platform/identity.ts';
import { generateDevKeys } from '../../platform/keys.ts';
import { createLogger } from '../../platform/logger.ts';
import { openDatabase } from '../../platform/sqlite.ts';
import { loadSubgraphConfig } from '../../platform/subgraph-config.ts';
import { loadCrmConfig } from '../../subgraphs/crm/src/config.ts';
import { startCrm } from '../../subgraphs/crm/src/index.ts';
import { loadErpConfig } from '../../subgraphs/erp/src/config.ts';
import { startErp } from '../../subgraphs/erp/src/index.ts';
import { loadSupportConfig } from '../../subgraphs/support/src/config.ts';
import { startSupport } from '../../subgraphs/support/src/index.ts';
import { defaultSeedOptions, seedDatabases } from '../seed/index.ts';
import { signDevToken } from '../../platform/dev-token.ts';

const HELP = `Usage: npm run bench:security -- [--duration 10] [--connections 16] [--warmup 3]

Serves the embedded default (1,000 customers, in memory) twice in one run, with the security
layer on (client token verified, internal tokens signed and verified, graphql-shield rules) and
off, loads the gateway with CaseQueue (100 cases) as a support agent, and prints requests/s and
latency for both. Operation limits stay on in both runs.`;

const QUEUE = readFileSync(new URL('../../schema/operations/agent-console/CaseQueue.graphql', import.meta.url), 'utf8');
const AGENT: Identity = { subject: 'bench@concord.example', roles: ['support_agent'], customerId: null };

interface Result {
  label: string;
  requests: number;
  rps: number;
  p50: number;
  p95: number;
  p99: number;
  errors: number;
}

async function run(label: string, secure: boolean, options: { duration: number; connections: number; warmup: number }): Promise<Result> {
  const dbs = { crm: openDatabase(':memory:'), erp: openDatabase(':memory:'), support: openDatabase(':memory:') };
  seedDatabases(dbs, defaultSeedOptions());
  const keys = await generateDevKeys();
  const logger = createLogger('bench', 'silent');
  const common = { logger, internalPublicKey: keys.internal.publicKey, ...(secure ? {} : { withoutSecurity: AGENT }) };
  const subgraph = (prefix: string) => ({
    ...loadSubgraphConfig({ prefix, defaultPort: 0, databaseFile: ':memory:' }, {}),
    host: '127.0.0.1',
    // Each service its own broker in memory: the benchmark writes nothing to DATA_DIR.
    events: { kind: 'embedded' as const, file: ':memory:', retentionMs: 3_600_000 },
  });
  const services: RunningService[] = [];
  try {
    const crm = await startCrm({ ...loadCrmConfig({}), ...subgraph('CRM') }, { ...common, database: dbs.crm });
    services.push(crm);
    const erp = await startErp({ ...loadErpConfig({}), ...subgraph('ERP') }, { ...common, database: dbs.erp });
    services.push(erp);
    const support = await startSupport({ ...loadSupportConfig({}), ...subgraph('SUPPORT') }, { ...common, database: dbs.support });
    services.push(support);
    const gateway = await startGateway(
      // No cache: every request must reach the subgraphs and their rules, or there is nothing to measure.
      {
        ...loadGatewayConfig({ CACHE_STORE: 'none' }),
        events: { kind: 'embedded' as const, file: ':memory:', retentionMs: 3_600_000 },
        host: '127.0.0.1',
        port: 0,
        subgraphUrls: { crm: crm.url, erp: erp.url, support: support.url },
      },
      {
        logger,
        keys: { issuerPublicKey: keys.issuer.publicKey, internalPrivateKey: keys.internal.privateKey },
        ...(secure ? {} : { withoutSecurity: AGENT }),
      },
    );
    services.unshift(gateway);
    const token = await signDevToken(keys.issuer.privateKey, { roles: ['support_agent'], subject: AGENT.subject, ttlSeconds: 3600 });
    const request = {
      url: gateway.url,
      method: 'POST' as const,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ query: QUEUE, variables: { first: 100 } }),
      connections: options.connections,
    };
    await autocannon({ ...request, duration: options.warmup });
    const result = await autocannon({ ...request, duration: options.duration });
    return {
      label,
      requests: result.requests.total,
      rps: result.requests.average,
      p50: result.latency.p50,
      p95: result.latency.p97_5,
      p99: result.latency.p99,
      errors: result.errors + result.non2xx,
    };
  } finally {
    for (const service of services) await service.stop();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      duration: { type: 'string', default: '10' },
      connections: { type: 'string', default: '16' },
      warmup: { type: 'string', default: '3' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(HELP);
    return;
  }
  const options = { duration: Number(values.duration), connections: Number(values.connections), warmup: Number(values.warmup) };
  console.log(`CaseQueue (100 cases), ${options.connections} connections, ${options.duration} s after ${options.warmup} s warm-up\n`);
  const on = await run('security on', true, options);
  const off = await run('security off', false, options);
  const line = (r: Result) =>
    `${r.label.padEnd(13)} ${r.rps.toFixed(1).padStart(8)} req/s   p50 ${String(r.p50).padStart(4)} ms   p97.5 ${String(r.p95).padStart(4)} ms   p99 ${String(r.p99).padStart(4)} ms   ${r.requests} requests, ${r.errors} errors`;
  console.log(line(on));
  console.log(line(off));
  console.log(
    `\nthroughput with security: ${((on.rps / off.rps) * 100).toFixed(1)}% of without (overhead ${((1 - on.rps / off.rps) * 100).toFixed(1)}%)`,
  );
}

main().catch((error: unknown) => {
  console.error(`bench: ${(error as Error).stack ?? error}`);
  process.exitCode = 1;
});
