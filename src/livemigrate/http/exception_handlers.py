"""Every error leaves through here, in the catalogue's shape, honouring `pretty` and `envelope`.

A store connection the database ended under a request is answered 503 here and marked, so that
`store_retry` can make the request again when nothing of it was written.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response

from livemigrate.http import openapi, store_retry
from livemigrate.http.errors import ApiError, ErrorCode
from livemigrate.http.responses import error_response

log = logging.getLogger("livemigrate.http")


async def _api_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, ApiError)
    return error_response(request.scope, error)


async def _http_exception(request: Request, error: Exception) -> Response:
    assert isinstance(error, StarletteHTTPException)
    if error.status_code == 404:
        api_error = ApiError(ErrorCode.RESOURCE_NOT_FOUND, f"Cannot find resource {request.url.path}.", [request.url.path])
    elif error.status_code == 405:
        # Starlette names the methods of the first route whose path matches; each method of a path is
        # a route of its own here (GET /orgs, POST /orgs), so the document says which are served.
        documented = openapi.documented_methods(request.app.openapi(), request.url.path)
        allow = ", ".join(documented) if documented else (error.headers or {}).get("Allow", "")
        api_error = ApiError(
            ErrorCode.METHOD_NOT_ALLOWED,
            f"Method {request.method} is not allowed on {request.url.path}.",
            [request.method],
            Allow=allow,
        )
    else:
        api_error = ApiError(ErrorCode.UNEXPECTED_ERROR, str(error.detail))
    return error_response(request.scope, api_error)


async def _validation_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, RequestValidationError)
    problem = error.errors()[0]
    location = problem.get("loc", ("", ""))
    name = str(location[-1])
    if location and location[0] == "query":
        api_error = ApiError(ErrorCode.INVALID_QUERY_PARAMETER, f"Invalid query parameter {name}: {problem['msg']}.", [name])
    else:
        api_error = ApiError(ErrorCode.INVALID_ATTRIBUTE, f"Invalid attribute {name} specified: {problem['msg']}.", [name])
    return error_response(request.scope, api_error)


async def _store_unavailable(request: Request, error: Exception) -> Response:
    """The database cannot be reached (stopped, restarting, network), or ended this request's connection:
    503, and nothing was written — the transaction that met the error is rolled back. A connection it
    ended is marked, for `StoreRetryMiddleware` to make the request again when nothing of it was written."""
    if getattr(error, "connection_invalidated", False):
        store_retry.mark_disconnected(request.scope)
    log.warning("the store cannot be reached: %s", type(error).__name__)
    api_error = ApiError(ErrorCode.SERVICE_UNAVAILABLE,
                         "The store cannot be reached right now; nothing was changed. Try again shortly.",
                         Retry_After="5")
    return error_response(request.scope, api_error)


def install(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    for unavailable in (OperationalError, InterfaceError, PoolTimeout):
        app.add_exception_handler(unavailable, _store_unavailable)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(RequestValidationError, _validation_error)
    store_retry.install(app)  # the innermost of the middlewares: it sees the store's 503s first
