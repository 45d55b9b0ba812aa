import { readdirSync, readFileSync } from 'node:fs';
import { Ajv, type ValidateFunction } from 'ajv';
import { fromPackageRoot } from '../package-root.ts';
import type { CanonicalEvent, EventDraft } from './cloudevent.ts';

/** schema/events/<type>.json: the JSON Schema of each event type's `data`, checked in CI. */
export const EVENT_SCHEMA_DIR = fromPackageRoot('schema/events');

/** Thrown when an event does not match its type's schema, or its type has none. */
export class InvalidEventError extends Error {
  override name = 'InvalidEventError';
}

/**
 * What an event of a type changes in the graph, as its schema's `x-invalidates` says: entities by
 * type and the data field holding their key (e.g. `{ "type": "Case", "key": "caseId" }`). The
 * gateway drops these from its caches and pushes them to subscribers; it knows no event type.
 */
export interface EntityRef {
  readonly type: string;
  readonly key: string;
}

const ENTITY_REFS = {
  type: 'array',
  items: {
    type: 'object',
    additionalProperties: false,
    required: ['type', 'key'],
    properties: { type: { type: 'string', pattern: '^[A-Z][A-Za-z0-9]*$' }, key: { type: 'string', minLength: 1 } },
  },
} as const;

function readSchemas(dir: string): Map<string, { schema: Record<string, unknown>; refs: readonly EntityRef[] }> {
  const schemas = new Map<string, { schema: Record<string, unknown>; refs: readonly EntityRef[] }>();
  for (const file of readdirSync(dir)
    .filter((name) => name.endsWith('.json'))
    .sort()) {
    const schema = JSON.parse(readFileSync(`${dir}/${file}`, 'utf8')) as Record<string, unknown>;
    schemas.set(file.slice(0, -'.json'.length), { schema, refs: (schema['x-invalidates'] as EntityRef[] | undefined) ?? [] });
  }
  return schemas;
}

/** The event types Concord knows, each with the validator of its data. */
export function loadEventSchemas(dir: string = EVENT_SCHEMA_DIR): ReadonlyMap<string, ValidateFunction> {
  const ajv = new Ajv({ allErrors: true, strict: true });
  ajv.addKeyword({ keyword: 'x-invalidates', metaSchema: ENTITY_REFS });
  const validators = new Map<string, ValidateFunction>();
  for (const [type, { schema }] of readSchemas(dir)) validators.set(type, ajv.compile(schema));
  return validators;
}

/** Each type's entities (x-invalidates), for consumers that know events only by their schemas. */
export function loadEntityRefs(dir: string = EVENT_SCHEMA_DIR): ReadonlyMap<string, readonly EntityRef[]> {
  return new Map([...readSchemas(dir)].map(([type, { refs }]) => [type, refs]));
}

/** The entities an event names, by type, with their keys (a key missing or null in the data is left out). */
export function entitiesOf(event: CanonicalEvent, refs: ReadonlyMap<string, readonly EntityRef[]>): Map<string, string[]> {
  const found = new Map<string, string[]>();
  const data = (event.data ?? {}) as Record<string, unknown>;
  for (const ref of refs.get(event.type) ?? []) {
    const value = data[ref.key];
    if (typeof value !== 'string' && typeof value !== 'number') continue;
    const keys = found.get(ref.type) ?? [];
    if (!keys.includes(String(value))) keys.push(String(value));
    found.set(ref.type, keys);
  }
  return found;
}

let loaded: ReadonlyMap<string, ValidateFunction> | null = null;

/** Refuses an event whose type has no schema or whose data does not match it. */
export function checkEvent(
  event: EventDraft | CanonicalEvent,
  schemas: ReadonlyMap<string, ValidateFunction> = (loaded ??= loadEventSchemas()),
): void {
  const validate = schemas.get(event.type);
  if (!validate) throw new InvalidEventError(`no schema for event type ${event.type} (schema/events/${event.type}.json)`);
  if (!/^[a-z]+\/[^\s/]+$/.test(event.subject))
    throw new InvalidEventError(`subject ${JSON.stringify(event.subject)} is not <entity>/<key>`);
  if (!validate(event.data))
    throw new InvalidEventError(
      `${event.type}: ${(validate.errors ?? []).map((error) => `${error.instancePath || 'data'} ${error.message}`).join('; ')}`,
    );
}
