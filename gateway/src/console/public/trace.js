// One trace as a timeline: every span of every service in start order, nested under its parent,
// a bar from its start to its end on the trace's own scale. The spans come from the gateway's
// /console/api/traces/<id>, which reads them from the trace store (CONSOLE_TRACES_URL).
import { h } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import htm from 'htm';

const html = htm.bind(h);

/** Colours per service, the figures' where the names match. */
const SERVICE_COLORS = {
  gateway: '#57606a',
  crm: '#0a58ca',
  erp: '#8250df',
  support: '#1a7f37',
  processes: '#bc4c00',
};
const OTHER_COLORS = ['#0969da', '#9a6700', '#bf3989', '#1b7c83', '#6e7781'];

export const TRACE_ID = /^(?!0{32})[0-9a-f]{32}$/;

/** The service name without the `concord-` prefix the services report under. */
const shortName = (service) => service.replace(/^concord-/, '');

function colorOf(service, services) {
  return SERVICE_COLORS[shortName(service)] ?? OTHER_COLORS[services.indexOf(service) % OTHER_COLORS.length];
}

const ms = (value) =>
  value >= 1000 ? `${(value / 1000).toFixed(2)} s` : value >= 10 ? `${Math.round(value)} ms` : `${value.toFixed(1)} ms`;

/** The spans depth-first, each under its parent, siblings in start order. */
export function treeOrder(spans) {
  const children = new Map();
  for (const span of spans) {
    const list = children.get(span.parentSpanId) ?? [];
    list.push(span);
    children.set(span.parentSpanId, list);
  }
  const ordered = [];
  const visit = (parent, depth) => {
    for (const span of (children.get(parent) ?? []).sort((a, b) => a.startMs - b.startMs)) {
      ordered.push({ span, depth });
      if (span.spanId) visit(span.spanId, depth + 1);
    }
  };
  visit('', 0);
  return ordered;
}

/** Says in plain words why a trace cannot be shown. */
function problemText(error) {
  switch (error.code) {
    case 'TRACE_NOT_FOUND':
      return 'The trace store has no spans of this trace: it may still be arriving (try again in a few seconds), or it was sampled out or has expired.';
    case 'TRACES_NOT_CONFIGURED':
      return 'No trace store is configured: set CONSOLE_TRACES_URL on the gateway (docs/console.md).';
    case 'TRACE_STORE_UNAVAILABLE':
    case 'TRACE_STORE_TIMEOUT':
    case 'TRACE_STORE_FAILED':
      return `The trace store could not answer: ${error.message}.`;
    default:
      return error.message;
  }
}

function SpanRow({ span, depth, trace, open, onToggle }) {
  const total = Math.max(trace.durationMs, 0.001);
  const left = (span.startMs / total) * 100;
  const width = Math.max(0.3, (span.durationMs / total) * 100);
  const system = span.attributes['concord.system'];
  const retries = span.attributes['concord.retries'];
  const title = `${span.name} · ${shortName(span.service)} · ${ms(span.durationMs)}${span.error ? ` · failed${span.statusMessage ? `: ${span.statusMessage}` : ''}` : ''}`;
  return html`<div
      class="span-row ${span.error ? 'failed' : ''}"
      data-testid="trace-span"
      data-service=${shortName(span.service)}
      data-name=${span.name}
      data-error=${span.error ? 'true' : 'false'}
    >
      <button class="span-name link" style=${`padding-left:${depth * 14}px`} onClick=${onToggle} title=${title}>
        <span class="chip" style=${`background:${colorOf(span.service, trace.services)}`}></span>
        ${span.name} ${system && html`<small class="muted"> ${system}</small>`}
        ${retries ? html`<small class="warn"> ${retries} retr${retries === 1 ? 'y' : 'ies'}</small>` : ''}
      </button>
      <div class="track">
        <div
          class="bar span-bar ${span.error ? 'FAILED' : ''}"
          style=${`left:${Math.min(left, 99.7)}%;width:${Math.min(width, 100 - Math.min(left, 99.7))}%;background:${span.error ? '' : colorOf(span.service, trace.services)}`}
          title=${title}
        ></div>
      </div>
      <span class="muted num">${ms(span.durationMs)}</span>
    </div>
    ${
      open &&
      html`<div class="span-detail" data-testid="span-detail">
        <table>
          <tr>
            <td class="muted">service</td>
            <td>${span.service}</td>
          </tr>
          <tr>
            <td class="muted">kind</td>
            <td>${span.kind}</td>
          </tr>
          <tr>
            <td class="muted">starts</td>
            <td>+${ms(span.startMs)}</td>
          </tr>
          ${
            span.statusMessage &&
            html`<tr>
              <td class="muted">error</td>
              <td class="error">${span.statusMessage}</td>
            </tr>`
          }
          ${Object.entries(span.attributes).map(
            ([key, value]) =>
              html`<tr>
                <td class="muted">${key}</td>
                <td><code>${String(value)}</code></td>
              </tr>`,
          )}
        </table>
      </div>`
    }`;
}

