import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // End-to-end suites each start their own services on free ports; two workers fit CI's cores.
    pool: 'forks',
    maxWorkers: 2,
  },
});
