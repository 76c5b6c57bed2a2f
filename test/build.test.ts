/**
 * The compiled build (`npm run build`) and the processes as the Docker image runs them: `node
 * dist/…` with no TypeScript tooling in the way. The migrator, the API and the worker run from
 * dist/ against the test stack, and an order goes through the compiled API and worker; the pages
 * and the OpenAPI document they serve are the ones the sources serve.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject } from 'vitest';
import { ShopperAuth } from '../src/api/auth.js';
import { composeApi, createApp } from '../src/api/app.js';
import { finishedPage } from '../src/api/scripted-pages.js';
import { buildOpenApiDocument, routersOf } from '../src/api/openapi.js';
import { createLogger } from '../src/infra/logger.js';
import { createTemporalClient } from '../src/infra/temporal-connection.js';
import { spawnAppProcess, type AppRole } from '../stack/app-processes.js';
import { freePort, type ManagedProcess } from '../stack/process.js';
import { waitFor } from '../stack/wait-for.js';
import { WorkerDeployments } from '../src/infra/worker-deployments.js';
import { requiredTaskQueues } from '../src/model/order-workflow.js';
import { workerBuildId } from '../src/workers/versioning.js';
import { testConfig } from './helpers/env.js';
import { storeClientsTest } from './helpers/stack-test.js';
import { putOnSale } from './helpers/fixtures.js';
import { httpAt } from './helpers/http.js';

const root = resolve(import.meta.dirname, '..');
const taskQueue = `build-${randomUUID()}`;
const config = testConfig({ TEMPORAL_TASK_QUEUE: taskQueue, AUTH_DEV_LOGIN: 'true', LOG_LEVEL: 'warn' });
const it = storeClientsTest(config);
const children: ManagedProcess[] = [];
let apiUrl: string;
let workerHealthUrl: string;

/** Runs a command of the repository to its end; its output is in the failure message. */
function run(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ code: number | null; output: string }> {
  return new Promise((done, fail) => {
    const child = spawn(command, args, { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('error', fail);
    child.once('close', (code) => done({ code, output }));
  });
}

/**
 * Starts `role` as the image does (`node dist/…`, the launcher's `from: 'dist'`), with the test stack's environment
 * over this file's; its output on the test's own.
 */
function startNode(role: AppRole, env: Record<string, string>): ManagedProcess {
  const child = spawnAppProcess({
    role,
    from: 'dist',
    root,
    logFile: 'inherit',
    env: { ...process.env, ...inject('stackEnv'), TEMPORAL_TASK_QUEUE: taskQueue, LOG_LEVEL: 'warn', ...env },
  });
  children.push(child);
  return child;
}

const answers = async (url: string) => (await httpAt('GET', url).catch(() => null))?.status === 200;

beforeAll(async () => {
  const build = await run('npm', ['run', 'build']);
  expect(build.code, build.output).toBe(0);
}, 180_000);

afterAll(async () => {
  await Promise.all(children.map((child) => child.stop()));
});

describe('npm run build', () => {
  it("writes the three processes' entry points to dist/, and the pages the API serves", () => {
    const entries = ['dist/api/main.js', 'dist/workers/main.js', 'dist/db/main.js', 'dist/workflow-bundle.js'];
    for (const entry of entries) {
      expect(existsSync(join(root, entry)), entry).toBe(true);
    }
    // No TypeScript in the build: the dashboard's and the docs page's scripts are bundled into their pages.
    expect(existsSync(join(root, 'dist/web/dashboard.ts'))).toBe(false);
    expect(existsSync(join(root, 'dist/web/docs.ts'))).toBe(false);
    const page = readFileSync(join(root, 'dist/web/index.html'), 'utf8');
    expect(page).not.toContain('<script src="dashboard.ts">');
    expect(page).toMatch(/<script>\n[^]*renderStatusRows[^]*<\/script>/);
    const docs = readFileSync(join(root, 'dist/web/docs.html'), 'utf8');
    expect(docs).not.toContain('<script src="docs.ts">');
    expect(docs).toMatch(/<script>\n[^]*SwaggerUIBundle\(\{[^]*<\/script>/);
  });
});

describe('the compiled processes', () => {
  it('node dist/db/main.js migrates (the schema is up to date on the test stack)', async () => {
    const migrate = await run(process.execPath, [join(root, 'dist/db/main.js')], {
      ...process.env,
      ...inject('stackEnv'),
    });
    expect(migrate.code, migrate.output).toBe(0);
    expect(migrate.output).toContain('schema up to date');
  });

  it('node dist/api/main.js and node dist/workers/main.js serve and take an order through', async ({ clients }) => {
    const { stores, redis } = clients;
    const [apiPort, healthPort] = [await freePort(), await freePort()];
    apiUrl = `http://127.0.0.1:${apiPort}`;
    workerHealthUrl = `http://127.0.0.1:${healthPort}`;
    startNode('api', { PORT: String(apiPort), AUTH_DEV_LOGIN: 'true', SHUTDOWN_DRAIN: '0s' });
    // No bundle named: the build's own (dist/workflow-bundle.js), which is the sources' to the byte of its build id.
    startNode('worker', { WORKER_HEALTH_PORT: String(healthPort), WORKER_METRICS_PORT: '0', WORKFLOW_BUNDLE_PATH: '' });
    await waitFor(() => answers(`${apiUrl}/livez`), { what: 'the compiled API to answer /livez', timeoutMs: 30_000 });
    await waitFor(() => answers(`${apiUrl}/readyz`), { what: 'the compiled API to be ready', timeoutMs: 30_000 });
    await waitFor(() => answers(`${workerHealthUrl}/readyz`), {
      what: 'the compiled worker to be ready',
      timeoutMs: 60_000,
    });

    const { sku } = await putOnSale(stores, redis, { stock: 2 });
    const token = await new ShopperAuth(config).issue(`built-${randomUUID().slice(0, 8)}`);
    const reply = await httpAt('POST', `${apiUrl}/api/checkout`, {
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', prefer: 'wait=10' },
      raw: JSON.stringify({ sku, quantity: 1 }),
    });
    expect(reply.status).toBe(201);
    expect(reply.body).toMatchObject({ sku, quantity: 1, status: 'AWAITING_PAYMENT' });
  });

  it('the rollout tool runs from dist/ with Temporal alone: no MySQL, no Redis, nothing installed', async () => {
    const unreachable = `127.0.0.1:${await freePort()}`;
    const env = {
      ...process.env,
      ...inject('stackEnv'),
      TEMPORAL_TASK_QUEUE: taskQueue,
      MYSQL_URL: `mysql://flash:flash@${unreachable}/flash`,
      REDIS_URL: `redis://${unreachable}`,
    };
    const buildId = await run(process.execPath, [join(root, 'dist/workers/rollout-main.js'), 'build-id'], env);
    expect(buildId.code, buildId.output).toBe(0);
    expect(buildId.output.trim()).toBe(workerBuildId(config, inject('workflowBundlePath')));
    const status = await run(process.execPath, [join(root, 'dist/workers/rollout-main.js'), 'status', '--json'], env);
    expect(status.code, status.output).toBe(0);
    expect(status.output).toContain(`[rollout] deployment ${config.temporal.versioning!.deploymentName}:`);
  });

  it("the compiled worker polls as this checkout's build id: dist/ names its bundle as src/ does", async () => {
    const fromSources = workerBuildId(config, inject('workflowBundlePath'));
    expect(workerBuildId(config, join(root, 'dist', 'workflow-bundle.js'))).toBe(fromSources);
    const { connection } = await createTemporalClient(config);
    try {
      const deployments = new WorkerDeployments(connection, config.temporal.namespace, 'build-test');
      const version = { deploymentName: config.temporal.versioning!.deploymentName, buildId: fromSources };
      await deployments.untilPolling(version, requiredTaskQueues(taskQueue), 30_000);
    } finally {
      await connection.close();
    }
  });

  it('serve the same OpenAPI document, dashboard page and docs page as the sources', async ({ clients }) => {
    const { stores, redis } = clients;
    const temporal = await createTemporalClient(config);
    try {
      const fromSource = createApp(
        composeApi({ config, redis, stores, temporal, logger: createLogger(config, 'api') }),
      );
      const served = (await httpAt('GET', `${apiUrl}/openapi.json`)).body as unknown;
      expect(served).toEqual(buildOpenApiDocument(routersOf(fromSource)));
    } finally {
      await temporal.connection.close();
    }
    const page = (await httpAt('GET', `${apiUrl}/`)).body;
    expect(page).toBe(await finishedPage(join(root, 'web'), 'index.html'));
    const docs = (await httpAt('GET', `${apiUrl}/docs`)).body;
    expect(docs).toBe(await finishedPage(join(root, 'web'), 'docs.html'));
  });
});
