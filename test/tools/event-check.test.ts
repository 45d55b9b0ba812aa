import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runSchemaCli } from '../../tools/schema.ts';

const ROOT = new URL('../../', import.meta.url).pathname;
type Schema = Record<string, any>;

const dirs: string[] = [];
let published: string;

/**
 * A repository-shaped folder: the subgraphs, the supergraph and the registered operations as
 * they are, the event schemas and their registered consumers as they are, and a registry whose
 * one version (published here) records all of them. Each test changes a copy.
 */
beforeAll(async () => {
  published = mkdtempSync(join(tmpdir(), 'concord-events-'));
  dirs.push(published);
  for (const name of ['crm', 'erp', 'support']) {
    mkdirSync(join(published, 'subgraphs', name), { recursive: true });
    cpSync(join(ROOT, 'subgraphs', name, 'schema.graphql'), join(published, 'subgraphs', name, 'schema.graphql'));
  }
  mkdirSync(join(published, 'processes'));
  cpSync(join(ROOT, 'processes/schema.graphql'), join(published, 'processes/schema.graphql'));
  mkdirSync(join(published, 'schema'));
  for (const path of ['schema/supergraph.yaml', 'schema/supergraph.graphql', 'schema/operations', 'schema/events'])
    cpSync(join(ROOT, path), join(published, path), { recursive: true });
  const { code, output } = await cli(published, 'publish');
  expect(output).toContain('Published version 1');
  expect(code).toBe(0);
});

