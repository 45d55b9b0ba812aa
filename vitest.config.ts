import { createRequire } from 'node:module';
import { defineConfig } from 'vitest/config';

const require = createRequire(import.meta.url);

export default defineConfig({
  resolve: {
    // Node loads graphql's CommonJS build (the package has no "exports" map), and so do Apollo's
    // packages; Vite would pick its ESM build. One instance, as in production, or instanceof
    // checks between the two copies fail.
    alias: [{ find: /^graphql$/, replacement: require.resolve('graphql') }],
  },
  test: {
    include: ['test/**/*.test.ts'],
    // The servers tests start (redis-server, …) are installed here when missing (test/setup/servers.ts).
    globalSetup: ['test/setup/global.ts'],
    // A developer's own concord.yaml or .env never reaches the tests, nor the services they start.
    env: { CONCORD_CONFIG: '/dev/null', CONCORD_ENV_FILE: '/dev/null' },
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // End-to-end suites each start their own services on free ports; two workers fit CI's cores.
    pool: 'forks',
    maxWorkers: 2,
  },
});
