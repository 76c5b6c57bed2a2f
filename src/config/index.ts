/** Read once from the environment (docs/operations.md, "Configuration"); defaults fit the stack `npm start` runs. */
import ms from 'ms';
import { z } from 'zod';
import { durationToMs } from '../model/order-workflow.js';
import { commaList, localCodecKeys, payloadCodecKeys } from './parsers.js';
import { isPublishedSecret, weakness } from './secrets.js';
import { SETTINGS } from './settings.js';
import { temporalProfileOf } from './temporal-profile.js';

export {
  BUILD_ID,
  commaList,
  durationString,
  LOCAL_STACK_PORTS,
  type EventsSecretKey,
  type PayloadCodecKey,
  type RateLimit,
} from './parsers.js';
export type { SettingDescription } from './settings.js';

type Settings = typeof SETTINGS;
export type ConfigVariable = keyof Settings;

const envSchema = z.object(
  Object.fromEntries(Object.entries(SETTINGS).map(([name, setting]) => [name, setting.parse])) as {
    [Name in ConfigVariable]: Settings[Name]['parse'];
  },
);

/** The core variables; with the providers' own in toolkit/provider-config.ts (SERVICE_CONFIG_VARIABLES). */
export const CONFIG_VARIABLES: readonly string[] = Object.keys(SETTINGS);

/** Those without a default: optional in the schema, so unset is valid. */
export const OPTIONAL_CONFIG_VARIABLES: readonly string[] = CONFIG_VARIABLES.filter(
  (name) => envSchema.shape[name as ConfigVariable].safeParse(undefined).success,
);

/** Each default as an operator would write it (SETTINGS), parsed like set values. */
export const CONFIG_DEFAULTS = Object.fromEntries(
  Object.entries(SETTINGS).flatMap(([name, setting]) => ('default' in setting ? [[name, setting.default]] : [])),
) as { readonly [Name in ConfigVariable as Settings[Name] extends { default: string } ? Name : never]: string };

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
  const config = configOf(e, present);
  if (e.NODE_ENV === 'production') refuseWeakSecrets(e, present, config.temporal.apiKey);
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

/** temporalProfileOf, its failures (an unreadable file, a profile it lacks) as a ConfigError. */
function temporalProfile(...args: Parameters<typeof temporalProfileOf>) {
  try {
    return temporalProfileOf(...args);
  } catch (err) {
    throw new ConfigError(`Invalid configuration:\n  Temporal's profile: ${err instanceof Error ? err.message : err}`);
  }
}

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

// The one statement of AppConfig's shape: each field's meaning is its variable's (src/config/settings.ts).
function configOf(e: Env, present: Record<string, string>) {
  return {
    port: e.PORT,
    temporal: {
      /** The frontend, namespace, TLS and API key as the SDK reads them; the address and namespace with defaults. */
      ...temporalProfile(present, { address: e.TEMPORAL_ADDRESS, namespace: e.TEMPORAL_NAMESPACE }),
      taskQueue: e.TEMPORAL_TASK_QUEUE,
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
const OWN_SECRETS = (Object.entries(SETTINGS) as [ConfigVariable, { secret?: string }][]).filter(
  ([, setting]) => setting.secret !== undefined,
);
const OWN_SECRET_LENGTH = 32;

/** Production refuses a secret anyone could know, naming each variable, never its value. */
function refuseWeakSecrets(e: Env, present: Record<string, string>, temporalApiKey: string | undefined): void {
  const problems: string[] = [];
  for (const [name, { secret }] of OWN_SECRETS) {
    const value = present[name];
    if (value === undefined) {
      if (secret === 'required') problems.push(`${name}: not set; set a secret of your own`);
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
    // Temporal's key as the connection will use it: the variable's, else its temporal.toml profile's.
    ['TEMPORAL_API_KEY', temporalApiKey],
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
