import { inject } from 'vitest';
import { loadConfig, type AppConfig } from '../../src/config/index.js';

/** The app's own configuration, pointed at the test stack started by the global setup. */
export function testConfig(overrides: Record<string, string> = {}): AppConfig {
  return loadConfig({ ...process.env, ...inject('stackEnv'), ...overrides });
}
