/**
 * The service's configuration, read once from the environment (docs/operations.md, "Configuration"; meanings in
 * scripts/config-descriptions.ts). Defaults point at the local stack that `npm start` runs: a bare checkout works.
 */
import { randomBytes } from 'node:crypto';
import { linkSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ipaddr from 'ipaddr.js';
import ms from 'ms';
import { z } from 'zod';
import { durationToMs } from '../model/order-workflow.js';
import { isPublishedSecret, weakness } from './secrets.js';

/** Ports of the local stack started by `npm start`; tests and the benchmark pick free ports instead. */
export const LOCAL_STACK_PORTS = {
  api: 3000,
  temporal: 7233,
  temporalUi: 8233,
  redis: 6380,
  mysql: 3307,
  workerMetrics: 9464,
  workerHealth: 9465,
  codecServer: 8234,
} as const;

/** A positive duration ("30m", "90s"); exported for the providers' settings (src/payments/providers). */
export const durationString = z.string().refine(
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

/** A comma-separated list's entries, trimmed, empty ones dropped. */
export function commaList(value: string): string[] {
  return value
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '');
}

function refuse(ctx: z.RefinementCtx, message: string): never {
  ctx.addIssue({ code: 'custom', message });
  return z.NEVER;
}

/** A request budget: `points` requests per `durationSeconds` window. */
export interface RateLimit {
  points: number;
  durationSeconds: number;
}

/** rate-limiter-flexible counts windows in whole seconds, so "1500ms" is refused, not rounded. */
const rateLimitString = z
  .string()
  .trim()
  .transform((value, ctx): RateLimit | null => {
    if (value === '0' || value.toLowerCase() === 'off') return null;
    const match = /^(\d{1,7})\s*\/\s*(.+)$/.exec(value);
    const points = Number(match?.[1]);
    const durationMs = match?.[2] ? ms(match[2] as Parameters<typeof ms>[0]) : NaN;
    if (!match || points < 1 || !Number.isFinite(durationMs) || durationMs < 1_000 || durationMs % 1_000 !== 0)
      return refuse(ctx, 'must be "<requests>/<duration>" such as "10/10s" or "20/1m" (whole seconds), or "0"/"off"');
    return { points, durationSeconds: durationMs / 1_000 };
  });

/** May be zero: for waits that can be skipped. */
const optionalDurationString = z.string().refine(
  (value) => {
    const parsed = ms(value as Parameters<typeof ms>[0]);
    return typeof parsed === 'number' && Number.isFinite(parsed) && parsed >= 0;
  },
  { message: 'must be a duration such as "5s" or "0"' },
);

/**
 * A deployment name and a build id as Temporal takes them and visibility queries quote them: the name without '.' or
 * ':' (Temporal's delimiters) but with '/' (the Worker Controller's `<namespace>/<name>`), the id with '.' (an image
 * tag's); neither begins with '__' (reserved by the server).
 */
const DEPLOYMENT_NAME = z
  .string()
  .min(1)
  .max(200)
  .regex(/^(?!__)[A-Za-z0-9_/-]+$/, "only letters, digits, '-', '_' and '/', not beginning with '__'");
export const BUILD_ID = z
  .string()
  .min(1)
  .max(200)
  .regex(/^(?!__)[A-Za-z0-9_.-]+$/, "only letters, digits, '-', '_' and '.', not beginning with '__'");

/** One key of the payload codec (src/infra/payload-codec.ts): its id travels in each encrypted payload's metadata. */
export interface PayloadCodecKey {
  id: string;
  /** 32 bytes: AES-256. */
  secret: Buffer;
}

/** `id=base64,id=base64`: the first encrypts, every one decrypts (a rotation puts the new key first, the old after). */
const payloadCodecKeys = z.string().transform((value, ctx): PayloadCodecKey[] => {
  const keys: PayloadCodecKey[] = [];
  for (const [n, entry] of commaList(value).entries()) {
    const match = /^([A-Za-z0-9_-]{1,32})=([A-Za-z0-9+/]+={0,2})$/.exec(entry);
    const secret = match ? Buffer.from(match[2]!, 'base64') : undefined;
    // Named by its id only when it has one (bare base64 never has "id=" then a value): never print a key.
    const named = /^([A-Za-z0-9_-]{1,32})=[^=]/.exec(entry)?.[1];
    if (!match || secret?.length !== 32)
      return refuse(
        ctx,
        `${named ? `key "${named}"` : `entry ${n + 1} (not shown)`}: each key must be <id>=<32 bytes in base64> (openssl rand -base64 32)`,
      );
    if (keys.some((key) => key.id === match[1])) return refuse(ctx, `key id "${match[1]}" is listed twice`);
    keys.push({ id: match[1]!, secret });
  }
  return keys.length > 0 ? keys : refuse(ctx, 'lists no key');
});

/** One key of EVENTS_SECRET_KEY (src/events/endpoint-secrets.ts): '' for the one key of a value without ids. */
export interface EventsSecretKey {
  id: string;
  secret: string;
}

/**
 * One key as it always was, or `<id>=<key>,…`: the first seals, every one opens (rotation: docs/operations.md). Each at
 * least 24 characters; a refusal names a key by its id or position, never by its text.
 */
const eventsSecretKeys = z.string().transform((value, ctx): EventsSecretKey[] => {
  // `id=` then a value: a key's own base64 padding (`…==`) is no id, and is never shown as one.
  const listed = /^[A-Za-z0-9_-]{1,32}=[^=]/.test(value);
  const keys: EventsSecretKey[] = [];
  for (const [n, entry] of (listed ? commaList(value) : [value]).entries()) {
    const match = listed ? /^([A-Za-z0-9_-]{1,32})=([^=].*)$/.exec(entry) : null;
    const key = match ? { id: match[1]!, secret: match[2]! } : { id: '', secret: entry };
    const named = match ? `key "${key.id}"` : `entry ${n + 1} (not shown)`;
    if ((listed && !match) || key.secret.length < 24)
      return refuse(ctx, `${named}: each key must be <id>=<at least 24 characters> (openssl rand -hex 32)`);
    if (keys.some((other) => other.id === key.id)) return refuse(ctx, `key id "${key.id}" is listed twice`);
    keys.push(key);
  }
  return keys;
});

/**
 * Outside production, a checkout's own codec key: generated once under .data/ (never committed, so a history copied
 * from a developer's machine is not readable with a published key), shared by npm start, the tests and the scripts.
 */
const LOCAL_CODEC_KEY_FILE = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '.data', 'payload-codec-keys');

