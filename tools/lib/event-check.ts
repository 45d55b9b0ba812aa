import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { canonicalEvent } from '../../platform/events/cloudevent.ts';

/**
 * The event half of the schema registry check. Canonical events have a JSON Schema per type
 * (schema/events/<type>.json, the schema of the event's data); consumers register what they read
 * of them (schema/events/consumers/<consumer>.json). The check fails when a registration names
 * something the schemas do not have, and when a change to the schemas against the base (the
 * latest published version, or a git ref) breaks something a registered consumer reads. What no
 * consumer reads is a warning: nothing registered depends on it, unregistered consumers might.
 */

export type JsonSchema = Record<string, unknown>;
export type EventChangeLevel = 'breaking' | 'dangerous' | 'safe';

/** What `"x-invalidates"` in a consumer's reads stands for: the type's entity refs and their key fields. */
export const INVALIDATES = 'x-invalidates';

/** A consumer's registration, as schema/events/consumers/<consumer>.json holds it. */
export interface RegisteredConsumer {
  name: string;
  /** The registration file, as messages name it. */
  file: string;
  description: string;
  /** Envelope attributes it reads (`time`, `correlationid`, …): checked against what canonical events carry. */
  envelope: readonly string[];
  /** Per event type (or `*`, every type): data fields, `field?` for one it tolerates missing, or `x-invalidates`. */
  reads: Readonly<Record<string, readonly string[]>>;
}

export interface EventChange {
  level: EventChangeLevel;
  type: string;
  /** The data field the change is about; null for the type itself or its x-invalidates. */
  field: string | null;
  /** `concord.case.updated.status`, `concord.case.updated.x-invalidates`, `concord.case.updated`. */
  path: string;
  message: string;
  /** Registered consumers that read what changed. */
  readBy: string[];
  /** The change asks every producer of the type to fill a field (a new required one): a warning whoever reads it. */
  producers?: true;
}

export interface ConsumerResult {
  consumer: string;
  file: string;
  /** What it reads, in one line. */
  summary: string;
  /** What it reads that the schemas do not have; empty when its registration holds. */
  errors: string[];
}

export interface EventCheckReport {
  verdict: 'pass' | 'fail';
  /** The event schema folder, as messages name it. */
  dir: string;
  types: number;
  base: string | null;
  consumers: ConsumerResult[];
  /** Changes against the base; null when there is no base to compare with. */
  changes: EventChange[] | null;
  failures: string[];
  warnings: string[];
}

export interface EventCheckInput {
  /** The event schema folder, as messages name it (schema/events). */
  dir: string;
  /** Each type's data schema. */
  schemas: ReadonlyMap<string, JsonSchema>;
  consumers: readonly RegisteredConsumer[];
  /** Registration files that could not be read, one line each (they fail the check). */
  consumerErrors: readonly string[];
  /**
   * The schemas to compare with, with their label; `schemas` null: the base has none (a version
   * published before the registry recorded them, a git ref before they existed), `hint` says why.
   */
  base: { label: string; schemas: ReadonlyMap<string, JsonSchema> | null; hint?: string } | null;
}

/** Each type's schema file text, by type (files `<type>.json` of `dir`); null when `dir` does not exist. */
export function readEventSchemaTexts(dir: string): Map<string, string> | null {
  if (!existsSync(dir)) return null;
  const texts = new Map<string, string>();
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (!name.endsWith('.json') || !statSync(path).isFile()) continue;
    texts.set(name.slice(0, -'.json'.length), readFileSync(path, 'utf8'));
  }
  return texts;
}

/** The schemas of `texts`, parsed; a file that is not JSON stops the check (`where` names its folder). */
export function parseEventSchemas(texts: ReadonlyMap<string, string>, where: string): Map<string, JsonSchema> {
  const schemas = new Map<string, JsonSchema>();
  for (const [type, text] of texts) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (error) {
      throw new Error(`${where}/${type}.json does not parse: ${(error as Error).message}`);
    }
    if (!isObject(parsed)) throw new Error(`${where}/${type}.json is not a JSON Schema object`);
    schemas.set(type, parsed);
  }
  return schemas;
}

const FIELD = /^[A-Za-z_$][A-Za-z0-9_$]*\??$/;

