import { defineConfig } from 'vitest/config';

/**
 * `npm run test:cluster`: the app on the cluster layout (stack/cluster-app.ts). Not part of
 * `npm test`'s pattern: it builds and starts a much heavier stack (Temporal as four services on
 * PostgreSQL, a six-node Redis Cluster, nginx, two APIs, two workers), once, in the test file.
 */
export default defineConfig({
  test: {
    include: ['test-cluster/**/*.test.ts'],
    pool: 'forks',
    maxWorkers: 1,
    fileParallelism: false,
    testTimeout: 300_000,
    hookTimeout: 300_000,
    reporters: ['default'],
  },
});
