import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { loadGatewayConfig } from '../../gateway/src/config.ts';
import { RETURN_WORKFLOW } from '../../processes/src/workflows/returns.ts';
import { EMBEDDED_FIELD_IDS } from '../../subgraphs/support/src/connectors/embedded/tables.ts';
import type { RunningService } from '../../platform/http-server.ts';
import { startPrometheus, type Prometheus } from '../helpers/prometheus.ts';
import { operation, returnableCase, seededDatabases, startStack, type Stack } from '../helpers/stack.ts';
import { locate } from '../setup/servers.ts';
import { startSalesforceServer, type SalesforceServer } from '../vendors/salesforce/server.ts';
import { loadZendeskData, startZendeskServer, type ZendeskServer } from '../vendors/zendesk/server.ts';

/**
 * The operator's side of Concord's metrics: the alerting rules, their unit tests and the example
 * configuration pass promtool; and a real Prometheus scraping the services of a running stack
 * holds every metric the alerts and the Grafana dashboard use.
 */

const root = new URL('../../', import.meta.url).pathname;
const ALERTS = join(root, 'ops/prometheus/alerts.yml');
const ALERT_TESTS = join(root, 'ops/prometheus/alerts.test.yml');
const EXAMPLE_CONFIG = join(root, 'ops/prometheus/prometheus.example.yml');
const DASHBOARD = join(root, 'ops/grafana/concord.json');
const DOCS = join(root, 'docs/observability.md');
const METRICS_TOKEN = 'prometheus-test-metrics-token';

interface AlertRule {
  alert: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface RuleTest {
  name: string;
  alert_rule_test?: { alertname: string; exp_alerts?: unknown[] }[];
}

const alertRules = (): AlertRule[] =>
  (parse(readFileSync(ALERTS, 'utf8')) as { groups: { name: string; rules: AlertRule[] }[] }).groups.flatMap((group) => group.rules);

function promtool(...args: string[]): { status: number | null; output: string } {
  const binary = locate('promtool');
  if (!binary) throw new Error('promtool is not installed: `apt-get install -y prometheus` (test/setup/servers.ts does it when it may)');
  const run = spawnSync(binary, args, { encoding: 'utf8', timeout: 30_000 });
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}

/** The panels of the dashboard, rows' nested panels included. */
function dashboardPanels(): { title: string; targets?: { expr?: string }[] }[] {
  type Panel = { title: string; targets?: { expr?: string }[]; panels?: Panel[] };
  const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { panels: Panel[] };
  return dashboard.panels.flatMap((panel) => [panel, ...(panel.panels ?? [])]);
}

interface DashboardVariable {
  name: string;
  type: string;
  query?: unknown;
}
const dashboardVariables = (): DashboardVariable[] =>
  (JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { templating: { list: DashboardVariable[] } }).templating.list;

const PROMQL_WORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'offset', 'and', 'or', 'unless']);

/**
 * The metric names a PromQL expression selects: identifiers outside strings, label matchers,
 * ranges and grouping clauses that are not functions, aggregations or keywords. Grafana's
 * variables ($service, $__rate_interval, ${DS_PROMETHEUS}) are taken out first.
 */
