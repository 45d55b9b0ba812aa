import {
  context,
  createContextKey,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  TraceFlags,
  type Attributes,
  type Context,
  type Span,
} from '@opentelemetry/api';
import { sharedContextManager } from './async-context.ts';
import { VERSION } from './package-root.ts';

/**
 * OpenTelemetry traces, configured by the standard OTEL_* variables and off unless they ask for
 * an exporter. Off, nothing is loaded: the API's tracer is a no-op, and every helper here returns
 * at its first test. On, @opentelemetry/sdk-node exports spans over OTLP (OTEL_EXPORTER_OTLP_*),
 * samples by OTEL_TRACES_SAMPLER (parent-based, always on, by default) and propagates W3C
 * `traceparent` (OTEL_PROPAGATORS). Spans are made here, by hand, at the points that matter
 * (HTTP in and out, GraphQL operations, subgraph fetches, calls to a system, workflow steps, the
 * outbox, event consumers): no module is patched, so the ESM services need no loader hook.
 */

const TRACER = 'concord';

let enabled = false;
/** The sampler follows the parent's decision (OTEL_TRACES_SAMPLER unset or parentbased_*): under a span sampled out, nothing is. */
let parentBased = true;

/** True when this process exports traces. */
export function tracingEnabled(): boolean {
  return enabled;
}

/**
 * Whether the environment asks for traces: an OTLP endpoint, or an exporter other than none,
 * and the SDK not disabled (OTEL_SDK_DISABLED=true).
 */
export function tracingRequested(env: NodeJS.ProcessEnv = process.env): boolean {
  if (/^true$/i.test(env.OTEL_SDK_DISABLED?.trim() ?? '')) return false;
  const exporters = (env.OTEL_TRACES_EXPORTER ?? '')
    .split(',')
    .map((name) => name.trim())
    .filter(Boolean);
  if (exporters.length) return exporters.some((name) => name !== 'none');
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim() || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim());
}

export interface Tracing {
  /** Exports the spans still buffered and stops (at most `timeoutMs`). */
  shutdown(timeoutMs?: number): Promise<void>;
}

/**
 * Starts the SDK for the service `service` (its `service.name`, in the `concord` namespace) when
 * the environment asks for traces; null otherwise. Only traces: the metrics are Prometheus's
 * (/metrics) and the logs are JSON lines on stdout, each carrying its trace id.
 */
export async function startTracing(service: string, env: NodeJS.ProcessEnv = process.env): Promise<Tracing | null> {
  if (enabled || !tracingRequested(env)) return null;
  const [{ NodeSDK }, { resourceFromAttributes }] = await Promise.all([
    import('@opentelemetry/sdk-node'),
    import('@opentelemetry/resources'),
  ]);
  const sdk = new NodeSDK({
    serviceName: env.OTEL_SERVICE_NAME?.trim() || service,
    resource: resourceFromAttributes({ 'service.namespace': 'concord', 'service.version': VERSION }),
    instrumentations: [],
    // The process's one AsyncLocalStorage (async-context.ts), not a second one of the SDK's.
    contextManager: sharedContextManager,
    metricReaders: [],
    logRecordProcessors: [],
  });
  sdk.start();
  const sampler = env.OTEL_TRACES_SAMPLER?.trim();
  parentBased = !sampler || sampler.startsWith('parentbased_');
  enabled = true;
  return {
    async shutdown(timeoutMs = 2_000) {
      enabled = false;
      await Promise.race([sdk.shutdown().catch(() => undefined), new Promise((resolve) => setTimeout(resolve, timeoutMs).unref())]);
    },
  };
}

/** The tracer every Concord span comes from. */
export function tracer() {
  return trace.getTracer(TRACER, VERSION);
}

/** The trace and span ids of the span in progress, for a log line; empty outside one (or with tracing off). */
export function traceFields(): { traceId?: string; spanId?: string } {
  if (!enabled) return {};
  const span = trace.getActiveSpan();
  if (!span) return {};
  const { traceId, spanId } = span.spanContext();
  return { traceId, spanId };
}

/** Headers carrying the current trace (`traceparent`, `tracestate`) to the next service; empty when off. */
export function traceHeaders(): Record<string, string> {
  if (!enabled) return {};
  const carrier: Record<string, string> = {};
  propagation.inject(context.active(), carrier);
  return carrier;
}

