/**
 * Each core setting's meaning and the relations loadConfig enforces, in words: the text of docs/reference/settings.md
 * (`npm run docs:reference`, scripts/reference-docs.ts). The defaults and the checks themselves are in src/config.
 */
import { ANSWER_MARGIN_MS, type ConfigVariable, type SettingDescription } from '../src/config/index.js';

/** Each core variable's meaning (its one home), keyed by variable: one added without a meaning does not compile. */
export const CONFIG_DESCRIPTIONS: Readonly<Record<ConfigVariable, SettingDescription>> = {
  PORT: { meaning: "the API's port" },
  TEMPORAL_ADDRESS: { meaning: 'the Temporal frontend' },
  TEMPORAL_NAMESPACE: { meaning: 'of every order and of the reconcile schedule' },
  TEMPORAL_TASK_QUEUE: { meaning: 'shared by the API and the worker' },
  TEMPORAL_TLS: { meaning: 'TLS to Temporal (implied by `TEMPORAL_API_KEY` and by the mTLS pair)' },
  TEMPORAL_API_KEY: { meaning: 'a Temporal Cloud API key' },
  TEMPORAL_TLS_CERT_PATH: { meaning: 'mTLS client certificate (PEM); set with the key or not at all' },
  TEMPORAL_TLS_KEY_PATH: { meaning: 'mTLS client key (PEM)' },
  TEMPORAL_UI_URL: {
    meaning: "the Web UI's address, for the dashboard's links",
    defaultNote: 'under `npm start`: `http://127.0.0.1:8233`',
  },
  REDIS_URL: { meaning: 'a `redis://` or `rediss://` URL, or a comma-separated list of Cluster nodes' },
  REDIS_CLUSTER: { meaning: '`true`: a single `REDIS_URL` is a Cluster (configuration endpoint)' },
  REDIS_WAIT_REPLICAS: {
    meaning:
      'replicas that must hold a reservation before a checkout says 202 (else `503 OUTCOME_UNKNOWN`); `1` with replicas (Cluster), `0` without ([why](docs/fault-tolerance.md#a-reservations-owners))',
  },
  MYSQL_URL: { meaning: "`?connectionLimit=N`: the API's and migrator's pool (20); the worker's is 50" },
  PAYMENT_WINDOW: { meaning: 'how long an order awaits payment (`90s`, `2h`, …); fixed per order at its start' },
  RECONCILE_INTERVAL: { meaning: 'how often the reconciler runs' },
  RESERVATION_GRACE: {
    meaning: "how long the reconciler leaves an order to its workflow: a reservation's age, a payment's",
  },
  MAX_CANCELS_PER_SHOPPER: { meaning: 'cancels after which a shopper may not buy in that sale (`0`: no limit)' },
  CHECKOUT_MAX_WAIT: { meaning: 'the longest `Prefer: wait=N` honoured (`0`: off)' },
  WEBHOOK_SECRET: { meaning: 'HMAC key of `Payment-Signature` (≥ 16 characters; production: ≥ 32, random)' },
  EVENTS_ALLOWED_RANGES: { meaning: 'CIDRs order events may reach though refused (`127.0.0.0/8,::1/128`: local)' },
  EVENTS_REQUIRE_HTTPS: { meaning: 'order events to `https://` only; `auto`: in production' },
  EVENTS_ATTEMPT_TIMEOUT_MS: { meaning: "an order event's attempt: connect, send, answer (1–30 s)" },
  EVENTS_RETRY_PERIOD: { meaning: 'an event is retried this long, then given up (the feed keeps it)' },
  EVENTS_RETRY_FIRST: { meaning: 'the first retry; each next doubles (± 20 %) up to an hour' },
  EVENTS_RETENTION: { meaning: 'the feed keeps events this long (≥ `EVENTS_RETRY_PERIOD`)' },
  EVENTS_SECRET_KEY: {
    meaning:
      "endpoints' `whsec_` secrets are sealed (AES-256-GCM) with a key derived from it; `<id>=<key>,…` lists keys, the first sealing, all opening ([rotating it](docs/operations.md#before-production))",
  },
  EVENTS_CUSTOMER_SECRET: {
    meaning:
      "keys the opaque `customer` reference order events carry instead of the shopper's id (HMAC-SHA256); changing it changes every reference",
  },
  EVENTS_CONCURRENCY: { meaning: 'order events sent at once to one endpoint' },
  EVENTS_POLL_INTERVAL: { meaning: "how often an endpoint's delivery looks for new events" },
  JWT_SECRET: { meaning: 'HS256 key of shopper tokens (≥ 16 characters; production: ≥ 32, random)' },
  JWT_ISSUER: { meaning: 'required `iss`' },
  JWT_AUDIENCE: { meaning: 'required `aud`' },
  JWT_MAX_TTL: { meaning: 'longest token lifetime; a token without `exp` is refused' },
  ADMIN_TOKEN: { meaning: 'bearer token of the admin routes (≥ 8 characters; production: ≥ 32, random)' },
  EVENTS_READ_TOKEN: {
    meaning:
      'read-only bearer token of the order events feed (≥ 16 characters); unset: the admin token only. The MySQL user needs `PROCESS` ([Order events](docs/api.md#order-events))',
  },
  AUTH_DEV_LOGIN: {
    meaning: 'enables dev login, the dev payment route and `/api/dev/config`',
    defaultNote: '`true` under `npm start`',
  },
  LOG_LEVEL: { meaning: 'pino level (`trace` … `fatal`, `silent`)' },
  NODE_ENV: {
    meaning:
      '`production` refuses a missing, published or weak secret and `AUTH_DEV_LOGIN=true` ([Before production](docs/operations.md#before-production))',
  },
  PAYLOAD_CODEC_KEYS: {
    meaning:
      "Temporal payloads' keys, `id=base64,…` (32 bytes each): the first encrypts, all decrypt ([Payload encryption](docs/operations.md#payload-encryption))",
    defaultNote: "a checkout's own key in `.data/payload-codec-keys`",
  },
  PAYLOAD_CODEC_MODE: {
    meaning:
      '`decrypt-only`: writes plain payloads and reads both (the release before encryption); `require`: encrypts and refuses a plain one (the last step)',
  },
  CODEC_SERVER_PORT: { meaning: "the codec server's port, never `PORT` (`0`: off)" },
  CODEC_SERVER_HOST: { meaning: "the codec server's address: loopback, it decrypts for whoever reaches it" },
  CODEC_SERVER_ORIGINS: { meaning: "the Web UI's origins, as browsers send them" },
  CODEC_SERVER_TOKEN: {
    meaning:
      'a bearer token every codec request must carry (≥ 16 characters); the codec server requires one in production (≥ 32, random)',
  },
  RATE_LIMIT_CHECKOUT: { meaning: 'checkouts per shopper: `<requests>/<duration>`, or `0`/`off`' },
  RATE_LIMIT_LOGIN: { meaning: 'dev logins per client IP' },
  RATE_LIMIT_WEBHOOK: { meaning: 'webhook calls per client IP' },
  RATE_LIMIT_AUTH_FAILURES: {
    meaning:
      'wrong admin, events-feed or codec-server tokens per address, counted in each process; past it: `429` until the window ends',
  },
  RATE_LIMIT_LINE: { meaning: "a line's joins and reads per shopper, counted in each API process" },
  RATE_LIMIT_LINE_IP: { meaning: "a line's joins and reads per client IP, counted in each API process" },
  RATE_LIMIT_LINE_SUBNET: {
    meaning: "a line's joins and reads per subnet (IPv4 /24, IPv6 /48), counted in each API process",
  },
  LINE_ADMISSIONS_PER_SECOND: {
    meaning:
      "a line's admission rate when its sale sets none ([The waiting line](docs/operations.md#the-waiting-line))",
  },
  LINE_ADMISSION_TTL: { meaning: 'how long an admission lasts unspent, when the sale sets none' },
  LINE_CHALLENGE_HEADER: { meaning: 'a header a join must carry, set by your bot-protection proxy' },
  LINE_CHALLENGE_SECRET: {
    meaning: 'the value `LINE_CHALLENGE_HEADER` must have (16+ characters; required with the header)',
  },
  TRUST_PROXY: { meaning: '`true`: client IP from `X-Forwarded-For` ([Rate limits](docs/operations.md#rate-limits))' },
  TRUST_PROXY_HOPS: { meaning: 'your proxies that append to `X-Forwarded-For` (1–10)' },
  SHUTDOWN_DRAIN: {
    meaning: 'how long `/readyz` answers 503 after SIGTERM before the API closes',
    defaultNote: '`0s` under `npm start`, the benchmark and the fault suite',
  },
  WORKER_METRICS_PORT: { meaning: "the worker's Prometheus port (`0`: off)" },
  WORKER_HEALTH_PORT: { meaning: "the worker's `/livez` and `/readyz` (`0`: off)" },
  WORKER_MAX_CACHED_WORKFLOWS: {
    meaning:
      'orders cached in the worker (~200 KB each; cut, with a warning, to what its heap holds less 768 MB); others are replayed',
  },
  WORKER_VERSIONING: {
    meaning:
      'workers are versions of a Worker Deployment ([Deploying during a sale](docs/operations.md#deploying-during-a-sale)); `false`: unversioned',
  },
  WORKER_DEPLOYMENT_NAME: { meaning: 'the deployment the workers are versions of', defaultNote: 'the task queue' },
  WORKER_BUILD_ID: {
    meaning: "this worker's build id (`npm run rollout -- build-id` prints it)",
    defaultNote: "named by the bundle's emitted code and the codec's keys",
  },
  WORKER_PROMOTE: {
    meaning:
      'who makes a version current: `on-start` (the worker), `by-rollout`; `auto`: `on-start`, in production the first build only, under the Worker Controller never',
  },
  TEMPORAL_DEPLOYMENT_NAME: {
    meaning:
      '`WORKER_DEPLOYMENT_NAME` as the [Worker Controller](docs/operations.md#with-temporals-worker-controller) sets it (`<namespace>/<name>`)',
  },
  TEMPORAL_WORKER_BUILD_ID: {
    meaning: '`WORKER_BUILD_ID` as the Worker Controller sets it; with it the worker never makes itself current',
  },
  ACCESS_LOG_SOLD_OUT_SAMPLE: { meaning: 'log 1 in N `409 SOLD_OUT` answers (`0`: none)' },
  STATUS_CACHE_MS: {
    meaning: "how long an order's status may come from memory while change notifications are down (`0`: off)",
  },
  STATUS_CACHE_NOTIFIED_MS: {
    meaning: "how long an order's status may come from memory while change notifications are live",
  },
  STATUS_CACHE_MAX_ENTRIES: { meaning: 'status cache size per API process' },
  STATUS_LONG_POLL_MAX_WAITERS: { meaning: 'long-polls per API process; beyond: `503 UNAVAILABLE`' },
  CHECKOUT_DEADLINE: { meaning: 'the longest a checkout takes (waiting: plus the wait)' },
  READ_DEADLINE: { meaning: 'the longest one status read takes' },
  WRITE_DEADLINE: { meaning: "the longest a cancel's delivery to the order takes" },
  REDIS_TIMEOUT: { meaning: 'each Redis command of an API request' },
  MYSQL_TIMEOUT: { meaning: 'each MySQL query of an API request' },
  BREAKER_FAILURES: { meaning: "consecutive failures that open a dependency's breaker" },
  BREAKER_NO_SUCCESS_FOR: {
    meaning:
      'a breaker opens on `BREAKER_FAILURES` only once its dependency has also answered nothing this long (`0`: failures alone)',
  },
  BREAKER_HALF_OPEN_AFTER: { meaning: 'wait before an open breaker lets one call try again' },
  MAX_CONCURRENT_STARTS: {
    meaning:
      "workflow starts in flight per worker's owner of starts, and per API for waiting checkouts (the pace adapts below it)",
  },
  CHECKOUT_START_BUDGET: {
    meaning:
      "what a checkout keeps after its reservation for a replica's acknowledgement (`REDIS_WAIT_REPLICAS`) or a waiting checkout's start",
  },
  CLOCK_SKEW_MARGIN: { meaning: 'allowed API–Redis clock gap; `/readyz` is 503 past half of it' },
  MAX_IN_FLIGHT_REQUESTS: { meaning: 'requests per API process; beyond: `503 UNAVAILABLE` at once (`0`: no bound)' },
  PAYMENT_PROVIDER: {
    meaning:
      'the provider new orders are paid through, by its name in the provider registry: `generic` (the signed webhook of `WEBHOOK_SECRET`) or `stripe` ([Payments through Stripe](docs/operations.md#payments-through-stripe))',
  },
};

