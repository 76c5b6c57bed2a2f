import { TestWorkflowEnvironment } from '@temporalio/testing';
import { inject } from 'vitest';
import { loadConfig, type AppConfig } from '../../src/config/index.js';
import { temporalDataConverter } from '../../src/infra/data-converter.js';

const ATTEMPTS = 3;

/**
 * The codec settings of a file without the stack's environment: the defaults, so the checkout's own key (generated
 * once under .data/, shared by every process of the checkout). Workers a file creates on the environment take
 * `temporalDataConverter(timeSkippingCodecConfig)`, as the environment's client does.
 */
export const timeSkippingCodecConfig: Pick<AppConfig, 'payloadCodec'> = { payloadCodec: loadConfig({}).payloadCodec };

/**
 * Temporal's time-skipping test server, from the binary the install script put in the cache (never
 * a download). The SDK allows a spawned server a fixed 5 s to answer; on a 2-core machine busy with
 * the other test files a JVM can miss that, and a slow start says nothing about the code under test,
 * so a startup timeout is retried on a fresh port. Any other error fails at once. Its client encrypts
 * payloads as every client of the service does (src/infra/data-converter.ts), with `config`'s keys: the
 * Workers created on it must use the same (`temporalDataConverter(config)`).
 */
export async function startTimeSkippingEnvironment(
  config: Pick<AppConfig, 'payloadCodec'> = timeSkippingCodecConfig,
): Promise<TestWorkflowEnvironment> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await TestWorkflowEnvironment.createTimeSkipping({
        server: { executable: { type: 'existing-path', path: inject('temporalTestServer') } },
        client: { dataConverter: temporalDataConverter(config) },
      });
    } catch (err) {
      const startupTimeout = err instanceof Error && /did not start within/.test(err.message);
      if (!startupTimeout || attempt >= ATTEMPTS) throw err;
      console.warn(
        `time-skipping test server missed its startup deadline (attempt ${attempt} of ${ATTEMPTS}); retrying`,
      );
    }
  }
}
