import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { composeSubgraphs, readSupergraphConfig } from '../../tools/lib/composition.ts';
import { runSchemaCli } from '../../tools/schema.ts';

const ROOT = new URL('../../', import.meta.url).pathname;
const SYSTEMS = ['crm', 'erp', 'support'] as const;
type Sdls = Record<(typeof SYSTEMS)[number], string>;

const original = (): Sdls =>
  Object.fromEntries(SYSTEMS.map((name) => [name, readFileSync(join(ROOT, 'subgraphs', name, 'schema.graphql'), 'utf8')])) as Sdls;

function replaceOnce(sdl: string, from: string, to: string): string {
  if (!sdl.includes(from)) throw new Error(`fixture: ${JSON.stringify(from)} not found`);
  return sdl.replace(from, to);
}

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/**
 * A repository-shaped fixture: the subgraphs' SDL after `change`, the supergraph composed from
 * them (unless `stale`), the real registered operations, and a registry whose latest version is
 * the schema as it is on main.
 */
async function fixture(change: (sdls: Sdls) => void, options: { stale?: boolean } = {}): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'concord-schema-'));
  dirs.push(dir);
  const sdls = original();
  for (const name of SYSTEMS) {
    mkdirSync(join(dir, 'subgraphs', name), { recursive: true });
    writeFileSync(join(dir, 'subgraphs', name, 'schema.graphql'), sdls[name]);
  }
  mkdirSync(join(dir, 'schema'));
  // The process service's SDL is not changed by any case here: copied as it is.
  mkdirSync(join(dir, 'processes'));
  cpSync(join(ROOT, 'processes/schema.graphql'), join(dir, 'processes/schema.graphql'));
  cpSync(join(ROOT, 'schema/supergraph.yaml'), join(dir, 'schema/supergraph.yaml'));
  cpSync(join(ROOT, 'schema/supergraph.graphql'), join(dir, 'schema/supergraph.graphql'));
  cpSync(join(ROOT, 'schema/operations'), join(dir, 'schema/operations'), { recursive: true });
  expect(await cli(dir, 'publish')).toMatchObject({ code: 0 });

  change(sdls);
  for (const name of SYSTEMS) writeFileSync(join(dir, 'subgraphs', name, 'schema.graphql'), sdls[name]);
  const composed = composeSubgraphs(readSupergraphConfig(join(dir, 'schema/supergraph.yaml')));
  if (composed.ok && !options.stale) writeFileSync(join(dir, 'schema/supergraph.graphql'), composed.supergraphSdl);
  return dir;
}

async function cli(dir: string, ...args: string[]): Promise<{ code: number; output: string }> {
  let output = '';
  const paths = [
    '--config',
    'schema/supergraph.yaml',
    '--supergraph',
    'schema/supergraph.graphql',
    '--operations',
    'schema/operations',
    '--registry',
    'schema/registry',
  ];
  const cwd = process.cwd();
  process.chdir(dir);
  try {
    const code = await runSchemaCli([...args, ...paths], (text) => (output += `${text}\n`));
    return { code, output };
  } finally {
    process.chdir(cwd);
  }
}

async function jsonReport(dir: string) {
  const { code, output } = await cli(dir, 'check', '--json');
  return { code, report: JSON.parse(output) };
}

