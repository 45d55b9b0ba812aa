import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Concord's package folder: the first folder above this file whose package.json is concord's.
 * The same whether the code runs from its sources or compiled under dist/, so files that are not
 * code (SDL, documentation) are read from one place in both.
 */
export const PACKAGE_ROOT: string = findRoot(dirname(fileURLToPath(import.meta.url)));

/** Concord's version, from its package.json ('unknown' when it cannot be read). */
export const VERSION: string = readPackage(PACKAGE_ROOT)?.version ?? 'unknown';

/** A path inside the package folder ('subgraphs/crm/schema.graphql'). */
export function fromPackageRoot(...parts: string[]): string {
  return join(PACKAGE_ROOT, ...parts);
}

/** An entry point's compiled file under dist/ ('gateway/src/index.ts' → 'dist/gateway/src/index.js'), as npm run build writes it. */
export function compiledEntry(entry: string): string {
  return `dist/${entry.replace(/\.ts$/, '.js')}`;
}

function findRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (readPackage(dir)) return dir;
    // No package.json of concord's above: the folder two above platform/ (the source layout).
    if (dirname(dir) === dir) return dirname(from);
  }
}

function readPackage(dir: string): { version?: string } | undefined {
  try {
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
    return pkg.name === 'concord' ? pkg : undefined;
  } catch {
    return undefined;
  }
}