function localCodecKeys(): string {
  try {
    return readFileSync(LOCAL_CODEC_KEY_FILE, 'utf8').trim();
  } catch {
    const generated = `local-${randomBytes(4).toString('hex')}=${randomBytes(32).toString('base64')}`;
    mkdirSync(dirname(LOCAL_CODEC_KEY_FILE), { recursive: true });
    // Written whole, then linked into place (refused if the name exists): processes starting at once all read the
    // first one's key, and none reads a file still being written (`wx` creates it empty first).
    const written = `${LOCAL_CODEC_KEY_FILE}.${process.pid}.tmp`;
    writeFileSync(written, `${generated}\n`, { mode: 0o600 });
    try {
      linkSync(written, LOCAL_CODEC_KEY_FILE);
    } catch {
      // another process linked its key first
    } finally {
      rmSync(written, { force: true });
    }
    return readFileSync(LOCAL_CODEC_KEY_FILE, 'utf8').trim();
  }
}

/**
 * Browser origins (`http://127.0.0.1:8233`), comma-separated, each kept as the browser sends it in Origin: no path,
 * no wildcard (the codec server answers them with credentials allowed).
 */
const originList = z.string().transform((value, ctx): string[] => {
  const origins = commaList(value);
  const bad = origins.filter((origin) => {
    try {
      const url = new URL(origin);
      return !['http:', 'https:'].includes(url.protocol) || url.origin !== origin.replace(/\/$/, '');
    } catch {
      return true;
    }
  });
  if (bad.length > 0 || origins.length === 0)
    return refuse(
      ctx,
      `${bad.length > 0 ? `not an origin: ${bad.map((origin) => `"${origin}"`).join(', ')}` : 'lists no origin'} (origins such as http://127.0.0.1:8233,https://temporal.example.com)`,
    );
  return [...new Set(origins.map((origin) => new URL(origin).origin))];
});

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

/** Comma-separated CIDR ranges (IPv4 in four-part decimal), kept in canonical form (src/events/webhook-sender.ts). */
const cidrList = z.string().transform((value, ctx): string[] => {
  const ranges = commaList(value);
  const bad = ranges.filter(
    (range) => !ipaddr.IPv4.isValidCIDRFourPartDecimal(range) && !ipaddr.IPv6.isValidCIDR(range),
  );
  if (bad.length > 0)
    return refuse(
      ctx,
      `not a CIDR range: ${bad.map((range) => `"${range}"`).join(', ')} (ranges such as 127.0.0.0/8,::1/128)`,
    );
  return ranges.map((range) => {
    const [address, bits] = ipaddr.parseCIDR(range);
    return `${address.toString()}/${bits}`;
  });
});

