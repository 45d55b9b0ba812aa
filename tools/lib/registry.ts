import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { contentHash } from '../../platform/hash.ts';

export { contentHash };

/**
 * The schema registry kept in the repository (schema/registry/): every published supergraph and
 * its API schema, numbered, with a content hash, a date and what changed since the version
 * before. index.json lists the versions; v<N>/ holds their files.
 */
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

/** The newest published version with its API schema, or null when nothing is published. */
export function latestVersion(dir: string): { version: RegistryVersion; apiSdl: string; supergraphSdl: string } | null {
  const version = readVersions(dir).at(-1);
  if (!version) return null;
  const folder = join(dir, `v${version.version}`);
  try {
    return {
      version,
      apiSdl: readFileSync(join(folder, 'api.graphql'), 'utf8'),
      supergraphSdl: readFileSync(join(folder, 'supergraph.graphql'), 'utf8'),
    };
  } catch (error) {
    throw new RegistryError(`version ${version.version} is listed but its files are missing: ${(error as Error).message}`);
  }
}

/** Records a new version; refuses one whose supergraph is already the latest. */
export function publishVersion(
  dir: string,
  entry: { supergraphSdl: string; apiSdl: string; date: string; commit: string | null; summary: RegistryVersion['summary'] },
): RegistryVersion {
  const versions = readVersions(dir);
  const hash = contentHash(entry.supergraphSdl);
  const latest = versions.at(-1);
  if (latest?.hash === hash)
    throw new RegistryError(`this supergraph is already published as version ${latest.version} (${hash.slice(0, 19)}…)`);
  const version: RegistryVersion = {
    version: (latest?.version ?? 0) + 1,
    hash,
    date: entry.date,
    commit: entry.commit,
    summary: entry.summary,
  };
  const folder = join(dir, `v${version.version}`);
  mkdirSync(folder, { recursive: true });
  writeFileSync(join(folder, 'supergraph.graphql'), entry.supergraphSdl);
  writeFileSync(join(folder, 'api.graphql'), entry.apiSdl);
  writeFileSync(join(dir, 'index.json'), `${JSON.stringify({ versions: [...versions, version] }, null, 2)}\n`);
  return version;
}
