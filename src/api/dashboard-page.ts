/**
 * The dashboard page as served: src/api/public/index.html with its script, src/api/public/
 * dashboard.ts, bundled for the browser in place of `<script src="dashboard.ts"></script>`, and the
 * stylesheets the script imports (uPlot's) in place of `<link rel="stylesheet" href="dashboard.css" />`.
 * Everything is inlined: the page loads nothing else, from no other host (the machine may be offline).
 *
 * `npm run build` writes the finished page to dist/api/public/index.html (scripts/build.ts), so the
 * compiled API serves a file and never bundles. Run from source (npm start, the tests, tsx), the
 * page still names dashboard.ts and is finished on its first request with esbuild, the bundler
 * tsx itself is built on: a development dependency, like tsx, and loaded only then.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const SCRIPT_TAG = '<script src="dashboard.ts"></script>';
const STYLE_TAG = '<link rel="stylesheet" href="dashboard.css" />';

/** The page from `publicDir`, with its script and styles bundled in unless they are already (a built page). */
export async function dashboardPage(publicDir: string): Promise<string> {
  const page = readFileSync(join(publicDir, 'index.html'), 'utf8');
  if (!page.includes(SCRIPT_TAG)) return page;
  if (!page.includes(STYLE_TAG)) throw new Error(`${join(publicDir, 'index.html')} names its script but not ${STYLE_TAG}`);
  const { script, style } = await bundleDashboardScript(join(publicDir, 'dashboard.ts'));
  return page.replace(STYLE_TAG, () => `<style>\n${style}</style>`).replace(SCRIPT_TAG, () => `<script>\n${script}</script>`);
}

/** dashboard.ts and what it imports (the order's vocabulary, uPlot) as one browser script, and the CSS it imports as one stylesheet. */
async function bundleDashboardScript(entry: string): Promise<{ script: string; style: string }> {
  const { build } = await import('esbuild');
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    format: 'iife',
    platform: 'browser',
    target: 'es2022',
    charset: 'utf8',
    // Names the two outputs (dashboard.js, dashboard.css); nothing is written.
    outdir: 'dashboard-bundle',
    write: false,
    logLevel: 'silent',
  });
  const output = (extension: string) => result.outputFiles.find((file) => file.path.endsWith(extension))?.text ?? '';
  const script = output('.js');
  const style = output('.css');
  // Inlined in a <script> or <style> element: the HTML parser would end it at the first "</script" or "</style".
  if (/<\/script/i.test(script)) throw new Error(`${entry} bundles to a script that contains "</script"`);
  if (/<\/style/i.test(style)) throw new Error(`${entry} bundles to a stylesheet that contains "</style"`);
  return { script, style };
}
