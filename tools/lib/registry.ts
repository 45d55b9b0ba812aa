import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { contentHash } from '../../platform/hash.ts';

export { contentHash };

/**
 * The schema registry kept in the repository (schema/registry/): every published supergraph and
 * its API schema, numbered, with a content hash, a date and what changed since the version
 * before; and, from the versions that record them on, the event schemas (schema/events/) as they
 * were. index.json lists the versions; v<N>/ holds their files (v<N>/events/<type>.json).
 */
const eventsEntrySchema = z.object({
  /** Of the schemas' JSON, whitespace aside (eventSchemasHash): what tells two versions' events apart. */
  hash: z.string(),
  types: z.array(z.string()),
  changes: z.array(z.string()),
});

const versionSchema = z.object({
  version: z.number().int().positive(),
  hash: z.string(),
  date: z.string(),
  commit: z.string().nullable(),
  summary: z.object({
    breaking: z.number().int(),
    dangerous: z.number().int(),
    safe: z.number().int(),
    changes: z.array(z.string()),
  }),
  /** Absent on versions published before the registry recorded event schemas: no base for them. */
  events: eventsEntrySchema.optional(),
});
const indexSchema = z.object({ versions: z.array(versionSchema) });

export type RegistryVersion = z.infer<typeof versionSchema>;

export class RegistryError extends Error {
  override name = 'RegistryError';
}

export function readVersions(dir: string): RegistryVersion[] {
  const indexPath = join(dir, 'index.json');
  if (!existsSync(indexPath)) return [];
  const parsed = indexSchema.safeParse(JSON.parse(readFileSync(indexPath, 'utf8')));
  if (!parsed.success) throw new RegistryError(`${indexPath} is not a valid registry index: ${parsed.error.issues[0]?.message}`);
  return parsed.data.versions;
}

/**
 * The newest published version with its API schema and its event schemas' files by type (null
 * when that version has none recorded), or null when nothing is published.
 */
export function latestVersion(
  dir: string,
): { version: RegistryVersion; apiSdl: string; supergraphSdl: string; eventSchemas: Map<string, string> | null } | null {
  const version = readVersions(dir).at(-1);
  if (!version) return null;
  const folder = join(dir, `v${version.version}`);
  try {
    return {
      version,
      apiSdl: readFileSync(join(folder, 'api.graphql'), 'utf8'),
      supergraphSdl: readFileSync(join(folder, 'supergraph.graphql'), 'utf8'),
      eventSchemas: version.events
        ? new Map(version.events.types.map((type) => [type, readFileSync(join(folder, 'events', `${type}.json`), 'utf8')]))
        : null,
    };
  } catch (error) {
    throw new RegistryError(`version ${version.version} is listed but its files are missing: ${(error as Error).message}`);
  }
}

/** The hash a version records for event schemas (their JSON by type, so reformatting a file changes nothing). */
export function eventSchemasHash(texts: ReadonlyMap<string, string>): string {
  const sorted = [...texts].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return contentHash(JSON.stringify(sorted.map(([type, text]) => [type, JSON.parse(text) as unknown])));
}

/** Whether `version` already holds this supergraph and these event schemas (null: none to record). */
export function isPublished(version: RegistryVersion, supergraphSdl: string, eventSchemas: ReadonlyMap<string, string> | null): boolean {
  return (
    version.hash === contentHash(supergraphSdl) && version.events?.hash === (eventSchemas ? eventSchemasHash(eventSchemas) : undefined)
  );
}

/**
 * Records a new version, with the event schemas when given (a file per type, as they are);
 * refuses one whose supergraph and event schemas are already the latest.
 */
export function publishVersion(
  dir: string,
  entry: {
    supergraphSdl: string;
    apiSdl: string;
    date: string;
    commit: string | null;
    summary: RegistryVersion['summary'];
    eventSchemas?: ReadonlyMap<string, string> | null;
    eventChanges?: readonly string[];
  },
): RegistryVersion {
  const versions = readVersions(dir);
  const hash = contentHash(entry.supergraphSdl);
  const latest = versions.at(-1);
  const eventSchemas = entry.eventSchemas ?? null;
  if (latest && isPublished(latest, entry.supergraphSdl, eventSchemas))
    throw new RegistryError(`this supergraph is already published as version ${latest.version} (${hash.slice(0, 19)}…)`);
  const version: RegistryVersion = {
    version: (latest?.version ?? 0) + 1,
    hash,
    date: entry.date,
    commit: entry.commit,
    summary: entry.summary,
    ...(eventSchemas
      ? {
          events: {
            hash: eventSchemasHash(eventSchemas),
            types: [...eventSchemas.keys()].sort(),
            changes: [...(entry.eventChanges ?? [])],
          },
        }
      : {}),
  };
  const folder = join(dir, `v${version.version}`);
  mkdirSync(folder, { recursive: true });
  writeFileSync(join(folder, 'supergraph.graphql'), entry.supergraphSdl);
  writeFileSync(join(folder, 'api.graphql'), entry.apiSdl);
  if (eventSchemas) {
    mkdirSync(join(folder, 'events'), { recursive: true });
    for (const [type, text] of eventSchemas) writeFileSync(join(folder, 'events', `${type}.json`), text);
  }
  writeFileSync(join(dir, 'index.json'), `${JSON.stringify({ versions: [...versions, version] }, null, 2)}\n`);
  return version;
}
