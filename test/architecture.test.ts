import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));

/** The product's folders, each with what it may import besides itself and packages. */
const LAYERS: readonly { readonly folder: string; readonly mayImport: readonly string[] }[] = [
  { folder: 'platform', mayImport: [] },
  { folder: 'gateway', mayImport: ['platform'] },
  { folder: 'processes', mayImport: ['platform'] },
  { folder: 'subgraphs/crm', mayImport: ['platform'] },
  { folder: 'subgraphs/erp', mayImport: ['platform'] },
  { folder: 'subgraphs/support', mayImport: ['platform'] },
];

function sources(folder: string): string[] {
  let entries;
  try {
    entries = readdirSync(join(root, folder), { withFileTypes: true, recursive: true });
  } catch {
    return [];
  }
  return entries
    .filter((entry) => entry.isFile() && /\.ts$/.test(entry.name))
    .map((entry) => relative(root, join(entry.parentPath, entry.name)));
}

/** Every relative module a file imports (static, re-exported or dynamic), as a path from the package root. */
function importsOf(file: string): string[] {
  const text = readFileSync(join(root, file), 'utf8');
  const found: string[] = [];
  for (const match of text.matchAll(/(?:\bfrom\s+|\bimport\s*\(\s*|\bimport\s+)['"](\.{1,2}\/[^'"]+)['"]/g)) {
    found.push(relative(root, resolve(dirname(join(root, file)), match[1]!)));
  }
  return found;
}

const inside = (path: string, folder: string) => path === folder || path.startsWith(`${folder}/`);

describe('imports run one way', () => {
  it('finds the sources it checks', () => {
    for (const { folder } of LAYERS) expect(sources(folder).length, folder).toBeGreaterThan(0);
  });

  for (const { folder, mayImport } of LAYERS) {
    it(`${folder} imports only ${[folder, ...mayImport].join(' and ')}`, () => {
      const stray = sources(folder).flatMap((file) =>
        importsOf(file)
          .filter((target) => ![folder, ...mayImport].some((allowed) => inside(target, allowed)))
          .map((target) => `${file} → ${target}`),
      );
      expect(stray).toEqual([]);
    });
  }
});
