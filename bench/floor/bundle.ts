/** The floor's workflow bundle, built like ours (src/workers/bundle.ts) so both workers load code alike. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { bundleWorkflowCode, DefaultLogger } from '@temporalio/worker';

/** Writes the bundle of bench/floor/workflows.ts to `outFile` (once per run: each floor worker loads it). */
export async function buildFloorBundle(outFile: string): Promise<string> {
  // Webpack's info lines are noise; warnings and errors still show.
  const { code } = await bundleWorkflowCode({
    workflowsPath: join(import.meta.dirname, 'workflows.ts'),
    logger: new DefaultLogger('WARN'),
  });
  writeFileSync(outFile, code);
  return outFile;
}
