/**
 * One trace for the operations console's timeline, read from the trace store the services export
 * to (Concord keeps no spans itself). The store is named by a URL template with `{traceId}` in
 * it, e.g. Grafana Tempo's `http://tempo:3200/api/v2/traces/{traceId}` or Jaeger's
 * `http://jaeger:16686/api/v3/traces/{traceId}`; each answers one trace as OTLP JSON, under
 * `trace` (Tempo v2), `batches` (Tempo v1), `result` (Jaeger v3) or bare, with ids in hex or, as
 * protobuf's JSON mapping has bytes, in base64. The answer is flattened into spans ordered by
 * start, with only the attributes the timeline shows: names and codes, never field values.
 */
import { Agent, fetch } from 'undici';

/** A span as the timeline draws it. */
export interface TraceSpan {
  readonly spanId: string;
  /** Empty for a root (or a span whose parent is not in the trace). */
  readonly parentSpanId: string;
  readonly name: string;
  readonly service: string;
  readonly kind: 'internal' | 'server' | 'client' | 'producer' | 'consumer';
  /** Milliseconds after the trace's first span started. */
  readonly startMs: number;
  readonly durationMs: number;
  readonly error: boolean;
  /** The status message of a failed span (an error's text, as the service set it). */
  readonly statusMessage: string | null;
  readonly attributes: Readonly<Record<string, string | number | boolean>>;
}

export interface Trace {
  readonly traceId: string;
  /** When the first span started (ISO 8601). */
  readonly startedAt: string;
  readonly durationMs: number;
  readonly services: readonly string[];
  readonly spans: readonly TraceSpan[];
  /** True when the trace held more spans than MAX_SPANS (the earliest are kept). */
  readonly truncated: boolean;
}

export type TraceLookup =
  | { readonly found: true; readonly trace: Trace }
  | { readonly found: false; readonly status: 404 | 502 | 504; readonly code: string; readonly message: string };

export interface TraceSource {
  trace(traceId: string): Promise<TraceLookup>;
}

/** A W3C trace id: 32 lower-case hex digits, not all zero. */
export const TRACE_ID = /^(?!0{32})[0-9a-f]{32}$/;

/** Spans one timeline shows at most. */
export const MAX_SPANS = 2_000;
/** The largest store answer read, in bytes. */
const MAX_BYTES = 16 * 1024 * 1024;
const TIMEOUT_MS = 5_000;

/**
 * Attributes passed on to the page: the semantic conventions' names, codes and sizes, and
 * Concord's own (system, operation, attempts); anything else a span may carry stays out.
 */
const SHOWN = [
  /^concord\./,
  /^graphql\.operation\.(name|type)$/,
  /^http\.(request\.method|response\.status_code|route)$/,
  /^server\.(address|port)$/,
  /^url\.(path|scheme)$/,
  /^messaging\.(system|operation(\.type|\.name)?|destination\.name|message\.id)$/,
  /^error\.type$/,
  /^db\.system(\.name)?$/,
];

const KINDS: Record<number, TraceSpan['kind']> = { 1: 'internal', 2: 'server', 3: 'client', 4: 'producer', 5: 'consumer' };
const KIND_NAMES: Record<string, TraceSpan['kind']> = {
  SPAN_KIND_INTERNAL: 'internal',
  SPAN_KIND_SERVER: 'server',
  SPAN_KIND_CLIENT: 'client',
  SPAN_KIND_PRODUCER: 'producer',
  SPAN_KIND_CONSUMER: 'consumer',
};

interface OtlpValue {
  stringValue?: string;
  intValue?: string | number;
  doubleValue?: number;
  boolValue?: boolean;
}
interface OtlpSpan {
  traceId?: string;
  spanId?: string;
  parentSpanId?: string;
  name?: string;
  kind?: number | string;
  startTimeUnixNano?: string | number;
  endTimeUnixNano?: string | number;
  attributes?: { key?: string; value?: OtlpValue }[];
  status?: { code?: number | string; message?: string };
}
interface OtlpResourceSpans {
  resource?: { attributes?: { key?: string; value?: OtlpValue }[] };
  scopeSpans?: { spans?: OtlpSpan[] }[];
  /** OTLP before 0.15 (older Tempo answers). */
  instrumentationLibrarySpans?: { spans?: OtlpSpan[] }[];
}

