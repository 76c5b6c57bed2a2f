import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // One isolated stack (Temporal dev server, Redis, MariaDB) for the whole run, on free ports.
    globalSetup: ['test/setup/global-stack.ts'],
    pool: 'forks',
    // Two cores: more parallel files only fight over CPU with the servers they test.
    maxWorkers: 2,
    // Real servers, bursts of thousands of requests: generous but bounded.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    reporters: ['default'],
  },
});
