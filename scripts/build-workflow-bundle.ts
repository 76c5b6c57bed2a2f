/** `npm run build:workflows [outFile]`: bundles src/workflows once for production workers. */
import { resolve } from 'node:path';
import { buildWorkflowBundle } from '../src/workers/bundle.js';

const outFile = resolve(process.argv[2] ?? 'dist/workflow-bundle.js');
const built = await buildWorkflowBundle(outFile);
console.log(built ? `workflow bundle written to ${outFile}` : `workflow bundle at ${outFile} is up to date`);
