/**
 * Smoke test of the cluster layout (stack/cluster.ts), no application code involved:
 *   install (warm), start everything in a temp dir, talk to each part, SIGKILL + restart the
 *   Temporal history service, SIGKILL a Redis master and watch its replica take over, bring the old
 *   master back as a replica, then stop everything and check that no process is left.
 * Prints the time of each step. Run: node_modules/.bin/tsx scripts/cluster-smoke.ts (npm run cluster:smoke)
 * Exits non-zero on the first failed check.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client, Connection } from '@temporalio/client';
import { loadConfig } from '../src/config/index.js';
import { temporalDataConverter } from '../src/infra/data-converter.js';
import proto from '@temporalio/proto';
import { Cluster } from 'ioredis';
import mysql from 'mysql2/promise';
import { redisCommand, startClusterStack, startLoadBalancer, type RunningClusterStack } from '../stack/cluster.js';
import { freePort } from '../stack/process.js';
import { loadToolPaths } from '../stack/services.js';
import { createServer } from 'node:http';

const root = resolve(import.meta.dirname, '..');
const t0 = Date.now();
const say = (line: string) => console.log(`[cluster-smoke +${((Date.now() - t0) / 1000).toFixed(1)}s] ${line}`);
const timings: Record<string, number> = {};
let passed = 0;
let failed = 0;

async function step<T>(name: string, fn: () => Promise<T>): Promise<T> {
  const ts = Date.now();
  try {
    const result = await fn();
    timings[name] = Date.now() - ts;
    passed++;
    say(`ok   ${name} (${timings[name]} ms)`);
    return result;
  } catch (err) {
    failed++;
    say(`FAIL ${name} (${Date.now() - ts} ms): ${err instanceof Error ? err.stack : String(err)}`);
    throw err;
  }
}

/** Polls until check() is true; bounded. Returns the wait in ms. */
async function until(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<number> {
  const ts = Date.now();
  let last = '';
  while (Date.now() - ts < timeoutMs) {
    try {
      if (await check()) return Date.now() - ts;
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    }
    await sleep(100);
  }
  throw new Error(`${what}: not within ${timeoutMs} ms (${last})`);
}

function cpuTicks(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return Number(fields[11]) + Number(fields[12]); // utime + stime (fields 14 and 15 of stat)
}
function rssMiB(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('VmRSS:'))!;
  return Math.round(Number(line.split(/\s+/)[1]) / 1024);
}

const dataDir = mkdtempSync(join(tmpdir(), 'cluster-smoke-'));
let stack: RunningClusterStack | undefined;
const pgids = new Set<number>();
const rememberPids = () => {
  if (stack) for (const p of Object.values(stack.processes)) pgids.add(p.pid);
};