function summaryOf(trace) {
  const failed = trace.spans.filter((span) => span.error).length;
  const from = new Date(trace.startedAt).toLocaleString();
  return `${trace.spans.length} spans in ${trace.services.length} services over ${ms(trace.durationMs)}, from ${from}${trace.truncated ? ' (only the first spans are shown)' : ''}; ${failed === 0 ? 'none failed' : `${failed} failed`}.`;
}

/** The trace `traceId` as a timeline; `load(path)` fetches JSON with the user's token. */
export function TraceView({ traceId, path, load, onClose }) {
  const [state, setState] = useState({ trace: null, error: null });
  const [open, setOpen] = useState(null);
  const [attempt, setAttempt] = useState(0);
  useEffect(() => {
    let stopped = false;
    setState({ trace: null, error: null });
    load(`${path}/${traceId}`).then(
      (trace) => !stopped && setState({ trace, error: null }),
      (error) => !stopped && setState({ trace: null, error }),
    );
    return () => {
      stopped = true;
    };
  }, [traceId, attempt]);
  const { trace, error } = state;
  return html`<section class="card trace" data-testid="trace" data-trace-id=${traceId}>
    <h2>
      Trace <code>${traceId}</code>
      ${onClose && html`<button class="link" onClick=${onClose}>close</button>`}
    </h2>
    ${
      error &&
      html`<p class="error" data-testid="trace-problem">
        ${problemText(error)} <button class="link" onClick=${() => setAttempt(attempt + 1)}>try again</button>
      </p>`
    }
    ${!trace && !error && html`<p class="muted">Loading the trace…</p>`}
    ${
      trace &&
      html`<p class="muted" data-testid="trace-summary">${summaryOf(trace)}</p>
        <p class="legend">
          ${trace.services.map(
            (service) =>
              html`<span><span class="chip" style=${`background:${colorOf(service, trace.services)}`}></span>${shortName(service)}</span>`,
          )}
        </p>
        <div class="timeline spans">
          ${treeOrder(trace.spans).map(
            ({ span, depth }) =>
              html`<${SpanRow}
                key=${span.spanId}
                span=${span}
                depth=${depth}
                trace=${trace}
                open=${open === span.spanId}
                onToggle=${() => setOpen(open === span.spanId ? null : span.spanId)}
              />`,
          )}
        </div>`
    }
  </section>`;
}

/** A box to open any trace by its id (from a log line's traceId or a response's traceresponse header). */
export function TraceSearch({ onOpen }) {
  const [text, setText] = useState('');
  const [error, setError] = useState(null);
  const submit = (event) => {
    event.preventDefault();
    // A whole traceparent / traceresponse header, or the id alone.
    const value = text.trim().toLowerCase();
    const id = value.split('-').length === 4 ? value.split('-')[1] : value;
    if (!TRACE_ID.test(id)) return setError('A trace id is 32 hexadecimal digits (or paste a whole traceresponse header).');
    setError(null);
    onOpen(id);
  };
  return html`<form class="trace-search" onSubmit=${submit}>
    <input
      data-testid="trace-input"
      placeholder="trace id or traceresponse header"
      value=${text}
      onInput=${(event) => setText(event.currentTarget.value)}
      aria-label="Trace id"
    />
    <button type="submit" data-testid="trace-open">Open trace</button>
    ${error && html`<span class="error" data-testid="trace-input-error">${error}</span>`}
  </form>`;
}
