import { loadSubgraphConfig, type SubgraphConfig } from '../../../platform/subgraph-config.ts';
import { EMBEDDED_DATABASE_FILES } from '../../../platform/sqlite.ts';

export type ErpConfig = SubgraphConfig;

/** The ERP subgraph's configuration, read once from the environment (ERP_PORT, ERP_CONNECTOR, ERP_DATABASE, …). */
export function loadErpConfig(env: NodeJS.ProcessEnv = process.env): ErpConfig {
  return loadSubgraphConfig({ prefix: 'ERP', defaultPort: 4002, databaseFile: EMBEDDED_DATABASE_FILES.erp }, env);
}