/** A trace store at `template` (with `{traceId}`); `headers` go with each request (a tenant, a token). */
export function traceStore(
  template: string,
  headers: Readonly<Record<string, string>> = {},
  { timeoutMs = TIMEOUT_MS }: { timeoutMs?: number } = {},
): TraceSource & { close(): Promise<void> } {
  const dispatcher = new Agent({ connect: { timeout: timeoutMs }, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
  const store = new URL(template.replace('{traceId}', '0')).host;
  return {
    async trace(traceId) {
      const url = template.replace('{traceId}', traceId);
      let response;
      try {
        response = await fetch(url, {
          headers: { accept: 'application/json', ...headers },
          dispatcher,
          signal: AbortSignal.timeout(timeoutMs),
        });
      } catch (error) {
        const timedOut = error instanceof Error && (error.name === 'TimeoutError' || /timeout/i.test(String(error.cause ?? error.message)));
        return timedOut
          ? {
              found: false,
              status: 504,
              code: 'TRACE_STORE_TIMEOUT',
              message: `the trace store (${store}) did not answer within ${timeoutMs / 1000} s`,
            }
          : { found: false, status: 502, code: 'TRACE_STORE_UNAVAILABLE', message: `the trace store (${store}) cannot be reached` };
      }
      if (response.status === 404) {
        await response.body?.cancel();
        return {
          found: false,
          status: 404,
          code: 'TRACE_NOT_FOUND',
          message: `the trace store has no trace ${traceId} (yet, or any more)`,
        };
      }
      if (!response.ok) {
        await response.body?.cancel();
        return {
          found: false,
          status: 502,
          code: 'TRACE_STORE_FAILED',
          message: `the trace store (${store}) answered HTTP ${response.status}`,
        };
      }
      const length = Number(response.headers.get('content-length') ?? 0);
      if (length > MAX_BYTES) {
        await response.body?.cancel();
        return { found: false, status: 502, code: 'TRACE_TOO_LARGE', message: `the trace is larger than ${MAX_BYTES / 1024 / 1024} MiB` };
      }
      let body: unknown;
      try {
        const text = await response.text();
        if (text.length > MAX_BYTES) throw new Error('too large');
        body = JSON.parse(text);
      } catch {
        return {
          found: false,
          status: 502,
          code: 'TRACE_STORE_FAILED',
          message: `the trace store (${store}) answered something other than OTLP JSON`,
        };
      }
      const trace = traceFromOtlp(traceId, body);
      return trace.spans.length === 0
        ? {
            found: false,
            status: 404,
            code: 'TRACE_NOT_FOUND',
            message: `the trace store has no spans of trace ${traceId} (yet, or any more)`,
          }
        : { found: true, trace };
    },
    close: () => dispatcher.close(),
  };
}

/** The resource spans of an answer, whichever store's wrapper it has. */
function resourceSpansOf(body: unknown): OtlpResourceSpans[] {
  if (!body || typeof body !== 'object') return [];
  const record = body as Record<string, unknown>;
  for (const key of ['resourceSpans', 'batches']) if (Array.isArray(record[key])) return record[key] as OtlpResourceSpans[];
  for (const key of ['trace', 'result', 'data']) if (record[key] && typeof record[key] === 'object') return resourceSpansOf(record[key]);
  return [];
}

/** An id as hex: OTLP JSON has hex, protobuf's JSON mapping base64. */
export function hexId(id: string | undefined, bytes: 8 | 16): string {
  if (!id) return '';
  if (id.length === bytes * 2 && /^[0-9a-fA-F]+$/.test(id)) return id.toLowerCase();
  const decoded = Buffer.from(id, 'base64');
  return decoded.length === bytes ? decoded.toString('hex') : '';
}

const valueOf = (value: OtlpValue | undefined): string | number | boolean | undefined =>
  value === undefined
    ? undefined
    : (value.stringValue?.slice(0, 200) ??
      (value.intValue !== undefined ? Number(value.intValue) : undefined) ??
      value.doubleValue ??
      value.boolValue);

const nanos = (value: string | number | undefined): bigint => {
  try {
    return BigInt(value ?? 0);
  } catch {
    return 0n;
  }
};

/** The spans of one trace in an OTLP JSON answer, ordered by start. */
export function traceFromOtlp(traceId: string, body: unknown): Trace {
  const raw: { span: OtlpSpan; service: string; start: bigint; end: bigint }[] = [];
  for (const resource of resourceSpansOf(body)) {
    const serviceAttribute = resource.resource?.attributes?.find((attribute) => attribute.key === 'service.name');
    const service = String(valueOf(serviceAttribute?.value) ?? 'unknown');
    for (const scope of [...(resource.scopeSpans ?? []), ...(resource.instrumentationLibrarySpans ?? [])])
      for (const span of scope.spans ?? []) {
        // A store answers one trace, but a span of another (a link followed) is not drawn.
        if (span.traceId && hexId(span.traceId, 16) !== traceId) continue;
        const start = nanos(span.startTimeUnixNano);
        raw.push({ span, service, start, end: nanos(span.endTimeUnixNano) || start });
      }
  }
  raw.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  const kept = raw.slice(0, MAX_SPANS);
  const origin = kept[0]?.start ?? 0n;
  const last = kept.reduce((end, entry) => (entry.end > end ? entry.end : end), origin);
  const ids = new Set(kept.map((entry) => hexId(entry.span.spanId, 8)));
  const spans = kept.map(({ span, service, start, end }): TraceSpan => {
    const parent = hexId(span.parentSpanId, 8);
    const code = span.status?.code;
    const error = code === 2 || code === 'STATUS_CODE_ERROR';
    const attributes: Record<string, string | number | boolean> = {};
    for (const attribute of span.attributes ?? []) {
      if (!attribute.key || !SHOWN.some((pattern) => pattern.test(attribute.key!))) continue;
      const value = valueOf(attribute.value);
      if (value !== undefined) attributes[attribute.key] = value;
    }
    return {
      spanId: hexId(span.spanId, 8),
      parentSpanId: ids.has(parent) ? parent : '',
      name: String(span.name ?? '').slice(0, 200),
      service,
      kind: (typeof span.kind === 'number' ? KINDS[span.kind] : KIND_NAMES[String(span.kind)]) ?? 'internal',
      startMs: Number(start - origin) / 1e6,
      durationMs: Number(end - start) / 1e6,
      error,
      statusMessage: error && span.status?.message ? span.status.message.slice(0, 500) : null,
      attributes,
    };
  });
  return {
    traceId,
    startedAt: new Date(Number(origin / 1_000_000n)).toISOString(),
    durationMs: Number(last - origin) / 1e6,
    services: [...new Set(spans.map((span) => span.service))],
    spans,
    truncated: raw.length > kept.length,
  };
}
