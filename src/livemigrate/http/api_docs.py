"""`/docs`: Swagger UI over `/openapi.json`, its assets served from a package (swagger-ui-bundle,
Apache-2.0, kept by the connexion project) rather than from a CDN, so that the page works on a
machine without internet access — where migrations are often run from."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

ASSETS = "/docs/assets"


def install(app: FastAPI) -> None:
    """Serve the page at `/docs` (FastAPI's own, pointed at local assets; its `docs_url` must be None)."""
    app.mount(ASSETS, StaticFiles(directory=swagger_ui_path), name="api-docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def api_docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json", title=f"{app.title} API",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js", swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon-32x32.png",
            # No validator badge: Swagger UI would fetch it from validator.swagger.io.
            swagger_ui_parameters={"validatorUrl": None})
