import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { composeServices } from '@apollo/composition';
import { parse, type GraphQLError } from 'graphql';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';

const configSchema = z.object({
  federation_version: z.string().optional(),
  subgraphs: z.record(
    z.string().regex(/^[a-z][a-z0-9_-]*$/, 'subgraph names are lower-case words'),
    z.object({
      routing_url: z.url(),
      schema: z.object({ file: z.string() }),
    }),
  ),
});

/** One subgraph as the supergraph config lists it, with its SDL read from disk. */
export interface SubgraphSource {
  name: string;
  url: string;
  file: string;
  sdl: string;
}

/** Reads schema/supergraph.yaml (rover's format): names, routing URLs and SDL files. */
export function readSupergraphConfig(configPath: string): SubgraphSource[] {
  const raw: unknown = parseYaml(readFileSync(configPath, 'utf8'));
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`);
    throw new Error(`${configPath} is not a valid supergraph config:\n  ${problems.join('\n  ')}`);
  }
  return Object.entries(parsed.data.subgraphs).map(([name, entry]) => {
    const file = resolve(dirname(configPath), entry.schema.file);
    return { name, url: entry.routing_url, file, sdl: readFileSync(file, 'utf8') };
  });
}

export type CompositionOutcome = { ok: true; supergraphSdl: string; hints: string[] } | { ok: false; errors: string[] };

/**
 * Composes the subgraphs with @apollo/composition. Errors come back as readable lines: the
 * error code, then the composer's message, which names the subgraphs, types and fields at odds.
 */
export function composeSubgraphs(subgraphs: readonly SubgraphSource[]): CompositionOutcome {
  const services = [];
  const syntaxErrors: string[] = [];
  for (const subgraph of subgraphs) {
    try {
      services.push({ name: subgraph.name, url: subgraph.url, typeDefs: parse(subgraph.sdl) });
    } catch (error) {
      syntaxErrors.push(`[${subgraph.name}] ${subgraph.file}: ${(error as Error).message}`);
    }
  }
  if (syntaxErrors.length) return { ok: false, errors: syntaxErrors };
  const result = composeServices(services);
  if (result.errors) return { ok: false, errors: result.errors.map(describeError) };
  return { ok: true, supergraphSdl: result.supergraphSdl, hints: result.hints.map((hint) => `${hint.definition.code}: ${hint.message}`) };
}

function describeError(error: GraphQLError): string {
  const code = error.extensions?.code;
  return `${typeof code === 'string' ? `${code}: ` : ''}${error.message}`;
}
