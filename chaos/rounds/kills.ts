/**
 * The kills: SIGKILL of one process mid-burst, its supervisor starting it again (chaos/rounds/burst.ts). Clients retry
 * through the other API; the reconciler releases what a dead process left reserved.
 */
import { killRound } from './burst.js';
import { firstApi, kill, killRedisLosingLastSecond, serverOf } from './faults.js';

/** In a rush of checkouts (as in a real flash sale), so that some are caught between reservation and start. */
export const apiKill = killRound({
  name: 'api-kill',
  faults: 'SIGKILL of one API mid-burst (clients retry on the other)',
  quick: true,
  rush: true,
  inject: async ({ suite }) => kill(firstApi(suite.targets), suite.say),
});

export const workerKill = killRound({
  name: 'worker-kill',
  faults: 'SIGKILL of the worker while orders are being persisted',
  quick: true,
  inject: async ({ suite }) => kill(suite.targets.worker, suite.say),
});

export const mariadbKill = killRound({
  name: 'mariadb-kill',
  faults: 'SIGKILL of MariaDB, back after 10 s',
  quick: true,
  inject: async ({ suite }) => kill(serverOf(suite.targets, 'mysql'), suite.say, 10_000),
});

export const redisKill = killRound({
  name: 'redis-kill',
  faults: 'SIGKILL of Redis, restarted from its append-only file',
  quick: true,
  inject: async ({ suite }) => kill(serverOf(suite.targets, 'redis'), suite.say),
});

/** What a disk that loses its last writes (or a machine crash under appendfsync everysec) leaves behind. */
export const redisAofTailLost = killRound({
  name: 'redis-aof-tail-lost',
  faults: 'SIGKILL of Redis and the last second of its append-only file cut off before the restart',
  quick: true,
  losesRedisWrites: true,
  inject: async ({ suite, aofWatch }) => {
    if (!aofWatch) throw new Error("Redis's append-only file was not watched");
    await killRedisLosingLastSecond(serverOf(suite.targets, 'redis'), aofWatch, suite.say);
  },
});

export const temporalKill = killRound({
  name: 'temporal-kill',
  faults: 'SIGKILL of the Temporal dev server, restarted on its SQLite file',
  quick: true,
  inject: async ({ suite }) => kill(serverOf(suite.targets, 'temporal'), suite.say),
});