afterAll(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function copy(): string {
  const dir = mkdtempSync(join(tmpdir(), 'concord-events-'));
  dirs.push(dir);
  cpSync(published, dir, { recursive: true });
  return dir;
}

/** The copy, with `change` applied to the data schema of `type`. */
function withChange(type: string, change: (schema: Schema) => void, dir = copy()): string {
  const file = join(dir, 'schema/events', `${type}.json`);
  const schema = JSON.parse(readFileSync(file, 'utf8')) as Schema;
  change(schema);
  writeFileSync(file, `${JSON.stringify(schema, null, 2)}\n`);
  return dir;
}

function without<T>(list: T[], value: T): T[] {
  if (!list.includes(value)) throw new Error(`fixture: ${String(value)} not in ${JSON.stringify(list)}`);
  return list.filter((each) => each !== value);
}

async function cli(dir: string, ...args: string[]): Promise<{ code: number; output: string }> {
  let output = '';
  const paths = ['--config', 'schema/supergraph.yaml', '--supergraph', 'schema/supergraph.graphql', '--operations', 'schema/operations'];
  const more = ['--events', 'schema/events', '--consumers', 'schema/events/consumers', '--registry', 'schema/registry'];
  const cwd = process.cwd();
  process.chdir(dir);
  try {
    const code = await runSchemaCli([...args, ...(args[0] === 'log' ? [] : paths), ...more], (text) => (output += `${text}\n`));
    return { code, output };
  } finally {
    process.chdir(cwd);
  }
}

/** The text a CI log shows, and the events part of the JSON report. */
async function check(dir: string, ...args: string[]) {
  const text = await cli(dir, 'check', ...args);
  const json = JSON.parse((await cli(dir, 'check', '--json', ...args)).output);
  return { code: text.code, output: text.output, report: json, events: json.events };
}

describe('npm run schema:check: event schemas and their registered consumers', () => {
  it('passes on the repository as it is, listing each consumer and what it reads', async () => {
    const { code, output, events } = await check(copy());
    expect(code).toBe(0);
    expect(output).toMatch(/ {2}Events: \d+ types in schema\/events, 2 registered consumers/);
    expect(output).toContain('✔ gateway: x-invalidates of every type');
    expect(output).toContain('concord.case.updated: customerId, status, priority');
    expect(output).toContain('✔ processes: concord.subscription.updated: subscriptionId, customerId, status, quantity?');
    expect(output).toContain('Event changes against registry version 1 (sha256:');
    expect(output).toMatch(/Event changes against .*: none/);
    expect(output.trimEnd().split('\n').at(-1)).toBe('PASS');
    expect(events).toMatchObject({ verdict: 'pass', changes: [], failures: [], warnings: [] });
  });

  it('fails when a field the gateway reads is removed, naming consumer, type and field', async () => {
    const dir = withChange('concord.case.updated', (schema) => {
      delete schema.properties.priority;
      schema.required = without(schema.required, 'priority');
    });
    const { code, output, events } = await check(dir);
    expect(code).toBe(1);
    expect(output).toContain('✖ BREAKING  concord.case.updated.priority');
    expect(output).toContain('      read by gateway');
    expect(output).toContain("  - Breaking event change read by gateway: concord.case.updated: data field 'priority' was removed");
    // The registration names it too: it reads what the schema no longer has.
    expect(output).toMatch(
      /\n {2}- Consumer gateway \(schema\/events\/consumers\/gateway\.json\) reads data field 'priority' of concord\.case\.updated, which its schema does not have \(it has caseId, customerId, status, [^)]*\)\n/,
    );
    expect(output).toContain('FAIL');
    expect(events.changes).toContainEqual(
      expect.objectContaining({ level: 'breaking', path: 'concord.case.updated.priority', readBy: ['gateway'] }),
    );
  });

  it('names a likely rename', async () => {
    const dir = withChange('concord.case.updated', (schema) => {
      schema.properties.casePriority = schema.properties.priority;
      delete schema.properties.priority;
      schema.required = [...without(schema.required, 'priority'), 'casePriority'];
    });
    const { code, output } = await check(dir);
    expect(code).toBe(1);
    expect(output).toContain(
      "Breaking event change read by gateway: concord.case.updated: data field 'priority' was removed (renamed to 'casePriority'?)",
    );
  });

  it('fails when an enum a consumer reads is narrowed', async () => {
    const gateway = await check(
      withChange(
        'concord.case.updated',
        (schema) => void (schema.properties.status.enum = without(schema.properties.status.enum, 'ON_HOLD')),
      ),
    );
    expect(gateway.code).toBe(1);
    expect(gateway.output).toContain(
      `  - Breaking event change read by gateway: concord.case.updated: data field 'status' no longer allows "ON_HOLD"`,
    );

    const processes = await check(
      withChange(
        'concord.subscription.updated',
        (schema) => void (schema.properties.status.enum = without(schema.properties.status.enum, 'SUSPENDED')),
      ),
    );
    expect(processes.code).toBe(1);
    expect(processes.output).toContain(
      `  - Breaking event change read by processes: concord.subscription.updated: data field 'status' no longer allows "SUSPENDED"`,
    );
  });

  it('fails when a type or pattern a consumer reads is narrowed, and warns when one is widened', async () => {
    const narrowed = await check(
      withChange('concord.case.updated', (schema) => {
        schema.properties.customerId.type = 'string';
        schema.properties.caseId.pattern = '^[0-9]{1,9}$';
      }),
    );
    expect(narrowed.code).toBe(1);
    expect(narrowed.output).toContain(
      "Breaking event change read by gateway: concord.case.updated: data field 'customerId' no longer allows type null (string|null → string)",
    );
    // caseId is read through x-invalidates (the key of Case).
    expect(narrowed.output).toContain(
      "Breaking event change read by gateway: concord.case.updated: data field 'caseId' must now match /^[0-9]{1,9}$/ instead of /^[0-9]+$/",
    );

    const widened = await check(withChange('concord.case.updated', (schema) => void schema.properties.priority.enum.push('CRITICAL')));
    expect(widened.code).toBe(0);
    expect(widened.output).toContain(
      `warning: Event change read by gateway (check it copes): concord.case.updated: data field 'priority' may now be "CRITICAL"`,
    );
  });

  it('fails when a field a consumer reads becomes optional, unless the consumer marks it optional', async () => {
    const gateway = await check(
      withChange('concord.case.updated', (schema) => void (schema.required = without(schema.required, 'status'))),
    );
    expect(gateway.code).toBe(1);
    expect(gateway.output).toContain(
      "  - Breaking event change read by gateway: concord.case.updated: data field 'status' is no longer required (now optional)",
    );

    // Required unless the subscription was deleted (if/then/else), then not at all.
    const processes = await check(
      withChange('concord.subscription.updated', (schema) => void (schema.else.required = without(schema.else.required, 'customerId'))),
    );
    expect(processes.code).toBe(1);
    expect(processes.output).toContain(
      "  - Breaking event change read by processes: concord.subscription.updated: data field 'customerId' is no longer required in any case (now optional)",
    );

    // processes registers quantity? : it copes without it.
    const tolerated = await check(
      withChange('concord.subscription.updated', (schema) => void (schema.else.required = without(schema.else.required, 'quantity'))),
    );
    expect(tolerated.code).toBe(0);
    expect(tolerated.events.changes).toEqual([
      expect.objectContaining({ level: 'breaking', path: 'concord.subscription.updated.quantity', readBy: [] }),
    ]);
    expect(tolerated.output).toContain(
      "warning: Breaking event change no registered consumer reads: concord.subscription.updated: data field 'quantity' is no longer required in any case (now optional)",
    );
  });

  it('passes when an optional field is added', async () => {
    const { code, output, events } = await check(
      withChange('concord.case.updated', (schema) => void (schema.properties.channel = { enum: ['EMAIL', 'WEB', 'PHONE'] })),
    );
    expect(code).toBe(0);
    expect(output).toMatch(/· safe {6}concord\.case\.updated\.channel +optional data field 'channel' was added/);
    expect(events).toMatchObject({ verdict: 'pass', failures: [], warnings: [] });
  });

  it('passes with a warning for producers when a required field is added', async () => {
    const { code, output } = await check(
      withChange('concord.case.updated', (schema) => {
        schema.properties.channel = { type: 'string' };
        schema.required.push('channel');
      }),
    );
    expect(code).toBe(0);
    expect(output).toContain(
      "warning: Event change producers must follow: concord.case.updated: new required data field 'channel': every producer must fill it",
    );
  });

  it('passes with a warning when what changed is read by no registered consumer', async () => {
    const { code, output, events } = await check(
      withChange('concord.order.cancelled', (schema) => {
        delete schema.properties.reason;
        schema.required = without(schema.required, 'reason');
      }),
    );
    expect(code).toBe(0);
    expect(output).toContain('! BREAKING  concord.order.cancelled.reason');
    expect(output).toContain(
      "  warning: Breaking event change no registered consumer reads: concord.order.cancelled: data field 'reason' was removed",
    );
    expect(output).toContain('PASS');
    expect(events.changes).toEqual([expect.objectContaining({ level: 'breaking', readBy: [] })]);
  });

  it('fails when an x-invalidates entry the gateway reads is removed or its key changes', async () => {
    const removed = await check(
      withChange('concord.order.updated', (schema) => {
        schema['x-invalidates'] = schema['x-invalidates'].filter((ref: Schema) => ref.type !== 'Customer');
      }),
    );
    expect(removed.code).toBe(1);
    expect(removed.output).toContain(
      "  - Breaking event change read by gateway: concord.order.updated: x-invalidates no longer names Customer (by 'customerId')",
    );

    const rekeyed = await check(
      withChange('concord.case.updated', (schema) => {
        schema.properties.ticketId = schema.properties.caseId;
        schema['x-invalidates'][0].key = 'ticketId';
      }),
    );
    expect(rekeyed.code).toBe(1);
    expect(rekeyed.output).toContain(
      "  - Breaking event change read by gateway: concord.case.updated: x-invalidates names Case by 'ticketId' instead of 'caseId'",
    );
  });

  it('fails when a type a consumer names is removed; warns when only "*" read it', async () => {
    const dir = copy();
    rmSync(join(dir, 'schema/events/concord.subscription.updated.json'));
    const named = await check(dir);
    expect(named.code).toBe(1);
    expect(named.output).toContain(
      '  - Breaking event change read by processes: concord.subscription.updated: event type concord.subscription.updated was removed',
    );
    expect(named.output).toContain(
      '  - Consumer processes (schema/events/consumers/processes.json) reads concord.subscription.updated, which has no schema in schema/events',
    );

    const other = copy();
    rmSync(join(other, 'schema/events/concord.workflow.changed.json'));
    const unnamed = await check(other);
    expect(unnamed.code).toBe(0);
    expect(unnamed.output).toContain(
      'warning: Breaking event change no registered consumer reads: concord.workflow.changed: event type concord.workflow.changed was removed',
    );
  });

  it('fails on a registration that names a field, type or envelope attribute the schemas do not have', async () => {
    const dir = copy();
    writeFileSync(
      join(dir, 'schema/events/consumers/billing.json'),
      JSON.stringify({
        consumer: 'billing',
        description: 'Reads posted invoices.',
        envelope: ['time', 'corelationid'],
        reads: { 'concord.invoice.posted': ['invoiceNumber', 'amountDue?'], 'concord.invoice.paid': ['invoiceNumber'] },
      }),
    );
    const { code, output, events } = await check(dir);
    expect(code).toBe(1);
    expect(output).toContain('✖ billing: concord.invoice.posted: invoiceNumber, amountDue?');
    expect(output).toMatch(
      /\n {2}- Consumer billing \(schema\/events\/consumers\/billing\.json\) reads data field 'amountDue' of concord\.invoice\.posted, which its schema does not have \(it has invoiceNumber, customerId, [^)]*\)\n/,
    );
    expect(output).toContain(
      '  - Consumer billing (schema/events/consumers/billing.json) reads concord.invoice.paid, which has no schema in schema/events',
    );
    expect(output).toContain(
      "  - Consumer billing (schema/events/consumers/billing.json) reads envelope attribute 'corelationid', which canonical events do not have (specversion, id, source, type, subject, time, datacontenttype, correlationid, sequence)",
    );
    expect(events.consumers.find((consumer: Schema) => consumer.consumer === 'billing').errors).toHaveLength(3);
  });

  it('fails on a registration that is not one', async () => {
    const dir = copy();
    writeFileSync(join(dir, 'schema/events/consumers/audit.json'), JSON.stringify({ consumer: 'audit', description: 'x', raeds: {} }));
    writeFileSync(
      join(dir, 'schema/events/consumers/search.json'),
      JSON.stringify({ consumer: 'search', description: 'x', reads: { '*': ['customerId'] } }),
    );
    const { code, output } = await check(dir);
    expect(code).toBe(1);
    expect(output).toMatch(/ {2}- Consumer registration invalid: schema\/events\/consumers\/audit\.json: reads: .+/);
    expect(output).toMatch(
      / {2}- Consumer registration invalid: schema\/events\/consumers\/audit\.json: \(file\): Unrecognized key: "raeds"/,
    );
    expect(output).toContain(
      '  - Consumer registration invalid: schema/events/consumers/search.json: reads."*" takes only "x-invalidates" (a data field is read of a named type)',
    );
  });

  it('takes a version published before the registry recorded event schemas as no base: a warning', async () => {
    const dir = withChange('concord.case.updated', (schema) => void delete schema.properties.priority);
    const index = JSON.parse(readFileSync(join(dir, 'schema/registry/index.json'), 'utf8'));
    delete index.versions[0].events;
    writeFileSync(join(dir, 'schema/registry/index.json'), JSON.stringify(index));
    rmSync(join(dir, 'schema/registry/v1/events'), { recursive: true });
    const { output, events } = await check(dir);
    expect(output).toContain('  Event changes: no base to compare with');
    expect(output).toContain(
      'warning: No base for the event schemas: registry version 1 has none (published before versions recorded them; the next npm run schema:publish records them).',
    );
    // The registration is still checked against the schemas as they are.
    expect(events.failures).toEqual([expect.stringContaining("reads data field 'priority' of concord.case.updated")]);
  });

  it('compares with the event schemas committed at a git ref with --base', async () => {
    const dir = copy();
    const git = (...args: string[]) =>
      execFileSync('git', ['-c', 'user.name=test', '-c', 'user.email=test@example.com', ...args], { cwd: dir, stdio: 'ignore' });
    git('init', '-q');
    git('add', '.');
    git('commit', '-q', '-m', 'base');
    withChange(
      'concord.case.updated',
      (schema) => void (schema.properties.status.enum = without(schema.properties.status.enum, 'NEW')),
      dir,
    );
    const { code, output } = await check(dir, '--base', 'HEAD');
    expect(code).toBe(1);
    expect(output).toContain('Event changes against git ref HEAD: 1 breaking, 0 dangerous, 0 safe');
    expect(output).toContain(`Breaking event change read by gateway: concord.case.updated: data field 'status' no longer allows "NEW"`);
  });

  it('writes the events section into the Markdown report', async () => {
    const dir = withChange('concord.case.updated', (schema) => void (schema.required = without(schema.required, 'priority')));
    const { output } = await cli(dir, 'check', '--markdown');
    expect(output).toContain('### Schema check: ❌ fail');
    expect(output).toContain('**Events**: ');
    expect(output).toContain(
      "| BREAKING | `concord.case.updated.priority` | data field 'priority' is no longer required (now optional) | gateway |",
    );
    expect(output.indexOf('**Events**')).toBeLessThan(output.indexOf('**Why it fails**'));
  });
});

