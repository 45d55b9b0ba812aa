import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Concord's version, read from its package.json: the first one above this file whose name is
 * concord (the source tree, the compiled tree under dist/ and an image alike). 'unknown' when
 * there is none, rather than failing a start over a label.
 */
export const VERSION: string = findVersion(dirname(fileURLToPath(import.meta.url)));

function findVersion(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'concord' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // No package.json here (or not JSON): look further up.
    }
    if (dirname(dir) === dir) return 'unknown';
  }
}
