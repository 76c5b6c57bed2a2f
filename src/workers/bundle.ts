/** Builds the workflow bundle once, so production workers start from a file; rebuilt only when its sources change. */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleWorkflowCode, DefaultLogger } from '@temporalio/worker';
import { FAILURE_CONVERTER_PATH } from '../infra/data-converter.js';

const WORKFLOWS_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'workflows');

/** The entry point: the TypeScript source under tsx, the compiled JavaScript in a build (dist/workflows). */
export const WORKFLOWS_PATH = existsSync(join(WORKFLOWS_DIR, 'index.ts'))
  ? join(WORKFLOWS_DIR, 'index.ts')
  : join(WORKFLOWS_DIR, 'index.js');

/** OpenTelemetry's workflow interceptors (src/workflows/tracing-interceptors.ts), bundled into every worker. */
export const WORKFLOW_TRACING_MODULE = WORKFLOWS_PATH.replace(/index\.(ts|js)$/, 'tracing-interceptors.$1');

/** The bundle's local sources: what the workflows import by value, by relative path (test/bundle.test.ts checks it). */
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
  visit(FAILURE_CONVERTER_PATH);
  return [...seen].sort();
}

/** The bundle's sources and the lockfile (it pins the SDK and webpack): the bundle is stale when this changes. */
function sourceHash(): string {
  const hash = createHash('sha256');
  const root = join(WORKFLOWS_DIR, '..');
  for (const file of workflowSourceFiles()) hash.update(relative(root, file)).update(readFileSync(file));
  const lockfile = join(root, '..', 'package-lock.json');
  if (existsSync(lockfile)) hash.update(readFileSync(lockfile));
  return hash.digest('hex').slice(0, 16);
}

/** The build id for Worker Versioning: the stamp of the bundle at `bundlePath`, else the hash of the sources. */
export function workflowBuildId(bundlePath?: string): string {
  const stamp = `${bundlePath}.hash`;
  return bundlePath && existsSync(stamp) ? readFileSync(stamp, 'utf8').trim() : sourceHash();
}

// Writes the bundle unless an up-to-date one is there (returns whether it built). Always with the tracing interceptors:
// they reorder commands around an Update, so a history does not replay without them (TMPRL1100).
export async function buildWorkflowBundle(outFile: string, options: { withoutTracingInterceptors?: boolean } = {}) {
  const stamp = `${outFile}.hash`;
  // withoutTracingInterceptors: only the benchmark's reference (what the interceptors cost), never a worker's bundle.
  const bare = options.withoutTracingInterceptors === true;
  const hash = bare ? `${sourceHash()}-bare` : sourceHash();
  if (existsSync(outFile) && existsSync(stamp) && readFileSync(stamp, 'utf8') === hash) return false;
  const { code } = await bundleWorkflowCode({
    workflowsPath: WORKFLOWS_PATH,
    workflowInterceptorModules: bare ? [] : [WORKFLOW_TRACING_MODULE],
    // Failures leave the sandbox with their message and stack in a payload the codec encrypts.
    failureConverterPath: FAILURE_CONVERTER_PATH,
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
const quietLogger = new DefaultLogger('WARN', ({ level, message, meta }) =>
  (level === 'WARN' ? console.warn : console.error)(message, meta ?? ''),
);
