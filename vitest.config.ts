import { configDefaults, defineConfig } from 'vitest/config';

/**
 * Test files that need no servers. They form the `unit` project, which has no global setup, so
 * `npx vitest run test/docs.test.ts` starts nothing; `npm test` runs both projects.
 */
const WITHOUT_STACK = ['test/docs.test.ts', 'test/bundle.test.ts', 'test/dependency-guard.test.ts', 'test/order-status-cache.test.ts'];

export default defineConfig({
  test: {
    pool: 'forks',
    // Two cores: more parallel files only fight over CPU with the servers they test.
    maxWorkers: 2,
    // Real servers, bursts of thousands of requests: generous but bounded.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    reporters: ['default'],
    projects: [
      { extends: true, test: { name: 'unit', include: WITHOUT_STACK } },
      {
        extends: true,
        test: {
          name: 'stack',
          include: ['test/**/*.test.ts'],
          exclude: [...configDefaults.exclude, ...WITHOUT_STACK],
          // One isolated stack (Temporal dev server, Redis, MariaDB) for the whole run, on free ports;
          // vitest sets a project up only when one of its files runs.
          globalSetup: ['test/setup/global-stack.ts'],
        },
      },
    ],
  },
});
