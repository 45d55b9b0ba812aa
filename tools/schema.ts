import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { apiSchemaOf, printApiSchema } from './lib/api-schema.ts';
import { readSupergraphConfig } from './lib/composition.ts';
import {
  loadConsumers,
  parseEventSchemas,
  readEventSchemaTexts,
  renderEventsMarkdown,
  renderEventsText,
  type EventCheckInput,
} from './lib/event-check.ts';
import { loadOperations } from './lib/operations.ts';
import { isPublished, latestVersion, publishVersion, readVersions } from './lib/registry.ts';
import { renderJson, renderMarkdown, renderText } from './lib/report.ts';
import { checkSchema, type CheckInput, type CheckReport } from './lib/schema-check.ts';

const HELP = `Usage:
  npm run schema:check   -- [--base <git ref>] [--json | --markdown] [paths]
  npm run schema:publish -- [paths]
  npm run schema:log

check    Composes the subgraphs, checks that schema/supergraph.graphql is what they compose to,
         diffs the API schema against a base (the latest published version by default, or the
         supergraph committed at a git ref), classifies each change breaking, dangerous or safe,
         and validates every registered client operation (schema/operations/<client>/*.graphql)
         against the new schema. A breaking change that a registered operation uses fails the
         check and names it; one that no operation uses is a warning. The same for the event
         schemas (schema/events/<type>.json) and the consumers registered to read them
         (schema/events/consumers/<consumer>.json), against the base's event schemas.
publish  Runs the check against the latest version and, when it passes, records the supergraph,
         its API schema and the event schemas as the next version in schema/registry/.
log      Lists the published versions.

Options:
  --base <ref>          git ref whose schema/supergraph.graphql is the base (check only)
  --json, --markdown    report format (default: text)
  --config <file>       supergraph config        (default schema/supergraph.yaml)
  --supergraph <file>   committed supergraph     (default schema/supergraph.graphql)
  --operations <dir>    registered operations    (default schema/operations)
  --events <dir>        event schemas            (default schema/events)
  --consumers <dir>     registered consumers     (default schema/events/consumers)
  --registry <dir>      registry folder          (default schema/registry)

Exit codes: 0 pass, 1 breaking change in use (by an operation or an event consumer), invalid
operation or consumer registration, composition error or stale supergraph, 2 could not run.`;

type Command = 'check' | 'publish' | 'log';

