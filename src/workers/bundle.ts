/**
 * The workflow bundle: built once from a checkout's src/ and named by its emitted code, so a build id changes only
 * when the code Temporal replays does (docs/operations.md, "Deploying during a sale").
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleWorkflowCode, DefaultLogger } from '@temporalio/worker';

/** The package root: src/ and dist/ sit side by side in it. */
const CHECKOUT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Whether this process runs from the sources (tsx) rather than a build (dist/, the image: no src/ there). */
const FROM_SOURCES = import.meta.url.endsWith('.ts');

/** The bundle a build ships (`npm run build`), and the one a checkout's workers build for themselves. */
export const DEFAULT_BUNDLE_PATH = FROM_SOURCES
  ? join(CHECKOUT, 'node_modules', '.cache', 'flash-checkout', 'workflow-bundle.js')
  : join(CHECKOUT, 'dist', 'workflow-bundle.js');

/** The modules a bundle starts from, in a checkout (or a copy of one). */
export function bundleEntries(checkout = CHECKOUT) {
  const src = join(checkout, 'src');
  return {
    workflows: join(src, 'workflows', 'index.ts'),
    // OpenTelemetry's workflow interceptors (src/workflows/tracing-interceptors.ts), bundled into every worker.
    tracing: join(src, 'workflows', 'tracing-interceptors.ts'),
    // Failures leave the sandbox with their message and stack in a payload the codec encrypts.
    failureConverter: join(src, 'infra', 'failure-converter.ts'),
  };
}

/** The bundle's local sources: what the workflows import by value, by relative path (test/bundle.test.ts checks it). */
export function workflowSourceFiles(checkout = CHECKOUT): string[] {
  const seen = new Set<string>();
  const visit = (file: string): void => {
    if (seen.has(file)) return;
    seen.add(file);
    const text = readFileSync(file, 'utf8');
    for (const [, spec] of text.matchAll(/^(?:import|export)\s+(?!type\s)[^;'"]*?from\s+'(\.[^']+)'/gm)) {
      const target = resolve(dirname(file), spec!);
      // In the sources a './x.js' specifier names ./x.ts.
      visit(existsSync(target.replace(/\.js$/, '.ts')) ? target.replace(/\.js$/, '.ts') : target);
    }
  };
  for (const entry of Object.values(bundleEntries(checkout))) visit(entry);
  return [...seen].sort();
}

/** When the bundle is stale: its sources and the lockfile (it pins the SDK and webpack). Not its name: see below. */
function sourceHash(checkout: string): string {
  const hash = createHash('sha256');
  for (const file of workflowSourceFiles(checkout)) hash.update(relative(checkout, file)).update(readFileSync(file));
  const lockfile = join(checkout, 'package-lock.json');
  if (existsSync(lockfile)) hash.update(readFileSync(lockfile));
  return hash.digest('hex').slice(0, 16);
}

/** The code's hash bare of comments and layout: a comment, a reformat, an unused package or the machine keep it. */
export async function codeBuildId(code: string): Promise<string> {
  const { minify } = await import('@swc/core');
  const bare = await minify(code, { compress: false, mangle: false, format: { comments: false } });
  return createHash('sha256').update(bare.code).digest('hex').slice(0, 16);
}

/** Bundles a checkout's workflows as every worker runs them, and names the result. */
export async function bundleWorkflows(
  checkout = CHECKOUT,
  options: { withoutTracingInterceptors?: boolean } = {},
): Promise<{ code: string; buildId: string }> {
  const entries = bundleEntries(checkout);
  const { code } = await bundleWorkflowCode({
    workflowsPath: entries.workflows,
    // Off only for the benchmark's reference: they reorder commands around an Update, replay needs them (TMPRL1100).
    workflowInterceptorModules: options.withoutTracingInterceptors ? [] : [entries.tracing],
    failureConverterPath: entries.failureConverter,
    // Module ids (and their order) from the checkout, whatever the cwd.
    webpackConfigHook: (config) => ({ ...config, context: checkout }),
    logger: quietLogger,
  });
  return { code, buildId: await codeBuildId(code) };
}

/** The build id of a bundle written by buildWorkflowBundle. */
export function workflowBuildId(bundlePath: string): string {
  const stamp = `${bundlePath}.build-id`;
  if (!existsSync(stamp))
    throw new Error(`${bundlePath} has no build id beside it: build it with \`npm run build\` or build:workflows`);
  return readFileSync(stamp, 'utf8').trim();
}

/** Writes the bundle and its `.build-id` to `outFile` unless `.hash` (the sources') matches; true when it built. */
export async function buildWorkflowBundle(
  outFile: string,
  options: { withoutTracingInterceptors?: boolean; checkout?: string } = {},
): Promise<boolean> {
  const checkout = options.checkout ?? CHECKOUT;
  const stamp = `${outFile}.hash`;
  const hash = options.withoutTracingInterceptors ? `${sourceHash(checkout)}-bare` : sourceHash(checkout);
  const upToDate = (file: string) => existsSync(file) && existsSync(`${file}.build-id`);
  if (upToDate(outFile) && existsSync(stamp) && readFileSync(stamp, 'utf8') === hash) return false;
  const { code, buildId } = await bundleWorkflows(checkout, options);
  mkdirSync(dirname(outFile), { recursive: true });
  // Several processes may build the same bundle at once: each renames complete files into place, the stamp last.
  const tmp = `${outFile}.${process.pid}.tmp`;
  writeFileSync(tmp, code);
  writeFileSync(`${tmp}.build-id`, buildId);
  renameSync(`${tmp}.build-id`, `${outFile}.build-id`);
  renameSync(tmp, outFile);
  writeFileSync(stamp, hash);
  return true;
}

/** A worker's bundle when none is named: a build's (dist/), or one built from the sources, rebuilt as they change. */
export async function defaultWorkflowBundle(): Promise<string> {
  if (FROM_SOURCES) await buildWorkflowBundle(DEFAULT_BUNDLE_PATH);
  else workflowBuildId(DEFAULT_BUNDLE_PATH);
  return DEFAULT_BUNDLE_PATH;
}

// Webpack's info lines are noise at every start; warnings and errors still show.
const quietLogger = new DefaultLogger('WARN', ({ level, message, meta }) =>
  (level === 'WARN' ? console.warn : console.error)(message, meta ?? ''),
);
