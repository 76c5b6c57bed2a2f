/**
 * The relations loadConfig enforces, in words: part of docs/reference/settings.md (`npm run docs:reference`,
 * scripts/reference-docs.ts). Each variable's meaning is beside its declaration (src/config/settings.ts).
 */
import { ANSWER_MARGIN_MS } from '../src/config/index.js';

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