const registrationSchema = z.strictObject({
  consumer: z.string().regex(/^[a-z][a-z0-9-]*$/, 'lower case letters, digits and dashes'),
  description: z.string().min(1),
  code: z.array(z.string().min(1)).optional(),
  envelope: z.array(z.string().min(1)).optional(),
  reads: z.record(
    z.string().min(1),
    z
      .array(z.string().refine((entry) => entry === INVALIDATES || FIELD.test(entry), 'a data field name, `name?`, or "x-invalidates"'))
      .min(1),
  ),
});

/**
 * Reads every registration in `dir` (one `<consumer>.json` each; none when `dir` does not exist).
 * A file that does not parse, or does not have the registration's shape, is an error line naming
 * it, not a crash: the check reports it and fails.
 */
export function loadConsumers(dir: string, label: string): { consumers: RegisteredConsumer[]; errors: string[] } {
  const consumers: RegisteredConsumer[] = [];
  const errors: string[] = [];
  if (!existsSync(dir)) return { consumers, errors };
  for (const name of readdirSync(dir).sort()) {
    if (!name.endsWith('.json')) continue;
    const file = `${label}/${name}`;
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(join(dir, name), 'utf8'));
    } catch (error) {
      errors.push(`${file} does not parse: ${(error as Error).message}`);
      continue;
    }
    const parsed = registrationSchema.safeParse(json);
    if (!parsed.success) {
      for (const issue of parsed.error.issues) errors.push(`${file}: ${issue.path.join('.') || '(file)'}: ${issue.message}`);
      continue;
    }
    const registration = parsed.data;
    if (`${registration.consumer}.json` !== name) {
      errors.push(`${file}: "consumer" is "${registration.consumer}", the file must then be ${registration.consumer}.json`);
      continue;
    }
    const wildcard = registration.reads['*'];
    if (wildcard?.some((entry) => entry !== INVALIDATES)) {
      errors.push(`${file}: reads."*" takes only "x-invalidates" (a data field is read of a named type)`);
      continue;
    }
    consumers.push({
      name: registration.consumer,
      file,
      description: registration.description,
      envelope: registration.envelope ?? [],
      reads: registration.reads,
    });
  }
  return { consumers, errors };
}

/** The envelope attributes every canonical event carries (platform/events/cloudevent.ts). */
export function envelopeAttributes(): string[] {
  const sample = canonicalEvent(
    { type: 'concord.sample.event', subject: 'sample/1', data: null },
    { source: 'concord/check', correlationId: 'c', sequence: 1, at: new Date(0), id: 'i' },
  );
  return Object.keys(sample).filter((key) => key !== 'data');
}

/** Runs the check: the registrations against the schemas, then the schemas against the base. */
export function checkEvents(input: EventCheckInput): EventCheckReport {
  const report: EventCheckReport = {
    verdict: 'pass',
    dir: input.dir,
    types: input.schemas.size,
    base: input.base?.label ?? null,
    consumers: [],
    changes: null,
    failures: [...input.consumerErrors.map((error) => `Consumer registration invalid: ${error}`)],
    warnings: [],
  };

  const attributes = envelopeAttributes();
  for (const consumer of input.consumers) {
    const errors = registrationErrors(consumer, input.schemas, input.dir, attributes);
    report.consumers.push({ consumer: consumer.name, file: consumer.file, summary: summarize(consumer, input.schemas), errors });
    report.failures.push(...errors);
  }

  if (!input.base) {
    report.warnings.push('No base for the event schemas: publish a version (npm run schema:publish) or pass --base <git ref>.');
  } else if (!input.base.schemas) {
    report.warnings.push(`No base for the event schemas: ${input.base.label} has none${input.base.hint ? ` (${input.base.hint})` : ''}.`);
  } else {
    report.changes = diffSchemas(input.base.schemas, input.schemas, input.consumers);
    for (const change of report.changes) {
      const what = `${change.type}: ${change.message}`;
      const readers = change.readBy.join(', ');
      if (change.level === 'breaking') {
        if (change.readBy.length) report.failures.push(`Breaking event change read by ${readers}: ${what}`);
        else report.warnings.push(`Breaking event change no registered consumer reads: ${what}`);
      } else if (change.level === 'dangerous') {
        if (change.producers) report.warnings.push(`Event change producers must follow: ${what}`);
        else if (change.readBy.length) report.warnings.push(`Event change read by ${readers} (check it copes): ${what}`);
      }
    }
  }

  report.verdict = report.failures.length ? 'fail' : 'pass';
  return report;
}