const envSchema = z.object({
  PORT: z.coerce.number().int().min(0).max(65535),
  TEMPORAL_ADDRESS: z.string().min(1),
  TEMPORAL_NAMESPACE: z.string().min(1),
  // Quoted in visibility queries (the deployment view's counts).
  TEMPORAL_TASK_QUEUE: z
    .string()
    .min(1)
    .regex(/^[A-Za-z0-9_.-]+$/, "only letters, digits, '.', '-' and '_'"),
  TEMPORAL_TLS: booleanString,
  TEMPORAL_API_KEY: z.string().min(1).optional(),
  TEMPORAL_TLS_CERT_PATH: z.string().min(1).optional(),
  TEMPORAL_TLS_KEY_PATH: z.string().min(1).optional(),
  REDIS_URL: redisUrls,
  MYSQL_URL: z.string().url(),
  PAYMENT_WINDOW: durationString,
  RECONCILE_INTERVAL: durationString,
  RESERVATION_GRACE: durationString,
  WEBHOOK_SECRET: z.string().min(16),
  // Order events to merchants' endpoints (src/events/webhook-sender.ts): refused ranges allowed, https, an attempt.
  EVENTS_ALLOWED_RANGES: cidrList.optional(),
  EVENTS_REQUIRE_HTTPS: z.enum(['auto', 'true', 'false', '1', '0']),
  EVENTS_ATTEMPT_TIMEOUT_MS: z.coerce.number().int().min(1_000).max(30_000),
  // How long an event is retried to an endpoint (then given up; the feed keeps it), and how long the feed keeps it.
  EVENTS_RETRY_PERIOD: durationString,
  // The first retry after a failed attempt; each next one doubles (± 20 %), up to an hour.
  EVENTS_RETRY_FIRST: durationString,
  EVENTS_RETENTION: durationString,
  // Endpoints' whsec_ secrets are stored encrypted with keys derived from these (AES-256-GCM).
  EVENTS_SECRET_KEY: eventsSecretKeys,
  // Keys the opaque customer reference order events carry instead of the shopper's id (HMAC-SHA256).
  EVENTS_CUSTOMER_SECRET: z.string().min(16),
  // Events sent at once to one endpoint, and how often an idle endpoint's delivery looks for new events.
  EVENTS_CONCURRENCY: z.coerce.number().int().min(1).max(64),
  EVENTS_POLL_INTERVAL: durationString,
  JWT_SECRET: z.string().min(16),
  JWT_ISSUER: z.string().min(1),
  JWT_AUDIENCE: z.string().min(1),
  JWT_MAX_TTL: durationString,
  MAX_CANCELS_PER_SHOPPER: z.coerce.number().int().min(0).max(1_000),
  CHECKOUT_MAX_WAIT: z.union([z.literal('0'), durationString]),
  ADMIN_TOKEN: z.string().min(8),
  // Read-only: the order events feed, for fulfilment systems (the admin token reads it too).
  EVENTS_READ_TOKEN: z.string().min(16).optional(),
  AUTH_DEV_LOGIN: booleanString,
  LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']),
  TEMPORAL_UI_URL: z.string().url().optional(),
  // Checkouts per shopper (JWT sub); logins and webhooks per client IP (a provider sends bursts from a few IPs).
  RATE_LIMIT_CHECKOUT: rateLimitString,
  RATE_LIMIT_LOGIN: rateLimitString,
  RATE_LIMIT_WEBHOOK: rateLimitString,
  // Wrong operator or codec-server tokens per address, before it is answered 429 until the window ends.
  RATE_LIMIT_AUTH_FAILURES: rateLimitString,
  RATE_LIMIT_LINE: rateLimitString,
  RATE_LIMIT_LINE_IP: rateLimitString,
  RATE_LIMIT_LINE_SUBNET: rateLimitString,
  LINE_ADMISSIONS_PER_SECOND: z.coerce.number().int().min(1).max(100_000),
  LINE_ADMISSION_TTL: durationString,
  LINE_CHALLENGE_HEADER: z
    .string()
    .regex(/^[A-Za-z0-9-]+$/)
    .optional(),
  LINE_CHALLENGE_SECRET: z.string().optional(),
  TRUST_PROXY: booleanString,
  TRUST_PROXY_HOPS: z.coerce.number().int().min(1).max(10),
  SHUTDOWN_DRAIN: optionalDurationString,
  NODE_ENV: z.enum(['development', 'test', 'production']),
  // Temporal payloads' encryption keys; encrypt, only decrypt (the release before), or encrypt and refuse plain ones.
  PAYLOAD_CODEC_KEYS: payloadCodecKeys.optional(),
  PAYLOAD_CODEC_MODE: z.enum(['encrypt', 'decrypt-only', 'require']),
  // The codec server (src/api/codec-server.ts): the Web UI's and CLI's decoder of those payloads, never on PORT. It
  // decrypts anything for whoever reaches it: loopback unless set, the Web UI's origins only, a token if set.
  CODEC_SERVER_PORT: z.coerce.number().int().min(0).max(65535),
  CODEC_SERVER_HOST: z.string().min(1),
  CODEC_SERVER_ORIGINS: originList,
  CODEC_SERVER_TOKEN: z.string().min(16).optional(),
  WORKER_METRICS_PORT: z.coerce.number().int().min(0).max(65535),
  WORKER_HEALTH_PORT: z.coerce.number().int().min(0).max(65535),
  // ~200 KB each, cut to what the heap holds (src/workers/cache-sizing.ts); evicted orders are replayed.
  WORKER_MAX_CACHED_WORKFLOWS: z.coerce.number().int().min(2).max(1_000_000),
  // false: for a server without the Worker Deployment APIs.
  WORKER_VERSIONING: booleanString,
  WORKER_DEPLOYMENT_NAME: DEPLOYMENT_NAME.optional(),
  WORKER_BUILD_ID: BUILD_ID.optional(),
  // The names the Temporal Worker Controller sets on each version's pods (docs/operations.md): the same two facts.
  TEMPORAL_DEPLOYMENT_NAME: DEPLOYMENT_NAME.optional(),
  TEMPORAL_WORKER_BUILD_ID: BUILD_ID.optional(),
  WORKER_PROMOTE: z.enum(['auto', 'on-start', 'by-rollout']),
  ACCESS_LOG_SOLD_OUT_SAMPLE: z.coerce.number().int().min(0).max(1_000_000),
  // For a managed cluster's single configuration endpoint.
  REDIS_CLUSTER: booleanString,
  REDIS_WAIT_REPLICAS: z.coerce.number().int().min(0).max(16),
  STATUS_CACHE_MS: z.coerce.number().int().min(0).max(60_000),
  STATUS_CACHE_NOTIFIED_MS: z.coerce.number().int().min(0).max(1_800_000),
  STATUS_CACHE_MAX_ENTRIES: z.coerce.number().int().min(1).max(10_000_000),
  STATUS_LONG_POLL_MAX_WAITERS: z.coerce.number().int().min(1).max(1_000_000),
  CHECKOUT_DEADLINE: durationString,
  READ_DEADLINE: durationString,
  WRITE_DEADLINE: durationString,
  // Each command of an API request; the worker's background work keeps no such bound.
  REDIS_TIMEOUT: durationString,
  MYSQL_TIMEOUT: durationString,
  BREAKER_FAILURES: z.coerce.number().int().min(1).max(1_000),
  // Tells a hung dependency (no success at all) from a busy one.
  BREAKER_NO_SUCCESS_FOR: optionalDurationString,
  BREAKER_HALF_OPEN_AFTER: durationString,
  MAX_CONCURRENT_STARTS: z.coerce.number().int().min(1).max(10_000),
  // What a checkout does not start in time, the owner of starts starts; the answer is 202 either way.
  CHECKOUT_START_BUDGET: durationString,
  // Kept back from a reserve's cutoff; the API is unready past half of it.
  CLOCK_SKEW_MARGIN: durationString,
  MAX_IN_FLIGHT_REQUESTS: z.coerce.number().int().min(0).max(1_000_000),
  // Checked against src/payments/providers/registry.ts, which also reads each provider's own variables.
  PAYMENT_PROVIDER: z.string().regex(/^[a-z][a-z0-9_-]{0,31}$/, 'must be a payment provider\'s name such as "generic"'),
});

