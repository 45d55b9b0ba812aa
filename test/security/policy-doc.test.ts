import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { documentWithPolicy } from '../../tools/policy.ts';

/** Prettier pads table cells; compare the tables, not their padding. */
const normalized = (markdown: string) => markdown.replace(/:-+:/g, ':-:').replace(/-{3,}/g, '---').replace(/ +/g, ' ');

describe('docs/security.md', () => {
  it('shows the policy tables as they are in the code (npm run policy -- --write)', () => {
    const document = readFileSync(new URL('../../docs/security.md', import.meta.url), 'utf8');
    expect(normalized(document)).toBe(normalized(documentWithPolicy(document)));
  });
});