/** What a registration names that the current schemas do not have. */
function registrationErrors(
  consumer: RegisteredConsumer,
  schemas: ReadonlyMap<string, JsonSchema>,
  dir: string,
  attributes: readonly string[],
): string[] {
  const errors: string[] = [];
  const who = `Consumer ${consumer.name} (${consumer.file})`;
  for (const attribute of consumer.envelope)
    if (!attributes.includes(attribute))
      errors.push(`${who} reads envelope attribute '${attribute}', which canonical events do not have (${attributes.join(', ')})`);
  for (const [type, entries] of Object.entries(consumer.reads)) {
    const types = type === '*' ? [...schemas.keys()] : [type];
    const schema = schemas.get(type);
    if (type !== '*' && !schema) {
      errors.push(`${who} reads ${type}, which has no schema in ${dir}`);
      continue;
    }
    for (const entry of entries) {
      if (entry === INVALIDATES) {
        for (const each of types) {
          const eachSchema = schemas.get(each)!;
          const refs = refsOf(eachSchema);
          if (!refs.length && type !== '*') errors.push(`${who} reads the x-invalidates of ${each}, which names no entity`);
          for (const ref of refs)
            if (!propertiesOf(eachSchema).has(ref.key))
              errors.push(`${who} reads the x-invalidates of ${each}: its key '${ref.key}' (of ${ref.type}) is not a field of its data`);
        }
        continue;
      }
      const field = entry.replace(/\?$/, '');
      const properties = propertiesOf(schema!);
      if (!properties.has(field))
        errors.push(
          `${who} reads data field '${field}' of ${type}, which its schema does not have (it has ${[...properties.keys()].join(', ')})`,
        );
    }
  }
  return errors;
}

function summarize(consumer: RegisteredConsumer, schemas: ReadonlyMap<string, JsonSchema>): string {
  const parts: string[] = [];
  if (consumer.reads['*']?.includes(INVALIDATES)) parts.push(`x-invalidates of every type (${schemas.size})`);
  for (const [type, entries] of Object.entries(consumer.reads)) {
    if (type === '*') continue;
    parts.push(`${type}: ${entries.join(', ')}`);
  }
  if (consumer.envelope.length) parts.push(`envelope: ${consumer.envelope.join(', ')}`);
  return parts.join('; ');
}

// --- What a consumer reads ------------------------------------------------------------------

function readsInvalidates(consumer: RegisteredConsumer, type: string): boolean {
  return Boolean(consumer.reads[type]?.includes(INVALIDATES) || consumer.reads['*']?.includes(INVALIDATES));
}

/**
 * Whether `consumer` reads `field` of `type` (a registered field, or an x-invalidates key of the
 * base schema), and whether it needs it present: an x-invalidates key is read only when there
 * (an event without it names one entity fewer).
 */
function readOf(consumer: RegisteredConsumer, type: string, field: string, baseSchema: JsonSchema): 'required' | 'optional' | null {
  const entries = consumer.reads[type] ?? [];
  if (entries.includes(field)) return 'required';
  if (entries.includes(`${field}?`)) return 'optional';
  if (readsInvalidates(consumer, type) && refsOf(baseSchema).some((ref) => ref.key === field)) return 'optional';
  return null;
}

// --- Comparing two versions of the schemas --------------------------------------------------

/** Each change between the base's schemas and the current ones, with the consumers that read it. */
export function diffSchemas(
  base: ReadonlyMap<string, JsonSchema>,
  current: ReadonlyMap<string, JsonSchema>,
  consumers: readonly RegisteredConsumer[],
): EventChange[] {
  const changes: EventChange[] = [];
  const types = [...new Set([...base.keys(), ...current.keys()])].sort();
  for (const type of types) {
    const before = base.get(type);
    const after = current.get(type);
    if (!before) {
      changes.push({ level: 'safe', type, field: null, path: type, message: `event type ${type} was added`, readBy: [] });
      continue;
    }
    if (!after) {
      // A consumer of every type ("*") stops getting it; one that names it waits for it in vain.
      const readBy = consumers.filter((consumer) => consumer.reads[type] !== undefined).map((consumer) => consumer.name);
      changes.push({ level: 'breaking', type, field: null, path: type, message: `event type ${type} was removed`, readBy });
      continue;
    }
    changes.push(...diffRefs(type, before, after, consumers));
    changes.push(...diffFields(type, before, after, consumers));
  }
  return changes;
}

