import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { parseEnv } from 'node:util';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { ConfigError, recordSources } from './config.ts';
import { fromPackageRoot } from './package-root.ts';

/**
 * Where configuration comes from, weakest first: the defaults in the schemas, `concord.yaml`
 * (its top level, then the service's own section), a `.env` file (development only), and the
 * process environment, which wins. Every layer speaks in the same variable names, so the
 * services read one environment-shaped record and validate it with their schemas as before.
 */

/** The services that have a section of their own in concord.yaml. */
export const SERVICE_SECTIONS = ['gateway', 'crm', 'erp', 'support', 'processes'] as const;
export type ServiceSection = (typeof SERVICE_SECTIONS)[number];

/** Names the configuration file (default: concord.yaml in the working directory, if there is one). */
export const CONFIG_FILE_VARIABLE = 'CONCORD_CONFIG';
/** Names the development variables file (default: .env in the working directory, if there is one). */
export const ENV_FILE_VARIABLE = 'CONCORD_ENV_FILE';

/** The variables concord.yaml may hold: generated from the schemas into schema/concord.schema.json. */
interface KnownVariables {
  /** Every variable some service reads. */
  readonly all: ReadonlySet<string>;
  /** Each service's own. */
  readonly bySection: Readonly<Record<ServiceSection, ReadonlySet<string>>>;
  /** Variables named by pattern (SUBGRAPH_<NAME>_URL). */
  readonly patterns: readonly RegExp[];
}

let known: KnownVariables | undefined;

/** The file's variable lists, read once: the reference generated from the schemas, kept current by a test. */
function knownVariables(): KnownVariables {
  if (known) return known;
  const jsonSchema = JSON.parse(readFileSync(fromPackageRoot('schema/concord.schema.json'), 'utf8')) as {
    properties: Record<string, { properties?: Record<string, unknown> }>;
    patternProperties?: Record<string, unknown>;
  };
  const sections = new Set<string>(SERVICE_SECTIONS);
  const bySection = Object.fromEntries(
    SERVICE_SECTIONS.map((section) => [section, new Set(Object.keys(jsonSchema.properties[section]?.properties ?? {}))]),
  ) as Record<ServiceSection, Set<string>>;
  known = {
    all: new Set(Object.keys(jsonSchema.properties).filter((key) => !sections.has(key))),
    bySection,
    patterns: Object.keys(jsonSchema.patternProperties ?? {}).map((pattern) => new RegExp(pattern)),
  };
  return known;
}

/** A YAML value as an environment variable would hold it; lists become comma-separated. */
function asVariable(file: string, path: string, value: unknown): string | undefined {
  if (value === null || value === undefined) return undefined;
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value) && value.every((item) => ['string', 'number'].includes(typeof item))) return value.join(',');
  throw new ConfigError(`Invalid configuration:\n  ${path}: must be a text, a number, true/false or a list of them (in ${file})`);
}

interface FileLayers {
  /** The top level: every service. */
  readonly common: Record<string, string>;
  /** The service's own section, over the top level. */
  readonly sections: Record<ServiceSection, Record<string, string>>;
}

