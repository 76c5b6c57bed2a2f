/** Pages inlined (the machine may be offline); from source, bundled on first request by esbuild, a dev dependency. */
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

/** `page` with its script and styles bundled in, unless they already are (a built page). */
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

/** GET `doc.path`: `page` as HTML, finished once, on the first request; a failure is retried by the next. */
export function pageRoute(
  router: Router,
  page: ScriptedPage,
  /** `answer`: the 200's description. */
  doc: Pick<RouteDoc, 'operationId' | 'summary' | 'tag'> & { path: string; answer: string },
): void {
  let finished: Promise<string> | undefined;
  const { answer, path, ...operation } = doc;
  route(router, {
    at: `GET ${path}`,
    ...operation,
    responses: { 200: { description: answer, contentType: 'text/html', schema: z.string() } },
    async handler(ctx) {
      finished ??= finishedPage(PAGES_DIR, page).catch((err: unknown) => {
        finished = undefined;
        throw err;
      });
      ctx.type = 'html';
      ctx.body = await finished;
    },
  });
}

/** A page's script and its imports as one browser script, and the CSS it imports as one stylesheet. */
async function bundleScript(entry: string): Promise<{ script: string; style: string }> {
  const { build } = await import('esbuild');
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    format: 'iife',
    platform: 'browser',
    target: 'es2022',
    charset: 'utf8',
    // Names the outputs (dashboard.js, dashboard.css); nothing is written.
    outdir: 'page-bundle',
    write: false,
    logLevel: 'silent',
  });
  const output = (extension: string) => result.outputFiles.find((file) => file.path.endsWith(extension))?.text ?? '';
  const script = output('.js');
  const style = output('.css');
  // Inlined: the HTML parser would end the element at the first "</script" or "</style".
  if (/<\/script/i.test(script)) throw new Error(`${entry} bundles to a script that contains "</script"`);
  if (/<\/style/i.test(style)) throw new Error(`${entry} bundles to a stylesheet that contains "</style"`);
  return { script, style };
}
