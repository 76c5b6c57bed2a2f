/**
 * `npm run start:cluster`: the app on the cluster layout of the local stack (docs/scaling.md):
 * Temporal frontend, history, matching and worker as separate processes on PostgreSQL, a Redis
 * Cluster of 3 masters + 3 replicas, one MariaDB, two workers, and two API processes behind nginx
 * on :3000. Durable data under .data/cluster/. Runs until Ctrl-C, then stops everything in order.
 */
import { join, resolve } from 'node:path';
import { LOCAL_STACK_PORTS } from '../src/config/index.js';
import { startClusterApp, type RunningClusterApp } from '../stack/cluster-app.js';
import { shutdownOnSignals } from '../stack/launcher.js';

const root = resolve(import.meta.dirname, '..');
const dataDir = join(root, '.data', 'cluster');
const say = (line: string) => console.log(`[start:cluster] ${line}`);
const t0 = Date.now();

let app: RunningClusterApp | undefined;
const launcher = shutdownOnSignals(say, async () => {
  await app?.stop();
});

try {
  app = await startClusterApp({
    dataDir,
    ephemeral: false,
    log: say,
    appLogs: 'inherit',
    // As under `npm start`: dev login and the dashboard's payment simulator are on.
    // SHUTDOWN_DRAIN: Ctrl-C of a local stack need not wait for a load balancer's probes.
    env: { AUTH_DEV_LOGIN: process.env.AUTH_DEV_LOGIN ?? 'true', SHUTDOWN_DRAIN: process.env.SHUTDOWN_DRAIN ?? '0s' },
    port: Number(process.env.PORT ?? LOCAL_STACK_PORTS.api),
    supervise: { log: (line) => say(`supervisor: ${line}`) },
  });
  if (launcher.stopping) await new Promise<never>(() => {});
  say(`ready in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  say(`  API + dashboard (nginx)  ${app.url}/`);
  say(`  API processes            ${app.apiUrls.join(', ')}`);
  say(`  API metrics              ${app.apiUrls.map((url) => `${url}/metrics`).join(', ')}`);
  say(`  worker metrics           ${app.workerMetricsUrls.join(', ')}`);
  say(`  Temporal frontend        ${app.stack.env.TEMPORAL_ADDRESS} (namespace ${app.stack.env.TEMPORAL_NAMESPACE})`);
  say(`  Temporal Web UI          ${app.stack.temporalUiUrl ?? '(not installed)'}`);
  say(`  codec server             ${app.codecServer ? `http://127.0.0.1:${app.config.codecServer.port}` : '(off)'}`);
  say(`  Redis Cluster            ${app.stack.env.REDIS_URL}`);
  say(`  MariaDB                  ${app.stack.env.MYSQL_URL}`);
  say(`  data                     ${dataDir}`);
  say('A crashed API, worker or nginx is restarted. Ctrl-C stops everything.');
} catch (err) {
  console.error(`[start:cluster] failed: ${err instanceof Error ? err.message : String(err)}`);
  await launcher.shutdown(1);
}
