import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** How the proxy passes a subgraph's answers on. */
export type ProxyMode =
  /** As they come. */
  | { kind: 'pass' }
  /** The headers at once, then the real body one byte every `everyMs`. */
  | { kind: 'trickle'; everyMs: number }
  /** Nothing until release() (then as they come). */
  | { kind: 'hold' }
  /** A 200 JSON answer that never ends, as fast as the gateway reads it. */
  | { kind: 'endless' };

/** One request that reached the proxy. */
export interface ProxiedRequest {
  readonly at: number;
  readonly authorization: string | undefined;
}

export interface SubgraphProxy {
  /** The URL to route the gateway's calls for the subgraph to. */
  readonly url: string;
  readonly requests: ProxiedRequest[];
  /** Requests waiting in hold mode. */
  held(): number;
  /** Bytes of body sent to the gateway so far (endless mode). */
  bytesSent(): number;
  /** Connections the gateway closed before the answer ended. */
  abandoned(): number;
  setMode(mode: ProxyMode): void;
  /** Lets every held request through. */
  release(): void;
  stop(): Promise<void>;
}

/**
 * A real HTTP server in front of a real subgraph, for the faults a network and a slow system
 * produce: answers trickling byte by byte, requests left hanging, an answer without end. It
 * records when each request arrived and the token it carried.
 */
export async function startSubgraphProxy(targetUrl: string, initial: ProxyMode = { kind: 'pass' }): Promise<SubgraphProxy> {
  const target = new URL(targetUrl);
  let mode = initial;
  const requests: ProxiedRequest[] = [];
  let waiting: (() => void)[] = [];
  let sent = 0;
  let abandoned = 0;
  const timers = new Set<NodeJS.Timeout>();

  const forward = (req: IncomingMessage, body: Buffer, res: ServerResponse, trickleMs: number | null) => {
    const upstream = httpRequest(
      { host: target.hostname, port: target.port, path: req.url, method: req.method, headers: { ...req.headers, host: target.host } },
      (answer) => {
        const chunks: Buffer[] = [];
        answer.on('data', (chunk: Buffer) => chunks.push(chunk));
        answer.on('end', () => {
          const payload = Buffer.concat(chunks);
          const { 'content-length': _length, 'transfer-encoding': _encoding, ...headers } = answer.headers;
          res.writeHead(answer.statusCode ?? 502, headers);
          if (trickleMs === null) return void res.end(payload);
          res.flushHeaders();
          let at = 0;
          const tick = () => {
            if (res.destroyed) return;
            if (at >= payload.length) return void res.end();
            res.write(payload.subarray(at, at + 1));
            at += 1;
            const timer = setTimeout(() => {
              timers.delete(timer);
              tick();
            }, trickleMs);
            timers.add(timer);
          };
          tick();
        });
      },
    );
    upstream.on('error', () => res.destroy());
    upstream.end(body);
  };

  const endless = (res: ServerResponse) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.write('{"data":{"_entities":[');
    const filler = Buffer.from(`${'{"name":"x"},'.repeat(5_000)}`);
    const pump = () => {
      while (!res.destroyed && res.write(filler)) sent += filler.length;
      if (!res.destroyed) res.once('drain', pump);
    };
    pump();
  };

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      requests.push({ at: Date.now(), authorization: req.headers.authorization });
      res.on('close', () => {
        if (!res.writableFinished) abandoned += 1;
      });
      const body = Buffer.concat(chunks);
      const current = mode;
      if (current.kind === 'endless') return endless(res);
      if (current.kind === 'hold') return void waiting.push(() => forward(req, body, res, null));
      forward(req, body, res, current.kind === 'trickle' ? current.everyMs : null);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}${target.pathname}`,
    requests,
    held: () => waiting.length,
    bytesSent: () => sent,
    abandoned: () => abandoned,
    setMode(next) {
      mode = next;
    },
    release() {
      const released = waiting;
      waiting = [];
      for (const go of released) go();
    },
    async stop() {
      for (const timer of timers) clearTimeout(timer);
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
