"""What every console answer carries besides its page, and the icon browsers ask for.

- A Content-Security-Policy that lets a page load scripts, styles, images and fetches from this server
  alone, and nothing inline: a page that some day showed text it should have escaped could still run no
  script of another's. The console's one script and one stylesheet are static files, so it costs nothing.
- `frame-ancestors 'none'` and `X-Frame-Options: DENY` (for browsers that know only the older header): no
  other site can show a console page in a frame under a decoy and have a person click its buttons.
- `Referrer-Policy: same-origin`: the console's addresses (ids, a notice) never leave for another site.
- `/favicon.ico`: browsers ask for it on their own; a 404 there is an error in every browser's console.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.datastructures import MutableHeaders
from starlette.responses import FileResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ICON = Path(__file__).parent / "static" / "favicon.ico"

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                               "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
}


class ConsoleHeaders:
    """Adds `SECURITY_HEADERS` to every answer under `/console` — pages, redirects, refusals and static
    files alike, whichever part of the app answered. It never answers itself, so the request metrics'
    middleware still sees every answer as it was."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope["path"]).startswith("/console"):
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, with_headers)


def favicon() -> FileResponse:
    """The console's icon, which the pages also link; at the root for the browsers that ask there anyway."""
    return FileResponse(ICON, media_type="image/x-icon", headers={"Cache-Control": "public, max-age=86400"})


def install(app: FastAPI) -> None:
    app.add_middleware(ConsoleHeaders)
    app.add_api_route("/favicon.ico", favicon, methods=["GET"], include_in_schema=False)
