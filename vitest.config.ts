import { configDefaults, defineConfig } from 'vitest/config';

/**
 * Test files that need no stack. They form the `unit` project, whose setup only locates the
 * time-skipping test server, so `npx vitest run --project unit` starts no Redis, MariaDB or dev
 * server; `npm test` runs both projects.
 */
const WITHOUT_STACK = [
  'test/docs.test.ts',
  'test/bundle.test.ts',
  'test/dependency-guard.test.ts',
  'test/order-status-cache.test.ts',
  'test/order-rules.test.ts',
  'test/order-workflow-branches.test.ts',
  'test/stripe-ownership.test.ts',
  'test/provider-registry.test.ts',
  'test/order-states.test.ts',
  'test/line-rules.test.ts',
  'test/cache-sizing.test.ts',
  'test/bench-temporal-log.test.ts',
  'test/webhook-sender.test.ts',
  'test/delivery-rules.test.ts',
  'test/mysql-failures.test.ts',
  'test/endpoint-secrets.test.ts',
  'test/payload-codec.test.ts',
  'test/data-converter-wiring.test.ts',
  'test/reference-docs.test.ts',
  'test/http-client.test.ts',
  'test/logger.test.ts',
  'test/published-secrets.test.ts',
];
/**
 * The load and fault smoke runs (the quick fault suite, the benchmark's quick runs): minutes each,
 * so CI runs them as `npm run test:load` after `npm test` instead of inside it.
 */
const LOAD = [
  'test/chaos-quick.test.ts',
  'test/bench-quick.test.ts',
  'test/bench-pipeline.test.ts',
  'test/bench-tracing-cost.test.ts',
  'test/bench-line.test.ts',
  'test/soak-plumbing.test.ts',
  'test/rollout-across-builds.test.ts',
  'test/codec-rollout.test.ts',
  'test/npm-start-deploy-under-load.test.ts',
];

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
      { extends: true, test: { name: 'unit', include: WITHOUT_STACK, globalSetup: ['test/setup/test-server.ts'] } },
      {
        extends: true,
        test: {
          name: 'stack',
          include: ['test/**/*.test.ts'],
          exclude: [...configDefaults.exclude, ...WITHOUT_STACK, ...LOAD],
          // One isolated stack (Temporal dev server, Redis, MariaDB) for the whole run, on free ports;
          // vitest sets a project up only when one of its files runs.
          globalSetup: ['test/setup/global-stack.ts'],
        },
      },
      { extends: true, test: { name: 'load', include: LOAD, globalSetup: ['test/setup/global-stack.ts'] } },
    ],
  },
});
