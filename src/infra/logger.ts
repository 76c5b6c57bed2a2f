import { pino, type Logger } from 'pino';
import type { AppConfig } from '../config/index.js';

/** Structured JSON logs (one line per event), the format log pipelines ingest without parsing rules. */
export function createLogger(config: Pick<AppConfig, 'logLevel'>, name: string): Logger {
  return pino({ name, level: config.logLevel, base: { service: name } });
}

export type { Logger };
