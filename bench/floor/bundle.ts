/** The floor's workflow bundle, built like ours (src/workers/bundle.ts) so both workers load code alike. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { bundleWorkflowCode, DefaultLogger } from '@temporalio/worker';
import { FAILURE_CONVERTER_PATH } from '../../src/infra/data-converter.js';

/** Writes the bundle of bench/floor/workflows.ts to `outFile` (once per run: each floor worker loads it). */
export async function buildFloorBundle(outFile: string): Promise<string> {
  // Webpack's info lines are noise; warnings and errors still show.
  const { code } = await bundleWorkflowCode({
    workflowsPath: join(import.meta.dirname, 'workflows.ts'),
    // Failures converted as ours are (src/workers/bundle.ts): their messages and stacks in an encrypted payload.
    failureConverterPath: FAILURE_CONVERTER_PATH,
    logger: new DefaultLogger('WARN'),
  });
  writeFileSync(outFile, code);
  return outFile;
}
