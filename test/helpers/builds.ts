/**
 * Another build of the workflows, for tests of a deploy: this checkout's src/ copied beside the test stack's data,
 * one file changed as a developer would change it, bundled as a worker's bundle is (tracing interceptors in), with a
 * stamp (its build id) beside it. Its workers are then a new Worker Deployment Version.
 */
import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';

const root = resolve(import.meta.dirname, '..', '..');

export interface VariantBuild {
  bundlePath: string;
  buildId: string;
}

/**
 * Bundles src/ with `file` (relative to src/) rewritten by `change` into `dir`; refuses a change that changes nothing.
 */
export async function buildVariant(
  dir: string,
  name: string,
  file: string,
  change: (source: string) => string,
): Promise<VariantBuild> {
  const src = join(dir, name, 'src');
  mkdirSync(src, { recursive: true });
  cpSync(join(root, 'src'), src, { recursive: true });
  const before = readFileSync(join(src, file), 'utf8');
  const after = change(before);
  if (after === before) throw new Error(`the change to ${file} changed nothing`);
  writeFileSync(join(src, file), after);
  const { code } = await bundleWorkflowCode({
    workflowsPath: join(src, 'workflows', 'index.ts'),
    workflowInterceptorModules: [join(src, 'workflows', 'tracing-interceptors.ts')],
    // As src/workers/bundle.ts: failures leave the sandbox in a payload the codec encrypts (the copy's converter).
    failureConverterPath: join(src, 'infra', 'failure-converter.ts'),
    // The copy lives outside the checkout: its imports resolve to the checkout's node_modules.
    webpackConfigHook: (config) => ({
      ...config,
      resolve: { ...config.resolve, modules: [join(root, 'node_modules'), 'node_modules'] },
    }),
    logger: { log: () => {}, trace: () => {}, debug: () => {}, info: () => {}, warn: () => {}, error: console.error },
  });
  const bundlePath = join(dir, name, 'workflow-bundle.js');
  writeFileSync(bundlePath, code);
  const buildId = `${name}-${createHash('sha256').update(after).digest('hex').slice(0, 12)}`;
  writeFileSync(`${bundlePath}.hash`, buildId);
  return { bundlePath, buildId };
}
