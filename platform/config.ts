import { z } from 'zod';

/** Raised when the environment holds a value a service cannot start with. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Where the values of a merged environment came from (a file), for messages; absent: the environment. */
const sourcesOf = new WeakMap<object, Readonly<Record<string, string>>>();

/** Remembers which file each value of `env` came from (see config-file.ts). */
export function recordSources(env: object, sources: Record<string, string>): void {
  sourcesOf.set(env, Object.freeze({ ...sources }));
}

/** The file a variable's value came from, or null when the environment gave it. */
export function sourceOf(env: object, name: string): string | null {
  return sourcesOf.get(env)?.[name] ?? null;
}

/**
 * Reads and validates environment variables once. The schema's keys are the variable names, so
 * every message names the variable to fix. The result is frozen.
 */
export function readEnv<S extends z.ZodObject>(schema: S, env: NodeJS.ProcessEnv = process.env): Readonly<z.infer<S>> {
  const picked: Record<string, string | undefined> = {};
  for (const key of Object.keys(schema.shape)) {
    const value = env[key];
    picked[key] = value === '' ? undefined : value;
  }
  const parsed = schema.safeParse(picked);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => {
      const name = String(issue.path[0] ?? '(environment)');
      const got = picked[name];
      const source = sourceOf(env, name);
      return `${name}: ${issue.message}${got === undefined ? '' : ` (got ${JSON.stringify(got)}${source ? ` in ${source}` : ''})`}`;
    });
    throw new ConfigError(`Invalid configuration:\n  ${problems.join('\n  ')}`);
  }
  return Object.freeze(parsed.data);
}

/** A TCP port; 0 asks the system for a free one. */
export const port = (fallback: number) =>
  z.coerce
    .number({ error: 'must be a port number' })
    .int('must be a whole number')
    .min(0, 'must be between 0 and 65535')
    .max(65535, 'must be between 0 and 65535')
    .default(fallback);

export const positiveInt = (fallback: number) =>
  z.coerce.number({ error: 'must be a number' }).int('must be a whole number').positive('must be above 0').default(fallback);

export const logLevel = z
  .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], {
    error: 'must be one of fatal, error, warn, info, debug, trace, silent',
  })
  .default('info')
  .describe('The least severe log lines written (JSON lines on stdout); audit lines are kept at `warn`.');

export const httpUrl = z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' });

/** A boolean switch: true/false, 1/0, yes/no, on/off. */
export const flag = (fallback: boolean) =>
  z
    .enum(['true', 'false', '1', '0', 'yes', 'no', 'on', 'off'], { error: 'must be true or false' })
    .transform((value) => ['true', '1', 'yes', 'on'].includes(value))
    .default(fallback);

/** development (the embedded default) or production (no dev keys, no introspection). */
export const environment = z
  .enum(['development', 'production'], { error: 'must be development or production' })
  .default('development')
  .describe(
    '`production` refuses development keys, demands real keys and a chosen connector for each system, and turns off introspection and field suggestions.',
  );

export const host = z.string().min(1).default('0.0.0.0').describe('The interface every port listens on.');

/** The folder of the embedded systems' databases and the development keys. */
export const dataDir = z
  .string()
  .default('data')
  .describe("Folder of the embedded systems' databases, the process service's workflow store and the development keys.");

/** How long a stopping service lets requests in flight finish (SHUTDOWN_GRACE_MS), in ms. */
export const shutdownGraceMs = z.coerce
  .number({ error: 'must be a number of milliseconds' })
  .int('must be a whole number of milliseconds')
  .min(0, 'must be 0 (cut at once) or more')
  .max(600_000, 'must be at most 600000')
  .default(10_000)
  .describe(
    'On SIGTERM, how long requests in flight may finish (in ms) while /ready answers 503 and new requests are turned away; then they are cut (docs/architecture.md).',
  );

/** The deadline of one subgraph call (the gateway's; the erp sizes its idempotency wait from it). */
export const subgraphTimeoutMs = positiveInt(10_000).describe(
  "Deadline of one subgraph call, in ms, from waiting for a connection to the last byte of its answer; past it that system's fields are given up. The process service sizes `IDEMPOTENCY_WAIT_MS` from it.",
);