/** Runs one schema command; returns the exit code. */
export async function runSchemaCli(argv: readonly string[], out: (text: string) => void = console.log): Promise<number> {
  const { values, positionals } = parseArgs({
    args: [...argv],
    allowPositionals: true,
    options: {
      base: { type: 'string' },
      json: { type: 'boolean', default: false },
      markdown: { type: 'boolean', default: false },
      config: { type: 'string', default: 'schema/supergraph.yaml' },
      supergraph: { type: 'string', default: 'schema/supergraph.graphql' },
      operations: { type: 'string', default: 'schema/operations' },
      events: { type: 'string', default: 'schema/events' },
      consumers: { type: 'string', default: 'schema/events/consumers' },
      registry: { type: 'string', default: 'schema/registry' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    out(HELP);
    return 0;
  }
  const command = (positionals[0] ?? 'check') as Command;
  if (!['check', 'publish', 'log'].includes(command)) throw new UsageError(`unknown command "${command}" (check, publish or log)`);
  if (values.json && values.markdown) throw new UsageError('choose one of --json and --markdown');
  const registry = resolve(values.registry);

  if (command === 'log') {
    const versions = readVersions(registry);
    if (!versions.length) out('No version published yet (npm run schema:publish).');
    for (const version of versions) {
      const { breaking, dangerous, safe } = version.summary;
      out(
        `v${version.version}  ${version.date}  ${version.hash.slice(0, 19)}…  ${version.commit ?? '-'}  ${breaking} breaking, ${dangerous} dangerous, ${safe} safe`,
      );
      for (const change of version.summary.changes.slice(0, 20)) out(`      ${change}`);
      if (version.events) {
        out(`      events: ${version.events.types.length} types (${version.events.hash.slice(0, 19)}…)`);
        for (const change of version.events.changes.slice(0, 20)) out(`      ${change}`);
      }
    }
    return 0;
  }

  if (command === 'publish' && values.base)
    throw new UsageError('--base applies to check only: publish always compares with the latest version');
  const input = readInput({ ...values, registry });
  const report = await checkSchema(input);
  out(values.json ? renderJson(report) : values.markdown ? withEventsMarkdown(report) : withEventsText(report));
  if (report.verdict === 'fail') {
    if (command === 'publish') out('Not published: the check failed.');
    return 1;
  }
  if (command === 'publish' && report.composed) {
    const latest = readVersions(registry).at(-1);
    const eventSchemas = input.eventTexts;
    if (latest && isPublished(latest, report.composed.supergraphSdl, eventSchemas)) {
      out(`Nothing to publish: this supergraph${eventSchemas ? ' and these event schemas are' : ' is'} already version ${latest.version}.`);
      return 0;
    }
    const version = publishVersion(registry, {
      supergraphSdl: report.composed.supergraphSdl,
      apiSdl: report.composed.apiSdl,
      date: new Date().toISOString(),
      commit: gitHead(),
      summary: {
        breaking: report.changes.filter((change) => change.level === 'breaking').length,
        dangerous: report.changes.filter((change) => change.level === 'dangerous').length,
        safe: report.changes.filter((change) => change.level === 'safe').length,
        changes: report.changes.map((change) => `${change.level}: ${change.message}`),
      },
      eventSchemas,
      eventChanges: (report.events?.changes ?? []).map((change) => `${change.level}: ${change.type}: ${change.message}`),
    });
    out(`Published version ${version.version} (${version.hash.slice(0, 19)}…) to ${registry}`);
  }
  return 0;
}

class UsageError extends Error {}

function readInput(values: {
  base?: string | undefined;
  config: string;
  supergraph: string;
  operations: string;
  events: string;
  consumers: string;
  registry: string;
}): CheckInput & { eventTexts: Map<string, string> | null } {
  const supergraphPath = resolve(values.supergraph);
  const eventsDir = resolve(values.events);
  const eventTexts = readEventSchemaTexts(eventsDir);
  return {
    subgraphs: readSupergraphConfig(resolve(values.config)),
    committedSupergraph: existsSync(supergraphPath) ? readFileSync(supergraphPath, 'utf8') : null,
    base: values.base ? baseFromGit(values.base, supergraphPath) : baseFromRegistry(values.registry),
    operations: loadOperations(resolve(values.operations)),
    events: eventTexts ? eventInput(eventTexts, eventsDir, resolve(values.consumers), values) : null,
    eventTexts,
  };
}

/** The event check's input: the schemas as they are, the registered consumers, the base's schemas. */
function eventInput(
  texts: ReadonlyMap<string, string>,
  eventsDir: string,
  consumersDir: string,
  values: { base?: string | undefined; registry: string },
): EventCheckInput {
  const label = (path: string) => relative(process.cwd(), path) || '.';
  const { consumers, errors } = loadConsumers(consumersDir, label(consumersDir));
  let base: EventCheckInput['base'];
  if (values.base) {
    const baseTexts = eventSchemasFromGit(values.base, eventsDir);
    base = { label: `git ref ${values.base}`, schemas: baseTexts && parseEventSchemas(baseTexts, `${values.base}:${label(eventsDir)}`) };
  } else {
    const latest = latestVersion(values.registry);
    const events = latest?.version.events;
    base = latest && {
      label: `registry version ${latest.version.version}${events ? ` (${events.hash.slice(0, 19)}…)` : ''}`,
      schemas:
        latest.eventSchemas && parseEventSchemas(latest.eventSchemas, label(resolve(values.registry, `v${latest.version.version}/events`))),
      hint: 'published before versions recorded them; the next npm run schema:publish records them',
    };
  }
  return { dir: label(eventsDir), schemas: parseEventSchemas(texts, label(eventsDir)), consumers, consumerErrors: errors, base };
}

/** The event schema files committed at a git ref, by type; null when the folder is not there at that ref. */
function eventSchemasFromGit(ref: string, eventsDir: string): Map<string, string> | null {
  const git = (args: string[]) =>
    execFileSync('git', args, { cwd: eventsDir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 * 1024 * 1024 });
  let names: string[];
  try {
    names = git(['ls-tree', '--name-only', ref, './'])
      .split('\n')
      .filter((name) => name.endsWith('.json'));
  } catch (error) {
    throw new Error(`cannot list the event schemas at git ref "${ref}": ${String((error as { stderr?: string }).stderr ?? error).trim()}`);
  }
  if (!names.length) return null;
  return new Map(names.map((name) => [name.slice(0, -'.json'.length), git(['show', `${ref}:./${name}`])]));
}

/** The text report with the events section after the API schema's, before the warnings and the verdict. */
function withEventsText(report: CheckReport): string {
  const lines = renderText(report).split('\n');
  const at = lines.findIndex((line) => line.startsWith('  warning: ') || line === 'PASS' || line === 'FAIL');
  lines.splice(at === -1 ? lines.length : at, 0, ...renderEventsText(report.events));
  return lines.join('\n');
}

/** The Markdown report with the events section before why it fails and the warnings. */
function withEventsMarkdown(report: CheckReport): string {
  const text = renderMarkdown(report);
  const at = [text.indexOf('\n**Why it fails**'), text.indexOf('\n**Warnings**')].filter((index) => index !== -1);
  const cut = at.length ? Math.min(...at) : text.length;
  return `${text.slice(0, cut).trimEnd()}\n\n${renderEventsMarkdown(report.events).join('\n').trimEnd()}\n${text.slice(cut)}`;
}

function baseFromRegistry(registry: string): CheckInput['base'] {
  const latest = latestVersion(registry);
  return latest
    ? { label: `registry version ${latest.version.version} (${latest.version.hash.slice(0, 19)}…)`, apiSdl: latest.apiSdl }
    : null;
}

function baseFromGit(ref: string, supergraphPath: string): CheckInput['base'] {
  let supergraphSdl: string;
  try {
    supergraphSdl = execFileSync('git', ['show', `${ref}:./${basename(supergraphPath)}`], {
      cwd: dirname(supergraphPath),
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (error) {
    throw new Error(`cannot read the supergraph at git ref "${ref}": ${String((error as { stderr?: string }).stderr ?? error).trim()}`);
  }
  return { label: `git ref ${ref}`, apiSdl: printApiSchema(apiSchemaOf(supergraphSdl)) };
}

function gitHead(): string | null {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  runSchemaCli(process.argv.slice(2)).then(
    (code) => (process.exitCode = code),
    (error: unknown) => {
      console.error(`schema: ${(error as Error).message}${error instanceof UsageError ? '\n\nnpm run schema:check -- --help' : ''}`);
      process.exitCode = 2;
    },
  );
}
