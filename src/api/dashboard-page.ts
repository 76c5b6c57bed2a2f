/**
 * The dashboard page as served: src/api/public/index.html with its script, src/api/public/
 * dashboard.ts, bundled for the browser in place of `<script src="dashboard.ts"></script>`.
 *
 * `npm run build` writes the finished page to dist/api/public/index.html (scripts/build.ts), so the
 * compiled API serves a file and never bundles. Run from source (npm start, the tests, tsx), the
 * page still names dashboard.ts and is finished on its first request with esbuild, the bundler
 * tsx itself is built on: a development dependency, like tsx, and loaded only then.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const SCRIPT_TAG = '<script src="dashboard.ts"></script>';

/** The page from `publicDir`, with its script bundled in unless it is already (a built page). */
export async function dashboardPage(publicDir: string): Promise<string> {
  const page = readFileSync(join(publicDir, 'index.html'), 'utf8');
  if (!page.includes(SCRIPT_TAG)) return page;
  const script = await bundleDashboardScript(join(publicDir, 'dashboard.ts'));
  return page.replace(SCRIPT_TAG, () => `<script>\n${script}</script>`);
}

/** dashboard.ts and what it imports (the order's vocabulary) as one browser script. */
async function bundleDashboardScript(entry: string): Promise<string> {
  const { build } = await import('esbuild');
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    format: 'iife',
    platform: 'browser',
    target: 'es2022',
    charset: 'utf8',
    write: false,
    logLevel: 'silent',
  });
  const code = result.outputFiles[0]?.text ?? '';
  // Inlined in a <script> element: the HTML parser would end it at the first "</script".
  if (/<\/script/i.test(code)) throw new Error(`${entry} bundles to a script that contains "</script"`);
  return code;
}
