/**
 * Redis Cluster on loopback: 3 masters + 1 replica each, six redis-server processes with their own
 * directories (AOF fsynced always, nodes.conf), joined with `redis-cli --cluster create --cluster-replicas 1`.
 *
 * A node restarted with the same port and directory rejoins with its old identity (nodes.conf): a
 * master killed while its replica was promoted comes back as a replica of the new master.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { spawnLogged, waitUntilReady } from '../process.js';
import { pollUntil, run, startRole, type RoleHandle } from './role.js';
import type { ClusterToolPaths } from './tools.js';

export interface RedisClusterOptions {
  tools: ClusterToolPaths & { redisServer: string };
  dataDir: string;
  /** Six ports: the first three become masters, the last three their replicas. */
  ports: number[];
  /**
   * How long a master may be unreachable before its replica takes over (cluster-node-timeout).
   * Redis' default is 15 s; 5 s keeps fault tests short without flapping on a loaded 2-core box.
   */
  nodeTimeoutMs?: number;
  log?: (line: string) => void;
  timeoutMs?: number;
}

export interface RedisNode {
  /** redis-1 … redis-6 */
  role: string;
  port: number;
  url: string;
  handle: RoleHandle;
}

/** One line of CLUSTER NODES as seen by a live node. */
export interface RedisClusterNodeView {
  id: string;
  port: number;
  role: 'master' | 'replica';
  /** The master's id for a replica. */
  masterId?: string;
  flags: string[];
  connected: boolean;
  /** Slot ranges, e.g. ["0-5460"]. */
  slots: string[];
}

export interface RunningRedisCluster {
  nodes: RedisNode[];
  /** The cluster as a live node sees it (first node that answers, or the node on `port`). */
  clusterNodes(port?: number): Promise<RedisClusterNodeView[]>;
  /** Roles (redis-N) of the nodes that are masters now. */
  masters(): Promise<string[]>;
  /**
   * Healthy = every running node says cluster_state:ok, the three masters serving the slots are
   * running nodes (so after a master is killed this waits for its replica's promotion) and, with
   * `replicas` (default true), every master has a connected replica whose link to it is up.
   * Resolves with the wait in ms.
   */
  waitHealthy(opts?: { timeoutMs?: number; replicas?: boolean }): Promise<number>;
}

export async function startRedisCluster(opts: RedisClusterOptions): Promise<RunningRedisCluster> {
  if (opts.ports.length !== 6) throw new Error('a Redis Cluster of 3 masters + 3 replicas needs 6 ports');
  const log = opts.log ?? (() => {});
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const nodes: RedisNode[] = [];
  const fresh = opts.ports.every((_, i) => !existsSync(join(opts.dataDir, `node-${i + 1}`, 'nodes.conf')));

  const startNode = async (port: number, index: number) => {
    const role = `redis-${index + 1}`;
    const dir = join(opts.dataDir, `node-${index + 1}`);
    mkdirSync(dir, { recursive: true });
    // Flags and their values stay in pairs:
    // prettier-ignore
    const args = [
      '--port', String(port),
      '--bind', '127.0.0.1',
      '--dir', dir,
      '--cluster-enabled', 'yes',
      '--cluster-config-file', 'nodes.conf',
      '--cluster-node-timeout', String(opts.nodeTimeoutMs ?? 5_000),
      // A master otherwise waits 5 s for more replicas before a (diskless) full sync: with one replica
      // each, that is 5 s added to every start-up and every rejoin of a killed node.
      '--repl-diskless-sync-delay', '0',
      '--appendonly', 'yes',
      '--appendfsync', 'always',
      '--save', '',
      '--daemonize', 'no',
      '--logfile', join(dir, 'redis.log'),
      '--pidfile', join(dir, 'redis.pid'),
    ];
    const handle = await startRole({
      role,
      spawn: () => spawnLogged(role, opts.tools.redisServer, args, { logFile: join(dir, 'redis.stdout.log') }),
      ready: (proc) => waitUntilReady(proc, async () => (await redisCommand(port, ['PING'])) === 'PONG', timeoutMs),
      graceMs: 5_000,
    });
    nodes[index] = { role, port, url: `redis://127.0.0.1:${port}`, handle };
  };

  try {
    const results = await Promise.allSettled(opts.ports.map(startNode));
    const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failure) throw failure.reason;

    if (fresh) {
      const t0 = Date.now();
      // The first three listed become masters; --cluster-yes accepts the proposed layout (every
      // replica is on the same host as its master here, which redis-cli only warns about).
      await run(
        opts.tools.redisCli,
        ['--cluster', 'create', ...opts.ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '1', '--cluster-yes'],
        {
          timeoutMs: timeoutMs,
        },
      );
      log(`redis cluster created in ${Date.now() - t0} ms`);
    } else {
      log('redis cluster: existing nodes.conf found, rejoining the existing cluster');
    }
  } catch (err) {
    for (const node of [...nodes].reverse()) await node?.handle.stop();
    throw err;
  }

  const cluster: RunningRedisCluster = {
    nodes,
    async clusterNodes(port?: number) {
      const candidates = port ? [port] : nodes.filter((n) => n.handle.running).map((n) => n.port);
      let lastError: unknown;
      for (const p of candidates) {
        try {
          return parseClusterNodes(await redisCommand(p, ['CLUSTER', 'NODES']));
        } catch (err) {
          lastError = err;
        }
      }
      throw lastError instanceof Error ? lastError : new Error('no Redis node answered CLUSTER NODES');
    },
    async masters() {
      const view = await cluster.clusterNodes();
      return view
        .filter((n) => n.role === 'master' && n.connected && n.slots.length > 0 && !n.flags.includes('fail'))
        .map((n) => nodes.find((node) => node.port === n.port)?.role ?? `127.0.0.1:${n.port}`);
    },
    waitHealthy: ({ timeoutMs: wait = timeoutMs, replicas = true } = {}) =>
      pollUntil('redis cluster healthy', () => clusterHealthy(nodes, replicas), wait),
  };
  try {
    const took = await cluster.waitHealthy();
    log(`redis cluster healthy (cluster_state:ok on all 6 nodes, replicas attached) after ${took} ms`);
  } catch (err) {
    for (const node of [...nodes].reverse()) await node.handle.stop();
    throw err;
  }
  return cluster;
}

