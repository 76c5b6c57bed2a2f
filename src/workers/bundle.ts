/**
 * Builds the workflow bundle once (webpack via bundleWorkflowCode), so production workers start
 * from a file instead of re-bundling on every start. Rebuilt only when a workflow source changes.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleWorkflowCode } from '@temporalio/worker';

const WORKFLOWS_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'workflows');

/**
 * The workflow bundle's entry point: the TypeScript source when running from it (tsx), the
 * compiled JavaScript next to this module in a build (dist/workflows), which webpack bundles alike.
 */
export const WORKFLOWS_PATH = existsSync(join(WORKFLOWS_DIR, 'index.ts'))
  ? join(WORKFLOWS_DIR, 'index.ts')
  : join(WORKFLOWS_DIR, 'index.js');

/**
 * The workflow interceptors module (OpenTelemetry's, used where the caller's trace is sampled:
 * src/workflows/tracing-interceptors.ts), bundled into every worker's workflow code, traced or not.
 */
export const WORKFLOW_TRACING_MODULE = WORKFLOWS_PATH.replace(/index\.(ts|js)$/, 'tracing-interceptors.$1');

/**
 * The local source files the bundle is made of: the workflow modules and everything they import by
 * value, found by following relative imports from the entry points (the order's contract lives in
 * src/order/ and is bundled too; an `import type` brings in no code). test/bundle.test.ts checks
 * this list against the modules webpack actually bundled.
 */
export function workflowSourceFiles(): string[] {
  const seen = new Set<string>();
  const visit = (file: string): void => {
    if (seen.has(file)) return;
    seen.add(file);
    const text = readFileSync(file, 'utf8');
    for (const [, spec] of text.matchAll(/^(?:import|export)\s+(?!type\s)[^;'"]*?from\s+'(\.[^']+)'/gm)) {
      const target = resolve(dirname(file), spec!);
      // From source (tsx) a './x.js' specifier names ./x.ts; in a build, the .js itself.
      visit(existsSync(target.replace(/\.js$/, '.ts')) ? target.replace(/\.js$/, '.ts') : target);
    }
  };
  visit(WORKFLOWS_PATH);
  visit(WORKFLOW_TRACING_MODULE);
  return [...seen].sort();
}

/**
 * A hash of the bundle's source files and of the lockfile (which pins the SDK and webpack): the bundle is stale when it
 * changes.
 */
function sourceHash(): string {
  const hash = createHash('sha256');
  const root = join(WORKFLOWS_DIR, '..');
  for (const file of workflowSourceFiles()) hash.update(relative(root, file)).update(readFileSync(file));
  const lockfile = join(root, '..', 'package-lock.json');
  if (existsSync(lockfile)) hash.update(readFileSync(lockfile));
  return hash.digest('hex').slice(0, 16);
}

/**
 * The workflow code's build id for Worker Versioning: the source hash of the bundle at `bundlePath` (its stamp, written
 * with it), else of the sources this process would bundle. Only a change to the workflows, what they import, or the
 * locked dependencies (the SDK is bundled too) makes a new version.
 */
export function workflowBuildId(bundlePath?: string): string {
  const stamp = bundlePath ? `${bundlePath}.hash` : undefined;
  if (stamp && existsSync(stamp)) return readFileSync(stamp, 'utf8').trim();
  return sourceHash();
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
export async function buildWorkflowBundle(
  outFile: string,
  options: { withoutTracingInterceptors?: boolean } = {},
): Promise<boolean> {
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
