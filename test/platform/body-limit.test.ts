import { connect, type Socket } from 'node:net';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGatewayOver, SUPERGRAPH_PATH } from '../helpers/stack.ts';

/** What a client that keeps sending after the refusal sees: the answer, and whether (and when) the server hung up. */
interface Outcome {
  /** The response head and body, as received. */
  response: string;
  /** ms from the first byte of the answer to the server closing the connection; null: still open when the client gave up. */
  closedAfterMs: number | null;
  /** Body bytes the client managed to send. */
  sent: number;
}

/**
 * Sends a POST whose body is larger than the server accepts and keeps sending (64 KiB every
 * 5 ms, as a client uploading a huge file would) for up to `keepSendingMs` after the answer.
 * With `readAfterMs`, the client does not read for that long.
 */
function oversizedPost(
  port: number,
  path: string,
  options: { chunked: boolean; keepSendingMs: number; readAfterMs?: number },
): Promise<Outcome> {
  return new Promise((resolve) => {
    const socket: Socket = connect(port, '127.0.0.1');
    // A client busy sending (or on a loaded machine) reads its answer late: until then the
    // answer waits in its receive buffer, which a reset from the server would discard.
    if (options.readAfterMs) {
      socket.pause();
      setTimeout(() => socket.resume(), options.readAfterMs);
    }
    const chunk = Buffer.alloc(64 * 1024, 'x');
    let response = '';
    let answeredAt: number | null = null;
    let sent = 0;
    let done = false;
    const finish = (closedAfterMs: number | null) => {
      if (done) return;
      done = true;
      clearInterval(pump);
      socket.destroy();
      resolve({ response, closedAfterMs, sent });
    };
    socket.on('data', (data) => {
      response += data.toString('latin1');
      answeredAt ??= performance.now();
    });
    const closed = () => finish(answeredAt === null ? -1 : performance.now() - answeredAt);
    socket.on('end', closed);
    socket.on('close', closed);
    socket.on('error', closed);
    socket.write(
      `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
        (options.chunked ? 'Transfer-Encoding: chunked\r\n' : `Content-Length: ${1024 * 1024 * 1024}\r\n`) +
        '\r\n',
    );
    const pump = setInterval(() => {
      if (answeredAt !== null && performance.now() - answeredAt > options.keepSendingMs) return finish(null);
      if (socket.writableNeedDrain) return;
      socket.write(options.chunked ? Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')]) : chunk);
      sent += chunk.length;
    }, 5);
  });
}

/** A request body over the limit (1 MB): 413, and the connection ends instead of the server reading the rest. */
describe('a request body that is too large', () => {
  let gateway: Awaited<ReturnType<typeof startGatewayOver>>;
  beforeAll(async () => {
    gateway = await startGatewayOver(readFileSync(SUPERGRAPH_PATH, 'utf8'));
  });
  afterAll(async () => {
    await gateway?.stop();
  });

  for (const chunked of [false, true]) {
    it(`is answered 413 with Connection: close, and the server hangs up (${chunked ? 'chunked' : 'with a Content-Length'})`, async () => {
      const outcome = await oversizedPost(gateway.gateway.port, '/graphql', { chunked, keepSendingMs: 5_000 });
      expect(outcome.response).toMatch(/^HTTP\/1\.1 413 /);
      expect(outcome.response).toMatch(/\r\nconnection: close\r\n/i);
      expect(outcome.response).toContain('PAYLOAD_TOO_LARGE');
      // Still open 5 s after the answer, with the client sending all along: the server would read forever.
      expect(outcome.closedAfterMs).not.toBeNull();
      expect(outcome.closedAfterMs!).toBeLessThan(3_000);
      expect(outcome.sent).toBeLessThan(64 * 1024 * 1024);
    });
  }

  for (const chunked of [false, true]) {
    it(`reaches a client that reads it late, while still sending (${chunked ? 'chunked' : 'with a Content-Length'})`, async () => {
      const outcome = await oversizedPost(gateway.gateway.port, '/graphql', { chunked, keepSendingMs: 5_000, readAfterMs: 300 });
      expect(outcome.response).toMatch(/^HTTP\/1\.1 413 /);
      expect(outcome.response).toContain('PAYLOAD_TOO_LARGE');
      expect(outcome.closedAfterMs).not.toBeNull();
      expect(outcome.closedAfterMs!).toBeLessThan(3_000);
    });
  }

  it('is refused from its Content-Length alone, before any of it is read', async () => {
    const socket = connect(gateway.gateway.port, '127.0.0.1');
    const answer = await new Promise<string>((resolve) => {
      let text = '';
      socket.on('data', (data) => (text += data.toString('latin1')));
      socket.on('close', () => resolve(text));
      socket.on('error', () => resolve(text));
      socket.write(`POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 5000000\r\n\r\n`);
      setTimeout(() => socket.destroy(), 5_000);
    });
    expect(answer).toMatch(/^HTTP\/1\.1 413 /);
    expect(answer).toMatch(/\r\nconnection: close\r\n/i);
  });
});
