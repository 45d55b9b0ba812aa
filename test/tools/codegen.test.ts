import { readFileSync } from 'node:fs';
import { generate } from '@graphql-codegen/cli';
import { describe, expect, it } from 'vitest';
import config from '../../codegen.ts';

/** The committed resolver types are what each subgraph's SDL generates: run npm run codegen. */
describe('generated resolver types', () => {
  it('are up to date with every schema.graphql', async () => {
    const outputs = (await generate({ ...config, silent: true }, false)) as { filename: string; content: string }[];
    expect(outputs).toHaveLength(Object.keys(config.generates).length);
    for (const { filename, content } of outputs) {
      expect(readFileSync(filename, 'utf8'), `${filename} is stale: run npm run codegen`).toBe(content);
    }
  }, 60_000);
});