function diffRefs(type: string, before: JsonSchema, after: JsonSchema, consumers: readonly RegisteredConsumer[]): EventChange[] {
  const changes: EventChange[] = [];
  const path = `${type}.${INVALIDATES}`;
  const readBy = consumers.filter((consumer) => readsInvalidates(consumer, type)).map((consumer) => consumer.name);
  const was = refsOf(before);
  const now = refsOf(after);
  const same = (a: EntityRef, b: EntityRef) => a.type === b.type && a.key === b.key;
  for (const ref of was) {
    if (now.some((other) => same(ref, other))) continue;
    const moved = now.filter((other) => other.type === ref.type && !was.some((old) => same(old, other)));
    const message = moved.length
      ? `x-invalidates names ${ref.type} by '${moved.map((other) => other.key).join("', '")}' instead of '${ref.key}'`
      : `x-invalidates no longer names ${ref.type} (by '${ref.key}')`;
    changes.push({ level: 'breaking', type, field: null, path, message, readBy });
  }
  for (const ref of now) {
    if (was.some((other) => same(ref, other)) || was.some((other) => other.type === ref.type)) continue;
    changes.push({ level: 'safe', type, field: null, path, message: `x-invalidates now also names ${ref.type} (by '${ref.key}')`, readBy });
  }
  return changes;
}

function diffFields(type: string, before: JsonSchema, after: JsonSchema, consumers: readonly RegisteredConsumer[]): EventChange[] {
  const changes: EventChange[] = [];
  const was = propertiesOf(before);
  const now = propertiesOf(after);
  const readers = (field: string, needsIt = false) =>
    consumers
      .filter((consumer) => {
        const read = readOf(consumer, type, field, before);
        return needsIt ? read === 'required' : read !== null;
      })
      .map((consumer) => consumer.name);
  const change = (level: EventChangeLevel, field: string, message: string, readBy: string[], producers = false) =>
    changes.push({ level, type, field, path: `${type}.${field}`, message, readBy, ...(producers ? { producers: true as const } : {}) });

  const added = [...now.keys()].filter((field) => !was.has(field));
  for (const [field, schema] of was) {
    if (now.has(field)) continue;
    // Gone, and a new field with the same schema: most likely a rename.
    const renamed = added.filter((other) => sameShape(schema, now.get(other)));
    change(
      'breaking',
      field,
      `data field '${field}' was removed${renamed.length ? ` (renamed to '${renamed.join("' or '")}'?)` : ''}`,
      readers(field),
    );
  }
  for (const field of added) {
    const need = requirement(after, field);
    if (need === REQUIRED) change('dangerous', field, `new required data field '${field}': every producer must fill it`, [], true);
    else if (need === SOMETIMES)
      change('dangerous', field, `new data field '${field}', required in some cases: producers must fill it then`, [], true);
    else change('safe', field, `optional data field '${field}' was added`, []);
  }
  for (const [field, schema] of was) {
    const next = now.get(field);
    if (next === undefined) continue;
    const from = requirement(before, field);
    const to = requirement(after, field);
    if (to < from)
      change(
        'breaking',
        field,
        `data field '${field}' is no longer required${to === SOMETIMES ? ' in every case (now only in some)' : from === SOMETIMES ? ' in any case (now optional)' : ' (now optional)'}`,
        readers(field, true),
      );
    else if (to > from)
      change(
        'dangerous',
        field,
        `data field '${field}' is now required${to === SOMETIMES ? ' in some cases' : ''}: every producer must fill it`,
        readers(field),
        true,
      );
    const shape = compareShape(schema, next, field);
    for (const message of shape.narrowed) change('breaking', field, message, readers(field));
    for (const message of shape.widened) change('dangerous', field, message, readers(field));
    for (const message of shape.other) change('dangerous', field, message, readers(field));
  }
  return changes;
}

const OPTIONAL = 0;
const SOMETIMES = 1;
const REQUIRED = 2;

/**
 * How surely a field is in the data: always (`required`, or `required` of an `allOf` part), in
 * some cases (`required` of a `then`/`else`, `anyOf` or `oneOf` branch: `concord.order.updated`
 * requires `status` unless the order was deleted), or not necessarily.
 */
function requirement(schema: JsonSchema, field: string): number {
  const requires = (part: unknown) => isObject(part) && Array.isArray(part.required) && part.required.includes(field);
  if (requires(schema) || arrayOf(schema.allOf).some(requires)) return REQUIRED;
  if (isObject(schema.if) && requires(schema.then) && requires(schema.else)) return REQUIRED;
  if ([schema.then, schema.else, ...arrayOf(schema.anyOf), ...arrayOf(schema.oneOf)].some(requires)) return SOMETIMES;
  return OPTIONAL;
}