async function clusterHealthy(nodes: RedisNode[], replicas: boolean): Promise<boolean> {
  const live = nodes.filter((n) => n.handle.running);
  for (const node of live) {
    const info = await redisCommand(node.port, ['CLUSTER', 'INFO']);
    if (!/cluster_state:ok/.test(info)) return false;
  }
  const view = parseClusterNodes(await redisCommand(live[0]!.port, ['CLUSTER', 'NODES']));
  const masters = view.filter((n) => n.role === 'master' && n.slots.length > 0);
  // Three masters serve the slots and each is a running node: right after a master is killed the
  // others still say cluster_state:ok until cluster-node-timeout passes and its replica takes over.
  if (masters.length !== 3 || masters.some((m) => m.flags.includes('fail') || !m.connected)) return false;
  if (masters.some((m) => !live.some((l) => l.port === m.port))) return false;
  if (!replicas) return true;
  for (const master of masters) {
    const replica = view.find(
      (n) => n.role === 'replica' && n.masterId === master.id && n.connected && !n.flags.includes('fail'),
    );
    if (!replica) return false;
    // The replica itself must report its replication link up (not merely known to the cluster).
    const replication = await redisCommand(replica.port, ['INFO', 'replication']);
    if (!/master_link_status:up/.test(replication)) return false;
  }
  // Nodes flagged failed but running again (rejoining) show up as fail until gossip clears it.
  return !view.some((n) => n.flags.includes('fail') && live.some((l) => l.port === n.port));
}

export function parseClusterNodes(text: string): RedisClusterNodeView[] {
  return text
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [id, addr, flagList, master, , , , link, ...slots] = line.trim().split(' ');
      const flags = (flagList ?? '').split(',');
      const port = Number((addr ?? '').split('@')[0]!.split(':').pop());
      return {
        id: id!,
        port,
        role: flags.includes('master') ? ('master' as const) : ('replica' as const),
        masterId: master && master !== '-' ? master : undefined,
        flags,
        connected: link === 'connected',
        slots: slots.filter((s) => !s.startsWith('[')),
      };
    });
}

/** One command on a short-lived connection to one node; never follows redirections or retries. */
export async function redisCommand(port: number, args: string[]): Promise<string> {
  const client = new Redis({
    host: '127.0.0.1',
    port,
    lazyConnect: true,
    connectTimeout: 1_000,
    commandTimeout: 2_000,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
  });
  client.on('error', () => {}); // reported through the command's rejection
  try {
    await client.connect();
    const reply = await client.call(args[0]!, ...args.slice(1));
    return Buffer.isBuffer(reply) ? reply.toString() : String(reply);
  } finally {
    client.disconnect();
  }
}
