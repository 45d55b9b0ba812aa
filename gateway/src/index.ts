import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { Supergraph } from '@apollo/federation-internals';
import type { CryptoKey } from 'jose';
import { startService, type RunningService } from '../../platform/http-server.ts';
import type { Identity } from '../../platform/identity.ts';
import { createInternalSigner } from '../../platform/internal-token.ts';
import { ensureDevKeys, importPrivatePem, INTERNAL_ALGORITHM, type DevKeys } from '../../platform/keys.ts';
import { createLogger, type Logger } from '../../platform/logger.ts';
import { createMetrics } from '../../platform/metrics.ts';
import { runMain } from '../../platform/process.ts';
import { createClientVerifier } from './auth.ts';
import { checkSubgraphOverrides, loadGatewayConfig, type GatewayConfig } from './config.ts';
import { createGatewayContextFactory } from './context.ts';
import { loadRegisteredOperations } from './portal.ts';
import { createServer } from './server.ts';
import { supergraphManager, type SupergraphSource } from './supergraph-source.ts';

/** Keys tests pass in place of configured or data-folder keys. */
export interface GatewayKeys {
  /** Verifies client tokens when the configuration names no issuer key. */
  issuerPublicKey?: CryptoKey;
  /** Signs internal tokens for the subgraphs. */
  internalPrivateKey?: CryptoKey;
}

/** Loads the supergraph the configuration names (and follows it when asked) and serves it. */
export async function startGateway(
  config: GatewayConfig,
  options: {
    logger?: Logger;
    keys?: GatewayKeys;
    /** Serve every request as this identity and send subgraphs no token: npm run bench:security only. */
    withoutSecurity?: Identity;
  } = {},
): Promise<RunningService> {
  const logger = options.logger ?? createLogger('gateway', config.logLevel);
  const source = supergraphSourceOf(config);
  if (source.kind !== 'url') {
    const sdl = source.kind === 'static' ? source.sdl : readFileSync(source.path, 'utf8');
    checkSubgraphOverrides(config.subgraphUrls, Supergraph.build(sdl).subgraphs().names());
  }
  let devKeys: DevKeys | undefined;
  const dev = async () => (devKeys ??= await ensureDevKeys(config.dataDir));
  const issuerPublicKey = options.keys?.issuerPublicKey ?? (config.auth.key.kind === 'dev' ? (await dev()).issuer.publicKey : undefined);
  const internalPrivateKey =
    options.keys?.internalPrivateKey ??
    (config.internalTokenPrivateKey
      ? await importPrivatePem(config.internalTokenPrivateKey, INTERNAL_ALGORITHM)
      : (await dev()).internal.privateKey);

  const apollo = createServer({
    supergraph: supergraphManager(source, logger),
    subgraphUrls: config.subgraphUrls,
    subgraphTimeoutMs: config.subgraphTimeoutMs,
    logger,
    signInternal: options.withoutSecurity ? null : createInternalSigner(internalPrivateKey),
    limits: config.limits,
    production: config.environment === 'production',
    portalOperations: loadRegisteredOperations(config.portalOperationsDir),
    batching: config.batching,
  });
  return startService({
    name: 'gateway',
    host: config.host,
    port: config.port,
    apollo,
    context: createGatewayContextFactory(
      options.withoutSecurity ? async () => options.withoutSecurity! : await createClientVerifier(config.auth, issuerPublicKey),
      logger,
    ),
    ready: () => true,
    logger,
    metrics: createMetrics('gateway', { processMetrics: true }),
  });
}

function supergraphSourceOf(config: GatewayConfig): SupergraphSource {
  const intervalMs = config.supergraphPollIntervalMs;
  if (config.supergraphUrl) return { kind: 'url', url: config.supergraphUrl, intervalMs };
  if (config.supergraphWatch) return { kind: 'file', path: config.supergraphPath, intervalMs };
  return { kind: 'static', sdl: readFileSync(config.supergraphPath, 'utf8') };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  runMain('gateway', () => startGateway(loadGatewayConfig()));
}
