/**
 * Another build of the workflows, for tests of a deploy: a copy of this checkout's src/ beside the test stack's data,
 * one file changed as a developer would change it, bundled and named as a worker's bundle is
 * (src/workers/bundle.ts). Its workers are then a new Worker Deployment Version.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { buildWorkflowBundle, workflowBuildId } from '../../src/workers/bundle.js';

const root = resolve(import.meta.dirname, '..', '..');

export interface VariantBuild {
  bundlePath: string;
  buildId: string;
}

/**
 * A copy of this checkout at `dir` (what its processes read: src/, scripts/, lua/, migrations/, web/ and the
 * manifests): what a fresh clone elsewhere holds. Its node_modules
 * is a copy of hard links (in a second), not a symlink: webpack orders modules by their loaders' paths, which a link
 * would leave in this checkout.
 */
export function copyCheckout(dir: string): string {
  mkdirSync(dir, { recursive: true });
  for (const entry of [
    'src',
    'scripts',
    'lua',
    'migrations',
    'web',
    'package.json',
    'package-lock.json',
    'tsconfig.json',
  ])
    cpSync(join(root, entry), join(dir, entry), { recursive: true });
  const linked = spawnSync('cp', ['-al', join(root, 'node_modules'), join(dir, 'node_modules')]);
  // Another file system: a plain copy.
  if (linked.status !== 0) cpSync(join(root, 'node_modules'), join(dir, 'node_modules'), { recursive: true });
  return dir;
}

/** `file` (relative to the checkout) rewritten by `change`; refuses a change that changes nothing. */
export function changeFile(checkout: string, file: string, change: (source: string) => string): void {
  const before = readFileSync(join(checkout, file), 'utf8');
  const after = change(before);
  if (after === before) throw new Error(`the change to ${file} changed nothing`);
  writeFileSync(join(checkout, file), after);
}

/** Runs the copy's own `npm run build:workflows` (its own SDK and webpack, as on another machine); its build id. */
export function buildInCopy(checkout: string): string {
  const bundle = join(checkout, 'workflow-bundle.js');
  const built = spawnSync(join(checkout, 'node_modules', '.bin', 'tsx'), ['scripts/build-workflow-bundle.ts', bundle], {
    cwd: checkout,
    encoding: 'utf8',
    timeout: 120_000,
  });
  if (built.status !== 0) throw new Error(`build:workflows in ${checkout} failed: ${built.stderr}${built.stdout}`);
  return workflowBuildId(bundle);
}

/** Bundles a copy of src/ with `file` (relative to src/) rewritten by `change`, into `dir`/`name`. */
export async function buildVariant(
  dir: string,
  name: string,
  file: string,
  change: (source: string) => string,
): Promise<VariantBuild> {
  const checkout = copyCheckout(join(dir, name));
  changeFile(checkout, join('src', file), change);
  const bundlePath = join(checkout, 'workflow-bundle.js');
  await buildWorkflowBundle(bundlePath, { checkout });
  return { bundlePath, buildId: workflowBuildId(bundlePath) };
}
