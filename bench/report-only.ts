/**
 * `npm run bench -- --report-only [--out DIR]`: redraws latest.md and latest.svg from DIR's
 * latest.json (default bench/results) without running anything, e.g. after the picture changed.
 * The JSON and its dated copies are left as they are.
 */
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { readReport, renderReport } from './report.js';

const { values: args } = parseArgs({
  args: process.argv.slice(2),
  options: { 'report-only': { type: 'boolean', default: true }, out: { type: 'string' } },
});
const outDir = resolve(args.out ?? join(import.meta.dirname, 'results'));
renderReport(readReport(join(outDir, 'latest.json')), outDir);
console.log(`[bench] redrew ${join(outDir, 'latest.md')} and latest.svg from latest.json`);
