import { CriticalityLevel, diff, type Change } from '@graphql-inspector/core';
import { buildSchema, extendSchema, isEnumType, isInputObjectType, parse, validate, type GraphQLSchema } from 'graphql';
import { LIVE_SDL } from '../../gateway/src/live/fields.ts';
import { apiSchemaOf, printApiSchema } from './api-schema.ts';
import { composeSubgraphs, type SubgraphSource } from './composition.ts';
import { checkEvents, type EventCheckInput, type EventCheckReport } from './event-check.ts';
import { coordinatesUsed, type RegisteredOperation } from './operations.ts';

export type ChangeLevel = 'breaking' | 'dangerous' | 'safe';

/** A registered operation that a change touches. */
export interface OperationUse {
  client: string;
  operation: string;
}

export interface ClassifiedChange {
  level: ChangeLevel;
  /** Schema coordinate the change is about (`Order.status`, `Query.cases.first`, `CasePriority.LOW`). */
  path: string;
  message: string;
  /** Registered operations that use what changed. */
  usedBy: OperationUse[];
}

export interface OperationResult {
  client: string;
  operation: string;
  file: string;
  /** Validation errors against the new API schema; empty when the operation still works. */
  errors: string[];
}

export interface CheckReport {
  /** pass: exit 0; fail: exit 1 (composition, stale supergraph, breaking change in use, invalid operation). */
  verdict: 'pass' | 'fail';
  base: string | null;
  composition: { ok: boolean; errors: string[] };
  /** null when composition failed, so there is nothing to compare. */
  supergraphUpToDate: boolean | null;
  changes: ClassifiedChange[];
  operations: OperationResult[];
  /** Why the check failed, one line each. */
  failures: string[];
  warnings: string[];
  /** What the subgraphs compose to, when they compose. */
  composed: { supergraphSdl: string; apiSdl: string } | null;
  /** The event schemas' check (tools/lib/event-check.ts); null when there are none to check. Its failures and warnings are also in the lists above. */
  events: EventCheckReport | null;
}

export interface CheckInput {
  subgraphs: readonly SubgraphSource[];
  /** The committed schema/supergraph.graphql, or null when missing. */
  committedSupergraph: string | null;
  /** The API schema to diff against (latest registry version, or a git ref), with its label. */
  base: { label: string; apiSdl: string } | null;
  operations: readonly RegisteredOperation[];
  /** The event schemas, their registered consumers and their base; absent or null: not checked. */
  events?: EventCheckInput | null;
}

const LEVELS: Record<CriticalityLevel, ChangeLevel> = {
  [CriticalityLevel.Breaking]: 'breaking',
  [CriticalityLevel.Dangerous]: 'dangerous',
  [CriticalityLevel.NonBreaking]: 'safe',
};

/**
 * What a schema registry checks on a proposed change: the subgraphs compose; the committed
 * supergraph is what they compose to; each change to the API schema against the base is
 * classified; every registered operation still validates; and a breaking change fails only when
 * a registered operation uses what it breaks (otherwise it is a warning). The event schemas and
 * their registered consumers are checked alongside (tools/lib/event-check.ts), composition or not.
 */
