// Swagger UI, loaded from this server (swagger-ui-bundle-v2 on PyPI): /docs works offline.
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
  persistAuthorization: false,
  validatorUrl: null,
});
