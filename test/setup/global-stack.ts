/**
 * Starts one isolated stack for the test run: free ports and a throw-away data directory, so it
 * never touches a running `npm start`. Torn down after the run, whether tests passed or not.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { loadConfig } from '../../src/config/index.js';
import { migrate } from '../../src/db/migrate.js';
import { createMysqlPool } from '../../src/db/pool.js';
import { startStack, type RunningStack } from '../../stack/index.js';
import { loadToolPaths } from '../../stack/services.js';
import { buildWorkflowBundle } from '../../src/workers/bundle.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Environment (the variables of docs/operations.md's configuration table) pointing at the test stack. */
    stackEnv: Record<string, string>;
    /** Root of the throw-away data directories; tests may start extra servers beneath it. */
    stackDataDir: string;
    temporalTestServer: string;
    /** The workflow bundle, built once for every worker the tests create. */
    workflowBundlePath: string;
  }
}

let stack: RunningStack | undefined;
let dataDir: string | undefined;

export async function setup(project: TestProject): Promise<void> {
  // Checked before anything starts, so a missing test server fails fast and leaves nothing running.
  const temporalTestServer = requireTestServer();
  dataDir = mkdtempSync(join(tmpdir(), 'flash-test-'));
  const t0 = Date.now();
  // Servers named in the environment are used as they are (e.g. CI with external services).
  stack = await startStack({ dataDir, ports: 'free', ephemeral: true, log: (line) => console.log(`[stack] ${line}`) });
  const workflowBundlePath = join(dataDir, 'workflow-bundle.js');
  await buildWorkflowBundle(workflowBundlePath);
  const env = { ...stack.env, TEMPORAL_TASK_QUEUE: `test-${process.pid}` };
  const pool = createMysqlPool(loadConfig({ ...process.env, ...env }));
  try {
    await migrate(pool);
  } finally {
    await pool.end();
  }
  console.log(`[stack] test stack ready in ${Date.now() - t0} ms under ${dataDir}`);
  project.provide('stackEnv', env);
  project.provide('stackDataDir', dataDir);
  project.provide('temporalTestServer', temporalTestServer);
  project.provide('workflowBundlePath', workflowBundlePath);
}

export function requireTestServer(): string {
  const path = loadToolPaths().temporalTestServer;
  if (!path) {
    throw new Error(
      "Temporal's time-skipping test server is not installed (no TEMPORAL_TEST_SERVER in tools.env): " +
        "run 'bash scripts/install-tools.sh --test-server' (npm test does)",
    );
  }
  return path;
}

export async function teardown(): Promise<void> {
  await stack?.stop();
  if (dataDir && !process.env.KEEP_TEST_DATA) rmSync(dataDir, { recursive: true, force: true });
}