function metricNamesIn(promql: string): string[] {
  const bare = promql
    .replace(/\$\{\w+\}|\$\w+/g, '1m')
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names = new Set<string>();
  for (const match of bare.matchAll(/(?<![\w.:])([a-zA-Z_:][\w:]*)(\s*\()?/g)) {
    const [, name, call] = match;
    if (!name || call || PROMQL_WORDS.has(name) || /^(inf|nan)$/i.test(name)) continue;
    names.add(name);
  }
  return [...names];
}

describe('the alerting rules, their tests and the example configuration', () => {
  it('pass promtool check rules, promtool test rules and promtool check config', () => {
    const checked = promtool('check', 'rules', ALERTS);
    expect(checked.status, checked.output).toBe(0);
    const tested = promtool('test', 'rules', ALERT_TESTS);
    expect(tested.status, tested.output).toBe(0);
    const config = promtool('check', 'config', EXAMPLE_CONFIG);
    expect(config.status, config.output).toBe(0);
    expect(config.output).toContain('alerts.yml');
  });

  it('give every alert a for, a severity, a summary, a description and a runbook section that exists', () => {
    const headings = new Set(
      [...readFileSync(DOCS, 'utf8').matchAll(/^#{2,4} (.+)$/gm)].map((m) =>
        m[1]!
          .trim()
          .toLowerCase()
          .replace(/[^\w\- ]/g, '')
          .replace(/ /g, '-'),
      ),
    );
    const rules = alertRules();
    expect(rules.length).toBeGreaterThanOrEqual(10);
    for (const rule of rules) {
      expect(rule.alert, JSON.stringify(rule)).toMatch(/^Concord\w+$/);
      expect(rule.for, rule.alert).toMatch(/^\d+[smh]$/);
      expect(['warning', 'critical'], rule.alert).toContain(rule.labels?.severity);
      expect(rule.annotations?.summary, rule.alert).toBeTruthy();
      expect(rule.annotations?.description, rule.alert).toBeTruthy();
      const runbook = rule.annotations?.runbook ?? '';
      expect(runbook, rule.alert).toBe(`docs/observability.md#${rule.alert.toLowerCase()}`);
      expect(headings.has(runbook.split('#')[1]!), `${rule.alert}: no section "${rule.alert}" in docs/observability.md`).toBe(true);
    }
    const groups = (parse(readFileSync(ALERTS, 'utf8')) as { groups: { name: string }[] }).groups;
    for (const group of groups) expect(group.name).toMatch(/^concord-/);
  });

  it('test every alert firing, and a healthy system firing none', () => {
    const tests = (parse(readFileSync(ALERT_TESTS, 'utf8')) as { tests: RuleTest[] }).tests;
    const fired = new Set(
      tests.flatMap((t) => (t.alert_rule_test ?? []).filter((a) => (a.exp_alerts ?? []).length > 0).map((a) => a.alertname)),
    );
    const healthy = tests.find((t) => /healthy/.test(t.name));
    expect(healthy, 'a test named "…healthy…"').toBeDefined();
    const quiet = new Set((healthy!.alert_rule_test ?? []).filter((a) => (a.exp_alerts ?? []).length === 0).map((a) => a.alertname));
    for (const { alert } of alertRules()) {
      expect(fired.has(alert), `${alert} is never expected to fire in alerts.test.yml`).toBe(true);
      expect(quiet.has(alert), `${alert} is not checked quiet in the healthy test`).toBe(true);
    }
  });

  it('fail their unit tests when an alert is broken: one that never fires, or fires always', () => {
    const dir = mkdtempSync(join(tmpdir(), 'concord-alerts-'));
    try {
      const source = parse(readFileSync(ALERTS, 'utf8')) as { groups: { rules: AlertRule[] }[] };
      const suite = parse(readFileSync(ALERT_TESTS, 'utf8')) as { tests: RuleTest[] } & Record<string, unknown>;
      /** promtool test rules on the tests `pick` chooses, with the alerts' expressions `broken` replaces: passed? */
      const passes = (broken: (rule: AlertRule) => string | null, pick: (test: RuleTest) => boolean): boolean => {
        const rules = structuredClone(source);
        for (const group of rules.groups) for (const rule of group.rules) rule.expr = broken(rule) ?? rule.expr;
        writeFileSync(join(dir, 'alerts.yml'), stringify(rules));
        writeFileSync(join(dir, 'alerts.test.yml'), stringify({ ...suite, rule_files: ['alerts.yml'], tests: suite.tests.filter(pick) }));
        return promtool('test', 'rules', join(dir, 'alerts.test.yml')).status === 0;
      };
      // The copies pass as they are.
      expect(
        passes(
          () => null,
          () => true,
        ),
      ).toBe(true);
      const survivors: string[] = [];
      for (const { alert } of alertRules()) {
        // Only the tests that expect this alert to fire: each takes a fraction of a second.
        const expectsIt = (test: RuleTest) =>
          (test.alert_rule_test ?? []).some((a) => a.alertname === alert && (a.exp_alerts ?? []).length > 0);
        if (passes((rule) => (rule.alert === alert ? 'vector(1) == 0' : null), expectsIt)) survivors.push(`${alert} never firing`);
      }
      // Every alert firing all the time: the healthy test must fail.
      if (
        passes(
          () => 'vector(1)',
          (test) => /healthy/.test(test.name),
        )
      )
        survivors.push('every alert firing always');
      expect(survivors, 'broken alerts the unit tests did not catch').toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('make a dashboard over a Prometheus data source variable, filtered by service', () => {
    const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { schemaVersion: number; uid: string };
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(39);
    const variables = dashboardVariables();
    expect(variables.find((v) => v.name === 'DS_PROMETHEUS')).toMatchObject({ type: 'datasource', query: 'prometheus' });
    expect(variables.find((v) => v.name === 'service')).toMatchObject({ type: 'query' });
    const panels = dashboardPanels() as {
      id: number;
      type: string;
      title: string;
      datasource?: { uid?: string };
      targets?: { expr?: string }[];
    }[];
    expect(new Set(panels.map((panel) => panel.id)).size).toBe(panels.length);
    const graphs = panels.filter((panel) => panel.type !== 'row');
    expect(graphs.length).toBeGreaterThanOrEqual(20);
    for (const panel of graphs) {
      expect(panel.datasource?.uid, panel.title).toBe('${DS_PROMETHEUS}');
      expect(panel.targets?.length, panel.title).toBeGreaterThan(0);
      for (const target of panel.targets ?? []) expect(target.expr, panel.title).toBeTruthy();
    }
    // The panels of metrics every service exports follow the service variable.
    const filtered = graphs.filter((panel) => panel.targets!.some((target) => target.expr!.includes('service=~"$service"')));
    expect(filtered.map((panel) => panel.title)).toEqual(
      expect.arrayContaining(['CPU', 'Memory', 'Event loop lag', 'Circuit breaker state']),
    );
  });

  it('name only metrics in their expressions (the names the next suite checks against a live Prometheus)', () => {
    expect(metricNamesIn('sum by (operation, le) (rate(a_bucket{type!="subscription"}[5m])) / on(x) b or vector(0) > bool 1')).toEqual([
      'a_bucket',
      'b',
    ]);
    expect(metricNamesIn('max_over_time(c{service=~"$service"}[$__rate_interval]) == 2 and d offset 5m')).toEqual(['c', 'd']);
  });
});

/** The names the alerts and the dashboard's panels select, each with where it is used. */
function referencedNames(): Map<string, string[]> {
  const used = new Map<string, string[]>();
  const add = (expr: string, where: string) => {
    for (const name of metricNamesIn(expr)) used.set(name, [...(used.get(name) ?? []), where]);
  };
  for (const rule of alertRules()) add(rule.expr, `alert ${rule.alert}`);
  for (const panel of dashboardPanels())
    for (const target of panel.targets ?? []) if (target.expr) add(target.expr, `panel "${panel.title}"`);
  // The dashboard's variables read label values of a metric: label_values(<metric>, <label>).
  for (const variable of dashboardVariables())
    for (const [, name] of JSON.stringify(variable.query ?? '').matchAll(/label_values\((\w+)/g)) add(name!, `variable ${variable.name}`);
  return used;
}

describe('a Prometheus scraping a running stack', () => {
  let stack: Stack;
  let salesforce: SalesforceServer;
  let zendesk: ZendeskServer;
  let prometheus: Prometheus;
  /** GraphQL requests this test sent to the gateway. */
  let sent = 0;
  let services: RunningService[] = [];

  const metricsUrlOf = (service: RunningService) => service.metricsUrl ?? service.url.replace(/\/graphql$/, '/metrics');

  beforeAll(async () => {
    const dbs = seededDatabases();
    // The vendor adapters (over local stand-ins for Salesforce and Zendesk) export breakers and API budgets.
    salesforce = await startSalesforceServer({ db: dbs.crm });
    zendesk = await startZendeskServer({
      data: loadZendeskData(dbs.support),
      credentials: { email: 'concord@acme.example', apiToken: 'zd-token' },
    });
    stack = await startStack({
      dbs,
      crmEnv: {
        CRM_CONNECTOR: 'salesforce',
        SALESFORCE_INSTANCE_URL: salesforce.instanceUrl,
        SALESFORCE_ACCESS_TOKEN: salesforce.accessToken,
      },
      supportEnv: {
        SUPPORT_CONNECTOR: 'zendesk',
        ZENDESK_BASE_URL: zendesk.url,
        ZENDESK_EMAIL: 'concord@acme.example',
        ZENDESK_API_TOKEN: 'zd-token',
        ZENDESK_ORDER_FIELD_ID: String(EMBEDDED_FIELD_IDS.orderNumber),
        ZENDESK_SERIAL_FIELD_ID: String(EMBEDDED_FIELD_IDS.serialNumber),
      },
      processesEnv: { WORKFLOW_BASE_DELAY_MS: '50', WORKFLOW_MAX_DELAY_MS: '200', WORKFLOW_MAX_ATTEMPTS: '4' },
      // The gateway's /metrics only with its token, which the scrape sends.
      gateway: { metrics: loadGatewayConfig({ METRICS_TOKEN }).metrics },
    });
    services = [stack.gateway, stack.crm, stack.erp, stack.support, stack.processes];

    // Registered operations, an anonymous one and an invalid one (an error by code).
    const caseQueue = await stack.query<{ cases: { nodes: { id: string }[] } }>(operation('agent-console', 'CaseQueue'), { first: 5 });
    sent++;
    expect(caseQueue.body.errors).toBeUndefined();
    for (const node of caseQueue.body.data!.cases.nodes.slice(0, 3)) {
      await stack.query(operation('agent-console', 'CaseContext'), { id: node.id });
      sent++;
    }
    await stack.query('{ cases(first: 2) { nodes { id status } } }');
    sent++;
    await stack.query('query Broken { noSuchField }');
    sent++;
    // A key the desk calls malformed: an error in the support subgraph's answer.
    await stack.query('query MalformedCase { case(id: "not a case id") { id } }');
    sent++;
    // Zendesk answers one read 503: the adapter tries again (a retry), and the answer is whole.
    zendesk.failNext(1, { kind: 'server-error', status: 503 });
    const retried = await stack.query('query PendingCount { cases(first: 1, filter: { status: [PENDING] }) { totalCount } }');
    sent++;
    expect(retried.body.errors).toBeUndefined();

    // One return authorization, so that the workflow series exist.
    const candidate = returnableCase(dbs);
    const created = await stack.queryAs('support_agent', operation('agent-console', 'CreateReturnAuthorization'), {
      input: {
        caseId: String(candidate.caseId),
        resolution: 'REPLACE',
        idempotencyKey: 'prometheus-test-1',
        lines: [{ serialNumber: candidate.serialNumber, quantity: 1, reason: 'DEFECTIVE' }],
      },
    });
    sent++;
    expect(created.body.errors, created.text).toBeUndefined();
    const [instance] = await stack.processes.engine.list({ type: RETURN_WORKFLOW, limit: 10 });
    expect(instance, 'the return workflow').toBeDefined();
    const finished = await stack.processes.engine.waitFor(instance!.id, (i) => i.state !== 'running' && i.state !== 'waiting', 15_000);
    expect(finished?.state, `the return workflow, at ${finished?.currentStep}`).toBe('done');

    prometheus = await startPrometheus({
      targets: services.map((service) => ({
        job: `concord-${service.name}`,
        url: metricsUrlOf(service),
        ...(service === stack.gateway ? { token: METRICS_TOKEN } : {}),
      })),
      rules: [ALERTS],
    });
    // Every target scraped and up: each scrape so far came after the requests and the workflow above.
    await prometheus.waitFor('up', (result) => result.length === services.length && result.every((s) => s.value[1] === '1'), 20_000);
  });

  afterAll(async () => {
    await prometheus?.stop();
    await stack?.stop();
    await Promise.all([salesforce?.close(), zendesk?.close()]);
  });

  it('scrapes each of the five services, up, the gateway with its metrics token', async () => {
    expect((await fetch(metricsUrlOf(stack.gateway))).status, 'the gateway without the token').toBe(401);
    const targets = await prometheus.targets();
    expect(targets.map((target) => target.labels.job).sort()).toEqual([
      'concord-crm',
      'concord-erp',
      'concord-gateway',
      'concord-processes',
      'concord-support',
    ]);
    for (const target of targets) expect(target.health, `${target.scrapeUrl}: ${target.lastError}`).toBe('up');
    const up = await prometheus.query('up');
    expect(up.map((sample) => [sample.metric.job, sample.value[1]]).sort()).toEqual(
      services.map((service) => [`concord-${service.name}`, '1']).sort(),
    );
    // Each service labels its own series.
    const build = await prometheus.query('concord_build_info');
    expect(build.map((sample) => `${sample.metric.job}=${sample.metric.service}`).sort()).toEqual(
      services.map((service) => `concord-${service.name}=${service.name}`).sort(),
    );
  });

  it('holds every metric the alerts and the dashboard use', async () => {
    const stored = new Set(await prometheus.metricNames());
    const used = referencedNames();
    expect(used.size).toBeGreaterThan(20);
    const missing = [...used]
      .filter(([name]) => !stored.has(name))
      .map(([name, where]) => `${name} (${[...new Set(where)].join(', ')})`)
      .sort();
    expect(missing, 'metric names the alerts or the dashboard use that no service exports').toEqual([]);
  });

  it('counts at least the GraphQL requests this test sent, as HTTP requests to the gateway', async () => {
    const [served] = await prometheus.query('sum(concord_http_request_duration_seconds_count{service="gateway",route="graphql"})');
    expect(Number(served?.value[1])).toBeGreaterThanOrEqual(sent);
  });

  it('counts at least the GraphQL requests this test sent, by operation, with the failed one', async () => {
    const [total] = await prometheus.query('sum(concord_graphql_requests_total{service="gateway"})');
    expect(Number(total?.value[1] ?? 0), 'sum(concord_graphql_requests_total{service="gateway"})').toBeGreaterThanOrEqual(sent);
    const byOperation = await prometheus.query('sum by (operation) (concord_graphql_requests_total{service="gateway"})');
    const count = (name: string) => Number(byOperation.find((s) => s.metric.operation === name)?.value[1] ?? 0);
    expect(count('CaseContext')).toBeGreaterThanOrEqual(3);
    expect(count('CaseQueue')).toBeGreaterThanOrEqual(1);
    const [errors] = await prometheus.query('sum(concord_graphql_requests_total{service="gateway",outcome="error"})');
    expect(Number(errors?.value[1] ?? 0)).toBeGreaterThanOrEqual(1);
  });

  it('shows the return workflow finished, and no instance parked', async () => {
    const done = await prometheus.query(`max(concord_workflow_instances{type="${RETURN_WORKFLOW}",state="done"})`);
    expect(Number(done[0]?.value[1] ?? 0)).toBeGreaterThanOrEqual(1);
    const parked = await prometheus.query('max(concord_workflow_exceptions)');
    expect(parked.map((sample) => sample.value[1])).toEqual(['0']);
  });

  it('loads every alert and fires none on this healthy stack', async () => {
    type Rule = { name: string; health: string; lastError?: string };
    const loaded = async (): Promise<Rule[]> => {
      const answer = (await (await fetch(`${prometheus.url}/api/v1/rules?type=alert`)).json()) as { data: { groups: { rules: Rule[] }[] } };
      return answer.data.groups.flatMap((group) => group.rules);
    };
    let rules = await loaded();
    expect(rules.map((rule) => rule.name).sort()).toEqual(
      alertRules()
        .map((rule) => rule.alert)
        .sort(),
    );
    // Each evaluated at least once (every second), without an error.
    for (let tries = 0; rules.some((rule) => rule.health === 'unknown') && tries < 25; tries++) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      rules = await loaded();
    }
    for (const rule of rules) expect(rule.health, `${rule.name}: ${rule.lastError ?? ''}`).toBe('ok');
    const firing = await prometheus.query('ALERTS{alertstate="firing"}');
    expect(firing.map((sample) => sample.metric.alertname)).toEqual([]);
    const pending = await prometheus.query('ALERTS');
    expect(pending.map((sample) => `${sample.metric.alertname} ${JSON.stringify(sample.metric)}`)).toEqual([]);
  });
});
