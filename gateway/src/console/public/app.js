// The operations console's page: Preact + htm as ES modules (the import map in the page names
// them), uPlot for the charts. Figures from /console/api/overview, workflows from /graphql, with
// the token kept in sessionStorage and sent as Authorization: Bearer on every call.
import { h, render } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import htm from 'htm';
import uPlot from 'uplot';
import { plainReason } from './plain-words.js';
import { TraceSearch, TraceView } from './trace.js';
import { finishSignIn, isSignInReturn, providerName, startSignIn } from './sign-in.js';

const html = htm.bind(h);
const config = JSON.parse(document.getElementById('console-config').textContent);
const TOKEN_KEY = 'concord.console.token';
const OVERVIEW_EVERY_MS = 5_000;
const WORKFLOWS_EVERY_MS = 5_000;
const COLORS = { crm: '#0a58ca', erp: '#8250df', support: '#1a7f37', processes: '#bc4c00' };

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function claimsOf(token) {
  try {
    const payload = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(payload + '='.repeat((4 - (payload.length % 4)) % 4)));
  } catch {
    return {};
  }
}

async function getJson(path, token) {
  const response = await fetch(path, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  const body = await response.json().catch(() => ({}));
  if (!response.ok)
    throw Object.assign(new HttpError(response.status, body?.error?.message ?? `HTTP ${response.status}`), { code: body?.error?.code });
  return body;
}

async function graphql(token, name, variables = {}) {
  const response = await fetch(config.graphqlPath, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query: config.operations[name], operationName: name, variables }),
  });
  const body = await response.json().catch(() => ({}));
  if (response.status === 401) throw new HttpError(401, body?.errors?.[0]?.message ?? 'sign in again');
  if (body.errors?.length && !body.data) throw new HttpError(response.status, body.errors.map((error) => error.message).join('; '));
  return body;
}

/** Calls `load` now and every `ms`, keeping its last result and error. */
function usePoll(load, ms, deps) {
  const [state, setState] = useState({ data: null, error: null, at: null });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let stopped = false;
    const run = () =>
      load().then(
        (data) => !stopped && setState({ data, error: null, at: new Date() }),
        (error) => !stopped && setState((previous) => ({ ...previous, error })),
      );
    run();
    const timer = setInterval(run, ms);
    return () => {
      stopped = true;
      clearInterval(timer);
    };
  }, [...deps, tick]);
  return [state, () => setTick((n) => n + 1)];
}

const percent = (ratio) => (ratio === null || ratio === undefined ? '–' : `${(ratio * 100).toFixed(1)} %`);
const number = (value, digits = 1) => (value === null || value === undefined ? '–' : value.toFixed(digits));
const time = (iso) => (iso ? new Date(iso).toLocaleTimeString() : '–');

function SignIn({ onToken, problem }) {
  const [role, setRole] = useState(config.roles[0]);
  const [pasted, setPasted] = useState('');
  const [error, setError] = useState(problem ?? null);
  const providerSignIn = async () => {
    setError(null);
    try {
      await startSignIn(config.oidc);
    } catch (e) {
      setError(e.message);
    }
  };
  const devSignIn = async () => {
    try {
      const { token } = await getJson(`${config.devTokenPath}?role=${encodeURIComponent(role)}`);
      onToken(token);
    } catch (e) {
      setError(e.message);
    }
  };
  const paste = () => {
    const token = pasted.trim().replace(/^Bearer\s+/i, '');
    if (!/^[A-Za-z0-9._~+/=-]+$/.test(token)) return setError('That is not a bearer token.');
    onToken(token);
  };
  return html`<main class="signin">
    <section class="card">
      <h2>Sign in to the operations console</h2>
      <p class="muted">For ${config.roles.join(', ')}. Only integration_operator may retry, skip or compensate workflows.</p>
      ${
        config.oidc &&
        html`<div data-testid="idp-signin">
          <div class="actions">
            <button class="primary" data-testid="idp-signin-button" onClick=${providerSignIn}>
              Sign in with ${providerName(config.oidc)}
            </button>
          </div>
        </div>`
      }
      ${
        config.devSignIn &&
        html`<div data-testid="dev-signin">
          <h3>Dev sign-in <small class="muted">(development issuer only)</small></h3>
          <div class="actions">
            <select data-testid="dev-role" value=${role} onChange=${(e) => setRole(e.currentTarget.value)}>
              ${config.roles.map((r) => html`<option value=${r}>${r}</option>`)}
            </select>
            <button class="primary" data-testid="dev-signin-button" onClick=${devSignIn}>Sign in as ${role}</button>
          </div>
        </div>`
      }
      <h3>Bearer token</h3>
      <p class="muted">Paste a token from the identity provider (the same token the API takes).</p>
      <textarea data-testid="token-input" value=${pasted} onInput=${(e) => setPasted(e.currentTarget.value)}></textarea>
      <div class="actions"><button data-testid="token-button" onClick=${paste}>Use this token</button></div>
      ${error && html`<p class="error" data-testid="signin-error">${error}</p>`}
    </section>
  </main>`;
}

