import { userInfo } from 'node:os';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { configuredEnv } from '../platform/config-file.ts';
import { ConfigError } from '../platform/config.ts';
import { createLogger } from '../platform/logger.ts';
import { openDatabase } from '../platform/sqlite.ts';
import { systemClock } from '../platform/time.ts';
import {
  createWorkflowEngine,
  OperatorActionError,
  type OperatorAction,
  type WorkflowDefinition,
  type WorkflowDetail,
  type WorkflowInstance,
  type WorkflowState,
} from '../platform/workflow/engine.ts';
import { postgresExecutor, sqliteExecutor, type SqlExecutor } from '../platform/workflow/sql.ts';
import { loadProcessesConfig } from '../processes/src/config.ts';
import { workflowsOf } from '../processes/src/workflows/index.ts';
import { MAX_REASON_LENGTH } from '../processes/src/resolvers/Mutation.ts';

const HELP = `Usage:
  npm run workflows -- list [--state running|waiting|done|failed|compensated] [--type <type>] [--customer <id>] [--limit <n>] [--json]
  npm run workflows -- show <id> [--json]
  npm run workflows -- retry|skip|compensate <id> [--operator <name>] [--reason <why>]

The process service's workflows, in its store (PROCESS_DATABASE_URL; by default
$DATA_DIR/workflows.sqlite). "list --state failed" is the exception queue: workflows parked with
their reason. An operator then decides, and the decision is kept in the workflow's history, with
who decided (--operator, default the login name) and why (--reason, at most 500 characters):
  retry       run the parked step again, with fresh attempts
  skip        mark the parked step skipped (done by hand) and go on with the next one
  compensate  undo the steps done so far, newest first, where the business allows it
The running process service picks the workflow up within WORKFLOW_POLL_MS.`;

const STATES: readonly WorkflowState[] = ['running', 'waiting', 'done', 'failed', 'compensated'];
const ACTIONS: readonly OperatorAction[] = ['retry', 'skip', 'compensate'];

export interface WorkflowsCliOptions {
  /** Workflow types beside the service's own (tests use their own through the real store). */
  readonly extraWorkflows?: readonly WorkflowDefinition[];
  /** An open store in place of the configured one. */
  readonly sql?: SqlExecutor;
}

/** Runs one workflows command; resolves to the exit code (0 done, 1 not found or not applicable, 2 usage, 78 configuration). */
export async function runWorkflowsCli(
  argv: readonly string[],
  out: (line: string) => void = console.log,
  env: NodeJS.ProcessEnv = configuredEnv('processes'),
  options: WorkflowsCliOptions = {},
): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        state: { type: 'string' },
        type: { type: 'string' },
        customer: { type: 'string' },
        limit: { type: 'string', default: '50' },
        operator: { type: 'string' },
        reason: { type: 'string' },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', default: false },
      },
    });
  } catch (error) {
    out(`${(error as Error).message}\n\n${HELP}`);
    return 2;
  }
  const { values, positionals } = parsed;
  const [command, id] = positionals;
  if (values.help || !command) {
    out(HELP);
    return values.help ? 0 : 2;
  }
  const state = values.state as WorkflowState | undefined;
  if (state && !STATES.includes(state)) {
    out(`--state must be one of ${STATES.join(', ')} (got ${state})`);
    return 2;
  }
  const limit = Number(values.limit);
  if (!Number.isInteger(limit) || limit < 1 || limit > 1_000) {
    out(`--limit must be a whole number from 1 to 1000 (got ${values.limit})`);
    return 2;
  }
  if (command !== 'list' && !id) {
    out(`${command} needs a workflow id\n\n${HELP}`);
    return 2;
  }
  if (command !== 'list' && command !== 'show' && !ACTIONS.includes(command as OperatorAction)) {
    out(`Unknown command "${command}"\n\n${HELP}`);
    return 2;
  }

  let sql = options.sql;
  if (!sql) {
    let config;
    try {
      config = loadProcessesConfig(env);
    } catch (error) {
      if (error instanceof ConfigError) {
        out(error.message);
        return 78;
      }
      throw error;
    }
    sql =
      config.store.kind === 'postgres'
        ? postgresExecutor({ url: config.store.url, max: 2, applicationName: 'concord-workflows-cli' })
        : sqliteExecutor(openDatabase(config.store.file));
  }
  // The operator's decisions are audited on stderr; the answer goes to `out`.
  const logger = createLogger('workflows-cli', 'warn', { write: (line: string) => void process.stderr.write(line) });
  const unreachable = {
    request: async () => {
      throw new Error('the workflows command runs no step: the process service does');
    },
  };
  const noLedger = { authorizedWithinWindow: unreachable.request, record: unreachable.request };
  const engine = await createWorkflowEngine({
    sql,
    workflows: [
      ...workflowsOf({
        graph: unreachable,
        logger,
        clock: systemClock,
        returns: { agentLimit: 0, agentLimitWindowHours: 24, approvals: noLedger },
      }),
      ...(options.extraWorkflows ?? []),
    ],
    logger,
    owner: 'workflows-cli',
  });
  try {
    if (command === 'list') {
      const found = await engine.list({
        ...(state ? { state } : {}),
        ...(values.type ? { type: values.type } : {}),
        ...(values.customer ? { customerId: values.customer } : {}),
        limit,
      });
      if (values.json) out(JSON.stringify(found.map(summaryOf), null, 2));
      else if (found.length === 0) out(state === 'failed' ? 'The exception queue is empty.' : 'No workflow matches.');
      else for (const instance of found) out(lineOf(instance));
      return 0;
    }
    if (command === 'show') {
      const detail = await engine.get(id!);
      if (!detail) {
        out(`No workflow ${id}`);
        return 1;
      }
      out(values.json ? JSON.stringify(detailOf(detail), null, 2) : describe(detail));
      return 0;
    }
    const operator = values.operator ?? env.USER ?? userInfo().username;
    const reason = values.reason?.trim() || null;
    if (reason && reason.length > MAX_REASON_LENGTH) {
      out(`--reason is ${reason.length} characters; at most ${MAX_REASON_LENGTH}`);
      return 2;
    }
    try {
      const after = await engine.act(id!, command as OperatorAction, operator, reason);
      out(`${after.id}: ${command} recorded (by ${operator}); it is ${after.state} and the process service runs it shortly.`);
      return 0;
    } catch (error) {
      if (error instanceof OperatorActionError) {
        out(error.message);
        return 1;
      }
      throw error;
    }
  } finally {
    await engine.stop(0);
    if (!options.sql) await sql.close();
  }
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