/** The core variables; with the providers' own in toolkit/provider-config.ts (SERVICE_CONFIG_VARIABLES). */
export const CONFIG_VARIABLES: readonly string[] = Object.keys(envSchema.shape);

export type ConfigVariable = keyof typeof envSchema.shape;

/** Those without a default: optional in the schema, so unset is valid. */
type OptionalVariable = {
  [K in ConfigVariable]-?: undefined extends z.infer<typeof envSchema>[K] ? K : never;
}[ConfigVariable];
export const OPTIONAL_CONFIG_VARIABLES: readonly string[] = CONFIG_VARIABLES.filter(
  (name) => envSchema.shape[name as ConfigVariable].safeParse(undefined).success,
);

/** Written as an operator would, parsed like set values (none is refused); test/docs.test.ts checks the docs' table. */
export const CONFIG_DEFAULTS = {
  PORT: String(LOCAL_STACK_PORTS.api),
  TEMPORAL_ADDRESS: `127.0.0.1:${LOCAL_STACK_PORTS.temporal}`,
  TEMPORAL_NAMESPACE: 'default',
  TEMPORAL_TASK_QUEUE: 'flash-checkout-orders',
  TEMPORAL_TLS: 'false',
  REDIS_URL: `redis://127.0.0.1:${LOCAL_STACK_PORTS.redis}`,
  MYSQL_URL: `mysql://flash:flash@127.0.0.1:${LOCAL_STACK_PORTS.mysql}/flash`,
  PAYMENT_WINDOW: '30m',
  RECONCILE_INTERVAL: '30s',
  RESERVATION_GRACE: '60s',
  // Development secrets: published, so production refuses them (src/config/secrets.ts).
  WEBHOOK_SECRET: 'dev-webhook-secret-change-me',
  // auto: required when NODE_ENV=production.
  EVENTS_REQUIRE_HTTPS: 'auto',
  EVENTS_ATTEMPT_TIMEOUT_MS: '15000',
  EVENTS_RETRY_PERIOD: '3d',
  EVENTS_RETRY_FIRST: '5s',
  EVENTS_RETENTION: '30d',
  EVENTS_SECRET_KEY: 'dev-events-secret-key-change-me-please',
  EVENTS_CUSTOMER_SECRET: 'dev-events-customer-secret-change-me',
  EVENTS_CONCURRENCY: '8',
  EVENTS_POLL_INTERVAL: '250ms',
  JWT_SECRET: 'dev-jwt-secret-change-me-please',
  JWT_ISSUER: 'flash-checkout',
  JWT_AUDIENCE: 'flash-checkout-api',
  JWT_MAX_TTL: '24h',
  MAX_CANCELS_PER_SHOPPER: '3',
  CHECKOUT_MAX_WAIT: '10s',
  ADMIN_TOKEN: 'dev-admin-token',
  AUTH_DEV_LOGIN: 'false',
  LOG_LEVEL: 'info',
  RATE_LIMIT_CHECKOUT: '10/10s',
  RATE_LIMIT_LOGIN: '20/1m',
  RATE_LIMIT_WEBHOOK: '100/1s',
  RATE_LIMIT_AUTH_FAILURES: '10/1m',
  RATE_LIMIT_LINE: '60/1m',
  RATE_LIMIT_LINE_IP: '1200/1m',
  RATE_LIMIT_LINE_SUBNET: '12000/1m',
  // Each admission may become an order: what one worker persists per second (docs/performance.md).
  LINE_ADMISSIONS_PER_SECOND: '40',
  LINE_ADMISSION_TTL: '2m',
  TRUST_PROXY: 'false',
  TRUST_PROXY_HOPS: '1',
  SHUTDOWN_DRAIN: '5s',
  NODE_ENV: 'development',
  PAYLOAD_CODEC_MODE: 'encrypt',
  // 0: off. Loopback: it decrypts for whoever reaches it; the origins are the local stack's Web UI.
  CODEC_SERVER_PORT: String(LOCAL_STACK_PORTS.codecServer),
  CODEC_SERVER_HOST: '127.0.0.1',
  CODEC_SERVER_ORIGINS: `http://127.0.0.1:${LOCAL_STACK_PORTS.temporalUi},http://localhost:${LOCAL_STACK_PORTS.temporalUi}`,
  WORKER_METRICS_PORT: String(LOCAL_STACK_PORTS.workerMetrics),
  WORKER_HEALTH_PORT: String(LOCAL_STACK_PORTS.workerHealth),
  // A 15,000-unit sale's open orders.
  WORKER_MAX_CACHED_WORKFLOWS: '15000',
  WORKER_VERSIONING: 'true',
  WORKER_PROMOTE: 'auto',
  ACCESS_LOG_SOLD_OUT_SAMPLE: '100',
  REDIS_CLUSTER: 'false',
  REDIS_WAIT_REPLICAS: '0',
  STATUS_CACHE_MS: '1000',
  STATUS_CACHE_NOTIFIED_MS: '300000',
  STATUS_CACHE_MAX_ENTRIES: '50000',
  STATUS_LONG_POLL_MAX_WAITERS: '10000',
  CHECKOUT_DEADLINE: '2s',
  READ_DEADLINE: '2s',
  WRITE_DEADLINE: '5s',
  REDIS_TIMEOUT: '500ms',
  MYSQL_TIMEOUT: '1s',
  BREAKER_FAILURES: '5',
  BREAKER_NO_SUCCESS_FOR: '1s',
  BREAKER_HALF_OPEN_AFTER: '2s',
  MAX_CONCURRENT_STARTS: '32',
  CHECKOUT_START_BUDGET: '250ms',
  CLOCK_SKEW_MARGIN: '250ms',
  MAX_IN_FLIGHT_REQUESTS: '1000',
  PAYMENT_PROVIDER: 'generic',
} as const satisfies Record<Exclude<ConfigVariable, OptionalVariable>, string>;