function Chart({ title, series, field, systems, format }) {
  const box = useRef(null);
  const plot = useRef(null);
  useEffect(() => {
    if (!box.current || !series) return;
    const data = [series.t.map((t) => t / 1000), ...systems.map((name) => series.systems[name]?.[field] ?? series.t.map(() => null))];
    if (!plot.current) {
      plot.current = new uPlot(
        {
          width: Math.max(300, box.current.clientWidth),
          height: 160,
          series: [{}, ...systems.map((name) => ({ label: name, stroke: COLORS[name] ?? '#555', width: 2, spanGaps: true }))],
          // At least the last minute, whatever few points there are yet.
          scales: {
            x: {
              time: true,
              range: (u) => {
                const xs = u.data[0];
                const max = xs.length ? xs[xs.length - 1] : Date.now() / 1000;
                return [Math.min(xs.length ? xs[0] : max, max - 60), max];
              },
            },
          },
          axes: [{}, { values: (_u, ticks) => ticks.map(format) }],
          legend: { show: true, live: false },
        },
        data,
        box.current,
      );
    } else plot.current.setData(data);
  }, [series]);
  useEffect(() => () => plot.current?.destroy(), []);
  return html`<div class="chart">
    <h3>${title}</h3>
    <div ref=${box}></div>
  </div>`;
}

function Overview({ token, onUnauthorized }) {
  const [state] = usePoll(() => getJson(config.overviewPath, token), OVERVIEW_EVERY_MS, [token]);
  useEffect(() => {
    if (state.error?.status === 401) onUnauthorized(state.error.message);
  }, [state.error]);
  const overview = state.data;
  const names = overview?.systems.map((system) => system.name) ?? [];
  return html`<section class="card" data-testid="overview">
    <h2>
      What is flowing now <small class="muted">${overview ? `last ${overview.windowSeconds} s, as of ${time(overview.at)}` : ''}</small>
    </h2>
    ${state.error && html`<p class="error">${state.error.message}</p>`} ${!overview && !state.error && html`<p class="muted">Loading…</p>`}
    ${
      overview &&
      html`<div class="systems">
          ${overview.systems.map(
            (system) =>
              html`<div class="system" data-testid=${`system-${system.name}`}>
                <h3>
                  ${system.title}
                  <span class="badge ${system.health.status}" title=${system.health.detail ?? ''}>${system.health.status}</span>
                </h3>
                <dl>
                  <dt>Requests/s</dt>
                  <dd data-testid="rps">${number(system.requestsPerSecond, 2)}</dd>
                  <dt>p95 latency</dt>
                  <dd data-testid="p95">${system.p95Ms === null ? '–' : `${number(system.p95Ms)} ms`}</dd>
                  <dt>Errors</dt>
                  <dd data-testid="errors">${percent(system.errorRatio)}</dd>
                  <dt>API budget left</dt>
                  <dd data-testid="budget">
                    ${
                      system.budget?.remaining !== null && system.budget?.remaining !== undefined
                        ? `${system.budget.remaining}${system.budget.limit ? ` of ${system.budget.limit}` : ''}`
                        : system.budget?.limit && system.budget?.used !== null
                          ? `${system.budget.limit - system.budget.used} of ${system.budget.limit}`
                          : 'not reported'
                    }
                  </dd>
                </dl>
              </div>`,
          )}
        </div>
        <div class="charts">
          <${Chart} title="Requests per second" series=${overview.series} field="rps" systems=${names} format=${(v) => v?.toFixed(1)} />
          <${Chart} title="p95 latency (ms)" series=${overview.series} field="p95Ms" systems=${names} format=${(v) => v?.toFixed(0)} />
          <${Chart}
            title="Error ratio (%)"
            series=${overview.series}
            field="errorRatio"
            systems=${names}
            format=${(v) => (v * 100)?.toFixed(0)}
          />
        </div>`
    }
  </section>`;
}

