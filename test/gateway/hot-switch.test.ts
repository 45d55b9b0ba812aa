import { createServer as createHttpServer, type Server } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway } from '../../gateway/src/gateway.ts';
import type { GatewayConfig } from '../../gateway/src/config.ts';
import { startService, type RunningService } from '../../platform/http-server.ts';
import { createLogger } from '../../platform/logger.ts';
import { createMetrics } from '../../platform/metrics.ts';
import { ApolloServer } from '@apollo/server';
import { buildSubgraphSchema } from '@apollo/subgraph';
import { parse } from 'graphql';
import { generateDevKeys, type DevKeys } from '../../platform/keys.ts';
import { composeSubgraphs } from '../../tools/lib/composition.ts';
import { gatewayConfig, postGraphQL as postAnonymous, tokenFor } from '../helpers/stack.ts';

const LINK = 'extend schema @link(url: "https://specs.apollo.dev/federation/v2.9", import: ["@key"])';
const V1 = `${LINK}\ntype Query { ping: String, slow: String }`;
const V2 = `${LINK}\ntype Query { ping: String, slow: String, version: Int }`;

async function until(check: () => Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** The gateway follows the registry: a new supergraph that validates is switched to, in flight. */
describe('gateway following its supergraph', () => {
  const dir = mkdtempSync(join(tmpdir(), 'concord-hot-'));
  const quiet = createLogger('test', 'silent');
  const lines: string[] = [];
  const gatewayLogger = createLogger('gateway', 'info', { write: (line: string) => void lines.push(line) });
  let subgraph: RunningService;
  let supergraphs: { v1: string; v2: string };
  let keys: DevKeys;

  beforeAll(async () => {
    keys = await generateDevKeys();
    // The subgraph already serves v2's field: deploy subgraphs first, then publish the supergraph.
    subgraph = await startService({
      name: 'billing',
      host: '127.0.0.1',
      port: 0,
      apollo: new ApolloServer({
        schema: buildSubgraphSchema([
          {
            typeDefs: parse(V2),
            resolvers: {
              Query: {
                ping: () => 'pong',
                version: () => 2,
                slow: () => new Promise((resolve) => setTimeout(() => resolve('done'), 600)),
              },
            },
          },
        ]),
      }),
      context: async () => ({}),
      ready: () => true,
      logger: quiet,
      metrics: createMetrics('billing'),
    });
    const compose = (sdl: string) => {
      const outcome = composeSubgraphs([{ name: 'billing', url: subgraph.url, file: 'inline', sdl }]);
      if (!outcome.ok) throw new Error(outcome.errors.join('\n'));
      return outcome.supergraphSdl;
    };
    supergraphs = { v1: compose(V1), v2: compose(V2) };
  });
  afterAll(async () => {
    await subgraph?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  function config(overrides: Partial<GatewayConfig>): GatewayConfig {
    return gatewayConfig({
      supergraphPath: join(dir, 'supergraph.graphql'),
      supergraphWatch: true,
      supergraphPollIntervalMs: 40,
      ...overrides,
    });
  }
  const gatewayKeys = () => ({ issuerPublicKey: keys.issuer.publicKey, internalPrivateKey: keys.internal.privateKey });
  const postGraphQL = async <T>(url: string, query: string) =>
    postAnonymous<T>(url, query, {}, { authorization: `Bearer ${await tokenFor(keys, 'support_agent')}` });

  it('switches to a changed supergraph file without dropping a request in flight, and refuses a bad one', async () => {
    const path = join(dir, 'supergraph.graphql');
    writeFileSync(path, supergraphs.v1);
    const gateway = await startGateway(config({ supergraphPath: path }), { logger: gatewayLogger, keys: gatewayKeys() });
    try {
      expect((await postGraphQL(gateway.url, '{ version }')).body.errors?.[0]?.extensions?.code).toBe('GRAPHQL_VALIDATION_FAILED');

      let slowDoneAt = Infinity;
      const inFlight = postGraphQL<{ slow: string }>(gateway.url, '{ slow }').then((result) => ((slowDoneAt = Date.now()), result));
      await new Promise((resolve) => setTimeout(resolve, 100));
      writeFileSync(path, supergraphs.v2);
      await until(async () => (await postGraphQL<{ version: number }>(gateway.url, '{ version }')).body.data?.version === 2);
      const switchedAt = Date.now();
      const slow = await inFlight;
      expect(switchedAt).toBeLessThan(slowDoneAt);
      expect(slow.status).toBe(200);
      expect(slow.body).toEqual({ data: { slow: 'done' } });
      expect(lines.some((line) => line.includes('switched to a new supergraph'))).toBe(true);

      writeFileSync(path, 'this is not a supergraph');
      await until(async () => lines.some((line) => line.includes('refused a new supergraph')));
      const still = await postGraphQL<{ version: number; ping: string }>(gateway.url, '{ version ping }');
      expect(still.body).toEqual({ data: { version: 2, ping: 'pong' } });
    } finally {
      await gateway.stop();
    }
  });

  it('polls a URL serving the supergraph, with ETags', async () => {
    let current = supergraphs.v1;
    let requests = 0;
    let notModified = 0;
    const registry: Server = createHttpServer((req, res) => {
      requests += 1;
      const etag = `"${current.length}-${current === supergraphs.v1 ? 1 : 2}"`;
      if (req.headers['if-none-match'] === etag) {
        notModified += 1;
        res.writeHead(304).end();
        return;
      }
      res.writeHead(200, { etag, 'content-type': 'text/plain' }).end(current);
    });
    await new Promise<void>((resolve) => registry.listen(0, '127.0.0.1', resolve));
    const address = registry.address();
    const url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}/supergraph.graphql`;
    const gateway = await startGateway(config({ supergraphUrl: url }), { logger: quiet, keys: gatewayKeys() });
    try {
      expect((await postGraphQL<{ ping: string }>(gateway.url, '{ ping }')).body.data?.ping).toBe('pong');
      await until(async () => notModified > 0);
      current = supergraphs.v2;
      await until(async () => (await postGraphQL<{ version: number }>(gateway.url, '{ version }')).body.data?.version === 2);
      expect(requests).toBeGreaterThan(2);
    } finally {
      await gateway.stop();
      registry.close();
    }
  });
});
