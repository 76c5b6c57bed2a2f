/**
 * `tsx bench/server.ts <ceiling|sync|queue|queue-consumer>`: one baseline as its own process, with
 * the app's environment (PORT, REDIS_URL, MYSQL_URL, JWT_SECRET, LOG_LEVEL, …), as bench/run.ts
 * spawns it. Built and served exactly like src/api/server.ts (same client factories, same listen
 * address and keep-alive), so the only difference between the variants is the checkout design.
 *
 * Prints one line to stdout when ready: `listening http://127.0.0.1:<port>` (HTTP variants) or
 * `consuming` (the queue's consumer). SIGTERM/SIGINT: stop, close the clients, exit 0.
 */
import type { Server } from 'node:http';
import type { RedisClient } from '../src/infra/redis.js';
import { loadConfig } from '../src/config/index.js';
import { createLogger } from '../src/infra/logger.js';
import { createMysqlPool } from '../src/db/pool.js';
import { createRedis } from '../src/infra/redis.js';
import { createCeilingApp } from './baselines/ceiling.js';
import { createQueueCheckoutApp, runQueueConsumer } from './baselines/queue.js';
import { createSyncCheckoutApp } from './baselines/sync.js';

const VARIANTS = ['ceiling', 'sync', 'queue', 'queue-consumer'] as const;
type Variant = (typeof VARIANTS)[number];

const variant = process.argv[2] as Variant | undefined;
if (!variant || !VARIANTS.includes(variant)) {
  console.error(`usage: tsx bench/server.ts <${VARIANTS.join('|')}>`);
  process.exit(2);
}

const config = loadConfig();
const logger = createLogger(config, `bench-${variant}`);
let pool: ReturnType<typeof createMysqlPool> | undefined;
let redis: RedisClient | undefined;
const needsMysql = variant === 'sync' || variant === 'queue-consumer';
const needsRedis = variant === 'queue' || variant === 'queue-consumer';
if (needsMysql) pool = createMysqlPool(config);
if (needsRedis) {
  redis = createRedis(config);
  redis.on('error', (err: Error) => logger.warn({ err: err.message }, 'redis connection error'));
}

let server: Server | undefined;
let consumer: { abort: AbortController; done: Promise<void> } | undefined;

if (variant === 'queue-consumer') {
  const abort = new AbortController();
  const done = runQueueConsumer({ redis: redis!, pool: pool!, logger, signal: abort.signal });
  consumer = { abort, done };
  console.log('consuming');
} else {
  const app =
    variant === 'ceiling'
      ? createCeilingApp(logger)
      : variant === 'sync'
        ? createSyncCheckoutApp({ config, pool: pool!, logger })
        : createQueueCheckoutApp({ config, redis: redis!, logger });
  const listening = app.listen(config.port, '0.0.0.0');
  server = listening;
  await new Promise<void>((resolve, reject) => listening.once('listening', resolve).once('error', reject));
  listening.keepAliveTimeout = 65_000;
  const address = listening.address();
  console.log(`listening http://127.0.0.1:${typeof address === 'object' && address ? address.port : config.port}`);
}

let closing = false;
async function shutdown(): Promise<void> {
  if (closing) return;
  closing = true;
  if (server) {
    const closed = new Promise<void>((resolve) => server!.close(() => resolve()));
    server.closeAllConnections();
    await closed;
  }
  if (consumer) {
    consumer.abort.abort();
    await consumer.done.catch((err: unknown) => logger.error({ err }, 'consumer failed'));
  }
  await Promise.allSettled([pool?.end(), redis?.quit()]);
  // Exit by draining the event loop rather than process.exit(): pending writes (stdout, tsx's
  // signal IPC to its parent) get flushed first. The unref'd timer only fires if a handle lingers.
  process.exitCode = 0;
  setTimeout(() => process.exit(0), 5_000).unref();
}
// `on`, not `once`: a group SIGTERM reaches both tsx and this process, and tsx may relay a second
// one; with no listener left, that second signal would kill the process mid-shutdown (exit 143).
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => void shutdown());
// A consumer that dies on its own must not leave a silent process behind.
void consumer?.done.catch((err: unknown) => {
  logger.fatal({ err }, 'consumer crashed');
  process.exit(1);
});