try {
  // Cold (builds, minutes) when nothing is cached yet, warm (milliseconds) otherwise; prints its own steps.
  await step('install-cluster-tools', async () => {
    const r = spawnSync('bash', [join(root, 'scripts/install-cluster-tools.sh')], {
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    if (r.status !== 0) throw new Error(`scripts/install-cluster-tools.sh exited with ${r.status}`);
  });

  stack = await step('start cluster stack', () =>
    startClusterStack({ dataDir, ephemeral: true, log: (l) => say(`  ${l}`) }),
  );
  rememberPids();
  say(`env: ${JSON.stringify(stack.env)}`);
  say(`ui: ${stack.temporalUiUrl ?? '(none)'}; roles: ${Object.keys(stack.roles).join(' ')}`);

  const [TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, REDIS_URL, MYSQL_URL] = (
    ['TEMPORAL_ADDRESS', 'TEMPORAL_NAMESPACE', 'REDIS_URL', 'MYSQL_URL'] as const
  ).map((k) => {
    const value = stack!.env[k];
    if (!value) throw new Error(`env lacks ${k}`);
    return value;
  }) as [string, string, string, string];
  const connection = await Connection.connect({ address: TEMPORAL_ADDRESS });
  // The codec of the stack's app (its environment; the checkout's key under .data/ as every process of it).
  const config = loadConfig({ ...process.env, ...stack.env });
  const client = new Client({
    connection,
    namespace: TEMPORAL_NAMESPACE,
    dataConverter: temporalDataConverter(config),
  });

  await step('temporal: health, describe namespace, search attributes, list workflows', async () => {
    const health = await connection.healthService.check({});
    if (health.status !== proto.grpc.health.v1.HealthCheckResponse.ServingStatus.SERVING)
      throw new Error(`health ${health.status}`);
    const ns = await connection.workflowService.describeNamespace({ namespace: TEMPORAL_NAMESPACE });
    const sa = await connection.operatorService.listSearchAttributes({ namespace: TEMPORAL_NAMESPACE });
    for (const name of ['OrderSku']) {
      if (sa.customAttributes?.[name] !== proto.temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD)
        throw new Error(`search attribute ${name} missing`);
    }
    let n = 0;
    for await (const _ of client.workflow.list({ pageSize: 10 })) n++;
    const info = await connection.workflowService.getClusterInfo({});
    say(
      `  namespace ${ns.namespaceInfo?.name} (${ns.namespaceInfo?.state}), ${n} workflows listed, history shards ${info.historyShardCount}, server ${info.serverVersion}`,
    );
    if (Number(info.historyShardCount) < 4) throw new Error('fewer than 4 history shards');
    if (n !== 0) throw new Error(`a fresh stack lists ${n} workflows in ${TEMPORAL_NAMESPACE}`);
    // The Temporal CLI's own check, as an operator would run it.
    const cli = execFileSync(loadToolPaths().temporalCli, [
      'operator',
      'cluster',
      'health',
      '--address',
      TEMPORAL_ADDRESS,
    ])
      .toString()
      .trim();
    say(`  temporal operator cluster health: ${cli}`);
    if (!/SERVING/.test(cli)) throw new Error(`temporal operator cluster health said ${cli}`);
  });

  await step('temporal: start and terminate a workflow (history + matching)', () =>
    stack!.temporal.checkWorkflowRoundTrip(),
  );

  if (stack.temporalUiUrl) {
    await step('temporal ui: page and API answer', async () => {
      const page = await fetch(stack!.temporalUiUrl!);
      const api = await fetch(`${stack!.temporalUiUrl}/api/v1/namespaces/default`);
      if (!page.ok || !api.ok) throw new Error(`ui ${page.status}, api ${api.status}`);
    });
  }

  const redisNodes = REDIS_URL.split(',').map((u) => ({ host: new URL(u).hostname, port: Number(new URL(u).port) }));
  const redis = new Cluster(redisNodes, {
    clusterRetryStrategy: (times) => Math.min(100 * times, 1000),
    redisOptions: { connectTimeout: 1000 },
  });
  redis.on('error', () => {});
  const keys = Array.from({ length: 12 }, (_, i) => `smoke:key:${i}`);

  await step('redis cluster: SET/GET on several slots and masters', async () => {
    for (const key of keys) await redis.set(key, `v-${key}`);
    for (const key of keys) if ((await redis.get(key)) !== `v-${key}`) throw new Error(`GET ${key}`);
    const slots = await Promise.all(
      keys.map(async (k) => Number(await redisCommand(redisNodes[0]!.port, ['CLUSTER', 'KEYSLOT', k]))),
    );
    // ioredis' slot table: slot -> [master, replicas…] as "host:port".
    const masters = new Set(slots.map((slot) => (redis.slots[slot] ?? [])[0]));
    say(`  ${keys.length} keys on ${new Set(slots).size} slots across ${masters.size} masters`);
    if (masters.size < 3) throw new Error('keys did not reach all three masters');
  });

  await step('redis cluster: EVAL on two keys with the same {hashtag}', async () => {
    const script =
      "redis.call('SET', KEYS[1], ARGV[1]); redis.call('INCRBY', KEYS[2], ARGV[2]); return {redis.call('GET', KEYS[1]), redis.call('GET', KEYS[2])}";
    const result = (await redis.eval(script, 2, '{sku:smoke}:stock', '{sku:smoke}:reserved', '10', '3')) as string[];
    if (result[0] !== '10' || result[1] !== '3') throw new Error(`EVAL returned ${JSON.stringify(result)}`);
  });

  await step('mariadb: connect and query', async () => {
    const conn = await mysql.createConnection(MYSQL_URL);
    const [rows] = await conn.query('SELECT VERSION() AS v');
    say(`  ${(rows as Array<{ v: string }>)[0]!.v}`);
    await conn.end();
  });

  await step('load balancer: round robin over two upstreams with X-Forwarded-For', async () => {
    const seen: string[] = [];
    const upstreams = await Promise.all(
      ['a', 'b'].map(async (name) => {
        const port = await freePort();
        const server = createServer((req, res) => {
          seen.push(`${name}:${req.headers['x-forwarded-for']}`);
          res.end(name);
        });
        await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
        return { server, port };
      }),
    );
    const lbPort = await freePort();
    const lb = await startLoadBalancer({
      dataDir: join(dataDir, 'lb'),
      port: lbPort,
      upstreams: upstreams.map((u) => `127.0.0.1:${u.port}`),
    });
    pgids.add(lb.process.pid);
    try {
      const bodies = [];
      for (let i = 0; i < 4; i++) bodies.push(await (await fetch(`http://127.0.0.1:${lbPort}/x`)).text());
      say(`  responses ${bodies.join(',')}; upstream saw ${seen.join(',')}`);
      if (!bodies.includes('a') || !bodies.includes('b')) throw new Error('not round-robined');
      if (!seen.every((s) => s.endsWith(':127.0.0.1'))) throw new Error('X-Forwarded-For missing');
    } finally {
      await lb.process.stop();
      for (const u of upstreams) u.server.close();
    }
  });

  await step('temporal: idle RSS/CPU of the services (10 s)', async () => {
    const roles = [
      'temporal-frontend',
      'temporal-history',
      'temporal-matching',
      'temporal-worker',
      'temporal-ui',
      'postgres',
    ].filter((r) => stack!.roles[r]);
    const before = roles.map((r) => cpuTicks(stack!.processes[r]!.pid));
    await sleep(10_000);
    const hz = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
    roles.forEach((r, i) => {
      const pid = stack!.processes[r]!.pid;
      say(`  ${r}: RSS ${rssMiB(pid)} MiB, CPU ${(((cpuTicks(pid) - before[i]!) / hz / 10) * 100).toFixed(1)} %`);
    });
  });

  await step('fault: SIGKILL temporal history, start it again, workflows work again', async () => {
    const oldPid = stack!.processes['temporal-history']!.pid;
    const tk = Date.now();
    await stack!.kill('temporal-history');
    // The frontend still answers what needs no history (describe namespace)…
    await connection.workflowService.describeNamespace({ namespace: TEMPORAL_NAMESPACE });
    await stack!.start('temporal-history');
    rememberPids();
    timings['history restart to SERVING'] = Date.now() - tk;
    // …and starting a workflow works again once the shards are owned by the new process.
    const wait = await stack!.temporal.waitUntilWorking(90_000);
    timings['history kill to first workflow'] = Date.now() - tk;
    say(
      `  history pid ${oldPid} -> ${stack!.processes['temporal-history']!.pid}; SERVING after ${timings['history restart to SERVING']} ms, workflow round trip ${wait} ms later`,
    );
  });

  let killedMaster = '';
  await step('fault: SIGKILL a redis master, replica takes over (bounded)', async () => {
    const masters = await stack!.redis.masters();
    killedMaster = masters[0]!;
    const before = await stack!.redis.clusterNodes();
    const victim = stack!.redis.nodes.find((n) => n.role === killedMaster)!;
    const victimId = before.find((n) => n.port === victim.port)!.id;
    const replica = before.find((n) => n.masterId === victimId)!;
    const tk = Date.now();
    await stack!.kill(killedMaster);
    await stack!.redis.waitHealthy({ replicas: false, timeoutMs: 30_000 });
    const promoted = (await stack!.redis.clusterNodes()).find((n) => n.port === replica.port)!;
    timings['redis failover'] = Date.now() - tk;
    if (promoted.role !== 'master') throw new Error(`replica on ${replica.port} is ${promoted.role}`);
    // The ioredis Cluster client follows the new topology.
    const clientWait = await until(
      'ioredis SET/GET after failover',
      async () => {
        for (const key of keys) await redis.set(key, `w-${key}`);
        for (const key of keys) if ((await redis.get(key)) !== `w-${key}`) return false;
        return true;
      },
      30_000,
    );
    say(
      `  killed ${killedMaster} (port ${victim.port}); replica on ${replica.port} is master, cluster_state:ok after ${timings['redis failover']} ms; client writes again ${clientWait} ms later`,
    );
  });

  await step('fault: old redis master restarts and rejoins as a replica', async () => {
    const tk = Date.now();
    await stack!.start(killedMaster);
    rememberPids();
    await stack!.redis.waitHealthy({ timeoutMs: 60_000 });
    const victim = stack!.redis.nodes.find((n) => n.role === killedMaster)!;
    const view = (await stack!.redis.clusterNodes()).find((n) => n.port === victim.port)!;
    if (view.role !== 'replica') throw new Error(`${killedMaster} came back as ${view.role}`);
    say(`  ${killedMaster} is a replica again, all replicas attached after ${Date.now() - tk} ms`);
  });

  redis.disconnect();
  await connection.close();
} catch {
  // reported by step()
} finally {
  if (stack) {
    rememberPids();
    const ts = Date.now();
    await stack.stop();
    timings['stop'] = Date.now() - ts;
    say(`stopped in ${timings['stop']} ms`);
  }
  const left = execFileSync('ps', ['-eo', 'pid=,pgid=,args='])
    .toString()
    .split('\n')
    .filter((line) => {
      const [, pgid] = line.trim().split(/\s+/);
      return pgids.has(Number(pgid));
    });
  if (left.length) {
    failed++;
    say(`FAIL processes left:\n${left.join('\n')}`);
  } else {
    passed++;
    say(`ok   no process left (${pgids.size} process groups checked)`);
  }
  rmSync(dataDir, { recursive: true, force: true });
  say(`timings (ms): ${JSON.stringify(timings)}`);
  console.log(`${passed} passed, ${failed} failed`);
  process.exitCode = failed ? 1 : 0;
}
