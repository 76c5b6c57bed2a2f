/** Builds the API's clients from configuration and serves the app; used by main.ts and by tests. */
import type { Server, ServerResponse } from 'node:http';
import type { AppConfig } from '../config/index.js';
import { createLogger, type Logger } from '../infra/logger.js';
import { createMysqlPool } from '../db/pool.js';
import { openStores } from '../db/stores.js';
import { payloadCodecOf } from '../infra/data-converter.js';
import { encryptionsSince } from '../infra/payload-codec.js';
import { createRedis, redisClockMs } from '../infra/redis.js';
import { ClockWatch } from '../infra/clocks.js';
import { createTemporalClient } from '../infra/temporal-connection.js';
import { activeTracing } from '../infra/tracing.js';
import { ORDER_CHANGED_CHANNEL } from '../order/status-reads.js';
import { subscribeChannels } from '../infra/redis-subscription.js';
import { STOCK_RETURNED_CHANNEL } from '../redis/inventory.js';
import { composeApi, createApp, type ApiSubstitutes } from './app.js';

/** The longest shutdown waits for Temporal calls still under way (each ends by its gRPC deadline first). */
const CALLS_END_WAIT_MS = 15_000;

export interface RunningApi {
  server: Server;
  url: string;
  /** Turns /readyz to 503 and keeps serving for SHUTDOWN_DRAIN, so load balancers move away first. */
  drain(): Promise<void>;
  close(): Promise<void>;
}

export interface StartApiOptions {
  logger?: Logger;
  substitutes?: ApiSubstitutes;
}

export async function startApi(
  config: AppConfig,
  port = config.port,
  options: StartApiOptions = {},
): Promise<RunningApi> {
  const logger = options.logger ?? createLogger(config, 'api');
  // The guard's REDIS_TIMEOUT lets an arrived answer beat a late timer; the client's own would not: a backstop only.
  const redis = createRedis(config, { commandTimeout: config.deadlines.redisMs + 1_000 });
  // Without a listener ioredis prints every reconnect failure as "unhandled"; /healthz reports it.
  redis.on('error', (err: Error) => logger.warn({ err: err.message }, 'redis connection error'));
  const pool = createMysqlPool(config);
  const stores = openStores(pool);
  const temporal = await createTemporalClient(config);
  const parts = composeApi({ config, redis, stores, temporal, logger }, options.substitutes);
  const { readiness, statusReader, payments, replicaAcks } = parts;
  parts.metrics.countEncryptions(encryptionsSince(payloadCodecOf(config)));
  // reserve.lua judges this process's cutoffs by Redis's clock: unready while they differ (MySQL's is only shown).
  const clock = new ClockWatch(
    { redis: () => redisClockMs(redis), mysql: () => stores.reports.clockMs() },
    { source: 'redis', label: 'Redis', marginMs: config.clockSkewMarginMs, marginName: 'CLOCK_SKEW_MARGIN' },
  );
  await clock.start();
  readiness.problem = () => clock.problem();
  readiness.clocks = () => clock.offsets();
  // One subscription for the caches notifications keep safe: the sold-out flag, the status cache.
  const channels = {
    [STOCK_RETURNED_CHANNEL]: parts.soldOut.listener(),
    [ORDER_CHANGED_CHANNEL]: statusReader.listener(),
  };
  const subscriber = subscribeChannels(redis, channels, logger);
  const app = createApp(parts);
  const server = app.listen(port, '0.0.0.0');
  await new Promise<void>((resolve, reject) => server.once('listening', resolve).once('error', reject));
  // Keep-alive longer than typical load balancers' idle timeout avoids resets under load.
  server.keepAliveTimeout = 65_000;
  const address = server.address();
  const url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : port}`;
  logger.info({ url, tracing: activeTracing()?.exporter ?? 'off' }, 'api listening');
  return {
    server,
    url,
    async drain() {
      if (readiness.draining) return;
      readiness.draining = true;
      logger.info({ drainMs: config.shutdownDrainMs }, 'draining: /readyz answers 503, requests are still served');
      // Keep-alive clients are told to reconnect, so their next request goes to a ready process.
      server.on('request', (_request, response: ServerResponse) => response.setHeader('Connection', 'close'));
      server.closeIdleConnections();
      await new Promise((resolve) => setTimeout(resolve, config.shutdownDrainMs));
    },
    async close() {
      statusReader.stopWaits();
      parts.line.stop();
      clock.stop();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await payments.stop();
      server.closeAllConnections();
      // Calls a deadline gave up on run on to their gRPC deadline: the connection closes after them.
      await parts.orders.untilCallsEnd(CALLS_END_WAIT_MS);
      await Promise.allSettled([
        subscriber.quit(),
        redis.quit(),
        replicaAcks?.close(),
        pool.end(),
        temporal.connection.close(),
      ]);
    },
  };
}
