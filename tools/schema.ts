import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { apiSchemaOf, printApiSchema } from './lib/api-schema.ts';
import { readSupergraphConfig } from './lib/composition.ts';
import { loadOperations } from './lib/operations.ts';
import { contentHash, latestVersion, publishVersion, readVersions } from './lib/registry.ts';
import { renderJson, renderMarkdown, renderText } from './lib/report.ts';
import { checkSchema, type CheckInput } from './lib/schema-check.ts';

const HELP = `Usage:
  npm run schema:check   -- [--base <git ref>] [--json | --markdown] [paths]
  npm run schema:publish -- [paths]
  npm run schema:log

check    Composes the subgraphs, checks that schema/supergraph.graphql is what they compose to,
         diffs the API schema against a base (the latest published version by default, or the
         supergraph committed at a git ref), classifies each change breaking, dangerous or safe,
         and validates every registered client operation (schema/operations/<client>/*.graphql)
         against the new schema. A breaking change that a registered operation uses fails the
         check and names it; one that no operation uses is a warning.
publish  Runs the check against the latest version and, when it passes, records the supergraph
         and its API schema as the next version in schema/registry/.
log      Lists the published versions.

Options:
  --base <ref>          git ref whose schema/supergraph.graphql is the base (check only)
  --json, --markdown    report format (default: text)
  --config <file>       supergraph config        (default schema/supergraph.yaml)
  --supergraph <file>   committed supergraph     (default schema/supergraph.graphql)
  --operations <dir>    registered operations    (default schema/operations)
  --registry <dir>      registry folder          (default schema/registry)

Exit codes: 0 pass, 1 breaking change in use, invalid operation, composition error or stale
supergraph, 2 could not run.`;

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
    }
    return 0;
  }

  if (command === 'publish' && values.base)
    throw new UsageError('--base applies to check only: publish always compares with the latest version');
  const input = readInput({ ...values, registry });
  const report = await checkSchema(input);
  out(values.json ? renderJson(report) : values.markdown ? renderMarkdown(report) : renderText(report));
  if (report.verdict === 'fail') {
    if (command === 'publish') out('Not published: the check failed.');
    return 1;
  }
  if (command === 'publish' && report.composed) {
    const latest = readVersions(registry).at(-1);
    if (latest?.hash === contentHash(report.composed.supergraphSdl)) {
      out(`Nothing to publish: this supergraph is already version ${latest.version}.`);
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
  registry: string;
}): CheckInput {
  const supergraphPath = resolve(values.supergraph);
  return {
    subgraphs: readSupergraphConfig(resolve(values.config)),
    committedSupergraph: existsSync(supergraphPath) ? readFileSync(supergraphPath, 'utf8') : null,
    base: values.base ? baseFromGit(values.base, supergraphPath) : baseFromRegistry(values.registry),
    operations: loadOperations(resolve(values.operations)),
  };
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
