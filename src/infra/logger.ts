import { pino, stdSerializers, type DestinationStream, type Logger } from 'pino';
import type { AppConfig } from '../config/index.js';

/** Credential fields at any depth; `payloadCodec` holds the codec's keys, `environment` the providers' variables. */
const SECRET_FIELD = /secret|token|passw|api_?key|authorization|cookie|^payloadCodec$|^environment$/i;
/** A URL's password (MYSQL_URL, REDIS_URL): `user:[secret]@host`. */
const URL_PASSWORD = /\b([a-z][a-z0-9+.-]*:\/\/[^:/@\s]*:)[^@/\s]+@/gi;
// Deeper than any object this service logs; past it a value is dropped rather than walked.
const MAX_DEPTH = 8;
/** The prototype of pino's serialized errors: an error's nested errors are serialized with it too. */
const SERIALIZED_ERROR = Object.getPrototypeOf(stdSerializers.err(new Error())) as unknown;

/** A copy of `value` with every credential replaced; plain objects and arrays are walked, the rest kept as they are. */
export function redactSecrets(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return value.includes('@') ? value.replace(URL_PASSWORD, '$1[secret]@') : value;
  if (value === null || typeof value !== 'object') return value;
  if (depth >= MAX_DEPTH) return '[too deep]';
  if (Array.isArray(value)) return value.map((item) => redactSecrets(item, depth + 1));
  // As pino writes an error (type, message, stack, its own fields), walked: ioredis's carry the command that failed.
  if (value instanceof Error) return redactSecrets(stdSerializers.err(value), depth);
  const prototype = Object.getPrototypeOf(value) as unknown;
  if (prototype !== Object.prototype && prototype !== null && prototype !== SERIALIZED_ERROR) return value;
  return Object.fromEntries(
    Object.entries(value).map(([key, field]) => [
      key,
      SECRET_FIELD.test(key) && field !== null && field !== undefined
        ? '[secret]'
        : key === 'command' && isRedisCommand(field)
          ? { ...field, args: '[secret]' }
          : redactSecrets(field, depth + 1),
    ]),
  );
}

/** ioredis's `err.command`: the failed command's arguments may be a password (AUTH, HELLO) or a shopper's data. */
function isRedisCommand(value: unknown): value is { name: unknown; args: unknown } {
  return typeof value === 'object' && value !== null && 'name' in value && 'args' in value;
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
    // The formatter above has serialized every error already; pino's own `err` serializer would again (type "Object").
    serializers: { err: (err: unknown) => err },
  };
  return destination ? pino(options, destination) : pino(options);
}

export type { Logger };
