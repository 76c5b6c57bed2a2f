import { pino, type DestinationStream, type Logger } from 'pino';
import type { AppConfig } from '../config/index.js';

/**
 * Fields that carry a secret wherever a log line might hold them (a config object, a settings
 * object, a client secret): written as [secret], never in the clear.
 */
const SECRET_PATHS = [
  '*.secretKey',
  '*.webhookSecret',
  '*.clientSecret',
  '*.jwtSecret',
  '*.adminToken',
  'config.payments.environment',
  'paymentIntent.clientSecret',
  '*.paymentIntent.clientSecret',
];

/**
 * Structured JSON logs (one line per event), the format log pipelines ingest without parsing rules.
 * `destination`: where the lines go (default stdout); tests pass a stream they read.
 */
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