describe('npm run schema:check', () => {
  it('passes on the schema as it is', async () => {
    const { code, report } = await jsonReport(await fixture(() => {}));
    expect(code).toBe(0);
    expect(report).toMatchObject({ verdict: 'pass', changes: [], failures: [], supergraphUpToDate: true });
    expect(report.base).toMatch(/registry version 1/);
  });

  it('fails when a field a registered operation uses is removed, naming operation, client and field', async () => {
    const dir = await fixture((sdls) => {
      sdls.erp = replaceOnce(sdls.erp, '  status: OrderStatus\n  customer: Customer\n', '  customer: Customer\n');
    });
    const { code, report } = await jsonReport(dir);
    expect(code).toBe(1);
    const change = report.changes.find((c: any) => c.path === 'Order.status');
    expect(change.level).toBe('breaking');
    expect(change.usedBy).toEqual(
      expect.arrayContaining([
        { client: 'agent-console', operation: 'CaseQueue' },
        { client: 'agent-console', operation: 'CaseContext' },
      ]),
    );
    expect(report.failures.join('\n')).toMatch(/CaseQueue \(agent-console\).*Order\.status/);
    const text = (await cli(dir, 'check')).output;
    expect(text).toContain('used by CaseContext (agent-console), CaseQueue (agent-console)');
    expect(text).toContain('FAIL');
  });

  it('passes with a warning when a field no registered operation uses is removed', async () => {
    const { code, report } = await jsonReport(
      await fixture((sdls) => {
        sdls.erp = replaceOnce(sdls.erp, '  category: String\n', '');
      }),
    );
    expect(code).toBe(0);
    expect(report.changes).toEqual([expect.objectContaining({ level: 'breaking', path: 'Product.category', usedBy: [] })]);
    expect(report.warnings.join('\n')).toMatch(/no registered operation uses.*Product\.category/);
  });

  it('classifies an optional field and a new type as safe', async () => {
    const { code, report } = await jsonReport(
      await fixture((sdls) => {
        sdls.support = replaceOnce(
          sdls.support,
          '  subject: String!\n',
          '  subject: String!\n  "Where the case came from."\n  channel: String\n',
        );
        sdls.support += '\ntype SatisfactionRating {\n  score: Int!\n  comment: String\n}\n';
        sdls.support = replaceOnce(
          sdls.support,
          '  comments: [CaseComment!]! @listSize(assumedSize: 200)\n',
          '  comments: [CaseComment!]! @listSize(assumedSize: 200)\n  satisfaction: SatisfactionRating\n',
        );
      }),
    );
    expect(code).toBe(0);
    expect(report.changes.length).toBeGreaterThanOrEqual(3);
    expect(report.changes.every((c: any) => c.level === 'safe')).toBe(true);
    expect(report.changes.map((c: any) => c.path)).toEqual(expect.arrayContaining(['Case.channel', 'SatisfactionRating']));
  });

  it.each([
    [
      'an argument made required',
      (s: Sdls) => void (s.support = replaceOnce(s.support, 'first: Int = 25, after: String)', 'first: Int = 25, after: String!)')),
      'Query.cases.after',
    ],
    ['a type changed', (s: Sdls) => void (s.support = replaceOnce(s.support, '  subject: String!\n', '  subject: Int!\n')), 'Case.subject'],
    [
      'an enum value removed',
      (s: Sdls) => void (s.support = replaceOnce(s.support, 'enum CasePriority {\n  LOW\n', 'enum CasePriority {\n')),
      'CasePriority.LOW',
    ],
  ])('fails on %s that the agent console uses', async (_name, change, path) => {
    const { code, report } = await jsonReport(await fixture(change));
    expect(code).toBe(1);
    const found = report.changes.find((c: any) => c.path === path);
    expect(found).toMatchObject({ level: 'breaking' });
    expect(found.usedBy).toContainEqual({ client: 'agent-console', operation: 'CaseQueue' });
  });

  it('reports readably when two subgraphs disagree on a shared type', async () => {
    const dir = await fixture((sdls) => {
      sdls.support = replaceOnce(sdls.support, '"@requires", "@listSize"]', '"@requires", "@listSize", "@shareable"]');
      sdls.support +=
        '\ntype Address @shareable {\n  street: Int\n  city: String\n  state: String\n  postalCode: String\n  country: String\n}\n';
      sdls.support = replaceOnce(
        sdls.support,
        '  description: String\n  status: CaseStatus!',
        '  description: String\n  shipTo: Address\n  status: CaseStatus!',
      );
    });
    const { code, output } = await cli(dir, 'check');
    expect(code).toBe(1);
    expect(output).toContain('composition failed');
    expect(output).toMatch(/Address\.street/);
    expect(output).toMatch(/"crm"/);
    expect(output).toMatch(/"support"/);
    expect(output).toMatch(/String.*Int|Int.*String/);
  });

  it('fails when the committed supergraph is stale', async () => {
    const dir = await fixture(
      (sdls) => {
        sdls.crm = replaceOnce(sdls.crm, '  website: String\n', '  website: String\n  linkedInUrl: String\n');
      },
      { stale: true },
    );
    const { code, report } = await jsonReport(dir);
    expect(code).toBe(1);
    expect(report.supergraphUpToDate).toBe(false);
    expect(report.failures.join('\n')).toContain('run npm run compose');
  });

  it('writes a Markdown report for a pull request comment', async () => {
    const dir = await fixture((sdls) => {
      sdls.erp = replaceOnce(sdls.erp, '  status: OrderStatus\n  customer: Customer\n', '  customer: Customer\n');
    });
    const { output } = await cli(dir, 'check', '--markdown');
    expect(output).toContain('### Schema check: ❌ fail');
    expect(output).toContain('| BREAKING | `Order.status` |');
  });
});

describe('npm run schema:publish and schema:log', () => {
  it('refuses to publish a failing change and records a passing one as the next version', async () => {
    const breaking = await fixture((sdls) => {
      sdls.erp = replaceOnce(sdls.erp, '  status: OrderStatus\n  customer: Customer\n', '  customer: Customer\n');
    });
    const refused = await cli(breaking, 'publish');
    expect(refused.code).toBe(1);
    expect(refused.output).toContain('Not published');
    expect((await cli(breaking, 'log')).output).not.toContain('v2');

    const safe = await fixture((sdls) => {
      sdls.crm = replaceOnce(sdls.crm, '  website: String\n', '  website: String\n  linkedInUrl: String\n');
    });
    const published = await cli(safe, 'publish');
    expect(published.code).toBe(0);
    expect(published.output).toMatch(/Published version 2 \(sha256:/);
    const log = (await cli(safe, 'log')).output;
    expect(log).toMatch(/^v1 .*\n/m);
    expect(log).toMatch(/v2 .* 0 breaking, 0 dangerous, 1 safe/);
    expect(log).toContain("Field 'linkedInUrl' was added to object type 'Customer'");
    expect((await cli(safe, 'publish')).output).toContain('already version 2');
    // The new version is the base from now on: the same schema checks clean against it.
    expect((await jsonReport(safe)).report).toMatchObject({ verdict: 'pass', changes: [] });
  });
});
