import { pino, type DestinationStream, type Logger } from 'pino';
import type { AppConfig } from '../config/index.js';

/** Secrets wherever a logged object may hold them: written as [secret]. */
const SECRET_PATHS = [
  '*.secretKey',
  '*.webhookSecret',
  '*.clientSecret',
  '*.jwtSecret',
  '*.adminToken',
  'config.payments.environment',
  'paymentIntent.clientSecret',
  '*.paymentIntent.clientSecret',
  // The payload codec's keys (config.payloadCodec.keys[i].secret) and the codec server's token.
  'payloadCodec',
  'config.payloadCodec',
  '*.payloadCodec',
  '*.codecServer.token',
  'config.codecServer.token',
];

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
    redact: { paths: SECRET_PATHS, censor: '[secret]' },
  };
  return destination ? pino(options, destination) : pino(options);
}

export type { Logger };