/** The current trace as a carrier to keep with work done later (a workflow, an event); null when off or outside one. */
export function traceCarrier(): Record<string, string> | null {
  const carrier = traceHeaders();
  return carrier.traceparent ? carrier : null;
}

/** The context a carrier (headers, a stored trace, an event's extension attributes) names. */
export function contextFrom(carrier: Readonly<Record<string, unknown>> | null | undefined): Context {
  if (!enabled || !carrier) return ROOT_CONTEXT;
  return propagation.extract(ROOT_CONTEXT, carrier, {
    keys: (value) => Object.keys(value),
    get: (value, key) => {
      const found = value[key];
      return Array.isArray(found) ? found.map(String) : typeof found === 'string' ? found : undefined;
    },
  });
}

export interface SpanOptions {
  readonly kind?: SpanKind;
  readonly attributes?: Attributes;
  /** The parent; default: the current context. */
  readonly parent?: Context;
}

/**
 * Runs `fn` in a new span, the current one while it runs: ended when `fn` settles, with status
 * error when it throws (the error's name and code only: messages may hold customer data). With
 * tracing off, `fn` runs as it is.
 */
export function inSpan<T>(name: string, options: SpanOptions, fn: (span: Span | null) => T | Promise<T>): Promise<T> {
  const parent = enabled ? (options.parent ?? context.active()) : ROOT_CONTEXT;
  if (!enabled || sampledOut(parent)) {
    try {
      return Promise.resolve(fn(null));
    } catch (error) {
      return Promise.reject(error as Error);
    }
  }
  const span = tracer().startSpan(name, { kind: options.kind ?? SpanKind.INTERNAL, attributes: options.attributes }, parent);
  return context.with(trace.setSpan(parent, span), async () => {
    try {
      return await fn(span);
    } catch (error) {
      failSpan(span, error);
      throw error;
    } finally {
      span.end();
    }
  });
}

/**
 * True when `parent` holds a span whose trace was not sampled and the sampler follows the
 * parent: every span under it would be dropped, so none is made. A trace sampled out then costs
 * one span per service (its server span, which carries the decision on) instead of one per
 * operation, call and step.
 */
function sampledOut(parent: Context): boolean {
  if (!parentBased) return false;
  const span = trace.getSpan(parent);
  return span !== undefined && (span.spanContext().traceFlags & TraceFlags.SAMPLED) === 0;
}

/** Marks a span failed with what names the failure, not what it says (`error.type`: the code or the error's class). */
export function failSpan(span: Span, error: unknown, code?: string): void {
  const type =
    code ??
    (error && typeof error === 'object' && 'code' in error && typeof error.code === 'string' ? error.code : undefined) ??
    (error instanceof Error ? error.name : 'Error');
  span.setAttribute('error.type', type);
  span.setStatus({ code: SpanStatusCode.ERROR, message: type });
}

/** Set while a resilience layer's call to a system runs: the requests it sends are its attempts. */
const SYSTEM_CALL = createContextKey('concord.system-call');

/**
 * One call to a system through its resilience layer (deadline, retries, breaker): a client span
 * `<system> <operation>`, whose attempts (ConnectorTelemetry's requests) are its children.
 * `fn` is given a recorder for what the span should say at its end (retries, breaker state).
 */
export function inSystemCall<T>(
  system: string,
  operation: string,
  fn: (record: (attributes: Attributes) => void) => Promise<T>,
): Promise<T> {
  const parent = enabled ? context.active() : ROOT_CONTEXT;
  if (!enabled || sampledOut(parent)) return fn(() => undefined);
  const span = tracer().startSpan(
    `${system} ${operation}`,
    { kind: SpanKind.CLIENT, attributes: { 'concord.system': system, 'concord.operation': operation } },
    parent,
  );
  return context.with(trace.setSpan(parent, span).setValue(SYSTEM_CALL, system), async () => {
    try {
      return await fn((attributes) => span.setAttributes(attributes));
    } catch (error) {
      failSpan(span, error);
      throw error;
    } finally {
      span.end();
    }
  });
}

/** True inside inSystemCall for `system`: a request to it is one attempt of that call. */
export function inSystemCallOf(system: string): boolean {
  return enabled && context.active().getValue(SYSTEM_CALL) === system;
}

export { SpanKind, SpanStatusCode, type Span };
