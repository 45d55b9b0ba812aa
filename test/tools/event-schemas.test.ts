import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Supergraph } from '@apollo/federation-internals';
import { EVENT_SCHEMA_DIR, loadEntityRefs, loadEventSchemas } from '../../platform/events/schemas.ts';
import { fromPackageRoot } from '../../platform/package-root.ts';

/** Every `type: 'concord.…'` a product folder emits. */
function emittedTypes(): Set<string> {
  const types = new Set<string>();
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory() && entry.name !== '__generated__') walk(path);
      else if (entry.name.endsWith('.ts'))
        for (const match of readFileSync(path, 'utf8').matchAll(/type: '(concord\.[a-z]+\.[a-z_]+)'/g)) types.add(match[1]!);
    }
  };
  for (const folder of ['processes/src', 'subgraphs', 'gateway/src']) walk(fromPackageRoot(folder));
  return types;
}

describe('the event schemas (schema/events/)', () => {
  it('compile strictly, close their data to what they name, and say what each fact is', () => {
    const schemas = loadEventSchemas();
    expect(schemas.size).toBeGreaterThanOrEqual(5);
    for (const file of readdirSync(EVENT_SCHEMA_DIR).filter((name) => name.endsWith('.json'))) {
      const schema = JSON.parse(readFileSync(`${EVENT_SCHEMA_DIR}/${file}`, 'utf8')) as Record<string, unknown>;
      expect(file, file).toMatch(/^concord\.[a-z]+\.[a-z_]+\.json$/);
      expect(schema.additionalProperties, file).toBe(false);
      expect(String(schema.description).length, file).toBeGreaterThan(20);
    }
  });

  it('have one schema for every event type the services emit', () => {
    const schemas = loadEventSchemas();
    const emitted = emittedTypes();
    expect(emitted.size).toBeGreaterThanOrEqual(5);
    for (const type of emitted) expect(schemas.has(type), type).toBe(true);
  });

  it('name, in x-invalidates, entities of the supergraph by a field of their data', () => {
    const api = Supergraph.build(readFileSync(fromPackageRoot('schema/supergraph.graphql'), 'utf8'))
      .apiSchema()
      .toGraphQLJSSchema();
    for (const [type, refs] of loadEntityRefs()) {
      const schema = JSON.parse(readFileSync(`${EVENT_SCHEMA_DIR}/${type}.json`, 'utf8')) as { properties: Record<string, unknown> };
      expect(refs.length, `${type} names what it changes`).toBeGreaterThan(0);
      for (const ref of refs) {
        expect(api.getType(ref.type), `${type}: ${ref.type} is a type of the graph`).toBeDefined();
        expect(Object.keys(schema.properties), `${type}: ${ref.key} is a field of its data`).toContain(ref.key);
      }
    }
  });
});
