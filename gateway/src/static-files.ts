import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';

/**
 * The files of the pages the gateway serves (the operations console, the GraphQL IDE): each
 * read once and kept in memory with its gzipped form and an ETag, and sent as immutable (its URL
 * changes with its content), gzipped when the browser takes that, 304 when it has it already.
 */
interface Loaded {
  readonly body: Buffer;
  readonly gzipped: Buffer;
  readonly etag: string;
}

const compress = promisify(gzip);
const loaded = new Map<string, Promise<Loaded>>();

function load(key: string, read: () => Promise<Buffer>): Promise<Loaded> {
  let entry = loaded.get(key);
  if (!entry) {
    entry = (async () => {
      const body = await read();
      return { body, gzipped: await compress(body), etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` };
    })();
    // A failed read is tried again at the next request, not remembered.
    entry.catch(() => loaded.delete(key));
    loaded.set(key, entry);
  }
  return entry;
}

/** Answers with the file `key` (its URL path), read by `read` the first time. */
export async function sendImmutable(
  req: IncomingMessage,
  res: ServerResponse,
  key: string,
  contentType: string,
  read: () => Promise<Buffer>,
): Promise<void> {
  const { body, gzipped, etag } = await load(key, read);
  const wantsGzip = /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''));
  const headers: Record<string, string | number> = {
    'content-type': contentType,
    'cache-control': 'public, max-age=31536000, immutable',
    etag,
    vary: 'Accept-Encoding',
    'x-content-type-options': 'nosniff',
  };
  if (req.headers['if-none-match'] === etag) {
    res.writeHead(304, headers);
    res.end();
    return;
  }
  const sent = wantsGzip ? gzipped : body;
  if (wantsGzip) headers['content-encoding'] = 'gzip';
  headers['content-length'] = sent.length;
  res.writeHead(200, headers);
  res.end(req.method === 'HEAD' ? undefined : sent);
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** JSON inside a <script> element: no "</script>" or "<!--" can end it early. */
export function jsonForScript(value: unknown): string {
  return JSON.stringify(value).replace(/</g, '\\u003c').replace(/>/g, '\\u003e').replace(/&/g, '\\u0026');
}
