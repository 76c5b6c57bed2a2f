/**
 * `npm run build`: the app compiled to JavaScript in dist/, what `npm run api`, `npm run worker`
 * and `npm run migrate` run (and the Docker image):
 *  1. tsc with tsconfig.build.json: src/ to dist/ (src/api/main.ts → dist/api/main.js). dist/
 *     mirrors src/ at the same depth, so the paths the code finds from its own location (lua/,
 *     migrations/, package.json) hold in both;
 *  2. the files the API serves as they are (web/ → dist/web/), with the dashboard
 *     and docs pages finished: their TypeScript scripts bundled in (src/api/scripted-pages.ts);
 *  3. the workflow bundle, from src/ (dist/workflow-bundle.js, its build id beside it): a worker run
 *     from dist/ runs it and names itself as a worker run from the sources does.
 * dist/ is emptied first, so a module that was moved or deleted leaves nothing behind; the workflow
 * bundle is kept when its sources have not changed.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { finishedPage, SCRIPTED_PAGES, type ScriptedPage } from '../src/api/scripted-pages.js';
import { buildWorkflowBundle, workflowBuildId } from '../src/workers/bundle.js';

const root = resolve(import.meta.dirname, '..');
const dist = join(root, 'dist');
const startedAt = Date.now();

mkdirSync(dist, { recursive: true });
for (const entry of readdirSync(dist)) {
  if (!entry.startsWith('workflow-bundle.js')) rmSync(join(dist, entry), { recursive: true, force: true });
}

const tsc = spawnSync(join(root, 'node_modules', '.bin', 'tsc'), ['-p', join(root, 'tsconfig.build.json')], {
  cwd: root,
  stdio: 'inherit',
});
if (tsc.status !== 0) {
  console.error(`tsc -p tsconfig.build.json failed (exit ${tsc.status ?? tsc.signal})`);
  process.exit(1);
}

const publicSrc = join(root, 'web');
const publicDist = join(dist, 'web');
mkdirSync(publicDist, { recursive: true });
for (const file of readdirSync(publicSrc)) {
  // The pages' scripts are bundled into them, not served; their type-check settings neither.
  if (file in SCRIPTED_PAGES || file.endsWith('.ts') || file === 'tsconfig.json') continue;
  copyFileSync(join(publicSrc, file), join(publicDist, file));
}
for (const page of Object.keys(SCRIPTED_PAGES) as ScriptedPage[])
  writeFileSync(join(publicDist, page), await finishedPage(publicSrc, page));

const bundle = join(dist, 'workflow-bundle.js');
const rebuilt = await buildWorkflowBundle(bundle);
console.log(`workflow bundle ${rebuilt ? 'written' : 'up to date'}: build ${workflowBuildId(bundle)}`);
console.log(`built dist/ in ${Date.now() - startedAt} ms`);
