import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGatewayContext } from '../../gateway/src/context.ts';
import { createServer } from '../../gateway/src/server.ts';
import { startService, type RunningService } from '../../platform/http-server.ts';
import { createLogger } from '../../platform/logger.ts';
import { createMetrics } from '../../platform/metrics.ts';
import { createSubgraphServer } from '../../platform/subgraph.ts';
import { composeSubgraphs } from '../../tools/lib/composition.ts';
import { postGraphQL } from '../helpers/stack.ts';

/**
 * The gateway serves whatever Federation 2 supergraph it is given: here one composed from a
 * system it has never heard of. Errors a subgraph did not expect reach the client masked.
 */
describe('gateway over another supergraph', () => {
  const logger = createLogger('test', 'silent');
  let subgraph: RunningService;
  let gateway: RunningService;

  beforeAll(async () => {
    const sdl = /* GraphQL */ `
      extend schema @link(url: "https://specs.apollo.dev/federation/v2.9", import: ["@key"])
      type Query {
        ping: String
        boom: String
        echoCorrelation: String
      }
    `;
    const apollo = createSubgraphServer<{ correlationId: string }>({
      sdl,
      logger,
      resolvers: {
        Query: {
          ping: () => 'pong',
          boom: () => {
            throw new Error('password=hunter2 at /srv/billing/db.ts:12');
          },
          echoCorrelation: (_root: unknown, _args: unknown, context: { correlationId: string }) => context.correlationId,
        },
      },
    });
    subgraph = await startService({
      name: 'billing',
      host: '127.0.0.1',
      port: 0,
      apollo,
      context: async (_req, scope) => ({ correlationId: scope.correlationId }),
      ready: () => true,
      logger,
      metrics: createMetrics('billing'),
    });
    const composed = composeSubgraphs([{ name: 'billing', url: subgraph.url, file: 'inline', sdl }]);
    if (!composed.ok) throw new Error(composed.errors.join('\n'));
    gateway = await startService({
      name: 'gateway',
      host: '127.0.0.1',
      port: 0,
      apollo: createServer({ supergraph: composed.supergraphSdl, subgraphTimeoutMs: 2_000, logger }),
      context: createGatewayContext,
      ready: () => true,
      logger,
      metrics: createMetrics('gateway'),
    });
  });
  afterAll(async () => {
    await gateway?.stop();
    await subgraph?.stop();
  });

  it('serves a subgraph that is only in the supergraph it was given', async () => {
    const { body } = await postGraphQL<{ ping: string }>(gateway.url, '{ ping }');
    expect(body).toEqual({ data: { ping: 'pong' } });
  });

  it('passes the correlation id to the subgraph', async () => {
    const { body, headers } = await postGraphQL<{ echoCorrelation: string }>(
      gateway.url,
      '{ echoCorrelation }',
      {},
      { 'x-correlation-id': 'ticket-4711' },
    );
    expect(body.data?.echoCorrelation).toBe('ticket-4711');
    expect(headers.get('x-correlation-id')).toBe('ticket-4711');
  });

  it('replaces a correlation id that is not a sane token', async () => {
    const { body } = await postGraphQL<{ echoCorrelation: string }>(
      gateway.url,
      '{ echoCorrelation }',
      {},
      { 'x-correlation-id': 'a b <script>' },
    );
    expect(body.data?.echoCorrelation).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('masks an unexpected error: no message, path or stack from inside, a correlation id to quote', async () => {
    const { body, text } = await postGraphQL<{ ping: string; boom: string }>(
      gateway.url,
      '{ ping boom }',
      {},
      { 'x-correlation-id': 'boom-1' },
    );
    expect(body.data).toEqual({ ping: 'pong', boom: null });
    expect(body.errors?.[0]?.extensions?.code).toBe('INTERNAL_SERVER_ERROR');
    expect(body.errors?.[0]?.message).toContain('boom-1');
    expect(text).not.toMatch(/hunter2|db\.ts|\/srv\/|stacktrace/);
  });

  it('rejects a body that is not JSON with a clear 400', async () => {
    const response = await fetch(gateway.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"query": ' });
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ errors: [{ extensions: { code: 'BAD_REQUEST' } }] });
  });
});
