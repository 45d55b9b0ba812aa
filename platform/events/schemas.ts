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

/** The event types Concord knows, each with the validator of its data. */
export function loadEventSchemas(dir: string = EVENT_SCHEMA_DIR): ReadonlyMap<string, ValidateFunction> {
  const ajv = new Ajv({ allErrors: true, strict: true });
  const validators = new Map<string, ValidateFunction>();
  for (const file of readdirSync(dir)
    .filter((name) => name.endsWith('.json'))
    .sort()) {
    const schema = JSON.parse(readFileSync(`${dir}/${file}`, 'utf8')) as { $id?: string };
    const type = file.slice(0, -'.json'.length);
    validators.set(type, ajv.compile(schema));
  }
  return validators;
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