const STATES = ['running', 'waiting', 'done', 'failed', 'compensated'];

function Counts({ token, onPick }) {
  const [state] = usePoll(() => graphql(token, 'WorkflowCounts'), WORKFLOWS_EVERY_MS, [token]);
  const data = state.data?.data;
  const types = new Map();
  if (data)
    for (const s of STATES)
      for (const node of data[s]?.nodes ?? []) {
        const row = types.get(node.type) ?? {};
        row[s] = (row[s] ?? 0) + 1;
        types.set(node.type, row);
      }
  const more = (s) => (data?.[s]?.pageInfo?.hasNextPage ? '+' : '');
  return html`<section class="card" data-testid="counts">
    <h2>Workflows by type and state <small class="muted">(the newest 100 of each state)</small></h2>
    ${state.error && html`<p class="error">${state.error.message}</p>`}
    ${state.data?.errors && html`<p class="error">${state.data.errors.map((e) => e.message).join('; ')}</p>`}
    <table>
      <thead>
        <tr>
          <th>Type</th>
          ${STATES.map((s) => html`<th class="num">${s.toUpperCase()}</th>`)}
        </tr>
      </thead>
      <tbody>
        ${[...types].map(
          ([type, row]) =>
            html`<tr>
              <td>${type}</td>
              ${STATES.map(
                (s) =>
                  html`<td class="num">
                    ${row[s] ? html`<button class="link" onClick=${() => onPick({ type, state: s.toUpperCase() })}>${row[s]}${more(s)}</button>` : '0'}
                  </td>`,
              )}
            </tr>`,
        )}
        ${
          data &&
          types.size === 0 &&
          html`<tr>
            <td colspan="6" class="muted">No workflows yet.</td>
          </tr>`
        }
      </tbody>
    </table>
  </section>`;
}

function Timeline({ steps, createdAt, updatedAt }) {
  const times = steps
    .flatMap((step) => [step.startedAt, step.finishedAt])
    .filter(Boolean)
    .map((t) => Date.parse(t));
  const start = Math.min(Date.parse(createdAt), ...times);
  const end = Math.max(Date.parse(updatedAt), ...times, start + 1);
  const span = end - start;
  return html`<div class="timeline" data-testid="timeline">
    ${steps.map((step) => {
      const from = step.startedAt ? Date.parse(step.startedAt) : null;
      const to = step.finishedAt ? Date.parse(step.finishedAt) : step.state === 'RUNNING' ? Date.now() : from;
      const left = from === null ? 0 : ((from - start) / span) * 100;
      const width = from === null ? 0 : Math.max(0.5, (((to ?? from) - from) / span) * 100);
      return html`<div class="row" data-testid="timeline-step">
        <span title=${step.lastError ?? ''}>${step.phase === 'COMPENSATING' ? '↩ ' : ''}${step.name}</span>
        <div class="track">
          ${
            from !== null &&
            html`<div
              class="bar ${step.state}"
              style=${`left:${left}%;width:${Math.min(width, 100 - left)}%`}
              title=${`${step.state}, ${step.attempts} attempt(s)`}
            ></div>`
          }
        </div>
        <span class="muted">${step.state}${to && from !== null ? ` ${Math.round(to - from)} ms` : ''}</span>
      </div>`;
    })}
  </div>`;
}

