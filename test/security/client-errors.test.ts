import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../helpers/stack.ts';

interface Answer {
  status: number;
  text: string;
  codes: string[];
  message: string;
}

async function send(stack: Stack, body: string, who: Parameters<Stack['bearer']>[0] = 'support_agent'): Promise<Answer> {
  const response = await fetch(stack.gateway.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: await stack.bearer(who) },
    body,
  });
  const text = await response.text();
  const errors = (JSON.parse(text) as { errors?: Array<{ message: string; extensions?: { code?: string } }> }).errors ?? [];
  return { status: response.status, text, codes: errors.map((e) => e.extensions?.code ?? ''), message: errors[0]?.message ?? '' };
}

const request = (query: string, variables?: unknown, operationName?: string) => JSON.stringify({ query, variables, operationName });
const words = (n: number, word: string) => Array.from({ length: n }, () => word).join(' ');
const statuses = 'query($s: [CaseStatus!]) { cases(filter: { status: $s }) { totalCount } }';

/**
 * A client's mistake is answered as one: a 4xx with a code a client can act on, naming what is
 * wrong, never a 500 and never an exception's own text; and refused before the expensive steps
 * (validation, planning) and before anything logs it.
 */
describe('client mistakes', () => {
  let dev: Stack;
  let prod: Stack;
  const lines: string[] = [];
  beforeAll(async () => {
    [dev, prod] = await Promise.all([startStack({ logLines: lines }), startStack({ gateway: { environment: 'production' } })]);
  });
  afterAll(async () => {
    await Promise.all([dev?.stop(), prod?.stop()]);
  });

  const refusals: Array<[string, () => string, number, string, RegExp?]> = [
    ['a syntax error', () => request('{ cases { '), 400, 'GRAPHQL_PARSE_FAILED'],
    ['more tokens than the limit', () => request(`{ cases { ${words(3000, 'totalCount')} } }`), 400, 'GRAPHQL_PARSE_FAILED'],
    ['a missing variable', () => request('query($id: ID!) { case(id: $id) { id } }', {}), 400, 'BAD_USER_INPUT', /\$id/],
    [
      'an out-of-range Int',
      () => request('query($n: Int) { cases(first: $n) { totalCount } }', { n: 2 ** 40 }),
      400,
      'BAD_USER_INPUT',
      /\$n/,
    ],
    ['an unknown enum value', () => request(statuses, { s: ['OPN'] }), 400, 'BAD_USER_INPUT', /\$s/],
    [
      'a variable nested 100,000 deep',
      () => `{"query":${JSON.stringify(statuses)},"variables":{"s":${'['.repeat(100_000)}"OPEN"${']'.repeat(100_000)}}}`,
      400,
      'BAD_USER_INPUT',
      /\$s/,
    ],
    [
      'an object variable nested 10,000 deep',
      () =>
        `{"query":"query($f: CaseFilter) { cases(filter: $f) { totalCount } }","variables":{"f":${'{"x":'.repeat(10_000)}1${'}'.repeat(10_000)}}}`,
      400,
      'BAD_USER_INPUT',
      /\$f/,
    ],
    ['an unknown operationName', () => request('query A { cases { totalCount } }', {}, 'C'), 400, 'OPERATION_RESOLUTION_FAILURE', /"C"/],
    [
      'several operations and no operationName',
      () => request('query A { cases { totalCount } } query B { cases { totalCount } }'),
      400,
      'OPERATION_RESOLUTION_FAILURE',
    ],
    [
      '300 unknown directives',
      () => request(`{ cases ${words(300, '@x')} { totalCount } }`),
      400,
      'GRAPHQL_VALIDATION_FAILED',
      /Directives limit/,
    ],
    ['600 fields', () => request(`{ cases { ${words(600, 'totalCount')} } }`), 400, 'GRAPHQL_VALIDATION_FAILED', /fields/],
    [
      'a 1 MB string literal',
      () => request(`{ case(id: "${'x'.repeat(1_000_000 - 100)}") { id } }`),
      400,
      'GRAPHQL_VALIDATION_FAILED',
      /string literal/,
    ],
    [
      'a 100 kB operationName',
      () => request(`query ${'Q'.repeat(100_000)} { cases { totalCount } }`, {}, 'Q'.repeat(100_000)),
      400,
      'BAD_USER_INPUT',
    ],
  ];
  for (const [what, body, status, code, names] of refusals) {
    it(`answers ${what} with ${status} ${code}`, async () => {
      const answer = await send(dev, body());
      expect(answer.status, answer.text.slice(0, 300)).toBe(status);
      expect(answer.codes).toContain(code);
      if (names) expect(answer.message).toMatch(names);
      expect(answer.text).not.toMatch(/RangeError|Maximum call stack|TypeError|Internal error/);
      expect(answer.text.length).toBeLessThan(2_000);
    });
  }

  it('keeps a long operationName and a long literal out of the logs', async () => {
    await send(dev, request(`mutation ${'M'.repeat(100_000)} { __typename }`, {}, 'M'.repeat(100_000)));
    await send(dev, request(`{ case(id: "${'y'.repeat(500_000)}") { id } }`));
    expect(Math.max(...lines.map((line) => line.length))).toBeLessThan(5_000);
  });

  it("refuses a portal customer's unregistered document before validating it", async () => {
    const answer = await send(dev, request(`{ cases { ${words(1_500, 'totalCount')} } }`), { role: 'portal_customer', customer: 'C10001' });
    expect(answer.status).toBe(403);
    expect(answer.codes).toEqual(['FORBIDDEN']);
  });

  it('suggests no names in production, and leaves no marker where a suggestion was', async () => {
    for (const body of [
      request('{ cases { nodez { id } } }'),
      request('{ cases(filter: { status: [OPN] }) { totalCount } }'),
      request(statuses, { s: ['OPN'] }),
      request('{ cases(frist: 2) { totalCount } }'),
    ]) {
      const answer = await send(prod, body);
      expect(answer.status).toBe(400);
      expect(answer.text).not.toMatch(/Did you mean|Suggestion hidden|"OPEN"|"nodes"|"first"/);
      expect(answer.message).not.toMatch(/\?$/);
    }
  });
});
