import { join } from 'node:path';
import { z } from 'zod';
import { host, logLevel, port, readEnv } from '../../../platform/config.ts';
import { EMBEDDED_DATABASE_FILES } from '../../../platform/sqlite.ts';

export interface SupportConfig {
  readonly host: string;
  readonly port: number;
  readonly logLevel: z.infer<typeof logLevel>;
  readonly connector: { readonly kind: 'embedded'; readonly database: string };
}

const schema = z.object({
  SUPPORT_PORT: port(4003),
  HOST: host,
  LOG_LEVEL: logLevel,
  DATA_DIR: z.string().default('data'),
  SUPPORT_CONNECTOR: z.enum(['embedded'], { error: 'must be "embedded"' }).default('embedded'),
  SUPPORT_DATABASE: z.string().optional(),
});

/** The support subgraph's configuration, read once from the environment. */
export function loadSupportConfig(env: NodeJS.ProcessEnv = process.env): SupportConfig {
  const vars = readEnv(schema, env);
  return Object.freeze({
    host: vars.HOST,
    port: vars.SUPPORT_PORT,
    logLevel: vars.LOG_LEVEL,
    connector: Object.freeze({
      kind: vars.SUPPORT_CONNECTOR,
      database: vars.SUPPORT_DATABASE ?? join(vars.DATA_DIR, EMBEDDED_DATABASE_FILES.support),
    }),
  });
}