/** What a setting means, as docs/reference/settings.md shows it (generated: `npm run docs:reference`). */
export interface SettingDescription {
  /** Markdown; a link's target is written from the repository root (`docs/<page>.md#<anchor>`). */
  meaning: string;
  /** What applies instead of the default where the default is not the whole story (unset, or under `npm start`). */
  defaultNote?: string;
}

/** The settings as every process reads them: the shape configOf builds. */
export type AppConfig = ReturnType<typeof configOf>;

export class ConfigError extends Error {}

/** Throws a ConfigError naming every bad variable, or every broken relation between deadlines. */
export function loadConfig(env: Record<string, string | undefined> = process.env): AppConfig {
  // Empty strings mean "not set", as they do for most twelve-factor services.
  const present = Object.fromEntries(
    Object.entries(env).filter((entry): entry is [string, string] => entry[1] !== undefined && entry[1] !== ''),
  );
  const parsed = envSchema.safeParse({ ...CONFIG_DEFAULTS, ...present });
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
    throw new ConfigError(`Invalid configuration:\n  ${problems.join('\n  ')}`);
  }
  const e = parsed.data;
  if (Boolean(e.TEMPORAL_TLS_CERT_PATH) !== Boolean(e.TEMPORAL_TLS_KEY_PATH)) {
    throw new ConfigError(
      'Invalid configuration:\n  TEMPORAL_TLS_CERT_PATH and TEMPORAL_TLS_KEY_PATH go together: set both (mTLS) or neither',
    );
  }
  if (e.LINE_CHALLENGE_HEADER && (e.LINE_CHALLENGE_SECRET ?? '').length < 16) {
    throw new ConfigError(
      'Invalid configuration:\n  LINE_CHALLENGE_HEADER needs LINE_CHALLENGE_SECRET (at least 16 characters): the value the proxy in front sets',
    );
  }
  if (e.NODE_ENV === 'production') refuseWeakSecrets(e, present);
  const config = configOf(e, present);
  const problems = deadlineRelationProblems(config);
  if (config.codecServer.port !== 0 && config.codecServer.port === config.port)
    problems.push(
      `CODEC_SERVER_PORT: must not be the API's PORT (${config.port}); the codec server decrypts payloads and is never served publicly`,
    );
  for (const [own, controllers] of [
    ['WORKER_DEPLOYMENT_NAME', 'TEMPORAL_DEPLOYMENT_NAME'],
    ['WORKER_BUILD_ID', 'TEMPORAL_WORKER_BUILD_ID'],
  ] as const)
    if (e[own] && e[controllers] && e[own] !== e[controllers])
      problems.push(`${own}: differs from ${controllers} (${e[own]} ≠ ${e[controllers]}); set one, or both alike`);
  const events = config.webhookDelivery;
  if (events.retentionMs < events.retryPeriodMs)
    problems.push(
      `EVENTS_RETENTION: must be at least EVENTS_RETRY_PERIOD (${e.EVENTS_RETENTION} < ${e.EVENTS_RETRY_PERIOD}); ` +
        'otherwise an event still being retried could leave the feed',
    );
  if (problems.length > 0)
    throw new ConfigError(`Refusing to start with settings that do not fit together:\n  ${problems.join('\n  ')}`);
  return config;
}

