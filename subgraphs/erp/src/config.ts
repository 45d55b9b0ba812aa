import { join } from 'node:path';
import { z } from 'zod';
import { host, logLevel, port, readEnv } from '../../../platform/config.ts';
import { EMBEDDED_DATABASE_FILES } from '../../../platform/sqlite.ts';

export interface ErpConfig {
  readonly host: string;
  readonly port: number;
  readonly logLevel: z.infer<typeof logLevel>;
  readonly connector: { readonly kind: 'embedded'; readonly database: string };
}

const schema = z.object({
  ERP_PORT: port(4002),
  HOST: host,
  LOG_LEVEL: logLevel,
  DATA_DIR: z.string().default('data'),
  ERP_CONNECTOR: z.enum(['embedded'], { error: 'must be "embedded"' }).default('embedded'),
  ERP_DATABASE: z.string().optional(),
});

/** The ERP subgraph's configuration, read once from the environment. */
export function loadErpConfig(env: NodeJS.ProcessEnv = process.env): ErpConfig {
  const vars = readEnv(schema, env);
  return Object.freeze({
    host: vars.HOST,
    port: vars.ERP_PORT,
    logLevel: vars.LOG_LEVEL,
    connector: Object.freeze({ kind: vars.ERP_CONNECTOR, database: vars.ERP_DATABASE ?? join(vars.DATA_DIR, EMBEDDED_DATABASE_FILES.erp) }),
  });
}