/** Reads and checks concord.yaml: a map of variables, and at most one section per service. */
export function readConfigFile(file: string): FileLayers {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError(`Invalid configuration:\n  ${CONFIG_FILE_VARIABLE}: cannot read ${file} (${(error as Error).message})`);
  }
  let document: unknown;
  try {
    document = parseYaml(text, { uniqueKeys: true, prettyErrors: true });
  } catch (error) {
    const where = error instanceof YAMLParseError && error.linePos ? ` at line ${error.linePos[0].line}` : '';
    throw new ConfigError(`Invalid configuration:\n  ${file}: not valid YAML${where} (${(error as Error).message.split('\n')[0]})`);
  }
  const layers: FileLayers = {
    common: {},
    sections: Object.fromEntries(SERVICE_SECTIONS.map((section) => [section, {}])) as FileLayers['sections'],
  };
  if (document === null || document === undefined) return layers;
  if (typeof document !== 'object' || Array.isArray(document))
    throw new ConfigError(`Invalid configuration:\n  ${file}: must be a map of variables (and sections ${SERVICE_SECTIONS.join(', ')})`);
  const variables = knownVariables();
  const isKnown = (name: string, names: ReadonlySet<string>) => names.has(name) || variables.patterns.some((pattern) => pattern.test(name));
  const problems: string[] = [];
  for (const [key, value] of Object.entries(document as Record<string, unknown>)) {
    if ((SERVICE_SECTIONS as readonly string[]).includes(key)) {
      const section = key as ServiceSection;
      if (value === null) continue;
      if (typeof value !== 'object' || Array.isArray(value)) {
        problems.push(`${key}: must be a map of the ${key}'s variables`);
        continue;
      }
      for (const [name, inner] of Object.entries(value as Record<string, unknown>)) {
        if (!isKnown(name, variables.bySection[section])) {
          problems.push(
            `${key}.${name}: the ${key} reads no such variable${variables.all.has(name) ? ' (another service does: move it to the top level or its section)' : ''}`,
          );
          continue;
        }
        const text = asVariable(file, `${key}.${name}`, inner);
        if (text !== undefined) layers.sections[section][name] = text;
      }
      continue;
    }
    if (!isKnown(key, variables.all)) {
      problems.push(`${key}: no service reads such a variable (docs/configuration.md lists them)`);
      continue;
    }
    const text = asVariable(file, key, value);
    if (text !== undefined) layers.common[key] = text;
  }
  if (problems.length) throw new ConfigError(`Invalid configuration in ${file}:\n  ${problems.join('\n  ')}`);
  return layers;
}

/** Reads a .env file (KEY=value lines, as Node parses them). */
export function readEnvFile(file: string): Record<string, string> {
  try {
    return parseEnv(readFileSync(file, 'utf8')) as Record<string, string>;
  } catch (error) {
    throw new ConfigError(`Invalid configuration:\n  ${ENV_FILE_VARIABLE}: cannot read ${file} (${(error as Error).message})`);
  }
}

/** The configuration file in use: CONCORD_CONFIG (which must exist), else ./concord.yaml if present. */
export function configFileOf(env: NodeJS.ProcessEnv, cwd: string): string | null {
  return fileOf(env[CONFIG_FILE_VARIABLE], 'concord.yaml', CONFIG_FILE_VARIABLE, cwd);
}

/** The development variables file in use: CONCORD_ENV_FILE (which must exist), else ./.env if present. */
export function envFileOf(env: NodeJS.ProcessEnv, cwd: string): string | null {
  return fileOf(env[ENV_FILE_VARIABLE], '.env', ENV_FILE_VARIABLE, cwd);
}

function fileOf(named: string | undefined, fallback: string, variable: string, cwd: string): string | null {
  if (named) {
    const path = isAbsolute(named) ? named : resolve(cwd, named);
    if (!existsSync(path)) throw new ConfigError(`Invalid configuration:\n  ${variable}: ${path} does not exist`);
    return path;
  }
  const path = resolve(cwd, fallback);
  return existsSync(path) ? path : null;
}

/**
 * The variables one service runs with: concord.yaml's top level, then its section, then .env
 * (unless CONCORD_ENV=production comes from the environment or the file: a stray .env never
 * configures production), then the environment. `service: null` is a tool that reads only what
 * every service shares. Where each value came from is kept for error messages.
 */
export function configuredEnv(
  service: ServiceSection | null,
  env: NodeJS.ProcessEnv = process.env,
  cwd: string = process.cwd(),
): NodeJS.ProcessEnv {
  const merged: Record<string, string | undefined> = {};
  const sources: Record<string, string> = {};
  const layer = (values: Record<string, string | undefined>, source: string) => {
    for (const [key, value] of Object.entries(values)) {
      if (value === undefined) continue;
      merged[key] = value;
      sources[key] = source;
    }
  };
  const configFile = configFileOf(env, cwd);
  if (configFile) {
    const file = readConfigFile(configFile);
    layer(file.common, configFile);
    if (service) layer(file.sections[service], `${configFile} (${service})`);
  }
  const production = (env.CONCORD_ENV || merged.CONCORD_ENV) === 'production';
  const envFile = production ? null : envFileOf(env, cwd);
  if (envFile) layer(readEnvFile(envFile), envFile);
  // An empty variable counts as unset (as the schemas read it): it does not blank out the file.
  for (const [key, value] of Object.entries(env)) {
    if (value === undefined || value === '') continue;
    merged[key] = value;
    delete sources[key];
  }
  recordSources(merged, sources);
  return merged;
}