type Env = z.infer<typeof envSchema>;

/** The workers' deployment and build, in the project's names or the Worker Controller's, and who promotes a build. */
function versioningOf(e: Env) {
  const buildId = e.WORKER_BUILD_ID ?? e.TEMPORAL_WORKER_BUILD_ID;
  // Under the Worker Controller (it names the build), the controller alone makes a version current.
  const auto = e.TEMPORAL_WORKER_BUILD_ID ? 'by-rollout' : e.NODE_ENV === 'production' ? 'first-only' : 'on-start';
  return {
    deploymentName:
      e.WORKER_DEPLOYMENT_NAME ?? e.TEMPORAL_DEPLOYMENT_NAME ?? e.TEMPORAL_TASK_QUEUE.replaceAll('.', '-'),
    ...(buildId ? { buildId } : {}),
    /** on-start: the worker makes its version current; first-only: only while the deployment has none. */
    promote: e.WORKER_PROMOTE !== 'auto' ? e.WORKER_PROMOTE : auto,
  };
}

// The one statement of AppConfig's shape: each field's meaning is its variable's (scripts/config-descriptions.ts).
function configOf(e: Env, present: Record<string, string>) {
  return {
    port: e.PORT,
    temporal: {
      address: e.TEMPORAL_ADDRESS,
      namespace: e.TEMPORAL_NAMESPACE,
      taskQueue: e.TEMPORAL_TASK_QUEUE,
      tls: e.TEMPORAL_TLS || Boolean(e.TEMPORAL_API_KEY) || Boolean(e.TEMPORAL_TLS_CERT_PATH),
      ...(e.TEMPORAL_API_KEY ? { apiKey: e.TEMPORAL_API_KEY } : {}),
      ...(e.TEMPORAL_TLS_CERT_PATH && e.TEMPORAL_TLS_KEY_PATH
        ? { clientCertPath: e.TEMPORAL_TLS_CERT_PATH, clientKeyPath: e.TEMPORAL_TLS_KEY_PATH }
        : {}),
      /** null: unversioned workers. Without a buildId the worker is named by its bundle's emitted code. */
      versioning: e.WORKER_VERSIONING ? versioningOf(e) : null,
    },
    redisUrl: e.REDIS_URL,
    mysqlUrl: e.MYSQL_URL,
    /** Kept as the string the operator wrote; it travels in each workflow's input. */
    paymentWindow: e.PAYMENT_WINDOW,
    paymentWindowMs: durationToMs(e.PAYMENT_WINDOW),
    reconcileIntervalMs: durationToMs(e.RECONCILE_INTERVAL),
    reservationGraceMs: durationToMs(e.RESERVATION_GRACE),
    webhookSecret: e.WEBHOOK_SECRET,
    /** `keys[0]` encrypts, every key decrypts (src/infra/payload-codec.ts). */
    payloadCodec: {
      keys: e.PAYLOAD_CODEC_KEYS ?? payloadCodecKeys.parse(localCodecKeys()),
      mode: e.PAYLOAD_CODEC_MODE,
    },
    codecServer: {
      port: e.CODEC_SERVER_PORT,
      host: e.CODEC_SERVER_HOST,
      allowedOrigins: e.CODEC_SERVER_ORIGINS,
      token: e.CODEC_SERVER_TOKEN ?? null,
    },
    webhookDelivery: {
      allowedRanges: e.EVENTS_ALLOWED_RANGES ?? [],
      requireHttps:
        e.EVENTS_REQUIRE_HTTPS === 'auto'
          ? e.NODE_ENV === 'production'
          : e.EVENTS_REQUIRE_HTTPS === 'true' || e.EVENTS_REQUIRE_HTTPS === '1',
      attemptTimeoutMs: e.EVENTS_ATTEMPT_TIMEOUT_MS,
      retryPeriodMs: durationToMs(e.EVENTS_RETRY_PERIOD),
      retryFirstMs: durationToMs(e.EVENTS_RETRY_FIRST),
      retentionMs: durationToMs(e.EVENTS_RETENTION),
      /** The first seals endpoints' secrets, every one opens them. */
      secretKeys: e.EVENTS_SECRET_KEY,
      customerSecret: e.EVENTS_CUSTOMER_SECRET,
      concurrency: e.EVENTS_CONCURRENCY,
      pollIntervalMs: durationToMs(e.EVENTS_POLL_INTERVAL),
    },
    jwtSecret: e.JWT_SECRET,
    jwtIssuer: e.JWT_ISSUER,
    jwtAudience: e.JWT_AUDIENCE,
    jwtMaxTtlMs: durationToMs(e.JWT_MAX_TTL),
    maxCancelsPerShopper: e.MAX_CANCELS_PER_SHOPPER,
    /** Whole seconds, as the checkout applies it; 0: never waits. */
    checkoutMaxWaitSeconds: e.CHECKOUT_MAX_WAIT === '0' ? 0 : Math.floor(durationToMs(e.CHECKOUT_MAX_WAIT) / 1000),
    adminToken: e.ADMIN_TOKEN,
    eventsReadToken: e.EVENTS_READ_TOKEN ?? null,
    authDevLogin: e.AUTH_DEV_LOGIN,
    logLevel: e.LOG_LEVEL,
    temporalUiUrl: e.TEMPORAL_UI_URL?.replace(/\/+$/, '') ?? null,
    /** null: no limit. */
    rateLimits: { checkout: e.RATE_LIMIT_CHECKOUT, login: e.RATE_LIMIT_LOGIN, webhook: e.RATE_LIMIT_WEBHOOK },
    /** In each process's memory (src/api/auth.ts CredentialFailures). */
    credentialFailureLimit: e.RATE_LIMIT_AUTH_FAILURES,
    lineRateLimits: { shopper: e.RATE_LIMIT_LINE, ip: e.RATE_LIMIT_LINE_IP, subnet: e.RATE_LIMIT_LINE_SUBNET },
    line: {
      admissionsPerSecond: e.LINE_ADMISSIONS_PER_SECOND,
      admissionTtlSeconds: Math.max(1, Math.round(durationToMs(e.LINE_ADMISSION_TTL) / 1_000)),
      challenge: e.LINE_CHALLENGE_HEADER
        ? { header: e.LINE_CHALLENGE_HEADER, secret: e.LINE_CHALLENGE_SECRET ?? '' }
        : null,
    },
    trustProxy: e.TRUST_PROXY,
    trustProxyHops: e.TRUST_PROXY_HOPS,
    shutdownDrainMs: ms(e.SHUTDOWN_DRAIN as Parameters<typeof ms>[0]),
    nodeEnv: e.NODE_ENV,
    workerMetricsPort: e.WORKER_METRICS_PORT,
    workerHealthPort: e.WORKER_HEALTH_PORT,
    workerMaxCachedWorkflows: e.WORKER_MAX_CACHED_WORKFLOWS,
    accessLogSoldOutSample: e.ACCESS_LOG_SOLD_OUT_SAMPLE,
    redisCluster: e.REDIS_CLUSTER || e.REDIS_URL.includes(','),
    redisWaitReplicas: e.REDIS_WAIT_REPLICAS,
    statusCacheMs: e.STATUS_CACHE_MS,
    statusCacheNotifiedMs: e.STATUS_CACHE_NOTIFIED_MS,
    statusCacheMaxEntries: e.STATUS_CACHE_MAX_ENTRIES,
    statusLongPollMaxWaiters: e.STATUS_LONG_POLL_MAX_WAITERS,
    deadlines: {
      checkoutMs: durationToMs(e.CHECKOUT_DEADLINE),
      readMs: durationToMs(e.READ_DEADLINE),
      writeMs: durationToMs(e.WRITE_DEADLINE),
      redisMs: durationToMs(e.REDIS_TIMEOUT),
      mysqlMs: durationToMs(e.MYSQL_TIMEOUT),
    },
    breaker: {
      failureThreshold: e.BREAKER_FAILURES,
      noSuccessForMs: ms(e.BREAKER_NO_SUCCESS_FOR as Parameters<typeof ms>[0]),
      halfOpenAfterMs: durationToMs(e.BREAKER_HALF_OPEN_AFTER),
    },
    maxInFlightRequests: e.MAX_IN_FLIGHT_REQUESTS,
    maxConcurrentStarts: e.MAX_CONCURRENT_STARTS,
    checkoutStartBudgetMs: durationToMs(e.CHECKOUT_START_BUDGET),
    clockSkewMarginMs: durationToMs(e.CLOCK_SKEW_MARGIN),
    /** `environment`: the providers' variables (never logged); back on generic, Stripe's still refund its payments. */
    payments: {
      provider: e.PAYMENT_PROVIDER,
      environment: Object.fromEntries(Object.entries(present).filter(([name]) => !CONFIG_VARIABLES.includes(name))),
    },
  };
}

