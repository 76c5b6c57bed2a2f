/**
 * The unit project's setup: only the path of Temporal's time-skipping test server (no stack), so
 * workflow tests with stub activities run without Redis, MariaDB or a dev server.
 */
import type { TestProject } from 'vitest/node';
import { requireTestServer } from './global-stack.js';

export function setup(project: TestProject): void {
  project.provide('temporalTestServer', requireTestServer());
}
