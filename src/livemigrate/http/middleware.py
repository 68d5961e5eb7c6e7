"""One pure-ASGI middleware for what every request needs before routing.

It assigns the request id, parses `pretty` and `envelope` (so that even 404s honour them),
refuses bodies over the limit with 413 — by Content-Length at once, and while streaming for
chunked bodies — and turns any unhandled exception into a logged 500 without a stack trace in
the response. Pure ASGI rather than BaseHTTPMiddleware: it sits on the hot path of every request.
"""

from __future__ import annotations

import itertools
import logging
import secrets
from collections.abc import MutableMapping
from contextvars import ContextVar
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from livemigrate.http.errors import ApiError, ErrorCode
from livemigrate.http.responses import FLAGS_KEY, RenderFlags, error_response

log = logging.getLogger("livemigrate.http")

REQUEST_ID_KEY = "livemigrate.request_id"
# Request ids: a random tag per process and a counter — unique across replicas, and no syscall per request.
_PROCESS_TAG = secrets.token_hex(4)
_request_numbers = itertools.count(1)
_current: ContextVar[Scope | None] = ContextVar("livemigrate_request", default=None)


def current_request() -> Scope | None:
    """The scope of the request being served here (worker threads inherit it), for log lines."""
    return _current.get()


def parse_bool(name: str, value: str) -> bool:
    lowered = value.lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    raise ApiError(
        ErrorCode.INVALID_QUERY_PARAMETER,
        f"Invalid query parameter {name}: {value!r} is not true or false.",
        [name],
    )


def render_flags(query_string: bytes) -> RenderFlags:
    pretty = envelope = False
    if query_string:
        for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
            if name == "pretty":
                pretty = parse_bool(name, value)
            elif name == "envelope":
                envelope = parse_bool(name, value)
    return RenderFlags(pretty, envelope)


class BodyTooLarge(ApiError):
    def __init__(self, limit: int) -> None:
        super().__init__(ErrorCode.TOO_LARGE, f"The request body exceeds the limit of {limit} bytes.", [limit])


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = f"{_PROCESS_TAG}{next(_request_numbers):08x}"
        scope[REQUEST_ID_KEY] = request_id
        _current.set(scope)  # this request's task only: each request runs in a context of its own
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            scope[FLAGS_KEY] = render_flags(scope.get("query_string", b""))
            declared = _content_length(scope)
            if declared is not None and declared > self.max_body_bytes:
                raise BodyTooLarge(self.max_body_bytes)
            await self.app(scope, self._limited(receive), send_with_id)
        except ApiError as error:
            if response_started:
                raise
            await error_response(scope, error)(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled error in request %s %s %s", request_id, scope.get("method"), scope.get("path"))
            if response_started:
                raise
            unexpected = ApiError(ErrorCode.UNEXPECTED_ERROR, f"Unexpected error; request id {request_id}.", [request_id])
            await error_response(scope, unexpected)(scope, receive, send_with_id)

    def _limited(self, receive: Receive) -> Receive:
        received = 0
        limit = self.max_body_bytes

        async def receive_limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        return receive_limited


def _content_length(scope: MutableMapping[str, Any]) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
