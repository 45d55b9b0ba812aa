import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { parse, print, type DefinitionNode } from 'graphql';
import { createInternalSigner } from '../../platform/internal-token.ts';
import { composeSubgraphs } from '../../tools/lib/composition.ts';
import { SUPERGRAPH_PATH, postGraphQL, startStack, type Stack } from '../helpers/stack.ts';

const SUBGRAPHS = ['crm', 'erp', 'support', 'processes'] as const;
const SDL_FILES: Record<(typeof SUBGRAPHS)[number], string> = {
  crm: 'subgraphs/crm/schema.graphql',
  erp: 'subgraphs/erp/schema.graphql',
  support: 'subgraphs/support/schema.graphql',
  processes: 'processes/schema.graphql',
};

function byName(sdl: string): Map<string, string> {
  const definitions = new Map<string, string>();
  for (const definition of parse(sdl).definitions as DefinitionNode[]) {
    const name = 'name' in definition && definition.name ? definition.name.value : definition.kind;
    definitions.set(`${definition.kind}:${name}`, print(definition));
  }
  return definitions;
}

/** What running subgraphs serve as their SDL is their schema.graphql: code and SDL cannot drift. */
describe('served subgraph SDL', () => {
  let stack: Stack;
  const served: Record<string, string> = {};
  beforeAll(async () => {
    stack = await startStack();
    const signInternal = createInternalSigner(stack.keys.internal.privateKey);
    for (const name of SUBGRAPHS) {
      const token = await signInternal({ subject: 'test', roles: ['integration'], customerId: null }, name);
      const { body } = await postGraphQL<{ _service: { sdl: string } }>(
        stack[name].url,
        '{ _service { sdl } }',
        {},
        { authorization: `Bearer ${token}` },
      );
      served[name] = body.data!._service.sdl;
    }
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it.each(SUBGRAPHS)('%s serves every definition of its schema.graphql unchanged', (name) => {
    const file = byName(readFileSync(new URL(`../../${SDL_FILES[name]}`, import.meta.url), 'utf8'));
    const running = byName(served[name]!);
    for (const [key, printed] of file) expect(running.get(key), key).toBe(printed);
  });

  it('composes from the served SDL into the committed supergraph', () => {
    const outcome = composeSubgraphs(
      SUBGRAPHS.map((name) => ({
        name,
        url: `http://localhost:${4001 + SUBGRAPHS.indexOf(name)}/graphql`,
        file: name,
        sdl: served[name]!,
      })),
    );
    expect(outcome.ok && outcome.supergraphSdl.trim()).toBe(readFileSync(SUPERGRAPH_PATH, 'utf8').trim());
  });
});
