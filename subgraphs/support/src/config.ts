import { loadSubgraphConfig, type SubgraphConfig } from '../../../platform/subgraph-config.ts';
import { EMBEDDED_DATABASE_FILES } from '../../../platform/sqlite.ts';

export type SupportConfig = SubgraphConfig;

/** The support subgraph's configuration, read once from the environment (SUPPORT_PORT, SUPPORT_CONNECTOR, SUPPORT_DATABASE, …). */
export function loadSupportConfig(env: NodeJS.ProcessEnv = process.env): SupportConfig {
  return loadSubgraphConfig({ prefix: 'SUPPORT', defaultPort: 4003, databaseFile: EMBEDDED_DATABASE_FILES.support }, env);
}
