import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import Router from '@koa/router';
import { z } from 'zod';
import { PAGES_DIR, pageRoute } from '../scripted-pages.js';
import { route } from '../route.js';

const SWAGGER_UI_DIR = dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));

/** What the docs page loads besides its inlined script, served from here: the machine may be offline. */
const DOCS_ASSETS = {
  'swagger-ui.css': { file: join(SWAGGER_UI_DIR, 'swagger-ui.css'), type: 'text/css; charset=utf-8' },
  'swagger-ui-bundle.js': {
    file: join(SWAGGER_UI_DIR, 'swagger-ui-bundle.js'),
    type: 'text/javascript; charset=utf-8',
  },
  'favicon-32x32.png': { file: join(SWAGGER_UI_DIR, 'favicon-32x32.png'), type: 'image/png' },
} as const;
type DocsAsset = keyof typeof DOCS_ASSETS;
const docsAssetSchema = z.enum(Object.keys(DOCS_ASSETS) as [DocsAsset, ...DocsAsset[]]);

/** Filled in once every router, this one included, is declared. */
export interface PublishedSpec {
  json: string;
}

/** GET /openapi.json, GET /docs (Swagger UI over it) and the page's assets under /docs/. */
export function docsRoutes(spec: PublishedSpec): Router {
  const router = new Router();
  const assets = new Map<DocsAsset, Buffer>();

  route(
    router,
    {
      method: 'get',
      path: '/openapi.json',
      operationId: 'getOpenApiDocument',
      summary: 'This API as an OpenAPI 3.1 document',
      tag: 'docs',
      responses: {
        200: {
          description: 'The OpenAPI 3.1 document, generated from the routes and their zod schemas',
          schema: z.looseObject({ openapi: z.literal('3.1.0') }),
        },
      },
    },
    (ctx) => {
      ctx.type = 'application/json';
      ctx.body = spec.json;
    },
  );

  pageRoute(router, PAGES_DIR, 'docs.html', {
    path: '/docs',
    operationId: 'getDocsPage',
    summary: 'The API docs page (Swagger UI)',
    tag: 'docs',
    answer: 'The docs page',
  });

  route(
    router,
    {
      method: 'get',
      path: '/docs/:asset',
      operationId: 'getDocsAsset',
      summary: "A file of the docs page (Swagger UI's script and style, from the npm package swagger-ui-dist)",
      tag: 'docs',
      params: z.object({ asset: docsAssetSchema }),
      responses: { 200: { description: 'The file, with its content type', contentType: '*/*', schema: z.string() } },
      errors: { 404: { codes: ['NOT_FOUND'] } },
    },
    (ctx, input) => {
      const asset = input.params()?.asset;
      if (!asset) return; // falls through to the shell's 404 NOT_FOUND
      let body = assets.get(asset);
      if (!body) {
        body = readFileSync(DOCS_ASSETS[asset].file);
        assets.set(asset, body);
      }
      ctx.type = DOCS_ASSETS[asset].type;
      ctx.set('Cache-Control', 'public, max-age=3600');
      ctx.body = body;
    },
  );
  return router;
}
