import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { GATEWAY_NODE_FLAGS } from '../../gateway/src/node-flags.ts';

describe('the gateway process flags', () => {
  it('are the same for npm run start:gateway as for npm start and the benchmark', () => {
    const scripts = (
      JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { scripts: Record<string, string> }
    ).scripts;
    for (const flag of GATEWAY_NODE_FLAGS) expect(scripts['start:gateway']).toContain(flag);
  });
});
