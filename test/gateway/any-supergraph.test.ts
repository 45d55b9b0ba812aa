import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startService, type RunningService } from '../../platform/http-server.ts';
import { createLogger } from '../../platform/logger.ts';
import { createMetrics } from '../../platform/metrics.ts';
import { ApolloServer } from '@apollo/server';
import { buildSubgraphSchema } from '@apollo/subgraph';
import { parse } from 'graphql';
import { composeSubgraphs } from '../../tools/lib/composition.ts';
import { startGatewayOver } from '../helpers/stack.ts';

/**
 * The gateway serves whatever Federation 2 supergraph it is given: here one composed from a
 * system it has never heard of. Errors a subgraph did not expect reach the client masked.
 */
describe('gateway over another supergraph', () => {
  const logger = createLogger('test', 'silent');
  let subgraph: RunningService;
  let gateway: RunningService;
  let post: Awaited<ReturnType<typeof startGatewayOver>>['post'];
  let stop: () => Promise<void>;

  beforeAll(async () => {
    const sdl = /* GraphQL */ `
      extend schema @link(url: "https://specs.apollo.dev/federation/v2.9", import: ["@key"])
      type Query {
        ping: String
        boom: String
        echoCorrelation: String
        slow: String
      }
    `;
    // A subgraph of another team that masks nothing: the gateway must.
    const apollo = new ApolloServer<{ correlationId: string }>({
      includeStacktraceInErrorResponses: true,
      schema: buildSubgraphSchema([
        {
          typeDefs: parse(sdl),
          resolvers: {
            Query: {
              ping: () => 'pong',
              slow: () => new Promise((resolve) => setTimeout(() => resolve('late'), 1_500)),
              boom: () => {
                throw new Error('password=hunter2 at /srv/billing/db.ts:12');
              },
              echoCorrelation: (_root: unknown, _args: unknown, context: { correlationId: string }) => context.correlationId,
            },
          },
        },
      ]),
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
    ({ gateway, post, stop } = await startGatewayOver(composed.supergraphSdl, { subgraphTimeoutMs: 500 }));
  });
  afterAll(async () => {
    await stop?.();
    await subgraph?.stop();
  });

  it('serves a subgraph that is only in the supergraph it was given', async () => {
    const { body } = await post<{ ping: string }>('{ ping }');
    expect(body).toEqual({ data: { ping: 'pong' } });
  });

  it('passes the correlation id to the subgraph', async () => {
    const { body, headers } = await post<{ echoCorrelation: string }>('{ echoCorrelation }', {}, { 'x-correlation-id': 'ticket-4711' });
    expect(body.data?.echoCorrelation).toBe('ticket-4711');
    expect(headers.get('x-correlation-id')).toBe('ticket-4711');
  });

  it('replaces a correlation id that is not a sane token', async () => {
    const { body } = await post<{ echoCorrelation: string }>('{ echoCorrelation }', {}, { 'x-correlation-id': 'a b <script>' });
    expect(body.data?.echoCorrelation).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("masks another subgraph's unexpected error: no message or stack from inside, a correlation id to quote", async () => {
    const { body, text } = await post<{ ping: string; boom: string }>('{ ping boom }', {}, { 'x-correlation-id': 'boom-1' });
    expect(body.data).toEqual({ ping: 'pong', boom: null });
    expect(body.errors?.[0]?.extensions?.code).toBe('INTERNAL_SERVER_ERROR');
    expect(body.errors?.[0]?.message).toContain('boom-1');
    expect(body.errors?.[0]?.extensions?.serviceName).toBe('billing');
    expect(text).not.toMatch(/hunter2|db\.ts|\/srv\/|stacktrace/);
  });

  it('gives up on a subgraph past its deadline with an error naming the system, not its URL', async () => {
    const started = Date.now();
    const { body, text } = await post<{ slow: string }>('{ slow }');
    expect(Date.now() - started).toBeLessThan(1_400);
    expect(body.data).toEqual({ slow: null });
    expect(body.errors?.[0]).toMatchObject({
      message: 'The billing system did not answer within 500 ms',
      extensions: { code: 'SYSTEM_UNAVAILABLE', serviceName: 'billing' },
    });
    expect(text).not.toMatch(/127\.0\.0\.1|localhost|AbortError|TimeoutError/);
  });

  it('rejects a body that is not JSON with a clear 400', async () => {
    const response = await fetch(gateway.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"query": ' });
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ errors: [{ extensions: { code: 'BAD_REQUEST' } }] });
  });
});