/** Keywords that say nothing about the values a consumer gets. */
const ANNOTATIONS = new Set(['description', 'title', '$comment', 'examples', 'default']);
/** Keywords compared one by one below; any other that differs is reported as changed. */
const SHAPED = new Set(['type', 'enum', 'const', 'pattern', 'items']);

/**
 * How the values a field may take changed: narrowed (its `type`, `enum`/`const` or `pattern`
 * allows less, or a pattern changed, which cannot be shown to allow as much), widened (it allows
 * more: a consumer may get a value it does not know), or otherwise (bounds, format, …). Arrays'
 * items are compared the same way (`changes[]`).
 */
function compareShape(before: unknown, after: unknown, at: string): { narrowed: string[]; widened: string[]; other: string[] } {
  const result = { narrowed: [] as string[], widened: [] as string[], other: [] as string[] };
  const was = isObject(before) ? before : {};
  const now = isObject(after) ? after : {};
  const name = `data field '${at}'`;

  const wasValues = valuesOf(was);
  const nowValues = valuesOf(now);
  const explicitTypes = was.type !== undefined || now.type !== undefined;
  const wasTypes = typesOf(was, explicitTypes);
  const nowTypes = typesOf(now, explicitTypes);
  if (explicitTypes) {
    if (wasTypes === null && nowTypes !== null) result.narrowed.push(`${name} must now be of type ${[...nowTypes].join('|')}`);
    else if (wasTypes !== null && nowTypes === null) result.widened.push(`${name} may now be of any type`);
    else if (wasTypes && nowTypes) {
      const lost = [...wasTypes].filter((type) => !covers(nowTypes, type));
      const gained = [...nowTypes].filter((type) => !covers(wasTypes, type));
      const change = `${[...wasTypes].join('|')} → ${[...nowTypes].join('|')}`;
      if (lost.length) result.narrowed.push(`${name} no longer allows type ${lost.join(', ')} (${change})`);
      if (gained.length) result.widened.push(`${name} may now be of type ${gained.join(', ')} (${change})`);
    }
  }

  if (wasValues === null && nowValues !== null) result.narrowed.push(`${name} is now limited to ${nowValues.map(show).join(', ')}`);
  else if (wasValues !== null && nowValues === null)
    result.widened.push(`${name} is no longer limited to ${wasValues.map(show).join(', ')}`);
  else if (wasValues && nowValues) {
    const lost = wasValues.filter((value) => !nowValues.some((other) => show(other) === show(value)));
    const gained = nowValues.filter((value) => !wasValues.some((other) => show(other) === show(value)));
    if (lost.length) result.narrowed.push(`${name} no longer allows ${lost.map(show).join(', ')}`);
    if (gained.length) result.widened.push(`${name} may now be ${gained.map(show).join(', ')}`);
  }

  const wasPattern = typeof was.pattern === 'string' ? was.pattern : null;
  const nowPattern = typeof now.pattern === 'string' ? now.pattern : null;
  if (wasPattern === null && nowPattern !== null) result.narrowed.push(`${name} must now match /${nowPattern}/`);
  else if (wasPattern !== null && nowPattern === null) result.widened.push(`${name} no longer has a pattern (was /${wasPattern}/)`);
  else if (wasPattern !== null && nowPattern !== null && wasPattern !== nowPattern)
    result.narrowed.push(`${name} must now match /${nowPattern}/ instead of /${wasPattern}/ (a changed pattern counts as narrowed)`);

  if (isObject(was.items) || isObject(now.items)) {
    const items = compareShape(was.items, now.items, `${at}[]`);
    result.narrowed.push(...items.narrowed);
    result.widened.push(...items.widened);
    result.other.push(...items.other);
  }

  for (const keyword of [...new Set([...Object.keys(was), ...Object.keys(now)])].sort()) {
    if (ANNOTATIONS.has(keyword) || SHAPED.has(keyword)) continue;
    if (show(was[keyword]) === show(now[keyword])) continue;
    result.other.push(`${name}: ${keyword} changed (${show(was[keyword])} → ${show(now[keyword])})`);
  }
  return result;
}

