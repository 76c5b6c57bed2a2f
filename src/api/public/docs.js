// Starts Swagger UI on the API's own document. validatorUrl null: no badge fetched from
// validator.swagger.io (the page must work offline; test/openapi.test.ts validates the document).
window.addEventListener('load', function () {
  window.ui = SwaggerUIBundle({
    url: '/openapi.json',
    dom_id: '#swagger-ui',
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: 'BaseLayout',
  });
});
