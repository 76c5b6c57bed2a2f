import { pino, type DestinationStream, type Logger } from 'pino';
import type { AppConfig } from '../config/index.js';

/**
 * A field whose name says it holds a credential, at any depth: written as [secret]. `payloadCodec` holds the codec's
 * keys, `environment` the payment providers' variables (config.payments.environment).
 */
const SECRET_FIELD = /secret|token|passw|api_?key|authorization|cookie|^payloadCodec$|^environment$/i;
/** A URL's password (MYSQL_URL, REDIS_URL): `user:[secret]@host`. */
const URL_PASSWORD = /^([a-z][a-z0-9+.-]*:\/\/[^:/@\s]*:)[^@/\s]+@/gi;
// Deeper than any object this service logs; past it a value is dropped rather than walked.
const MAX_DEPTH = 8;

/** A copy of `value` with every credential replaced; plain objects and arrays are walked, the rest kept as they are. */
export function redactSecrets(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return value.includes('@') ? value.replace(URL_PASSWORD, '$1[secret]@') : value;
  if (value === null || typeof value !== 'object') return value;
  if (depth >= MAX_DEPTH) return '[too deep]';
  if (Array.isArray(value)) return value.map((item) => redactSecrets(item, depth + 1));
  const prototype = Object.getPrototypeOf(value) as unknown;
  if (prototype !== Object.prototype && prototype !== null) return value;
  return Object.fromEntries(
    Object.entries(value).map(([key, field]) => [
      key,
      SECRET_FIELD.test(key) && field !== null && field !== undefined ? '[secret]' : redactSecrets(field, depth + 1),
    ]),
  );
}

/** JSON logs, one line per event, to stdout unless tests pass a `destination` to read. */
export function createLogger(
  config: Pick<AppConfig, 'logLevel'>,
  name: string,
  destination?: DestinationStream,
): Logger {
  const options = {
    name,
    level: config.logLevel,
    base: { service: name },
    formatters: { log: (object: Record<string, unknown>) => redactSecrets(object) as Record<string, unknown> },
  };
  return destination ? pino(options, destination) : pino(options);
}

export type { Logger };
