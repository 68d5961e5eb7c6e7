"""`/docs`: Swagger UI over `/openapi.json`, its assets served from a package (fastapi-offline, MIT,
which ships Swagger UI 5's bundle) rather than from a CDN, so that the page works on a machine without
internet access — where migrations are often run from. Only its assets are used: the page is FastAPI's
own, pointed at them. (Swagger UI 4, as swagger-ui-bundle ships it, cannot read OpenAPI 3.1, which is
what FastAPI describes: the page rendered "Unable to render this definition".)"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

ASSETS = "/docs/assets"
_ASSET_DIRECTORY = Path(fastapi_offline.__file__).parent / "static"


def install(app: FastAPI) -> None:
    """Serve the page at `/docs` (FastAPI's own, pointed at local assets; its `docs_url` must be None)."""
    app.mount(ASSETS, StaticFiles(directory=_ASSET_DIRECTORY), name="api-docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def api_docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json", title=f"{app.title} API",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js", swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon.png",
            # No validator badge: Swagger UI would fetch it from validator.swagger.io.
            swagger_ui_parameters={"validatorUrl": None})
