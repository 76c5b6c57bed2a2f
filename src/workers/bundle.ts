/**
 * Builds the workflow bundle once (webpack via bundleWorkflowCode), so production workers start
 * from a file instead of re-bundling on every start. Rebuilt only when a workflow source changes.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleWorkflowCode } from '@temporalio/worker';

const WORKFLOWS_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'workflows');

/**
 * The workflow bundle's entry point: the TypeScript source when running from it (tsx), the
 * compiled JavaScript next to this module in a build (dist/workflows), which webpack bundles alike.
 */
export const WORKFLOWS_PATH = existsSync(join(WORKFLOWS_DIR, 'index.ts')) ? join(WORKFLOWS_DIR, 'index.ts') : join(WORKFLOWS_DIR, 'index.js');

/**
 * The workflow interceptors module (OpenTelemetry's, used where the caller's trace is sampled:
 * src/workflows/tracing-interceptors.ts), bundled into every worker's workflow code, traced or not.
 */
export const WORKFLOW_TRACING_MODULE = WORKFLOWS_PATH.replace(/index\.(ts|js)$/, 'tracing-interceptors.$1');

/**
 * A hash of every workflow source file and of the lockfile (which pins the SDK and webpack):
 * the bundle is stale when it changes. Workflows import only from their folder and @temporalio.
 */
function sourceHash(): string {
  const hash = createHash('sha256');
  const dir = WORKFLOWS_DIR;
  for (const file of readdirSync(dir).sort()) hash.update(file).update(readFileSync(join(dir, file)));
  const lockfile = join(dir, '..', '..', 'package-lock.json');
  if (existsSync(lockfile)) hash.update(readFileSync(lockfile));
  return hash.digest('hex').slice(0, 16);
}

/**
 * Writes the bundle to `outFile` unless an up-to-date one is there; returns whether it built.
 *
 * OpenTelemetry's workflow interceptors are always bundled in, traced or not: they change the
 * order of a workflow's commands around an Update (their handler span adds awaits), so a history
 * written with them does not replay without them (test/tracing.test.ts showed TMPRL1100 on the pay
 * Update). With the same workflow code everywhere, turning tracing on or off is only a question of
 * whether the spans leave the worker (src/infra/tracing.ts), never of determinism.
 */
export async function buildWorkflowBundle(outFile: string, options: { withoutTracingInterceptors?: boolean } = {}): Promise<boolean> {
  const stamp = `${outFile}.hash`;
  // withoutTracingInterceptors: only the benchmark's reference (what the interceptors cost), never a worker's bundle.
  const bare = options.withoutTracingInterceptors === true;
  const hash = bare ? `${sourceHash()}-bare` : sourceHash();
  if (existsSync(outFile) && existsSync(stamp) && readFileSync(stamp, 'utf8') === hash) return false;
  const { code } = await bundleWorkflowCode({
    workflowsPath: WORKFLOWS_PATH,
    workflowInterceptorModules: bare ? [] : [WORKFLOW_TRACING_MODULE],
    logger: quietLogger,
  });
  mkdirSync(dirname(outFile), { recursive: true });
  // Several processes may build the same bundle at once: each renames a complete file into place.
  const tmp = `${outFile}.${process.pid}.tmp`;
  writeFileSync(tmp, code);
  renameSync(tmp, outFile);
  writeFileSync(stamp, hash);
  return true;
}

// Webpack's info lines are noise at every start; warnings and errors still show.
const quietLogger = {
  log: () => {},
  trace: () => {},
  debug: () => {},
  info: () => {},
  warn: (message: string, meta?: unknown) => console.warn(message, meta ?? ''),
  error: (message: string, meta?: unknown) => console.error(message, meta ?? ''),
};