function WorkflowDetail({ token, id }) {
  const [state] = usePoll(() => graphql(token, 'WorkflowTimeline', { id }), WORKFLOWS_EVERY_MS, [token, id]);
  const [showTrace, setShowTrace] = useState(false);
  const workflow = state.data?.data?.workflow;
  if (state.error) return html`<p class="error">${state.error.message}</p>`;
  if (!workflow) return html`<p class="muted">${state.data ? 'No such workflow.' : 'Loading…'}</p>`;
  return html`<div data-testid="workflow-detail">
    <p>
      <b>${workflow.type}</b> <code>${workflow.id}</code>
      <span class="badge ${workflow.state}" data-testid="detail-state">${workflow.state}</span>
      <span class="muted"> correlation id ${workflow.correlationId}</span>
      ${
        config.tracesPath &&
        workflow.traceId &&
        html` <button class="link" data-testid="show-trace" onClick=${() => setShowTrace(!showTrace)}>
          ${showTrace ? 'hide trace' : 'trace'}
        </button>`
      }
    </p>
    <${Timeline} steps=${workflow.steps} createdAt=${workflow.createdAt} updatedAt=${workflow.updatedAt} />
    <details>
      <summary>History (${workflow.history.length})</summary>
      <table>
        ${workflow.history.map(
          (entry) =>
            html`<tr>
              <td class="muted">${time(entry.at)}</td>
              <td>${entry.event}</td>
              <td>${entry.detail ?? ''}</td>
            </tr>`,
        )}
      </table>
    </details>
    ${
      showTrace &&
      html`<${TraceView}
        traceId=${workflow.traceId}
        path=${config.tracesPath}
        load=${(path) => getJson(path, token)}
        onClose=${() => setShowTrace(false)}
      />`
    }
  </div>`;
}

const ACTIONS = [
  { action: 'RETRY', label: 'Retry', hint: 'Run the parked step again (once its cause is fixed).' },
  { action: 'SKIP', label: 'Skip', hint: 'Count the step as done by hand and go on.' },
  { action: 'COMPENSATE', label: 'Compensate', hint: 'Undo what was done so far, where the business allows it.' },
];