/**
 * The relations between settings that loadConfig refuses to start without, in words (docs/reference/settings.md);
 * each variable's own bounds are in its meaning.
 */
export const CONFIG_RELATIONS: readonly string[] = [
  `\`CHECKOUT_DEADLINE\` > \`REDIS_TIMEOUT\` + \`CHECKOUT_START_BUDGET\` + \`CLOCK_SKEW_MARGIN\` + ${ANSWER_MARGIN_MS} ms (else a slow reserve misses its cutoff)`,
  "`RESERVATION_GRACE` ≥ `CHECKOUT_MAX_WAIT` + `CHECKOUT_DEADLINE` (else the reconciler may act before a waiting checkout's start)",
  '`EVENTS_RETENTION` ≥ `EVENTS_RETRY_PERIOD` (else an event still being retried could leave the feed)',
  '`CODEC_SERVER_PORT` is not `PORT` (the codec server decrypts payloads and is never served publicly)',
  '`TEMPORAL_TLS_CERT_PATH` and `TEMPORAL_TLS_KEY_PATH` both or neither',
  '`LINE_CHALLENGE_HEADER` needs `LINE_CHALLENGE_SECRET`',
  "`NODE_ENV=production` needs `WEBHOOK_SECRET`, `JWT_SECRET`, `ADMIN_TOKEN`, `EVENTS_SECRET_KEY`, `EVENTS_CUSTOMER_SECRET` and `PAYLOAD_CODEC_KEYS` set; refuses any secret this repository published (by fingerprint), the service's own secrets under 32 characters or patterned, a codec key that is patterned or a `local-` one, and `AUTH_DEV_LOGIN=true`",
];
