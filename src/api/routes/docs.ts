import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import Router from '@koa/router';
import { z } from 'zod';
import { pageRoute } from '../scripted-pages.js';
import { route } from '../route.js';

const SWAGGER_UI_DIR = dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));

/** The docs page's files besides its inlined script (swagger-ui-dist), by content type: the machine may be offline. */
const DOCS_ASSETS = {
  'swagger-ui.css': 'text/css; charset=utf-8',
  'swagger-ui-bundle.js': 'text/javascript; charset=utf-8',
  'favicon-32x32.png': 'image/png',
} as const;
type DocsAsset = keyof typeof DOCS_ASSETS;
const docsAssetSchema = z.enum(Object.keys(DOCS_ASSETS) as [DocsAsset, ...DocsAsset[]]);

/** GET /openapi.json, GET /docs (Swagger UI over it) and its assets; `spec` is filled once every route is declared. */
export function docsRoutes(spec: { json: string }): Router {
  const router = new Router();
  const assets = new Map<DocsAsset, Buffer>();

  route(router, {
    at: 'GET /openapi.json',
    operationId: 'getOpenApiDocument',
    summary: 'This API as an OpenAPI 3.1 document',
    tag: 'docs',
    responses: {
      200: {
        description: 'The OpenAPI 3.1 document, generated from the routes and their zod schemas',
        schema: z.looseObject({ openapi: z.literal('3.1.0') }),
      },
    },
    handler(ctx) {
      ctx.type = 'application/json';
      ctx.body = spec.json;
    },
  });

  pageRoute(router, 'docs.html', {
    path: '/docs',
    operationId: 'getDocsPage',
    summary: 'The API docs page (Swagger UI)',
    tag: 'docs',
    answer: 'The docs page',
  });

  route(router, {
    at: 'GET /docs/:asset',
    operationId: 'getDocsAsset',
    summary: "A file of the docs page (Swagger UI's script and style, from the npm package swagger-ui-dist)",
    tag: 'docs',
    params: z.object({ asset: docsAssetSchema }),
    responses: { 200: { description: 'The file, with its content type', contentType: '*/*', schema: z.string() } },
    errors: ['NOT_FOUND'],
    handler(ctx, input) {
      const asset = input.params()?.asset;
      if (!asset) return; // falls through to the shell's 404 NOT_FOUND
      let body = assets.get(asset);
      if (!body) {
        body = readFileSync(join(SWAGGER_UI_DIR, asset));
        assets.set(asset, body);
      }
      ctx.type = DOCS_ASSETS[asset];
      ctx.set('Cache-Control', 'public, max-age=3600');
      ctx.body = body;
    },
  });
  return router;
}