function ParkedItem({ token, workflow, mayAct, onDone }) {
  const [choosing, setChoosing] = useState(null);
  const [reason, setReason] = useState('');
  const [busy, setBusy] = useState(false);
  const [message, setMessage] = useState(null);
  const [open, setOpen] = useState(false);
  const plain = plainReason(workflow);
  const submit = async () => {
    if (!reason.trim()) return setMessage({ error: true, text: 'Say why: the reason is kept in the workflow’s history.' });
    setBusy(true);
    try {
      const body = await graphql(token, 'ResolveWorkflow', { input: { id: workflow.id, action: choosing.action, reason: reason.trim() } });
      const errors = [...(body.errors ?? []), ...(body.data?.resolveWorkflow?.errors ?? [])];
      if (errors.length) setMessage({ error: true, text: errors.map((e) => e.message).join('; ') });
      else {
        setMessage({ error: false, text: `${choosing.label}: recorded; the workflow is ${body.data.resolveWorkflow.workflow.state}.` });
        setChoosing(null);
        setReason('');
        onDone();
      }
    } catch (e) {
      setMessage({ error: true, text: e.message });
    } finally {
      setBusy(false);
    }
  };
  return html`<div class="parked" data-testid="parked" data-id=${workflow.id}>
    <div>
      <b>${workflow.type}</b> <span class="muted">at step ${workflow.currentStep ?? '–'}, parked ${time(workflow.updatedAt)}</span>
      <button class="link" onClick=${() => setOpen(!open)}>${open ? 'hide steps' : 'steps'}</button>
    </div>
    <p class="reason" data-testid="plain-reason">${plain.text}</p>
    <p class="raw" title="The raw reason">${workflow.parkedReason}</p>
    ${open && html`<${Timeline} steps=${workflow.steps} createdAt=${workflow.createdAt} updatedAt=${workflow.updatedAt} />`}
    ${
      mayAct &&
      html`<div class="actions">
        ${ACTIONS.map(
          (a) =>
            html`<button
              data-testid=${`action-${a.action}`}
              title=${a.hint}
              disabled=${busy}
              onClick=${() => {
                setChoosing(a);
                setMessage(null);
              }}
            >
              ${a.label}
            </button>`,
        )}
      </div>`
    }
    ${
      choosing &&
      html`<div class="actions">
        <label
          >${choosing.label} because
          <input
            class="reason"
            type="text"
            data-testid="reason"
            maxlength="500"
            value=${reason}
            onInput=${(e) => setReason(e.currentTarget.value)}
            placeholder="the reason, kept in the history"
        /></label>
        <button class="primary" data-testid="confirm" disabled=${busy} onClick=${submit}>Confirm ${choosing.label.toLowerCase()}</button>
        <button onClick=${() => setChoosing(null)}>Cancel</button>
      </div>`
    }
    ${message && html`<p class=${message.error ? 'error' : 'notice'} data-testid="action-message">${message.text}</p>`}
  </div>`;
}

function ExceptionQueue({ token, mayAct, onResolved }) {
  const [state, reload] = usePoll(() => graphql(token, 'ParkedWorkflows', { first: 10 }), WORKFLOWS_EVERY_MS, [token]);
  const nodes = state.data?.data?.workflows?.nodes ?? [];
  return html`<section class="card" data-testid="queue">
    <h2>
      Exception queue
      <small class="muted"
        >${state.data ? `${nodes.length}${state.data.data?.workflows?.pageInfo?.hasNextPage ? '+' : ''} parked` : ''}</small
      >
    </h2>
    ${!mayAct && html`<p class="muted">Read-only: only integration_operator may retry, skip or compensate.</p>`}
    ${state.error && html`<p class="error">${state.error.message}</p>`}
    ${state.data?.errors && html`<p class="error">${state.data.errors.map((e) => e.message).join('; ')}</p>`}
    ${state.data && nodes.length === 0 && html`<p class="muted" data-testid="queue-empty">Nothing is parked.</p>`}
    ${nodes.map(
      (workflow) =>
        html`<${ParkedItem}
          key=${workflow.id}
          token=${token}
          workflow=${workflow}
          mayAct=${mayAct}
          onDone=${() => {
            reload();
            onResolved(workflow.id);
          }}
        />`,
    )}
  </section>`;
}

function Workflows({ token, filter, setFilter, selected, setSelected }) {
  const [state] = usePoll(
    () => graphql(token, 'RecentWorkflows', { type: filter.type ?? null, state: filter.state ?? null, first: 20 }),
    WORKFLOWS_EVERY_MS,
    [token, filter.type, filter.state],
  );
  const nodes = state.data?.data?.workflows?.nodes ?? [];
  return html`<section class="card" data-testid="workflows">
    <h2>
      Workflows ${filter.type ? `of type ${filter.type}` : ''} ${filter.state ? `in state ${filter.state}` : ''}
      ${(filter.type || filter.state) && html`<button class="link" onClick=${() => setFilter({})}>show all</button>`}
    </h2>
    ${state.error && html`<p class="error">${state.error.message}</p>`}
    <table>
      <thead>
        <tr>
          <th>Workflow</th>
          <th>Type</th>
          <th>State</th>
          <th>Step</th>
          <th class="num">Attempts</th>
          <th>Updated</th>
        </tr>
      </thead>
      <tbody>
        ${nodes.map(
          (w) =>
            html`<tr data-testid="workflow-row" data-id=${w.id}>
              <td><button class="link" onClick=${() => setSelected(w.id)}>${w.id}</button></td>
              <td>${w.type}</td>
              <td><span class="badge ${w.state}">${w.state}</span></td>
              <td>${w.currentStep ?? '–'}</td>
              <td class="num">${w.attempts}</td>
              <td>${time(w.updatedAt)}</td>
            </tr>`,
        )}
      </tbody>
    </table>
    ${selected && html`<${WorkflowDetail} token=${token} id=${selected} />`}
  </section>`;
}