describe('npm run schema:publish: event schemas', () => {
  it('records the event schemas of each version, and a change to them alone as a new version', async () => {
    const dir = copy();
    const index = () => JSON.parse(readFileSync(join(dir, 'schema/registry/index.json'), 'utf8'));
    const types = readdirSync(join(ROOT, 'schema/events')).filter((name) => name.endsWith('.json'));
    expect(index().versions[0].events).toMatchObject({ hash: expect.stringMatching(/^sha256:/), changes: [] });
    expect(readdirSync(join(dir, 'schema/registry/v1/events')).sort()).toEqual(types.sort());
    expect((await cli(dir, 'publish')).output).toContain(
      'Nothing to publish: this supergraph and these event schemas are already version 1.',
    );

    withChange('concord.case.updated', (schema) => void (schema.properties.channel = { type: 'string' }), dir);
    const publish = await cli(dir, 'publish');
    expect(publish.code).toBe(0);
    expect(publish.output).toContain('Published version 2');
    expect(index().versions[1].hash).toBe(index().versions[0].hash);
    expect(index().versions[1].events.changes).toEqual(["safe: concord.case.updated: optional data field 'channel' was added"]);
    expect(JSON.parse(readFileSync(join(dir, 'schema/registry/v2/events/concord.case.updated.json'), 'utf8')).properties.channel).toEqual({
      type: 'string',
    });
    const log = (await cli(dir, 'log')).output;
    expect(log).toMatch(new RegExp(`v2 .*\\n {6}events: ${types.length} types \\(sha256:`));
    expect(log).toContain("safe: concord.case.updated: optional data field 'channel' was added");
    // The new version is the base from now on.
    expect((await check(dir)).output).toMatch(/Event changes against registry version 2 .*: none/);
  });

  it('refuses to publish a change that breaks a registered consumer', async () => {
    const dir = withChange('concord.case.updated', (schema) => void delete schema.properties.priority);
    const refused = await cli(dir, 'publish');
    expect(refused.code).toBe(1);
    expect(refused.output).toContain('Not published: the check failed.');
    expect(existsSync(join(dir, 'schema/registry/v2'))).toBe(false);
  });
});
