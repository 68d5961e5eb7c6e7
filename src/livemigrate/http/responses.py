"""Rendering of every response: `pretty` indents, `envelope` wraps (API.md §2).

The two query flags are parsed once per request by `middleware.RequestContextMiddleware` and
kept in the ASGI scope, so that error responses produced outside any route (404, 405, 413) are
rendered the same way as route results.
"""

from __future__ import annotations

import json
import re
from collections.abc import MutableMapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from livemigrate.http.errors import ApiError

FLAGS_KEY = "livemigrate.flags"


class RenderFlags:
    __slots__ = ("pretty", "envelope")

    def __init__(self, pretty: bool = False, envelope: bool = False) -> None:
        self.pretty = pretty
        self.envelope = envelope


PLAIN = RenderFlags()


def flags_of(scope: MutableMapping[str, Any]) -> RenderFlags:
    flags: RenderFlags = scope.get(FLAGS_KEY, PLAIN)
    return flags


def render(scope: MutableMapping[str, Any], body: Any, status: int = 200, headers: dict[str, str] | None = None,
           *, keep_status: bool = False) -> Response:
    """Serialize `body` with the request's flags.

    With `envelope=true` the HTTP status becomes 200 and the real one moves into the body — except
    when `keep_status` is set: a digest challenge must stay a real 401 or no client could answer it.
    """
    flags = flags_of(scope)
    http_status = status
    if flags.envelope:
        if isinstance(body, dict) and "results" in body:
            body = {**body, "status": status}
        else:
            body = {"status": status, "content": body}
        if not keep_status:
            http_status = 200
    if body is None:
        return Response(status_code=http_status, headers=headers)
    text = json.dumps(body, indent=2 if flags.pretty else None, separators=None if flags.pretty else (",", ":"),
                      default=str)
    return Response(text, status_code=http_status, headers=headers, media_type=answered_media_type(scope))


# Atlas' versioned media types (`application/vnd.atlas.2023-01-01+json`): a client of the Atlas API asks
# for one in `Accept` and Atlas answers in kind; its SDK checks the type it gets back.
_ATLAS_VERSIONED = re.compile(rb"application/vnd\.atlas\.\d{4}-\d{2}-\d{2}\+json")
_ATLAS_PATHS = "/api/atlas/"


def answered_media_type(scope: MutableMapping[str, Any]) -> str:
    """The versioned Atlas type a request to the Atlas-role API asked for in `Accept`, else JSON."""
    if str(scope.get("path", "")).startswith(_ATLAS_PATHS):
        for name, value in scope.get("headers", ()):
            if name == b"accept" and (asked := _ATLAS_VERSIONED.search(value)):
                return asked.group(0).decode()
    return "application/json"


def respond(request: Request, body: Any, status: int = 200) -> Response:
    return render(request.scope, body, status)


def no_content(request: Request) -> Response:
    return render(request.scope, None, 204)


def error_response(scope: MutableMapping[str, Any], error: ApiError) -> Response:
    keep_status = "WWW-Authenticate" in error.headers
    return render(scope, error.body(), error.status, error.headers or None, keep_status=keep_status)
