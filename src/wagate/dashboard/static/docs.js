// The API's interactive documentation (/docs): Swagger UI, vendored in this folder, reading the
// server's own /openapi.json. A file rather than an inline script: the page's CSP allows only
// scripts from this server.
window.addEventListener("DOMContentLoaded", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    // No badge fetched from validator.swagger.io: the page loads nothing from elsewhere.
    validatorUrl: null,
    tryItOutEnabled: false,
  });
});
