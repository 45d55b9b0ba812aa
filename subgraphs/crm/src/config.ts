import { join } from 'node:path';
import { z } from 'zod';
import { host, logLevel, port, readEnv } from '../../../platform/config.ts';
import { EMBEDDED_DATABASE_FILES } from '../../../platform/sqlite.ts';

export interface CrmConfig {
  readonly host: string;
  readonly port: number;
  readonly logLevel: z.infer<typeof logLevel>;
  readonly connector: { readonly kind: 'embedded'; readonly database: string };
}

const schema = z.object({
  CRM_PORT: port(4001),
  HOST: host,
  LOG_LEVEL: logLevel,
  DATA_DIR: z.string().default('data'),
  CRM_CONNECTOR: z.enum(['embedded'], { error: 'must be "embedded"' }).default('embedded'),
  CRM_DATABASE: z.string().optional(),
});

/** The CRM subgraph's configuration, read once from the environment. */
export function loadCrmConfig(env: NodeJS.ProcessEnv = process.env): CrmConfig {
  const vars = readEnv(schema, env);
  return Object.freeze({
    host: vars.HOST,
    port: vars.CRM_PORT,
    logLevel: vars.LOG_LEVEL,
    connector: Object.freeze({ kind: vars.CRM_CONNECTOR, database: vars.CRM_DATABASE ?? join(vars.DATA_DIR, EMBEDDED_DATABASE_FILES.crm) }),
  });
}