function summaryOf(instance: WorkflowInstance) {
  return {
    id: instance.id,
    type: instance.type,
    state: instance.state,
    phase: instance.phase,
    currentStep: instance.currentStep,
    attempts: instance.attempts,
    customerId: instance.customerId,
    correlationId: instance.correlationId,
    lastError: instance.lastError,
    parkedReason: instance.parkedReason,
    createdAt: iso(instance.createdAt),
    updatedAt: iso(instance.updatedAt),
  };
}

function detailOf(detail: WorkflowDetail) {
  return {
    ...summaryOf(detail),
    input: detail.input,
    steps: detail.steps.map((step) => ({ ...step, startedAt: iso(step.startedAt), finishedAt: iso(step.finishedAt) })),
    history: detail.history.map((entry) => ({ ...entry, at: iso(entry.at) })),
  };
}

function lineOf(instance: WorkflowInstance): string {
  const where = instance.currentStep ? ` at ${instance.currentStep} (attempt ${instance.attempts})` : '';
  const why = instance.parkedReason ?? instance.lastError;
  return `${instance.id}  ${instance.type}  ${instance.state}${where}  customer ${instance.customerId ?? '-'}  ${iso(instance.createdAt)}${why ? `  ${why}` : ''}`;
}

function describe(detail: WorkflowDetail): string {
  const lines = [
    `${detail.id}  ${detail.type}  ${detail.state} (${detail.phase})`,
    `  customer ${detail.customerId ?? '-'}  correlation ${detail.correlationId}  started ${iso(detail.createdAt)}`,
  ];
  if (detail.parkedReason) lines.push(`  parked: ${detail.parkedReason}`);
  lines.push('  steps:');
  for (const step of detail.steps)
    lines.push(
      `    ${step.phase === 'forward' ? '→' : '←'} ${step.name}  ${step.state}  attempts ${step.attempts}${step.lastError ? `  ${step.lastError}` : ''}`,
    );
  lines.push('  history:');
  for (const entry of detail.history) lines.push(`    ${iso(entry.at)}  ${entry.event}${entry.detail ? `  ${entry.detail}` : ''}`);
  return lines.join('\n');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  runWorkflowsCli(process.argv.slice(2)).then(
    (code) => (process.exitCode = code),
    (error: unknown) => {
      console.error(`workflows: ${(error as Error).message}`);
      process.exitCode = 1;
    },
  );
}
