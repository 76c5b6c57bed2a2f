import { randomBytes } from 'node:crypto';
import { inject } from 'vitest';
import { loadConfig, type AppConfig } from '../../src/config/index.js';

/** The app's own configuration, pointed at the test stack started by the global setup. */
export function testConfig(overrides: Record<string, string> = {}): AppConfig {
  return loadConfig({ ...process.env, ...inject('stackEnv'), ...overrides });
}

/** Secrets production accepts, new for each call: random, so never published (src/config/secrets.ts). */
export function productionSecrets(): Record<string, string> {
  const random = () => randomBytes(24).toString('hex');
  return {
    NODE_ENV: 'production',
    WEBHOOK_SECRET: random(),
    JWT_SECRET: random(),
    ADMIN_TOKEN: random(),
    EVENTS_SECRET_KEY: random(),
    EVENTS_CUSTOMER_SECRET: random(),
    MYSQL_URL: `mysql://flash:${random()}@127.0.0.1:3307/flash`,
    PAYLOAD_CODEC_KEYS: `prod-${randomBytes(3).toString('hex')}=${randomBytes(32).toString('base64')}`,
  };
}
