import { TestWorkflowEnvironment } from '@temporalio/testing';
import { inject } from 'vitest';

const ATTEMPTS = 3;

/**
 * Temporal's time-skipping test server, from the binary the install script put in the cache (never
 * a download). The SDK allows a spawned server a fixed 5 s to answer; on a 2-core machine busy with
 * the other test files a JVM can miss that, and a slow start says nothing about the code under test,
 * so a startup timeout is retried on a fresh port. Any other error fails at once.
 */
export async function startTimeSkippingEnvironment(): Promise<TestWorkflowEnvironment> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await TestWorkflowEnvironment.createTimeSkipping({
        server: { executable: { type: 'existing-path', path: inject('temporalTestServer') } },
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