/** Kept back from a checkout's deadline to write its answer (src/order/checkout.ts). */
export const ANSWER_MARGIN_MS = 100;

const showMs = (value: number) => (value % 1_000 === 0 ? `${value / 1_000}s` : `${value}ms`);

/** Relations between deadlines that no variable's own check sees, one problem each (its message says why). */
export function deadlineRelationProblems(
  config: Pick<
    AppConfig,
    'deadlines' | 'reservationGraceMs' | 'checkoutMaxWaitSeconds' | 'checkoutStartBudgetMs' | 'clockSkewMarginMs'
  >,
): string[] {
  const { checkoutMs, redisMs } = config.deadlines;
  const problems: string[] = [];
  const least = redisMs + config.checkoutStartBudgetMs + config.clockSkewMarginMs + ANSWER_MARGIN_MS;
  if (checkoutMs <= least) {
    problems.push(
      `CHECKOUT_DEADLINE: must be greater than REDIS_TIMEOUT + CHECKOUT_START_BUDGET + CLOCK_SKEW_MARGIN + ${ANSWER_MARGIN_MS}ms = ${showMs(least)} ` +
        `(CHECKOUT_DEADLINE=${showMs(checkoutMs)}, REDIS_TIMEOUT=${showMs(redisMs)}, CHECKOUT_START_BUDGET=${showMs(config.checkoutStartBudgetMs)}, ` +
        `CLOCK_SKEW_MARGIN=${showMs(config.clockSkewMarginMs)}); otherwise a reserve has less than its REDIS_TIMEOUT before its cutoff`,
    );
  }
  const maxWaitMs = config.checkoutMaxWaitSeconds * 1_000;
  if (config.reservationGraceMs < maxWaitMs + checkoutMs) {
    problems.push(
      `RESERVATION_GRACE: must be at least CHECKOUT_MAX_WAIT + CHECKOUT_DEADLINE = ${showMs(maxWaitMs + checkoutMs)} ` +
        `(RESERVATION_GRACE=${showMs(config.reservationGraceMs)}, CHECKOUT_MAX_WAIT=${showMs(maxWaitMs)}, CHECKOUT_DEADLINE=${showMs(checkoutMs)}); ` +
        'otherwise the reconciler may release a reservation whose order is still being started',
    );
  }
  return problems;
}

