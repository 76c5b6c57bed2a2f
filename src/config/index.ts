/**
 * The service's configuration, read once from the environment (README, "Configuration").
 * Defaults point at the local stack that `npm start` runs, so a bare checkout works as it is.
 */
import { z } from 'zod';
import { durationToMs } from '../workflows/duration.js';

/** Ports of the local stack started by `npm start`; tests and the benchmark pick free ports instead. */
export const LOCAL_STACK_PORTS = {
  api: 3000,
  temporal: 7233,
  temporalUi: 8233,
  redis: 6380,
  mysql: 3307,
} as const;

const durationString = z.string().refine(
  (value) => {
    try {
      return durationToMs(value) > 0;
    } catch {
      return false;
    }
  },
  { message: 'must be a positive duration such as "30m", "90s" or "2 hours"' },
);

const booleanString = z.enum(['true', 'false', '1', '0', '']).transform((value) => value === 'true' || value === '1');

/** One redis:// or rediss:// URL, or a comma-separated list of a Redis Cluster's nodes. */
const redisUrls = z.string().refine(
  (value) => {
    const urls = value.split(',').map((url) => url.trim());
    return urls.every((url) => {
      try {
        return ['redis:', 'rediss:'].includes(new URL(url).protocol);
      } catch {
        return false;
      }
    });
  },
  { message: 'must be a redis:// or rediss:// URL, or a comma-separated list of them (Redis Cluster nodes)' },
);

const envSchema = z.object({
  PORT: z.coerce.number().int().min(0).max(65535).default(LOCAL_STACK_PORTS.api),
  TEMPORAL_ADDRESS: z.string().min(1).default(`127.0.0.1:${LOCAL_STACK_PORTS.temporal}`),
  TEMPORAL_NAMESPACE: z.string().min(1).default('default'),
  TEMPORAL_TASK_QUEUE: z.string().min(1).default('flash-checkout-orders'),
  REDIS_URL: redisUrls.default(`redis://127.0.0.1:${LOCAL_STACK_PORTS.redis}`),
  MYSQL_URL: z.string().url().default(`mysql://flash:flash@127.0.0.1:${LOCAL_STACK_PORTS.mysql}/flash`),
  PAYMENT_WINDOW: durationString.default('30m'),
  RECONCILE_INTERVAL: durationString.default('30s'),
  RESERVATION_GRACE: durationString.default('60s'),
  WEBHOOK_SECRET: z.string().min(16).default('dev-webhook-secret-change-me'),
  JWT_SECRET: z.string().min(16).default('dev-jwt-secret-change-me-please'),
  JWT_ISSUER: z.string().min(1).default('flash-checkout'),
  JWT_AUDIENCE: z.string().min(1).default('flash-checkout-api'),
  JWT_MAX_TTL: durationString.default('24h'),
  MAX_CANCELS_PER_SHOPPER: z.coerce.number().int().min(0).max(1_000).default(3),
  ADMIN_TOKEN: z.string().min(8).default('dev-admin-token'),
  AUTH_DEV_LOGIN: booleanString.default(false),
  LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
  /** true: REDIS_URL is a Redis Cluster even when it names one node (a managed cluster's endpoint). */
  REDIS_CLUSTER: booleanString.default(false),
});

/** Every environment variable the service reads (the deployment files are checked against it). */
export const CONFIG_VARIABLES: readonly string[] = Object.keys(envSchema.shape);

export interface AppConfig {
  port: number;
  temporal: { address: string; namespace: string; taskQueue: string };
  redisUrl: string;
  mysqlUrl: string;
  /** Kept as the string the operator wrote; it travels in each workflow's input. */
  paymentWindow: string;
  paymentWindowMs: number;
  /** How often the reconciler's Temporal Schedule runs. */
  reconcileIntervalMs: number;
  /** How old an unclaimed reservation must be before the reconciler treats it as an orphan. */
  reservationGraceMs: number;
  webhookSecret: string;
  jwtSecret: string;
  jwtIssuer: string;
  jwtAudience: string;
  jwtMaxTtlMs: number;
  /** Cancelled orders after which a shopper can no longer check out in the same sale (0: no limit). */
  maxCancelsPerShopper: number;
  adminToken: string;
  authDevLogin: boolean;
  logLevel: z.infer<typeof envSchema>['LOG_LEVEL'];
  /** Connect through the Redis Cluster client: REDIS_CLUSTER=true, or several URLs in REDIS_URL. */
  redisCluster: boolean;
}

export class ConfigError extends Error {}

/** Reads the configuration from `env`; throws a ConfigError naming every bad variable. */
export function loadConfig(env: Record<string, string | undefined> = process.env): AppConfig {
  // Empty strings mean "not set", as they do for most twelve-factor services.
  const present = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== undefined && value !== ''));
  const parsed = envSchema.safeParse(present);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
    throw new ConfigError(`Invalid configuration:\n  ${problems.join('\n  ')}`);
  }
  const e = parsed.data;
  return {
    port: e.PORT,
    temporal: { address: e.TEMPORAL_ADDRESS, namespace: e.TEMPORAL_NAMESPACE, taskQueue: e.TEMPORAL_TASK_QUEUE },
    redisUrl: e.REDIS_URL,
    mysqlUrl: e.MYSQL_URL,
    paymentWindow: e.PAYMENT_WINDOW,
    paymentWindowMs: durationToMs(e.PAYMENT_WINDOW),
    reconcileIntervalMs: durationToMs(e.RECONCILE_INTERVAL),
    reservationGraceMs: durationToMs(e.RESERVATION_GRACE),
    webhookSecret: e.WEBHOOK_SECRET,
    jwtSecret: e.JWT_SECRET,
    jwtIssuer: e.JWT_ISSUER,
    jwtAudience: e.JWT_AUDIENCE,
    jwtMaxTtlMs: durationToMs(e.JWT_MAX_TTL),
    maxCancelsPerShopper: e.MAX_CANCELS_PER_SHOPPER,
    adminToken: e.ADMIN_TOKEN,
    authDevLogin: e.AUTH_DEV_LOGIN,
    logLevel: e.LOG_LEVEL,
    redisCluster: e.REDIS_CLUSTER || e.REDIS_URL.includes(','),
  };
}
