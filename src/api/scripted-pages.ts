/**
 * The pages with a TypeScript script as served: the dashboard (web/index.html with
 * dashboard.ts) and the docs page (docs.html with docs.ts). The script is bundled for the browser
 * in place of `<script src="dashboard.ts"></script>`, and the stylesheets it imports (uPlot's) in
 * place of `<link rel="stylesheet" href="dashboard.css" />`. Everything is inlined: the page loads
 * nothing else, from no other host (the machine may be offline).
 *
 * `npm run build` writes the finished pages to dist/web/ (scripts/build.ts), so the compiled
 * API serves files and never bundles. Run from source (npm start, the tests, tsx), a page still
 * names its .ts script and is finished on its first request with esbuild, the bundler tsx itself
 * is built on: a development dependency, like tsx, and loaded only then.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type Router from '@koa/router';
import { z } from 'zod';
import { route, type RouteDoc } from './route.js';

/** web/ beside src/, or dist/web/ beside dist/ (which mirrors src/ at the same depth). */
export const PAGES_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'web');

/** Each page of web/ whose script is TypeScript, with that script. */
export const SCRIPTED_PAGES = {
  'index.html': 'dashboard.ts',
  'docs.html': 'docs.ts',
  'line-demo.html': 'line-demo.ts',
} as const;
export type ScriptedPage = keyof typeof SCRIPTED_PAGES;

/** `page` from `publicDir`, with its script and styles bundled in unless they are already (a built page). */
export async function finishedPage(publicDir: string, page: ScriptedPage): Promise<string> {
  const script = SCRIPTED_PAGES[page];
  const scriptTag = `<script src="${script}"></script>`;
  const styleTag = `<link rel="stylesheet" href="${script.replace(/\.ts$/, '.css')}" />`;
  const html = readFileSync(join(publicDir, page), 'utf8');
  if (!html.includes(scriptTag)) return html;
  const bundled = await bundleScript(join(publicDir, script));
  if (bundled.style && !html.includes(styleTag))
    throw new Error(`${join(publicDir, page)} names its script but not ${styleTag}, for the styles it imports`);
  return html
    .replace(styleTag, () => (bundled.style ? `<style>\n${bundled.style}</style>` : ''))
    .replace(scriptTag, () => `<script>\n${bundled.script}</script>`);
}

/**
 * GET `doc.path`: `page` from `publicDir` as HTML, finished on the first request, once; a failure
 * is tried again by the next request.
 */
export function pageRoute(
  router: Router,
  publicDir: string,
  page: ScriptedPage,
  /** The route as the OpenAPI document names it, and `answer`: what its 200 is. */
  doc: Pick<RouteDoc, 'path' | 'operationId' | 'summary' | 'tag'> & { answer: string },
): void {
  let finished: Promise<string> | undefined;
  const { answer, ...operation } = doc;
  route(
    router,
    {
      method: 'get',
      ...operation,
      responses: { 200: { description: answer, contentType: 'text/html', schema: z.string() } },
    },
    async (ctx) => {
      finished ??= finishedPage(publicDir, page).catch((err: unknown) => {
        finished = undefined;
        throw err;
      });
      ctx.type = 'html';
      ctx.body = await finished;
    },
  );
}

/**
 * A page's script and what it imports (the dashboard's: the order's vocabulary, uPlot) as one browser script, and the
 * CSS it imports as one stylesheet.
 */
async function bundleScript(entry: string): Promise<{ script: string; style: string }> {
  const { build } = await import('esbuild');
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    format: 'iife',
    platform: 'browser',
    target: 'es2022',
    charset: 'utf8',
    // Names the two outputs (dashboard.js, dashboard.css for dashboard.ts); nothing is written.
    outdir: 'page-bundle',
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