function App() {
  const [token, setToken] = useState(() => sessionStorage.getItem(TOKEN_KEY));
  const [problem, setProblem] = useState(null);
  const [filter, setFilter] = useState({});
  const [selected, setSelected] = useState(null);
  const [openTrace, setOpenTrace] = useState(null);
  // Back from the identity provider (its redirect URI): the code is exchanged before anything is shown.
  const [returning, setReturning] = useState(() => isSignInReturn(config.oidc));
  const signIn = useCallback((value) => {
    sessionStorage.setItem(TOKEN_KEY, value);
    setProblem(null);
    setToken(value);
  }, []);
  useEffect(() => {
    if (!returning) return;
    finishSignIn(config.oidc, { checkPath: config.overviewPath, roles: config.roles }).then(
      (value) => {
        signIn(value);
        setReturning(false);
      },
      (e) => {
        setProblem(e.message);
        setReturning(false);
      },
    );
  }, []);
  const signOut = useCallback((why) => {
    sessionStorage.removeItem(TOKEN_KEY);
    setProblem(typeof why === 'string' ? `Signed out: ${why}` : null);
    setToken(null);
  }, []);
  if (returning) return html`<main class="signin"><p class="loading" data-testid="signing-in">Signing in…</p></main>`;
  if (!token) return html`<${SignIn} onToken=${signIn} problem=${problem} />`;
  const claims = claimsOf(token);
  // The roles claim the gateway reads (AUTH_ROLES_CLAIM); the gateway, not this, decides what the token may do.
  const claimed = claims[config.rolesClaim ?? 'roles'];
  const roles = Array.isArray(claimed)
    ? claimed
    : String(claimed ?? '')
        .split(/\s+/)
        .filter(Boolean);
  const mayAct = roles.includes('integration_operator');
  // The graph lets operators and support leads read workflows (processes/src/policy.ts); finance sees the figures.
  const seesWorkflows = mayAct || roles.includes('support_lead');
  return html`<div>
    <header class="top">
      <h1>Concord operations console</h1>
      <span class="who" data-testid="who">${claims.sub ?? 'signed in'} · ${roles.join(', ')}</span>
      ${config.tracesPath && html`<${TraceSearch} onOpen=${setOpenTrace} />`}
      <button onClick=${() => signOut()}>Sign out</button>
    </header>
    <main>
      ${
        openTrace &&
        html`<${TraceView}
          key=${openTrace}
          traceId=${openTrace}
          path=${config.tracesPath}
          load=${(path) => getJson(path, token)}
          onClose=${() => setOpenTrace(null)}
        />`
      }
      <${Overview} token=${token} onUnauthorized=${signOut} />
      ${
        seesWorkflows
          ? html`<${ExceptionQueue} token=${token} mayAct=${mayAct} onResolved=${(id) => setSelected(id)} />
              <${Counts} token=${token} onPick=${setFilter} />
              <${Workflows} token=${token} filter=${filter} setFilter=${setFilter} selected=${selected} setSelected=${setSelected} />`
          : html`<section class="card" data-testid="no-workflows">
              <p class="muted">Workflows are shown to integration_operator and support_lead.</p>
            </section>`
      }
    </main>
  </div>`;
}

const root = document.getElementById('app');
// The loading note is not Preact's: cleared, not diffed against.
root.textContent = '';
render(html`<${App} />`, root);
