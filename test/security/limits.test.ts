import { readFileSync } from 'node:fs';
import { Lexer, Source, TokenKind, parse } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listSizesOfSupergraph, operationCost } from '../../gateway/src/cost.ts';
import { apiSchemaOf } from '../../tools/lib/api-schema.ts';
import { gatewayConfig, operation, startStack, SUPERGRAPH_PATH, type Stack } from '../helpers/stack.ts';

function tokenCount(query: string): number {
  const lexer = new Lexer(new Source(query));
  let count = 0;
  while (lexer.advance().kind !== TokenKind.EOF) count += 1;
  return count;
}

const SUPERGRAPH = readFileSync(SUPERGRAPH_PATH, 'utf8');
const COST_MODEL = { schema: apiSchemaOf(SUPERGRAPH), sizes: listSizesOfSupergraph(SUPERGRAPH) };

/** An operation's cost with its variables, as the gateway computes it. */
function costOf(query: string, variables: Record<string, unknown> = {}): number {
  return operationCost(COST_MODEL, parse(query), variables);
}

const TOKENS_QUERY = '{ cases(first: 2) { totalCount nodes { id subject } } }';
const QUEUE = operation('agent-console', 'CaseQueue');

/** Operation limits at their boundaries (N passes, N + 1 is refused), before any subgraph is asked. */
describe.each([
  [
    'depth',
    { maxDepth: 4 },
    '{ cases { nodes { customer { id } } } }',
    '{ cases { nodes { customer { activeContract { id } } } } }',
    /depth limit of 4/,
  ],
  [
    'aliases',
    { maxAliases: 2 },
    '{ a: cases { totalCount } b: cases { totalCount } }',
    '{ a: cases { totalCount } b: cases { totalCount } c: cases { totalCount } }',
    /Aliases limit of 2/,
  ],
  [
    'directives',
    { maxDirectives: 1 },
    '{ cases @include(if: true) { totalCount } }',
    '{ cases @include(if: true) { totalCount @include(if: true) } }',
    /Directives limit of 1/,
  ],
  [
    'tokens',
    { maxTokens: tokenCount(TOKENS_QUERY) },
    TOKENS_QUERY,
    TOKENS_QUERY.replace('subject', 'subject status'),
    /more that \d+ tokens/,
  ],
  ['cost', 'queue', QUEUE, QUEUE.replace('      subject\n', '      subject\n      type\n'), /exceeds the limit of/],
] as const)('the %s limit', (_limit, tight, atLimit, overLimit, refusal) => {
  let stack: Stack;
  beforeAll(async () => {
    const limits = { ...gatewayConfig().limits, ...(tight === 'queue' ? { maxCost: costOf(QUEUE, { first: 3 }) } : tight) };
    stack = await startStack({ gateway: { limits } });
  });
  afterAll(async () => {
    await stack?.stop();
  });

  const messages = (body: { errors?: { message: string }[] }) => (body.errors ?? []).map((error) => error.message).join('\n');

  it('lets the limit pass and refuses one more, before any subgraph is asked', async () => {
    const ok = await stack.query(atLimit, { first: 3 });
    expect(messages(ok.body)).not.toMatch(refusal);
    expect(ok.body.data).toBeTruthy();
    const over = await stack.query(overLimit, { first: 3 });
    expect(['GRAPHQL_PARSE_FAILED', 'GRAPHQL_VALIDATION_FAILED', 'OPERATION_TOO_COSTLY']).toContain(
      over.body.errors?.[0]?.extensions?.code,
    );
    expect(over.status).toBe(400);
    expect(messages(over.body)).toMatch(refusal);
    expect(over.body.data ?? null).toBeNull();
  });
});

describe('the default limits', () => {
  it('admit every registered operation with its default page sizes', async () => {
    const { maxCost } = gatewayConfig().limits;
    for (const [client, name] of [
      ['agent-console', 'CaseQueue'],
      ['agent-console', 'CaseContext'],
      ['portal', 'MyCases'],
      ['portal', 'CaseDetail'],
      ['portal', 'MyOrders'],
      ['portal', 'MyInvoices'],
    ] as const) {
      expect(costOf(operation(client, name), { id: '1', customerId: 'C10001' }), name).toBeLessThan(maxCost);
    }
  });
});

describe('the cost of an operation', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('counts page sizes given in variables, and the schema’s defaults, not just literals', async () => {
    const nested =
      'query($a: Int, $b: Int, $c: Int) { cases(first: $a) { nodes { customer { cases(first: $b) { customer { cases(first: $c) { id subject } } } } } } }';
    const viaVariables = await stack.query(nested, { a: 100, b: 100, c: 100 });
    expect(viaVariables.body.errors?.[0]?.extensions).toMatchObject({ code: 'OPERATION_TOO_COSTLY' });
    expect(viaVariables.body.data ?? null).toBeNull();
    const viaDefaults = await stack.query('{ cases { nodes { customer { cases { customer { cases { id subject } } } } } } }');
    expect(viaDefaults.body.errors?.[0]?.extensions).toMatchObject({ code: 'OPERATION_TOO_COSTLY' });
    const small = await stack.query(nested, { a: 2, b: 2, c: 2 });
    expect(small.body.errors).toBeUndefined();
  });
});

describe('production mode', () => {
  let production: Stack;
  beforeAll(async () => {
    production = await startStack({ gateway: { environment: 'production' } });
  });
  afterAll(async () => {
    await production?.stop();
  });

  it('refuses introspection and suggests no field names', async () => {
    const introspection = await production.query('{ __schema { types { name } } }');
    expect(introspection.body.errors?.[0]?.message).toMatch(/introspection/i);
    expect(introspection.text).not.toContain('"Customer"');
    const typo = await production.query('{ cases { nodez { id } } }');
    expect(typo.body.errors?.[0]?.extensions?.code).toBe('GRAPHQL_VALIDATION_FAILED');
    expect(typo.text).not.toMatch(/Did you mean/);
  });

  it('refuses batched requests and cross-site GETs', async () => {
    const authorization = await production.bearer('support_agent');
    const batch = await fetch(production.gateway.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization },
      body: JSON.stringify([{ query: '{ cases { totalCount } }' }, { query: '{ cases { totalCount } }' }]),
    });
    expect(batch.status).toBe(400);
    const simpleGet = await fetch(`${production.gateway.url}?query=${encodeURIComponent('{ cases { totalCount } }')}`, {
      headers: { authorization },
    });
    expect(simpleGet.status).toBe(400);
    expect(await simpleGet.text()).toMatch(/CSRF/i);
  });
});