function sameShape(a: unknown, b: unknown): boolean {
  const { narrowed, widened, other } = compareShape(a, b, '');
  return !narrowed.length && !widened.length && !other.length;
}

function valuesOf(schema: JsonSchema): unknown[] | null {
  if ('const' in schema) return [schema.const];
  return Array.isArray(schema.enum) ? schema.enum : null;
}

/** The JSON types a schema allows; from its values when it has no `type` and `derive` (the other side has one). */
function typesOf(schema: JsonSchema, derive: boolean): Set<string> | null {
  if (typeof schema.type === 'string') return new Set([schema.type]);
  if (Array.isArray(schema.type)) return new Set(schema.type.map(String));
  const values = valuesOf(schema);
  if (!derive || !values) return null;
  return new Set(
    values.map((value) =>
      value === null ? 'null' : Array.isArray(value) ? 'array' : Number.isInteger(value) ? 'integer' : (typeof value as string),
    ),
  );
}

function covers(types: ReadonlySet<string>, type: string): boolean {
  return types.has(type) || (type === 'integer' && types.has('number'));
}

function show(value: unknown): string {
  return value === undefined ? 'none' : JSON.stringify(value);
}

interface EntityRef {
  type: string;
  key: string;
}

function refsOf(schema: JsonSchema): EntityRef[] {
  return arrayOf(schema[INVALIDATES]).filter(
    (ref): ref is EntityRef => isObject(ref) && typeof ref.type === 'string' && typeof ref.key === 'string',
  );
}

function propertiesOf(schema: JsonSchema): Map<string, unknown> {
  return new Map(isObject(schema.properties) ? Object.entries(schema.properties) : []);
}

function arrayOf(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

// --- The report's events section ------------------------------------------------------------

function counts(changes: readonly EventChange[]): string {
  const n = (level: EventChangeLevel) => changes.filter((change) => change.level === level).length;
  return `${n('breaking')} breaking, ${n('dangerous')} dangerous, ${n('safe')} safe`;
}

const LEVEL_LABEL = { breaking: 'BREAKING', dangerous: 'dangerous', safe: 'safe' } as const;

/** The events section of the text report (its warnings and failures are listed with the report's). */
export function renderEventsText(report: EventCheckReport | null): string[] {
  if (!report) return ['  Events: no event schemas found, not checked'];
  const lines = [`  Events: ${report.types} types in ${report.dir}, ${report.consumers.length} registered consumers`];
  for (const consumer of report.consumers) {
    lines.push(`    ${consumer.errors.length ? '✖' : '✔'} ${consumer.consumer}: ${consumer.summary}`);
    for (const error of consumer.errors) lines.push(`      ${error}`);
  }
  if (!report.changes) lines.push('  Event changes: no base to compare with');
  else {
    lines.push(`  Event changes against ${report.base}: ${report.changes.length ? counts(report.changes) : 'none'}`);
    for (const change of report.changes) {
      const mark = change.level === 'breaking' ? (change.readBy.length ? '✖' : '!') : '·';
      lines.push(`    ${mark} ${LEVEL_LABEL[change.level].padEnd(9)} ${change.path.padEnd(40)} ${change.message}`);
      if (change.readBy.length) lines.push(`      read by ${change.readBy.join(', ')}`);
    }
  }
  return lines;
}

/** The events section of the Markdown report. */
export function renderEventsMarkdown(report: EventCheckReport | null): string[] {
  if (!report) return ['**Events**: no event schemas found, not checked.', ''];
  const lines = [
    `**Events**: ${report.types} types, ${report.consumers.length} registered consumers (${report.consumers.map((consumer) => consumer.consumer).join(', ') || 'none'}).`,
  ];
  for (const consumer of report.consumers) for (const error of consumer.errors) lines.push(`- ${escape(error)}`);
  lines.push('');
  if (!report.changes) lines.push('No base to compare the event schemas with.', '');
  else if (!report.changes.length) lines.push(`No changes to the event schemas against ${report.base}.`, '');
  else {
    lines.push(
      `**Event changes** against ${report.base}: ${counts(report.changes)}`,
      '',
      '| level | event field | change | read by |',
      '| --- | --- | --- | --- |',
    );
    for (const change of report.changes)
      lines.push(`| ${LEVEL_LABEL[change.level]} | \`${change.path}\` | ${escape(change.message)} | ${change.readBy.join(', ') || '—'} |`);
    lines.push('');
  }
  return lines;
}

function escape(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}