export async function checkSchema(input: CheckInput): Promise<CheckReport> {
  const report: CheckReport = {
    verdict: 'pass',
    base: input.base?.label ?? null,
    composition: { ok: true, errors: [] },
    supergraphUpToDate: null,
    changes: [],
    operations: [],
    failures: [],
    warnings: [],
    composed: null,
    events: input.events ? checkEvents(input.events) : null,
  };
  // The events' findings follow the API schema's, whichever way the check ends.
  const withEvents = (): CheckReport => {
    if (report.events) {
      report.failures.push(...report.events.failures);
      report.warnings.push(...report.events.warnings);
    }
    report.verdict = report.failures.length ? 'fail' : 'pass';
    return report;
  };
  const outcome = composeSubgraphs(input.subgraphs);
  if (!outcome.ok) {
    report.composition = { ok: false, errors: outcome.errors };
    report.failures.push(`The subgraphs do not compose (${outcome.errors.length} error${outcome.errors.length === 1 ? '' : 's'}).`);
    return withEvents();
  }
  const apiSchema = apiSchemaOf(outcome.supergraphSdl);
  report.composed = { supergraphSdl: outcome.supergraphSdl, apiSdl: printApiSchema(apiSchema) };

  report.supergraphUpToDate = input.committedSupergraph !== null && input.committedSupergraph.trim() === outcome.supergraphSdl.trim();
  if (!report.supergraphUpToDate) {
    report.failures.push(
      input.committedSupergraph === null
        ? 'schema/supergraph.graphql is missing: run npm run compose and commit it.'
        : 'schema/supergraph.graphql is not what the subgraphs compose to: run npm run compose and commit it.',
    );
  }

  if (input.base) {
    const baseSchema = buildSchema(input.base.apiSdl);
    // A base older than one of the types subscriptions return has no subscriptions to break.
    const baseServed = (() => {
      try {
        return withLive(baseSchema);
      } catch {
        return baseSchema;
      }
    })();
    const usage = input.operations.map((operation) => ({ operation, used: coordinatesUsed(operation.document, baseServed) }));
    for (const change of await diff(baseSchema, apiSchema)) {
      const classified = classify(change, baseSchema, usage);
      report.changes.push(classified);
      if (classified.level !== 'breaking') continue;
      if (classified.usedBy.length) {
        const users = classified.usedBy.map((use) => `${use.operation} (${use.client})`).join(', ');
        report.failures.push(`Breaking change used by ${users}: ${classified.message} [${classified.path}]`);
      } else {
        report.warnings.push(`Breaking change no registered operation uses: ${classified.message} [${classified.path}]`);
      }
    }
  } else {
    report.warnings.push('No base to compare with: publish a version (npm run schema:publish) or pass --base <git ref>.');
  }

  // Subscriptions are the gateway's (gateway/src/live/fields.ts), over the supergraph's types.
  const served = withLive(apiSchema);
  for (const operation of input.operations) {
    const errors = validate(served, operation.document).map((error) => error.message);
    report.operations.push({ client: operation.client, operation: operation.name, file: operation.file, errors });
    for (const error of errors)
      report.failures.push(`Operation ${operation.name} (${operation.client}) is invalid against the new schema: ${error}`);
  }

  return withEvents();
}

function classify(
  change: Change,
  baseSchema: GraphQLSchema,
  usage: readonly { operation: RegisteredOperation; used: Set<string> }[],
): ClassifiedChange {
  const path = change.path ?? '';
  const usedBy = usage
    .filter(({ used }) => touches(path, used, baseSchema))
    .map(({ operation }) => ({ client: operation.client, operation: operation.name }));
  return { level: LEVELS[change.criticality.level], path, message: change.message, usedBy };
}

/**
 * Whether an operation that uses `used` is affected by a change at `path`. An argument's change
 * affects every use of its field (a new required argument breaks calls that omit it); a change
 * to an enum value or an input field affects every operation that uses the type, since the
 * value may arrive in a variable.
 */
function touches(path: string, used: Set<string>, baseSchema: GraphQLSchema): boolean {
  if (!path) return false;
  const [typeName = '', member, argument] = path.split('.');
  if (argument !== undefined) return used.has(`${typeName}.${member}`);
  if (member === undefined) return used.has(typeName);
  if (used.has(path)) return true;
  const type = baseSchema.getType(typeName);
  return (isEnumType(type) || isInputObjectType(type)) && used.has(typeName);
}

/** The API schema with the gateway's Subscription type, against which registered subscriptions are checked. */
function withLive(schema: GraphQLSchema): GraphQLSchema {
  return extendSchema(schema, parse(LIVE_SDL));
}