/** Secrets this service makes for itself: production wants each long and random (RFC 7518 §3.2: HS256 ≥ 256 bits). */
const OWN_SECRETS = [
  'WEBHOOK_SECRET',
  'JWT_SECRET',
  'ADMIN_TOKEN',
  'EVENTS_SECRET_KEY',
  'EVENTS_CUSTOMER_SECRET',
  'EVENTS_READ_TOKEN',
  'CODEC_SERVER_TOKEN',
  'LINE_CHALLENGE_SECRET',
] as const satisfies readonly ConfigVariable[];
/** Without these production does not start; the codec server's token is required by the codec server (codec-main). */
const REQUIRED_SECRETS: readonly string[] = [
  'WEBHOOK_SECRET',
  'JWT_SECRET',
  'ADMIN_TOKEN',
  'EVENTS_SECRET_KEY',
  'EVENTS_CUSTOMER_SECRET',
];
const OWN_SECRET_LENGTH = 32;

/**
 * In production, a secret anyone could know is a hole: refuse to start, naming each variable (never its value). Own
 * secrets must be set, unpublished and strong; the others (Temporal's, the stores', the providers') unpublished.
 */
function refuseWeakSecrets(e: Env, present: Record<string, string>): void {
  const problems: string[] = [];
  for (const name of OWN_SECRETS) {
    const value = present[name];
    if (value === undefined) {
      if (REQUIRED_SECRETS.includes(name)) problems.push(`${name}: not set; set a secret of your own`);
      continue;
    }
    // A list's keys one by one, each named by its id (never by its text).
    const parts: [string, string][] =
      name === 'EVENTS_SECRET_KEY' && e.EVENTS_SECRET_KEY[0]?.id !== ''
        ? e.EVENTS_SECRET_KEY.map((key) => [`${name}: key "${key.id}"`, key.secret])
        : [[name, value]];
    for (const [label, secret] of parts) {
      const weak = isPublishedSecret(secret) ? 'published in this repository' : weakness(secret, OWN_SECRET_LENGTH);
      if (weak) problems.push(`${label}: ${weak}; set ${OWN_SECRET_LENGTH}+ random characters (openssl rand -hex 32)`);
    }
  }
  if (!e.PAYLOAD_CODEC_KEYS)
    problems.push('PAYLOAD_CODEC_KEYS: not set; Temporal payloads must be encrypted with keys of your own');
  for (const key of e.PAYLOAD_CODEC_KEYS ?? []) {
    const weak = key.id.startsWith('local-')
      ? "a development checkout's key (id 'local-…')"
      : isPublishedSecret(key.secret)
        ? 'published in this repository'
        : weakness(key.secret, 32);
    if (weak) problems.push(`PAYLOAD_CODEC_KEYS: key "${key.id}" is ${weak}; make one with openssl rand -base64 32`);
  }
  const others: [string, string | undefined][] = [
    ['TEMPORAL_API_KEY', e.TEMPORAL_API_KEY],
    ['MYSQL_URL', urlPassword(e.MYSQL_URL)],
    ...commaList(e.REDIS_URL).map((url): [string, string | undefined] => ['REDIS_URL', urlPassword(url)]),
    ...Object.entries(present).filter(([name]) => !CONFIG_VARIABLES.includes(name) && /SECRET|TOKEN|KEY/.test(name)),
  ];
  for (const [name, value] of others)
    if (value && isPublishedSecret(value)) problems.push(`${name}: its secret is published in this repository`);
  if (e.AUTH_DEV_LOGIN) problems.push('AUTH_DEV_LOGIN: must be false (anyone could log in as any shopper)');
  if (problems.length > 0)
    throw new ConfigError(`Refusing to start with NODE_ENV=production:\n  ${problems.join('\n  ')}`);
}

function urlPassword(url: string): string | undefined {
  try {
    return decodeURIComponent(new URL(url).password) || undefined;
  } catch {
    return undefined;
  }
}
