import { createHash } from 'node:crypto';

/** "sha256:<hex>" of a text: how registry versions and served supergraphs are named. */
export function contentHash(text: string): string {
  return `sha256:${createHash('sha256').update(text).digest('hex')}`;
}
