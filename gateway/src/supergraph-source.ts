import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import { Supergraph } from '@apollo/federation-internals';
import type { SupergraphManager, SupergraphSdlUpdateFunction } from '@apollo/gateway';
import type { Logger } from '../../platform/logger.ts';
import { contentHash } from '../../platform/hash.ts';

/**
 * Where the gateway's supergraph comes from. A static one is read once. A followed one (a
 * watched file, or a URL polled with ETags) is switched to when it changes, after it validates
 * as a Federation 2 supergraph; one that does not is refused with a log line, and the previous
 * supergraph keeps serving. Requests in flight finish on the supergraph they started with.
 */
export type SupergraphSource =
  { kind: 'static'; sdl: string } | { kind: 'file'; path: string; intervalMs: number } | { kind: 'url'; url: string; intervalMs: number };

export function supergraphManager(source: SupergraphSource, logger: Logger): string | SupergraphManager {
  switch (source.kind) {
    case 'static':
      return source.sdl;
    case 'file':
      return followFile(source.path, source.intervalMs, logger);
    case 'url':
      return pollUrl(source.url, source.intervalMs, logger);
  }
}

/** Applies a candidate supergraph if it validates; returns the hash now served. */
function switcher(update: SupergraphSdlUpdateFunction, initial: string, origin: string, logger: Logger) {
  let served = initial;
  return (candidate: string): void => {
    if (candidate === served) return;
    const hash = contentHash(candidate);
    try {
      Supergraph.build(candidate).apiSchema();
      update(candidate);
    } catch (error) {
      logger.error(
        { origin, refused: hash, serving: contentHash(served), reason: (error as Error).message.split('\n')[0] },
        'refused a new supergraph that does not validate; the previous one keeps serving',
      );
      return;
    }
    logger.info({ origin, previous: contentHash(served), serving: hash }, 'switched to a new supergraph');
    served = candidate;
  };
}

function followFile(path: string, intervalMs: number, logger: Logger): SupergraphManager {
  return {
    async initialize({ update }) {
      const initial = readFileSync(path, 'utf8');
      const apply = switcher(update, initial, path, logger);
      // Polling the file's stat survives editors and deploy tools that replace it by rename.
      const onChange = () => {
        let candidate: string;
        try {
          candidate = readFileSync(path, 'utf8');
        } catch (error) {
          logger.warn({ origin: path, err: error }, 'cannot read the supergraph file; the current one keeps serving');
          return;
        }
        apply(candidate);
      };
      watchFile(path, { interval: intervalMs, persistent: false }, onChange);
      logger.info({ origin: path, serving: contentHash(initial), intervalMs }, 'following the supergraph file');
      return { supergraphSdl: initial, cleanup: async () => unwatchFile(path, onChange) };
    },
  };
}

function pollUrl(url: string, intervalMs: number, logger: Logger): SupergraphManager {
  return {
    async initialize({ update }) {
      let etag: string | null = null;
      const fetchSupergraph = async (): Promise<string | null> => {
        const response = await fetch(url, { headers: etag ? { 'if-none-match': etag } : {}, signal: AbortSignal.timeout(10_000) });
        if (response.status === 304) return null;
        if (!response.ok) throw new Error(`${url} answered ${response.status}`);
        etag = response.headers.get('etag');
        return response.text();
      };
      const initial = await fetchSupergraph();
      if (initial === null) throw new Error(`${url} answered 304 to the first request`);
      const apply = switcher(update, initial, url, logger);
      let polling = false;
      const timer = setInterval(() => {
        if (polling) return;
        polling = true;
        fetchSupergraph()
          .then((candidate) => candidate !== null && apply(candidate))
          .catch((error: unknown) => logger.warn({ origin: url, err: error }, 'cannot fetch the supergraph; the current one keeps serving'))
          .finally(() => (polling = false));
      }, intervalMs);
      timer.unref();
      logger.info({ origin: url, serving: contentHash(initial), intervalMs }, 'polling the supergraph URL');
      return { supergraphSdl: initial, cleanup: async () => clearInterval(timer) };
    },
  };
}
