import { readFileSync } from 'node:fs';
import { Kind, parse, type FieldDefinitionNode, type TypeNode } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listSizesOfSupergraph, operationCost } from '../../gateway/src/cost.ts';
import { listSizesOf } from '../../platform/paging.ts';
import { apiSchemaOf } from '../../tools/lib/api-schema.ts';
import { startStack, SUPERGRAPH_PATH, type Stack } from '../helpers/stack.ts';

const SUPERGRAPH = readFileSync(SUPERGRAPH_PATH, 'utf8');
const MODEL = { schema: apiSchemaOf(SUPERGRAPH), sizes: listSizesOfSupergraph(SUPERGRAPH) };
const costOf = (query: string, variables: Record<string, unknown> = {}) => operationCost(MODEL, parse(query), variables);

/**
 * What an answer holds, counted as the cost estimate counts it: each field 1 plus what it holds,
 * once per item of a list. An estimate that is an upper bound is never below this.
 */
function answerCost(value: unknown): number {
  if (!value || typeof value !== 'object') return 0;
  let cost = 0;
  for (const child of Object.values(value as Record<string, unknown>)) {
    if (Array.isArray(child)) for (const item of child) cost += 1 + answerCost(item);
    else cost += 1 + answerCost(child);
  }
  return cost;
}

/** Nested lists whose page size is left to the subgraph: explicit null, a null variable, an omitted one. */
const NESTED = {
  'explicit null': [
    '{ cases(first: null) { nodes { customer { cases(first: null) { customer { cases(first: null) { id subject } } } } } } }',
    {},
  ],
  'a null variable': [
    'query($n: Int) { cases(first: $n) { nodes { customer { cases(first: $n) { customer { cases(first: $n) { id subject } } } } } } }',
    { n: null },
  ],
  'an omitted variable': [
    'query($n: Int) { cases(first: $n) { nodes { customer { cases(first: $n) { customer { cases(first: $n) { id subject } } } } } } }',
    {},
  ],
  'the SDL default': ['{ cases { nodes { customer { cases { customer { cases { id subject } } } } } } }', {}],
} as const;

describe('the cost of an operation, from the page sizes the subgraphs really use', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it.each(Object.entries(NESTED))('refuses nested lists sized by %s before any subgraph is asked', async (_how, [query, variables]) => {
    const refused = await stack.query(query, variables);
    expect(refused.status).toBe(400);
    expect(refused.body.errors?.[0]?.extensions).toMatchObject({ code: 'OPERATION_TOO_COSTLY' });
    expect(refused.body.data ?? null).toBeNull();
  });

  it('never counts less than the answer holds, whichever way the page size is given', async () => {
    const nested = 'query($n: Int) { cases(first: $n) { nodes { id customer { cases(first: $n) { id subject } } } } }';
    for (const [query, variables] of [
      ['{ cases(first: null) { nodes { id customer { cases(first: null) { id subject } } } } }', {}],
      [nested, { n: null }],
      [nested, {}],
      [nested, { n: 7 }],
      ['{ cases { totalCount edges { cursor node { id comments { id body } } } } }', {}],
      ['{ cases(first: 3) { nodes { order { number lines { sequence product { sku } } shipments { id lines { sequence } } } } } }', {}],
    ] as const) {
      const answer = await stack.query<{ cases: { nodes?: unknown[]; edges?: unknown[] } }>(query, variables);
      expect(answer.body.errors, query).toBeUndefined();
      expect(costOf(query, variables), query).toBeGreaterThanOrEqual(answerCost(answer.body.data));
    }
    // Left to the subgraph, the page is the SDL default the estimate used (25 cases).
    const page = await stack.query<{ cases: { nodes: unknown[] } }>('{ cases(first: null) { nodes { id } } }');
    expect(page.body.data?.cases.nodes).toHaveLength(MODEL.sizes.get('Query.cases')!.defaultSize!);
  });

  it('refuses a page above the largest the subgraph serves, naming the argument', async () => {
    const answer = await stack.query('{ cases(first: 101) { totalCount } }');
    expect(answer.body.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', argumentName: 'first' });
    expect(answer.body.errors?.[0]?.message).toMatch(/between 1 and 100/);
  });

  it('cuts a list without a page size at the bound it is costed by', async () => {
    const bound = MODEL.sizes.get('Case.comments')!.maxSize;
    const insert = stack.dbs.support.prepare(
      'INSERT INTO ticket_comments (ticket_id, author_id, body, public, created_at) VALUES (?, NULL, ?, 1, ?)',
    );
    for (let i = 0; i < bound + 5; i += 1) insert.run(1, `note ${i}`, `2026-10-01T00:00:${String(i % 60).padStart(2, '0')}Z`);
    const answer = await stack.query<{ case: { comments: unknown[] } }>('{ case(id: "1") { comments { id } } }');
    expect(answer.body.errors).toBeUndefined();
    expect(answer.body.data?.case.comments).toHaveLength(bound);
  });
});

describe('list sizes', () => {
  const subgraphs = ['crm', 'erp', 'support'].map((name) => ({
    name,
    document: parse(readFileSync(new URL(`../../subgraphs/${name}/schema.graphql`, import.meta.url), 'utf8')),
  }));

  it('are declared for every list a subgraph returns, so no list is costed by a guess', () => {
    const undeclared: string[] = [];
    for (const { name, document } of subgraphs) {
      const sizes = listSizesOf(document);
      const sized = new Set<string>();
      const fields: { type: string; field: FieldDefinitionNode }[] = [];
      for (const definition of document.definitions) {
        if (definition.kind !== Kind.OBJECT_TYPE_DEFINITION && definition.kind !== Kind.OBJECT_TYPE_EXTENSION) continue;
        for (const field of definition.fields ?? []) fields.push({ type: definition.name.value, field });
      }
      for (const { type, field } of fields) {
        for (const child of sizes.get(`${type}.${field.name.value}`)?.sizedFields ?? []) sized.add(`${namedTypeOf(field.type)}.${child}`);
      }
      for (const { type, field } of fields) {
        const coordinate = `${type}.${field.name.value}`;
        if (isList(field.type) && !sizes.has(coordinate) && !sized.has(coordinate)) undeclared.push(`${name}: ${coordinate}`);
      }
    }
    expect(undeclared).toEqual([]);
  });

  it('reach the supergraph the gateway serves, the same as each subgraph declares them', () => {
    for (const { document } of subgraphs) {
      for (const [coordinate, size] of listSizesOf(document)) expect(MODEL.sizes.get(coordinate), coordinate).toEqual(size);
    }
  });
});

function isList(type: TypeNode): boolean {
  return type.kind === Kind.LIST_TYPE || (type.kind === Kind.NON_NULL_TYPE && type.type.kind === Kind.LIST_TYPE);
}

function namedTypeOf(type: TypeNode): string {
  return type.kind === Kind.NAMED_TYPE ? type.name.value : namedTypeOf(type.type);
}

describe('the cost estimate of a document that spreads fragments many times', () => {
  it('walks each fragment once, so a 1 KB document cannot hold the gateway (depth limits are configuration)', () => {
    // Each fragment spreads the next twice: 2^40 walks if every spread were walked again.
    const levels = 40;
    let document = 'query Bomb { case(id: "1") { ...F0 } }\n';
    for (let i = 0; i < levels; i++) document += `fragment F${i} on Case { ...F${i + 1} ...F${i + 1} }\n`;
    document += `fragment F${levels} on Case { id }\n`;
    // Still counted as the full expansion: far past any limit.
    expect(costOf(document)).toBeGreaterThan(2 ** 40);
  });
});
