import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signDevToken } from '../../platform/dev-token.ts';
import { ensureDevKeys } from '../../platform/keys.ts';
import { openDatabase } from '../../platform/sqlite.ts';
import { npmStart, type NpmStarted } from '../helpers/npm-start.ts';
import { startOtlpReceiver, type ReceivedSpan } from '../helpers/otlp.ts';
import { operation, postGraphQL, returnableCase } from '../helpers/stack.ts';
import { blockNonLocal, launchBrowser, screenshotPath } from '../helpers/browser.ts';
import { RETURN_WORKFLOW } from '../../processes/src/workflows/returns.ts';

const SERVER = 2;
const CLIENT = 3;
const PRODUCER = 4;

/**
 * One return authorization, traced from the agent's click to the CRM Task: `npm start` with the
 * standard OTEL_* variables pointing at an OTLP/HTTP collector, a client sending its own W3C
 * `traceparent`, and the spans the five services export asserted as one tree.
 */
describe('tracing across the services', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'concord-trace-'));
  let otlp: Awaited<ReturnType<typeof startOtlpReceiver>>;
  let started: NpmStarted;
  /** The return authorization's trace, as the first test saw it. */
  const seen = { returnTrace: '', returnSpans: 0, requestTraceResponse: '' };

  beforeAll(async () => {
    otlp = await startOtlpReceiver();
    started = await npmStart(dataDir, {
      OTEL_EXPORTER_OTLP_ENDPOINT: otlp.endpoint,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_BSP_SCHEDULE_DELAY: '100',
      LOG_LEVEL: 'info',
      // The console reads traces back from the same store.
      CONSOLE_TRACES_URL: otlp.queryUrl,
    });
  }, 120_000);

  afterAll(async () => {
    started?.child.kill('SIGINT');
    await started?.exited;
    await otlp?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  /** An open case about a unit under warranty today. */
  function caseToReturn(): { caseId: string; serialNumber: string } {
    const desk = openDatabase(join(dataDir, 'support.sqlite'), { readonly: true });
    const erp = openDatabase(join(dataDir, 'erp.sqlite'), { readonly: true });
    try {
      return returnableCase({ support: desk, erp }, { asOf: new Date().toISOString().slice(0, 10) });
    } finally {
      desk.close();
      erp.close();
    }
  }

  it('shows one return authorization as one tree, from the click to the CRM Task, in every service', async () => {
    expect(started.output).toContain('Concord is running');
    const keys = await ensureDevKeys(dataDir);
    const token = await signDevToken(keys.issuer.privateKey, { roles: ['support_agent'], subject: 'alex@example.com', ttlSeconds: 120 });
    const { caseId, serialNumber } = caseToReturn();
    const note = 'Customer says the unit rattles';
    // The agent console's own span: the trace is the client's.
    const traceId = randomBytes(16).toString('hex');
    const clickSpanId = randomBytes(8).toString('hex');
    const { body, headers } = await postGraphQL<{ createReturnAuthorization: any }>(
      `http://127.0.0.1:${started.ports.GATEWAY_PORT}/graphql`,
      operation('agent-console', 'CreateReturnAuthorization'),
      {
        input: {
          caseId,
          resolution: 'REPLACE',
          idempotencyKey: `trace-${traceId}`,
          note,
          lines: [{ serialNumber, quantity: 1, reason: 'DEFECTIVE' }],
        },
      },
      { authorization: `Bearer ${token}`, traceparent: `00-${traceId}-${clickSpanId}-01` },
    );
    expect(body.errors).toBeUndefined();
    expect(body.data!.createReturnAuthorization.errors).toEqual([]);
    const rma = body.data!.createReturnAuthorization.returnAuthorization.number as string;

    const byId = (spans: ReceivedSpan[]) => new Map(spans.map((span) => [span.spanId, span]));
    const ancestry = (spans: ReceivedSpan[], span: ReceivedSpan): ReceivedSpan[] => {
      const index = byId(spans);
      const chain: ReceivedSpan[] = [];
      for (let at = index.get(span.parentSpanId); at; at = index.get(at.parentSpanId)) chain.push(at);
      return chain;
    };
    // The CRM's write of the Task, and the events the steps recorded, published from the outbox.
    const isTaskWrite = (span: ReceivedSpan) => span.service === 'crm' && span.name === 'crm logActivity';
    const under = (spans: ReceivedSpan[], name: string) =>
      spans.filter((span) => ancestry(spans, span).some((above) => above.name === name));
    // Each service exports on its own schedule: wait until every part asserted below has come in.
    const spans = await otlp.trace(
      traceId,
      (found) =>
        found.some(isTaskWrite) &&
        found.some((span) => span.kind === PRODUCER && span.name === 'send concord.return.authorized') &&
        under(found, 'step crm-activity').some(isTaskWrite) &&
        under(found, 'step erp-return-order').some((span) => span.service === 'erp') &&
        under(found, 'step desk-case-note').some((span) => span.service === 'support') &&
        ancestry(found, found.find(isTaskWrite)!).length >= 18,
      30_000,
    );
    const names = spans.map((span) => `${span.service}: ${span.name}`);

    // Every service took part, and every span but the gateway's first hangs off a span of the trace.
    expect(new Set(spans.map((span) => span.service))).toEqual(new Set(['gateway', 'processes', 'support', 'erp', 'crm']));
    const index = byId(spans);
    const roots = spans.filter((span) => !index.has(span.parentSpanId));
    expect(
      roots.map((span) => `${span.service}: ${span.name} <- ${span.parentSpanId}`),
      names.join('\n'),
    ).toEqual([`gateway: POST /graphql <- ${clickSpanId}`]);
    const root = roots[0]!;
    expect(root.kind).toBe(SERVER);

    // The agent's operation, named as OpenTelemetry's GraphQL conventions say.
    const operationSpan = spans.find((span) => span.service === 'gateway' && span.parentSpanId === root.spanId)!;
    expect(operationSpan.name).toBe('mutation CreateReturnAuthorization');
    expect(operationSpan.attributes).toMatchObject({
      'graphql.operation.type': 'mutation',
      'graphql.operation.name': 'CreateReturnAuthorization',
    });

    // The CRM Task: its write, under the CRM step, under the process service's mutation, under the agent's click.
    const task = spans.find(isTaskWrite)!;
    expect(task.kind).toBe(CLIENT);
    expect(task.attributes).toMatchObject({ 'concord.system': 'crm', 'concord.operation': 'logActivity' });
    const chain = ancestry(spans, task).map((span) => `${span.service}: ${span.name}`);
    // A subgraph's operation has the name the query planner gave it; gateway.* are Apollo Gateway's own spans.
    expect(chain).toEqual([
      'crm: mutation LogCustomerActivity__crm__0',
      'crm: POST /graphql',
      'gateway: subgraph crm',
      'gateway: gateway.fetch',
      'gateway: gateway.execute',
      'gateway: gateway.request',
      'gateway: mutation LogCustomerActivity',
      'gateway: POST /graphql',
      'processes: gateway LogCustomerActivity',
      'processes: step crm-activity',
      'processes: mutation CreateReturnAuthorization__processes__0',
      'processes: POST /graphql',
      'gateway: subgraph processes',
      'gateway: gateway.fetch',
      'gateway: gateway.execute',
      'gateway: gateway.request',
      'gateway: mutation CreateReturnAuthorization',
      'gateway: POST /graphql',
    ]);

    // The other systems' work is in the same tree: the desk's case read and note, the ERP's return order.
    expect(under(spans, 'step erp-return-order').map((span) => span.service)).toContain('erp');
    expect(under(spans, 'step desk-case-note').map((span) => span.service)).toContain('support');
    // Each step's events go out through the outbox as producer spans of the step.
    const published = spans.filter((span) => span.kind === PRODUCER);
    expect(published.map((span) => span.name)).toContain('send concord.return.authorized');
    for (const span of published) expect(span.attributes['messaging.destination.name']).toBe(span.name.replace(/^send /, ''));

    // No token, no input value in any attribute: the spans carry names, codes and ids only.
    const values = spans.flatMap((span) => Object.values(span.attributes).map(String));
    for (const secret of [token, token.split('.')[1]!, note, serialNumber])
      expect(values.some((value) => value.includes(secret))).toBe(false);

    // The trace id is in the services' log lines, next to the correlation id.
    const logged = started.output
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((line) => line.traceId === traceId);
    expect(new Set(logged.map((line) => line.service))).toEqual(new Set(['gateway', 'processes', 'support', 'erp', 'crm']));
    expect(logged.filter((line) => line.correlationId === headers.get('x-correlation-id')).length).toBeGreaterThan(0);
    expect(rma).toMatch(/\S/);
    // The caller is told the trace its request is in.
    expect(headers.get('traceresponse')).toMatch(new RegExp(`^00-${traceId}-[0-9a-f]{16}-01$`));
    seen.returnTrace = traceId;
    seen.returnSpans = spans.length;
  }, 90_000);

  it("records nothing of a request whose caller's trace is not sampled, in any service", async () => {
    const keys = await ensureDevKeys(dataDir);
    const token = await signDevToken(keys.issuer.privateKey, { roles: ['support_agent'], subject: 'alex@example.com', ttlSeconds: 120 });
    const unsampled = randomBytes(16).toString('hex');
    const sampled = randomBytes(16).toString('hex');
    const ask = (traceId: string, flags: string) =>
      postGraphQL<{ cases: { nodes: { id: string }[] } }>(
        `http://127.0.0.1:${started.ports.GATEWAY_PORT}/graphql`,
        operation('agent-console', 'CaseQueue'),
        { first: 3 },
        { authorization: `Bearer ${token}`, traceparent: `00-${traceId}-${randomBytes(8).toString('hex')}-${flags}` },
      );
    const [quiet, traced] = await Promise.all([ask(unsampled, '00'), ask(sampled, '01')]);
    expect(quiet.body.errors).toBeUndefined();
    expect(traced.body.errors).toBeUndefined();
    // The sampled one arrives (so the exporters ran); the other never does.
    const spans = await otlp.trace(sampled, (found) => found.some((span) => span.service !== 'gateway'), 20_000);
    expect(spans.length).toBeGreaterThan(1);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(otlp.spans.filter((span) => span.traceId === unsampled)).toEqual([]);
    // Only a recorded trace is named back to the caller.
    expect(quiet.headers.get('traceresponse')).toBeNull();
    expect(traced.headers.get('traceresponse')).toMatch(new RegExp(`^00-${sampled}-[0-9a-f]{16}-01$`));
    seen.requestTraceResponse = traced.headers.get('traceresponse')!;
  }, 60_000);

  it("draws the return's trace in the operations console, and any request's from its traceresponse", async () => {
    expect(seen.returnTrace, 'the first test traced a return').not.toBe('');
    const origin = `http://127.0.0.1:${started.ports.GATEWAY_PORT}`;
    const browser = await launchBrowser({ viewport: { width: 1400, height: 1000 } });
    const blocked = await blockNonLocal(browser);
    try {
      const page = await browser.newPage();
      await page.goto(`${origin}/console`);
      await page.getByTestId('dev-role').selectOption('integration_operator');
      await page.getByTestId('dev-signin-button').click();

      // The return, from the list of workflows: the trace it was started in is the agent's.
      const row = page.locator('[data-testid="workflow-row"]', { hasText: RETURN_WORKFLOW }).first();
      await expect.poll(() => row.count(), { timeout: 15_000 }).toBe(1);
      const workflowId = (await row.getAttribute('data-id'))!;
      const keys = await ensureDevKeys(dataDir);
      const operator = await signDevToken(keys.issuer.privateKey, {
        roles: ['integration_operator'],
        subject: 'ops@example.com',
        ttlSeconds: 120,
      });
      const { body } = await postGraphQL<{ workflow: { traceId: string | null } }>(
        `${origin}/graphql`,
        operation('ops-console', 'WorkflowTimeline'),
        { id: workflowId },
        { authorization: `Bearer ${operator}` },
      );
      expect(body.data!.workflow.traceId).toBe(seen.returnTrace);

      await row.getByRole('button').click();
      const detail = page.getByTestId('workflow-detail');
      await detail.getByTestId('show-trace').click();
      const trace = detail.getByTestId('trace');
      expect(await trace.getAttribute('data-trace-id')).toBe(seen.returnTrace);
      const spans = trace.getByTestId('trace-span');
      await expect.poll(() => spans.count(), { timeout: 15_000 }).toBeGreaterThanOrEqual(seen.returnSpans);
      // Every service's spans, in the order they started, each nested under its parent.
      const rows = await spans.evaluateAll((elements) =>
        elements.map((element) => ({
          service: element.getAttribute('data-service')!,
          name: element.getAttribute('data-name')!,
          depth: parseFloat((element.querySelector('.span-name') as HTMLElement).style.paddingLeft) || 0,
        })),
      );
      expect(new Set(rows.map((entry) => entry.service))).toEqual(new Set(['gateway', 'processes', 'support', 'erp', 'crm']));
      expect(rows[0]).toMatchObject({ service: 'gateway', name: 'POST /graphql', depth: 0 });
      const step = rows.findIndex((entry) => entry.name === 'step crm-activity');
      const task = rows.findIndex((entry) => entry.name === 'crm logActivity');
      expect(step).toBeGreaterThan(0);
      expect(task).toBeGreaterThan(step);
      expect(rows[task]!.depth).toBeGreaterThan(rows[step]!.depth);
      expect(await trace.getByTestId('trace-summary').textContent()).toMatch(/spans in 5 services/);
      // A span's detail: its system and operation, as the connector recorded them.
      await trace.locator('[data-testid="trace-span"][data-name="crm logActivity"] .span-name').click();
      const spanDetail = trace.getByTestId('span-detail');
      expect(await spanDetail.textContent()).toContain('logActivity');
      await page.screenshot({ path: screenshotPath('console-trace.png'), fullPage: true });

      // Any request's trace, from the traceresponse header its caller got.
      await page.getByTestId('trace-input').fill('not a trace id');
      await page.getByTestId('trace-open').click();
      expect(await page.getByTestId('trace-input-error').textContent()).toMatch(/32 hexadecimal digits/);
      await page.getByTestId('trace-input').fill(seen.requestTraceResponse);
      await page.getByTestId('trace-open').click();
      const requestTrace = page.locator(`[data-testid="trace"][data-trace-id="${seen.requestTraceResponse.split('-')[1]}"]`);
      await expect.poll(() => requestTrace.getByTestId('trace-span').count(), { timeout: 15_000 }).toBeGreaterThan(3);
      expect(await requestTrace.locator('[data-testid="trace-span"][data-service="support"]').count()).toBeGreaterThan(0);
      // A trace the store has no span of is said so, in plain words.
      await page.getByTestId('trace-input').fill(randomBytes(16).toString('hex'));
      await page.getByTestId('trace-open').click();
      await expect.poll(() => page.getByTestId('trace-problem').textContent(), { timeout: 10_000 }).toMatch(/no spans of this trace/);
      expect(blocked).toEqual([]);
    } finally {
      await browser.close();
    }
  }, 90_000);
});
