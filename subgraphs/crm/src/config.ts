import { loadSubgraphConfig, type SubgraphConfig } from '../../../platform/subgraph-config.ts';
import { EMBEDDED_DATABASE_FILES } from '../../../platform/sqlite.ts';

export type CrmConfig = SubgraphConfig;

/** The CRM subgraph's configuration, read once from the environment (CRM_PORT, CRM_CONNECTOR, CRM_DATABASE, …). */
export function loadCrmConfig(env: NodeJS.ProcessEnv = process.env): CrmConfig {
  return loadSubgraphConfig({ prefix: 'CRM', defaultPort: 4001, databaseFile: EMBEDDED_DATABASE_FILES.crm }, env);
}
