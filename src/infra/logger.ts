import { pino, type DestinationStream, type Logger } from 'pino';
import type { AppConfig } from '../config/index.js';

/**
 * Structured JSON logs (one line per event), the format log pipelines ingest without parsing rules.
 * `destination`: where the lines go (default stdout); tests pass a stream they read.
 */
export function createLogger(
  config: Pick<AppConfig, 'logLevel'>,
  name: string,
  destination?: DestinationStream,
): Logger {
  const options = { name, level: config.logLevel, base: { service: name } };
  return destination ? pino(options, destination) : pino(options);
}

export type { Logger };
