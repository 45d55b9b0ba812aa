import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** One span as an OTLP/HTTP JSON export carries it, with the service that sent it. */
export interface ReceivedSpan {
  readonly service: string;
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string;
  readonly name: string;
  /** OTLP's SpanKind: 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  readonly kind: number;
  readonly attributes: Readonly<Record<string, unknown>>;
  readonly status: { code?: number; message?: string };
  readonly startNs: bigint;
  readonly endNs: bigint;
}

interface OtlpValue {
  stringValue?: string;
  intValue?: string | number;
  doubleValue?: number;
  boolValue?: boolean;
  arrayValue?: { values?: OtlpValue[] };
}
type OtlpAttribute = { key: string; value: OtlpValue };

const valueOf = (value: OtlpValue | undefined): unknown =>
  value === undefined
    ? undefined
    : (value.stringValue ??
      (value.intValue !== undefined ? Number(value.intValue) : undefined) ??
      value.doubleValue ??
      value.boolValue ??
      value.arrayValue?.values?.map(valueOf));

const attributesOf = (attributes: OtlpAttribute[] | undefined) =>
  Object.fromEntries((attributes ?? []).map((attribute) => [attribute.key, valueOf(attribute.value)]));

/**
 * A trace store as the services and the console use one: its collector endpoint as the OTLP/HTTP
 * specification has it (POST /v1/traces, JSON encoding: OTEL_EXPORTER_OTLP_PROTOCOL=http/json),
 * keeping every span it is sent, and Grafana Tempo's query API for one trace (GET
 * /api/v2/traces/<id>: `{ trace: { resourceSpans } }`, ids in base64 as protobuf's JSON mapping
 * has bytes; 404 for a trace it holds no span of).
 */
export async function startOtlpReceiver(): Promise<{
  readonly endpoint: string;
  /** CONSOLE_TRACES_URL for this store. */
  readonly queryUrl: string;
  /** Trace queries answered so far. */
  readonly queries: string[];
  readonly spans: ReceivedSpan[];
  /** The spans of one trace, once `holds` is true of them (or the time is up: then as they are). */
  trace(traceId: string, holds: (spans: ReceivedSpan[]) => boolean, timeoutMs?: number): Promise<ReceivedSpan[]>;
  close(): Promise<void>;
}> {
  const spans: ReceivedSpan[] = [];
  const queries: string[] = [];
  /** What was sent, as sent: per resource, its spans. */
  const batches: { resource: unknown; spans: { traceId: string }[] }[] = [];
  const server = http.createServer((req, res) => {
    const query = /^\/api\/v2\/traces\/([0-9a-f]{32})$/.exec(req.url ?? '');
    if (req.method === 'GET' && query) {
      const traceId = query[1]!;
      queries.push(traceId);
      const base64 = (hex: string | undefined) => (hex ? Buffer.from(hex, 'hex').toString('base64') : undefined);
      const resourceSpans = batches
        .map((batch) => ({ resource: batch.resource, spans: batch.spans.filter((span) => span.traceId === traceId) }))
        .filter((batch) => batch.spans.length > 0)
        .map((batch) => ({
          resource: batch.resource,
          scopeSpans: [
            {
              spans: batch.spans.map((span) => {
                const { traceId: id, spanId, parentSpanId, ...rest } = span as { traceId: string; spanId: string; parentSpanId?: string };
                return {
                  traceId: base64(id),
                  spanId: base64(spanId),
                  ...(parentSpanId ? { parentSpanId: base64(parentSpanId) } : {}),
                  ...rest,
                };
              }),
            },
          ],
        }));
      if (resourceSpans.length === 0) res.writeHead(404, { 'content-type': 'text/plain' }).end('trace not found');
      else res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ trace: { resourceSpans } }));
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/v1/traces' || !/json/.test(req.headers['content-type'] ?? '')) {
        res.writeHead(415).end();
        return;
      }
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
        resourceSpans?: {
          resource?: { attributes?: OtlpAttribute[] };
          scopeSpans?: {
            spans?: {
              traceId: string;
              spanId: string;
              parentSpanId?: string;
              name: string;
              kind: number;
              attributes?: OtlpAttribute[];
              status?: { code?: number; message?: string };
              startTimeUnixNano: string;
              endTimeUnixNano: string;
            }[];
          }[];
        }[];
      };
      for (const resource of body.resourceSpans ?? []) {
        batches.push({ resource: resource.resource, spans: (resource.scopeSpans ?? []).flatMap((scope) => scope.spans ?? []) });
        const service = String(attributesOf(resource.resource?.attributes)['service.name']);
        for (const scope of resource.scopeSpans ?? [])
          for (const span of scope.spans ?? [])
            spans.push({
              service,
              traceId: span.traceId,
              spanId: span.spanId,
              parentSpanId: span.parentSpanId ?? '',
              name: span.name,
              kind: span.kind,
              attributes: attributesOf(span.attributes),
              status: span.status ?? {},
              startNs: BigInt(span.startTimeUnixNano),
              endNs: BigInt(span.endTimeUnixNano),
            });
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    queryUrl: `http://127.0.0.1:${port}/api/v2/traces/{traceId}`,
    queries,
    spans,
    async trace(traceId, holds, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = spans.filter((span) => span.traceId === traceId);
        if (holds(found) || Date.now() > deadline) return found;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
