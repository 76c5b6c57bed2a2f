/** Every core variable, once; src/config/index.ts derives the schema, defaults, AppConfig and production checks. */
import { z } from 'zod';
import {
  booleanString,
  BUILD_ID,
  cidrList,
  DEPLOYMENT_NAME,
  durationString,
  eventsSecretKeys,
  LOCAL_STACK_PORTS,
  optionalDurationString,
  originList,
  payloadCodecKeys,
  rateLimitString,
  redisUrls,
} from './parsers.js';

/** What a setting means, as docs/reference/settings.md shows it (generated: `npm run docs:reference`). */
export interface SettingDescription {
  /** Markdown; a link's target is written from the repository root (`docs/<page>.md#<anchor>`). */
  meaning: string;
  /** What applies instead of the default where the default is not the whole story (unset, or under `npm start`). */
  defaultNote?: string;
}

interface Setting extends SettingDescription {
  parse: z.ZodType;
  /** Unset: the variable is optional (its schema accepts undefined). */
  default?: string;
  /** This service's own secret: production wants it unpublished and strong, and `required` ones set. */
  secret?: 'own' | 'required';
}

export const SETTINGS = {
  PORT: {
    parse: z.coerce.number().int().min(0).max(65535),
    default: String(LOCAL_STACK_PORTS.api),
    meaning: "the API's port",
  },
  // Temporal's connection is read the SDK's way (src/config/temporal-profile.ts): these variables over a profile.
  TEMPORAL_ADDRESS: {
    parse: z.string().min(1),
    default: `127.0.0.1:${LOCAL_STACK_PORTS.temporal}`,
    meaning: "the Temporal frontend (the default when neither this nor the profile's `address` is set)",
  },
  TEMPORAL_NAMESPACE: {
    parse: z.string().min(1),
    default: 'default',
    meaning: "of every order and of the reconcile schedule (over the profile's `namespace`)",
  },
  TEMPORAL_CONFIG_FILE: {
    parse: z.string().min(1).optional(),
    meaning:
      "Temporal's client configuration file (TOML, as `temporal config` writes it); unset: " +
      '`~/.config/temporalio/temporal.toml` if there is one',
  },
  TEMPORAL_PROFILE: {
    parse: z.string().min(1).optional(),
    meaning: "the file's profile to connect with (unset: `default`); one it lacks refuses to start",
  },
  // Quoted in visibility queries (the deployment view's counts).
  TEMPORAL_TASK_QUEUE: {
    parse: z
      .string()
      .min(1)
      .regex(/^[A-Za-z0-9_.-]+$/, "only letters, digits, '.', '-' and '_'"),
    default: 'flash-checkout-orders',
    meaning: 'shared by the API and the worker',
  },
  TEMPORAL_TLS: {
    parse: booleanString,
    default: 'false',
    meaning: 'TLS to Temporal (implied by `TEMPORAL_API_KEY` and by the mTLS pair)',
  },
  TEMPORAL_API_KEY: { parse: z.string().min(1).optional(), meaning: 'a Temporal Cloud API key' },
  TEMPORAL_TLS_CERT_PATH: {
    parse: z.string().min(1).optional(),
    meaning:
      'mTLS client certificate (PEM); set with the key or not at all (the SDK also reads ' +
      '`TEMPORAL_TLS_CLIENT_CERT_PATH`, `TEMPORAL_TLS_SERVER_CA_CERT_PATH`, `TEMPORAL_TLS_SERVER_NAME`, …)',
  },
  TEMPORAL_TLS_KEY_PATH: {
    parse: z.string().min(1).optional(),
    meaning: "mTLS client key (PEM); the SDK's name: `TEMPORAL_TLS_CLIENT_KEY_PATH`",
  },
  REDIS_URL: {
    parse: redisUrls,
    default: `redis://127.0.0.1:${LOCAL_STACK_PORTS.redis}`,
    meaning: 'a `redis://` or `rediss://` URL, or a comma-separated list of Cluster nodes',
  },
  MYSQL_URL: {
    parse: z.string().url(),
    default: `mysql://flash:flash@127.0.0.1:${LOCAL_STACK_PORTS.mysql}/flash`,
    meaning: "`?connectionLimit=N`: the API's and migrator's pool (20); the worker's is 50",
  },
  PAYMENT_WINDOW: {
    parse: durationString,
    default: '30m',
    meaning: 'how long an order awaits payment (`90s`, `2h`, …); fixed per order at its start',
  },
  RECONCILE_INTERVAL: { parse: durationString, default: '30s', meaning: 'how often the reconciler runs' },
  RESERVATION_GRACE: {
    parse: durationString,
    default: '60s',
    meaning: "how long the reconciler leaves an order to its workflow: a reservation's age, a payment's",
  },
  // Development secrets: published, so production refuses them (src/config/secrets.ts).
  WEBHOOK_SECRET: {
    parse: z.string().min(16),
    default: 'dev-webhook-secret-change-me',
    secret: 'required',
    meaning: 'HMAC key of `Payment-Signature` (≥ 16 characters; production: ≥ 32, random)',
  },
  // Order events to merchants' endpoints (src/order-events/webhook-sender.ts): ranges allowed, https, an attempt.
  EVENTS_ALLOWED_RANGES: {
    parse: cidrList.optional(),
    meaning: 'CIDRs order events may reach though refused (`127.0.0.0/8,::1/128`: local)',
  },
  // auto: required when NODE_ENV=production.
  EVENTS_REQUIRE_HTTPS: {
    parse: z.enum(['auto', 'true', 'false', '1', '0']),
    default: 'auto',
    meaning: 'order events to `https://` only; `auto`: in production',
  },
  EVENTS_ATTEMPT_TIMEOUT_MS: {
    parse: z.coerce.number().int().min(1_000).max(30_000),
    default: '15000',
    meaning: "an order event's attempt: connect, send, answer (1–30 s)",
  },
  // How long an event is retried to an endpoint (then given up; the feed keeps it), and how long the feed keeps it.
  EVENTS_RETRY_PERIOD: {
    parse: durationString,
    default: '3d',
    meaning: 'an event is retried this long, then given up (the feed keeps it)',
  },
  // The first retry after a failed attempt; each next one doubles (± 20 %), up to an hour.
  EVENTS_RETRY_FIRST: {
    parse: durationString,
    default: '5s',
    meaning: 'the first retry; each next doubles (± 20 %) up to an hour',
  },
  EVENTS_RETENTION: {
    parse: durationString,
    default: '30d',
    meaning: 'the feed keeps events this long (≥ `EVENTS_RETRY_PERIOD`)',
  },
  // Endpoints' whsec_ secrets are stored encrypted with keys derived from these (AES-256-GCM).
  EVENTS_SECRET_KEY: {
    parse: eventsSecretKeys,
    default: 'dev-events-secret-key-change-me-please',
    secret: 'required',
    meaning:
      "endpoints' `whsec_` secrets are sealed (AES-256-GCM) with a key derived from it; `<id>=<key>,…` lists keys, the first sealing, all opening ([rotating it](docs/operations.md#before-production))",
  },
  // Keys the opaque customer reference order events carry instead of the shopper's id (HMAC-SHA256).
  EVENTS_CUSTOMER_SECRET: {
    parse: z.string().min(16),
    default: 'dev-events-customer-secret-change-me',
    secret: 'required',
    meaning:
      "keys the opaque `customer` reference order events carry instead of the shopper's id (HMAC-SHA256); changing it changes every reference",
  },
  // Events sent at once to one endpoint, and how often an idle endpoint's delivery looks for new events.
  EVENTS_CONCURRENCY: {
    parse: z.coerce.number().int().min(1).max(64),
    default: '8',
    meaning: 'order events sent at once to one endpoint',
  },
  EVENTS_POLL_INTERVAL: {
    parse: durationString,
    default: '250ms',
    meaning: "how often an endpoint's delivery looks for new events",
  },
  JWT_SECRET: {
    parse: z.string().min(16),
    default: 'dev-jwt-secret-change-me-please',
    secret: 'required',
    meaning: 'HS256 key of shopper tokens (≥ 16 characters; production: ≥ 32, random)',
  },
  JWT_ISSUER: { parse: z.string().min(1), default: 'flash-checkout', meaning: 'required `iss`' },
  JWT_AUDIENCE: { parse: z.string().min(1), default: 'flash-checkout-api', meaning: 'required `aud`' },
  JWT_MAX_TTL: {
    parse: durationString,
    default: '24h',
    meaning: 'longest token lifetime; a token without `exp` is refused',
  },
  MAX_CANCELS_PER_SHOPPER: {
    parse: z.coerce.number().int().min(0).max(1_000),
    default: '3',
    meaning: 'cancels after which a shopper may not buy in that sale (`0`: no limit)',
  },
  CHECKOUT_MAX_WAIT: {
    parse: z.union([z.literal('0'), durationString]),
    default: '10s',
    meaning: 'the longest `Prefer: wait=N` honoured (`0`: off)',
  },
  ADMIN_TOKEN: {
    parse: z.string().min(8),
    default: 'dev-admin-token',
    secret: 'required',
    meaning: 'bearer token of the admin routes (≥ 8 characters; production: ≥ 32, random)',
  },
  // Read-only: the order events feed, for fulfilment systems (the admin token reads it too).
  EVENTS_READ_TOKEN: {
    parse: z.string().min(16).optional(),
    secret: 'own',
    meaning:
      'read-only bearer token of the order events feed (≥ 16 characters); unset: the admin token only. The MySQL user needs `PROCESS` ([Order events](docs/api.md#order-events))',
  },
  AUTH_DEV_LOGIN: {
    parse: booleanString,
    default: 'false',
    meaning: 'enables dev login, the dev payment route and `/api/dev/config`',
    defaultNote: '`true` under `npm start`',
  },
  LOG_LEVEL: {
    parse: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']),
    default: 'info',
    meaning: 'pino level (`trace` … `fatal`, `silent`)',
  },
  TEMPORAL_UI_URL: {
    parse: z.string().url().optional(),
    meaning: "the Web UI's address, for the dashboard's links",
    defaultNote: 'under `npm start`: `http://127.0.0.1:8233`',
  },
  // Checkouts per shopper (JWT sub); logins and webhooks per client IP (a provider sends bursts from a few IPs).
  RATE_LIMIT_CHECKOUT: {
    parse: rateLimitString,
    default: '10/10s',
    meaning: 'checkouts per shopper: `<requests>/<duration>`, or `0`/`off`',
  },
  RATE_LIMIT_LOGIN: { parse: rateLimitString, default: '20/1m', meaning: 'dev logins per client IP' },
  RATE_LIMIT_WEBHOOK: { parse: rateLimitString, default: '100/1s', meaning: 'webhook calls per client IP' },
  // Wrong operator or codec-server tokens per address, before it is answered 429 until the window ends.
  RATE_LIMIT_AUTH_FAILURES: {
    parse: rateLimitString,
    default: '10/1m',
    meaning:
      'wrong admin, events-feed or codec-server tokens per address, counted in each process; past it: `429` until the window ends',
  },
  RATE_LIMIT_LINE: {
    parse: rateLimitString,
    default: '60/1m',
    meaning: "a line's joins and reads per shopper, counted in each API process",
  },
  RATE_LIMIT_LINE_IP: {
    parse: rateLimitString,
    default: '1200/1m',
    meaning: "a line's joins and reads per client IP, counted in each API process",
  },
  RATE_LIMIT_LINE_SUBNET: {
    parse: rateLimitString,
    default: '12000/1m',
    meaning: "a line's joins and reads per subnet (IPv4 /24, IPv6 /48), counted in each API process",
  },
  // Each admission may become an order: what one worker persists per second (docs/performance.md).
  LINE_ADMISSIONS_PER_SECOND: {
    parse: z.coerce.number().int().min(1).max(100_000),
    default: '40',
    meaning:
      "a line's admission rate when its sale sets none ([The waiting line](docs/operations.md#the-waiting-line))",
  },
  LINE_ADMISSION_TTL: {
    parse: durationString,
    default: '2m',
    meaning: 'how long an admission lasts unspent, when the sale sets none',
  },
  LINE_CHALLENGE_HEADER: {
    parse: z
      .string()
      .regex(/^[A-Za-z0-9-]+$/)
      .optional(),
    meaning: 'a header a join must carry, set by your bot-protection proxy',
  },
  LINE_CHALLENGE_SECRET: {
    parse: z.string().optional(),
    secret: 'own',
    meaning: 'the value `LINE_CHALLENGE_HEADER` must have (16+ characters; required with the header)',
  },
  TRUST_PROXY: {
    parse: booleanString,
    default: 'false',
    meaning: '`true`: client IP from `X-Forwarded-For` ([Rate limits](docs/operations.md#rate-limits))',
  },
  TRUST_PROXY_HOPS: {
    parse: z.coerce.number().int().min(1).max(10),
    default: '1',
    meaning: 'your proxies that append to `X-Forwarded-For` (1–10)',
  },
  SHUTDOWN_DRAIN: {
    parse: optionalDurationString,
    default: '5s',
    meaning: 'how long `/readyz` answers 503 after SIGTERM before the API closes',
    defaultNote: '`0s` under `npm start`, the benchmark and the fault suite',
  },
  NODE_ENV: {
    parse: z.enum(['development', 'test', 'production']),
    default: 'development',
    meaning:
      '`production` refuses a missing, published or weak secret and `AUTH_DEV_LOGIN=true` ([Before production](docs/operations.md#before-production))',
  },
  // Temporal payloads' encryption keys; encrypt, only decrypt (the release before), or encrypt and refuse plain ones.
  PAYLOAD_CODEC_KEYS: {
    parse: payloadCodecKeys.optional(),
    meaning:
      "Temporal payloads' keys, `id=base64,…` (32 bytes each): the first encrypts, all decrypt ([Payload encryption](docs/operations.md#payload-encryption))",
    defaultNote: "a checkout's own key in `.data/payload-codec-keys`",
  },
  PAYLOAD_CODEC_MODE: {
    parse: z.enum(['encrypt', 'decrypt-only', 'require']),
    default: 'encrypt',
    meaning:
      '`decrypt-only`: writes plain payloads and reads both (the release before encryption); `require`: encrypts and refuses a plain one (the last step)',
  },
  // The codec server (src/api/codec-server.ts) decrypts for whoever reaches it: never on PORT, loopback by default.
  CODEC_SERVER_PORT: {
    parse: z.coerce.number().int().min(0).max(65535),
    default: String(LOCAL_STACK_PORTS.codecServer),
    meaning: "the codec server's port, never `PORT` (`0`: off)",
  },
  CODEC_SERVER_HOST: {
    parse: z.string().min(1),
    default: '127.0.0.1',
    meaning: "the codec server's address: loopback, it decrypts for whoever reaches it",
  },
  CODEC_SERVER_ORIGINS: {
    parse: originList,
    default: `http://127.0.0.1:${LOCAL_STACK_PORTS.temporalUi},http://localhost:${LOCAL_STACK_PORTS.temporalUi}`,
    meaning: "the Web UI's origins, as browsers send them",
  },
  CODEC_SERVER_TOKEN: {
    parse: z.string().min(16).optional(),
    secret: 'own',
    meaning:
      'a bearer token every codec request must carry (≥ 16 characters); the codec server requires one in production (≥ 32, random)',
  },
  WORKER_METRICS_PORT: {
    parse: z.coerce.number().int().min(0).max(65535),
    default: String(LOCAL_STACK_PORTS.workerMetrics),
    meaning: "the worker's Prometheus port (`0`: off)",
  },
  WORKER_HEALTH_PORT: {
    parse: z.coerce.number().int().min(0).max(65535),
    default: String(LOCAL_STACK_PORTS.workerHealth),
    meaning: "the worker's `/livez` and `/readyz` (`0`: off)",
  },
  // ~200 KB each, cut to what the heap holds (src/workers/cache-sizing.ts); 15000: a 15,000-unit sale's open orders.
  WORKER_MAX_CACHED_WORKFLOWS: {
    parse: z.coerce.number().int().min(2).max(1_000_000),
    default: '15000',
    meaning:
      'orders cached in the worker (~200 KB each; cut, with a warning, to what its heap holds less 768 MB); others are replayed',
  },
  // false: for a server without the Worker Deployment APIs.
  WORKER_VERSIONING: {
    parse: booleanString,
    default: 'true',
    meaning:
      'workers are versions of a Worker Deployment ([Deploying during a sale](docs/operations.md#deploying-during-a-sale)); `false`: unversioned',
  },
  WORKER_DEPLOYMENT_NAME: {
    parse: DEPLOYMENT_NAME.optional(),
    meaning: 'the deployment the workers are versions of',
    defaultNote: 'the task queue',
  },
  WORKER_BUILD_ID: {
    parse: BUILD_ID.optional(),
    meaning: "this worker's build id (`npm run rollout -- build-id` prints it)",
    defaultNote: "named by the bundle's emitted code and the codec's keys",
  },
  // The names the Temporal Worker Controller sets on each version's pods (docs/operations.md): the same two facts.
  TEMPORAL_DEPLOYMENT_NAME: {
    parse: DEPLOYMENT_NAME.optional(),
    meaning:
      '`WORKER_DEPLOYMENT_NAME` as the [Worker Controller](docs/operations.md#with-temporals-worker-controller) sets it (`<namespace>/<name>`)',
  },
  TEMPORAL_WORKER_BUILD_ID: {
    parse: BUILD_ID.optional(),
    meaning: '`WORKER_BUILD_ID` as the Worker Controller sets it; with it the worker never makes itself current',
  },
  WORKER_PROMOTE: {
    parse: z.enum(['auto', 'on-start', 'by-rollout']),
    default: 'auto',
    meaning:
      'who makes a version current: `on-start` (the worker), `by-rollout`; `auto`: `on-start`, in production the first build only, under the Worker Controller never',
  },
  ACCESS_LOG_SOLD_OUT_SAMPLE: {
    parse: z.coerce.number().int().min(0).max(1_000_000),
    default: '100',
    meaning: 'log 1 in N `409 SOLD_OUT` answers (`0`: none)',
  },
  // For a managed cluster's single configuration endpoint.
  REDIS_CLUSTER: {
    parse: booleanString,
    default: 'false',
    meaning: '`true`: a single `REDIS_URL` is a Cluster (configuration endpoint)',
  },
  REDIS_WAIT_REPLICAS: {
    parse: z.coerce.number().int().min(0).max(16),
    default: '0',
    meaning:
      'replicas that must hold a reservation before a checkout says 202 (else `503 OUTCOME_UNKNOWN`); `1` with replicas (Cluster), `0` without ([why](docs/fault-tolerance.md#a-reservations-owners))',
  },
  STATUS_CACHE_MS: {
    parse: z.coerce.number().int().min(0).max(60_000),
    default: '1000',
    meaning: "how long an order's status may come from memory while change notifications are down (`0`: off)",
  },
  STATUS_CACHE_NOTIFIED_MS: {
    parse: z.coerce.number().int().min(0).max(1_800_000),
    default: '300000',
    meaning: "how long an order's status may come from memory while change notifications are live",
  },
  STATUS_CACHE_MAX_ENTRIES: {
    parse: z.coerce.number().int().min(1).max(10_000_000),
    default: '50000',
    meaning: 'status cache size per API process',
  },
  STATUS_LONG_POLL_MAX_WAITERS: {
    parse: z.coerce.number().int().min(1).max(1_000_000),
    default: '10000',
    meaning: 'long-polls per API process; beyond: `503 UNAVAILABLE`',
  },
  CHECKOUT_DEADLINE: {
    parse: durationString,
    default: '2s',
    meaning: 'the longest a checkout takes (waiting: plus the wait)',
  },
  READ_DEADLINE: { parse: durationString, default: '2s', meaning: 'the longest one status read takes' },
  WRITE_DEADLINE: {
    parse: durationString,
    default: '5s',
    meaning: "the longest a cancel's delivery to the order takes",
  },
  // Each command of an API request; the worker's background work keeps no such bound.
  REDIS_TIMEOUT: { parse: durationString, default: '500ms', meaning: 'each Redis command of an API request' },
  MYSQL_TIMEOUT: { parse: durationString, default: '1s', meaning: 'each MySQL query of an API request' },
  BREAKER_FAILURES: {
    parse: z.coerce.number().int().min(1).max(1_000),
    default: '5',
    meaning: "consecutive failures that open a dependency's breaker",
  },
  // Tells a hung dependency (no success at all) from a busy one.
  BREAKER_NO_SUCCESS_FOR: {
    parse: optionalDurationString,
    default: '1s',
    meaning:
      'a breaker opens on `BREAKER_FAILURES` only once its dependency has also answered nothing this long (`0`: failures alone)',
  },
  BREAKER_HALF_OPEN_AFTER: {
    parse: durationString,
    default: '2s',
    meaning: 'wait before an open breaker lets one call try again',
  },
  MAX_CONCURRENT_STARTS: {
    parse: z.coerce.number().int().min(1).max(10_000),
    default: '32',
    meaning:
      "workflow starts in flight per worker's starter, and per API for waiting checkouts (the pace adapts below it)",
  },
  // What a checkout does not start in time, the starter starts; the answer is 202 either way.
  CHECKOUT_START_BUDGET: {
    parse: durationString,
    default: '250ms',
    meaning:
      "what a checkout keeps after its reservation for a replica's acknowledgement (`REDIS_WAIT_REPLICAS`) or a waiting checkout's start",
  },
  // Kept back from a reserve's cutoff; the API is unready past half of it.
  CLOCK_SKEW_MARGIN: {
    parse: durationString,
    default: '250ms',
    meaning: 'allowed API–Redis clock gap; `/readyz` is 503 past half of it',
  },
  MAX_IN_FLIGHT_REQUESTS: {
    parse: z.coerce.number().int().min(0).max(1_000_000),
    default: '1000',
    meaning: 'requests per API process; beyond: `503 UNAVAILABLE` at once (`0`: no bound)',
  },
  // Checked against src/payments/providers/registry.ts, which also reads each provider's own variables.
  PAYMENT_PROVIDER: {
    parse: z.string().regex(/^[a-z][a-z0-9_-]{0,31}$/, 'must be a payment provider\'s name such as "generic"'),
    default: 'generic',
    meaning:
      'the provider new orders are paid through, by its name in the provider registry: `generic` (the signed webhook of `WEBHOOK_SECRET`) or `stripe` ([Payments through Stripe](docs/operations.md#payments-through-stripe))',
  },
} satisfies Record<string, Setting>;
