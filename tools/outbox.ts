import { existsSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { Outbox, type OutboxEntry, type OutboxStatus } from '../platform/outbox.ts';
import { openDatabase } from '../platform/sqlite.ts';
import { configuredEnv } from '../platform/config-file.ts';
import { loadErpConfig } from '../subgraphs/erp/src/config.ts';

const HELP = `Usage:
  npm run outbox -- list [--status pending|delivered|dead] [--json]
  npm run outbox -- replay <id>

The return process's outbox (PROCESS_DATABASE, by default $DATA_DIR/processes.sqlite): the
follow-on writes of each return authorization (the case note, the CRM activity), with their
status, attempts and last error. "replay" puts a dead-lettered entry back in line with fresh
attempts; the running ERP service delivers it within OUTBOX_POLL_MS.`;

const STATUSES: readonly OutboxStatus[] = ['pending', 'delivered', 'dead'];

/** Runs one outbox command; returns the exit code (0 done, 1 nothing to replay, 2 usage). */
export function runOutboxCli(
  argv: readonly string[],
  out: (line: string) => void = console.log,
  env: NodeJS.ProcessEnv = configuredEnv('erp'),
): number {
  const { values, positionals } = parseArgs({
    args: [...argv],
    allowPositionals: true,
    options: { status: { type: 'string' }, json: { type: 'boolean', default: false }, help: { type: 'boolean', default: false } },
  });
  if (values.help || positionals.length === 0) {
    out(HELP);
    return values.help ? 0 : 2;
  }
  const path = loadErpConfig(env).returns.processDatabase;
  if (!existsSync(path)) {
    out(`No process store at ${path}: no return has been authorized with this configuration yet.`);
    return positionals[0] === 'list' ? 0 : 1;
  }
  const db = openDatabase(path);
  try {
    const outbox = new Outbox(db);
    switch (positionals[0]) {
      case 'list': {
        const status = values.status as OutboxStatus | undefined;
        if (status && !STATUSES.includes(status)) {
          out(`--status must be one of ${STATUSES.join(', ')} (got ${status})`);
          return 2;
        }
        const entries = outbox.list(status);
        if (values.json) out(JSON.stringify(entries, null, 2));
        else if (entries.length === 0) out('The outbox is empty.');
        else for (const entry of entries) out(describe(entry));
        return 0;
      }
      case 'replay': {
        const id = Number(positionals[1]);
        const entry = Number.isSafeInteger(id) ? outbox.get(id) : null;
        if (!entry) {
          out(`No outbox entry ${positionals[1] ?? '(missing id)'}`);
          return 1;
        }
        if (entry.status === 'delivered') {
          out(`Entry ${id} was delivered at ${entry.deliveredAt}; nothing to replay.`);
          return 1;
        }
        outbox.replay(id);
        out(`Entry ${id} (${entry.kind}, ${entry.dedupeKey}) is pending again; the ERP service delivers it shortly.`);
        return 0;
      }
      default:
        out(`Unknown command "${positionals[0]}"\n\n${HELP}`);
        return 2;
    }
  } finally {
    db.close();
  }
}

function describe(entry: OutboxEntry): string {
  const when =
    entry.status === 'delivered'
      ? `delivered ${entry.deliveredAt}`
      : entry.status === 'dead'
        ? 'dead-lettered'
        : `next try ${new Date(entry.nextAttemptAt).toISOString()}`;
  return `${String(entry.id).padStart(5)}  ${entry.status.padEnd(9)} ${entry.kind.padEnd(13)} ${entry.dedupeKey.padEnd(28)} attempts ${entry.attempts}  ${when}${entry.lastError ? `\n       last error: ${entry.lastError}` : ''}`;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  try {
    process.exitCode = runOutboxCli(process.argv.slice(2));
  } catch (error) {
    console.error(`outbox: ${(error as Error).message}`);
    process.exitCode = 2;
  }
}
