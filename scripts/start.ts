/**
 * `npm start`: the local stack with durable data under .data/, the schema, the worker and the API.
 * Runs until Ctrl-C, then stops everything in order: API, worker, then the servers.
 */
import { join, resolve } from 'node:path';
import { loadConfig } from '../src/config/index.js';
import { migrate } from '../src/db/migrate.js';
import { createMysqlPool } from '../src/db/pool.js';
import { startStack, type RunningStack } from '../src/stack/index.js';
import { spawnLogged, type ManagedProcess } from '../src/stack/process.js';
import { waitFor } from '../src/util/wait-for.js';
import { buildWorkflowBundle } from '../src/workers/bundle.js';

const root = resolve(import.meta.dirname, '..');
const dataDir = join(root, '.data');
const say = (line: string) => console.log(`[start] ${line}`);
const t0 = Date.now();

let stack: RunningStack | undefined;
const children: ManagedProcess[] = [];
let stopping = false;

async function shutdown(code: number): Promise<never> {
  if (stopping) return new Promise<never>(() => {});
  stopping = true;
  say('stopping…');
  // API first (no new orders), then the worker (in-flight activities finish), then the servers.
  for (const child of [...children].reverse()) await child.stop(15_000);
  await stack?.stop();
  say('stopped');
  process.exit(code);
}
process.on('SIGINT', () => void shutdown(0));
process.on('SIGTERM', () => void shutdown(0));

try {
  stack = await startStack({ dataDir, ports: 'local', ephemeral: false, log: say });
  // The local stack is for trying the service by hand: dev login and the demo helper are on.
  const env = { ...process.env, AUTH_DEV_LOGIN: process.env.AUTH_DEV_LOGIN ?? 'true', ...stack.env };
  const config = loadConfig(env);

  const pool = createMysqlPool(config);
  try {
    const applied = await migrate(pool);
    say(applied.length ? `schema: applied ${applied.join(', ')}` : 'schema: up to date');
  } finally {
    await pool.end();
  }

  const bundle = join(dataDir, 'build', 'workflow-bundle.js');
  const tb = Date.now();
  say((await buildWorkflowBundle(bundle)) ? `workflow bundle built in ${Date.now() - tb} ms` : 'workflow bundle up to date');

  const tsx = join(root, 'node_modules', '.bin', 'tsx');
  children.push(launch('worker', tsx, [join(root, 'src/workers/main.ts')], { ...env, WORKFLOW_BUNDLE_PATH: bundle }));
  children.push(launch('api', tsx, [join(root, 'src/api/main.ts')], env));

  const apiUrl = `http://127.0.0.1:${config.port}`;
  await waitFor(async () => (await fetch(`${apiUrl}/healthz`)).ok, { what: `${apiUrl}/healthz to answer 200`, timeoutMs: 60_000, intervalMs: 200, retryErrors: true });
  say(`ready in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  say(`  API + demo page  ${apiUrl}/`);
  say(`  Temporal Web UI  ${stack.temporalUiUrl ?? `(external Temporal at ${config.temporal.address})`}`);
  say(`  data             ${dataDir}`);
  say('Ctrl-C stops everything.');
} catch (err) {
  console.error(`[start] failed: ${err instanceof Error ? err.message : String(err)}`);
  await shutdown(1);
}

function launch(name: string, command: string, args: string[], env: NodeJS.ProcessEnv): ManagedProcess {
  // Own process group: the terminal's Ctrl-C reaches this launcher, which stops children in order.
  const child = spawnLogged(name, command, args, { logFile: 'inherit', env });
  void child.exited.then((code) => {
    if (!stopping) {
      console.error(`[start] ${name} exited unexpectedly (${code}); stopping the stack`);
      void shutdown(1);
    }
  });
  return child;
}
