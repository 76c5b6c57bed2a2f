/**
 * The stack the pipeline benchmark runs on, in either layout, and the server processes whose CPU
 * its phases read:
 *   single   the local stack (stack/index.ts): Temporal dev server, Redis, MariaDB; a server
 *            named in the environment is used as it is and not measured (npm test's stack).
 *   cluster  the cluster layout (stack/cluster.ts, as `npm run start:cluster` runs it, without
 *            the APIs and nginx: the benchmark starts the workers itself): Temporal frontend,
 *            history, matching and worker services on PostgreSQL, a Redis Cluster of six nodes,
 *            MariaDB; always started here, so every server is measured. PostgreSQL counts as
 *            Temporal's (its persistence, as the dev server's SQLite is inside the dev server).
 */
import type { Client } from '@temporalio/client';
import type { Stores } from '../src/db/stores.js';
import type { RedisInventory } from '../src/redis/inventory.js';
import type { SalesService } from '../src/sales/sales-service.js';
import { REDIS_ROLES, startClusterStack } from '../stack/cluster.js';
import { TEMPORAL_SERVICES } from '../stack/cluster/temporal.js';
import { startStack } from '../stack/index.js';
import type { PipelineLayout } from './args.js';
import type { MeasuredProcess, ProcessRole } from './phase.js';

/** What every phase of a pipeline benchmark shares: the run's clients and where its workers start from. */
export interface RunContext {
  runId: string;
  env: Record<string, string | undefined>;
  stores: Stores;
  inventory: RedisInventory;
  sales: SalesService;
  temporal: Client;
  stack: PipelineStack;
}

export interface PipelineStack {
  layout: PipelineLayout;
  /** TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, REDIS_URL, MYSQL_URL for the bench and its workers. */
  env: Record<string, string>;
  /** The servers this run started, each by its current process group. */
  servers(): MeasuredProcess[];
  /** What the layout is, for the report. */
  description: string;
  stop(): Promise<void>;
}

export async function startPipelineStack(options: {
  layout: PipelineLayout;
  dataDir: string;
  log: (line: string) => void;
  redisAppendfsync: 'everysec' | 'always';
}): Promise<PipelineStack> {
  const { dataDir, log } = options;
  if (options.layout === 'single') {
    const stack = await startStack({
      dataDir,
      ports: 'free',
      ephemeral: true,
      log,
      redisAppendfsync: options.redisAppendfsync,
    });
    const roles: Array<[name: string, role: ProcessRole, server: 'temporal' | 'mysql' | 'redis']> = [
      ['temporal-dev-server', 'temporal', 'temporal'],
      ['mariadb', 'mysql', 'mysql'],
      ['redis', 'redis', 'redis'],
    ];
    return {
      layout: 'single',
      env: stack.env,
      servers: () =>
        roles.flatMap(([name, role, server]) => {
          const pid = stack.servers[server]?.process?.pid;
          return pid === undefined ? [] : [{ name, role, pgid: pid }];
        }),
      description: 'Temporal dev server (SQLite), Redis, MariaDB',
      stop: () => stack.stop(),
    };
  }
  const stack = await startClusterStack({
    dataDir,
    ephemeral: true,
    ui: false,
    log,
    // As the dev server of the single layout runs (stack/services.ts), so that the layouts
    // compare: the search attributes are registered at launch, so none needs a refresh per read.
    temporalDynamicConfig: { 'system.forceSearchAttributesCacheRefreshOnRead': false },
  });
  const roles: Array<[name: string, role: ProcessRole]> = [
    ...TEMPORAL_SERVICES.map((service): [string, ProcessRole] => [`temporal-${service}`, 'temporal']),
    ['postgres', 'temporal'],
    ['mariadb', 'mysql'],
    ...REDIS_ROLES.map((node): [string, ProcessRole] => [node, 'redis']),
  ];
  return {
    layout: 'cluster',
    env: stack.env,
    servers: () => roles.map(([name, role]) => ({ name, role, pgid: stack.processes[name]!.pid })),
    description: `Temporal ${TEMPORAL_SERVICES.join(', ')} services on PostgreSQL, a Redis Cluster of ${REDIS_ROLES.length} nodes, MariaDB`,
    stop: () => stack.stop(),
  };
}
