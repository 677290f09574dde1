"""`/docs`: the API's interactive documentation, served entirely by this server (Swagger UI is
vendored in `dashboard/static`, see VENDORED.txt), so that it works without internet access and
under a Content-Security-Policy that allows nothing from elsewhere."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

SWAGGER_UI_VERSION = "5.35.0"

# Swagger UI draws its icons from data: URIs in its stylesheet, and "Try it out" calls this
# server: nothing else is allowed.
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}

PAGE = f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>wagate API · docs</title>
  <link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
  <link rel="stylesheet" href="/static/swagger-ui.css?v={SWAGGER_UI_VERSION}">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/static/swagger-ui-bundle.js?v={SWAGGER_UI_VERSION}"></script>
  <script src="/static/docs.js?v={SWAGGER_UI_VERSION}"></script>
</body>
</html>
"""

router = APIRouter(include_in_schema=False)


@router.get("/docs")
async def docs() -> HTMLResponse:
    return HTMLResponse(PAGE, headers=HEADERS)
