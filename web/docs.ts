/**
 * The docs page's script: starts Swagger UI (swagger-ui-bundle.js, which docs.html loads first) on
 * the API's own document. Bundled into docs.html as the dashboard's script is into index.html (see
 * src/api/scripted-pages.ts), and type-checked with the DOM's types (./tsconfig.json).
 */

/** The part of Swagger UI's global this page uses (swagger-ui-dist ships no types). */
interface SwaggerUIOptions {
  url: string;
  dom_id: string;
  deepLinking: boolean;
  validatorUrl: string | null;
  presets: unknown[];
  layout: 'BaseLayout';
}
declare const SwaggerUIBundle: ((options: SwaggerUIOptions) => unknown) & { presets: { apis: unknown } };

declare global {
  interface Window {
    /** Swagger UI, where its own start-up script leaves it (for the browser's console). */
    ui?: unknown;
  }
}

window.addEventListener('load', () => {
  window.ui = SwaggerUIBundle({
    url: '/openapi.json',
    dom_id: '#swagger-ui',
    deepLinking: true,
    // No badge fetched from validator.swagger.io: the page must work offline (test/openapi.test.ts validates the
    // document).
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: 'BaseLayout',
  });
});

export {};
