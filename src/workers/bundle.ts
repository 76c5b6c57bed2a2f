/**
 * Builds the workflow bundle once (webpack via bundleWorkflowCode), so production workers start
 * from a file instead of re-bundling on every start. Rebuilt only when a workflow source changes.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
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

/** Writes the bundle to `outFile` unless an up-to-date one is there; returns whether it built. */
export async function buildWorkflowBundle(outFile: string): Promise<boolean> {
  const stamp = `${outFile}.hash`;
  const hash = sourceHash();
  if (existsSync(outFile) && existsSync(stamp) && readFileSync(stamp, 'utf8') === hash) return false;
  const { code } = await bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, logger: quietLogger });
  mkdirSync(dirname(outFile), { recursive: true });
  writeFileSync(outFile, code);
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
