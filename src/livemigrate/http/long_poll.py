"""Long polling in plain HTTP, for the job lists the migration hosts wait on.

The caller names the version it holds with `If-None-Match` and how long it may wait for another with
`Prefer: wait=N` (RFC 7240). The answer is 200 with the list and its `ETag` as soon as the list
differs, or 304 Not Modified once the wait is over. A caller that sends neither gets the list at
once, as before: long polling is an addition, not a new contract.
"""

from __future__ import annotations

import json
import re
import threading
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from livemigrate.crypto import SecretBox
from livemigrate.http.errors import ApiError, ErrorCode

MAX_WAIT_SECONDS = 25.0
_WAIT = re.compile(r"(?:^|[,;\s])wait\s*=\s*(\d+(?:\.\d+)?)", re.IGNORECASE)


# Set when the server begins to stop: every wait ends now, answered as if its time were up, so that the
# server's graceful shutdown finds no request to cancel (a cancelled one is logged as an error).
_STOPPING = threading.Event()


def stop_waiting() -> None:
    """The server is stopping: end every long poll at once (each answers what it holds, or 304)."""
    _STOPPING.set()


def etag_of(content: Any, secret_box: SecretBox) -> str:
    """A strong entity tag of a JSON body: keyed, since job lists carry connection strings."""
    return f'"{secret_box.tag(json.dumps(content, sort_keys=True, default=str).encode())}"'


def requested_wait(request: Request) -> float | None:
    """Seconds the caller is prepared to wait (capped), or None when it asked for no wait. A server that
    is stopping takes no new wait: 503 with Retry-After, so that the caller asks again in a while
    (another replica, or this one restarted) rather than at once."""
    found = _WAIT.search(request.headers.get("prefer", ""))
    if found is None:
        return None
    if _STOPPING.is_set():
        raise ApiError(ErrorCode.SERVICE_UNAVAILABLE, "This server is stopping: ask again in a moment.",
                       **{"Retry-After": "1"})
    return min(float(found.group(1)), MAX_WAIT_SECONDS) or None


def held_version(request: Request) -> str | None:
    return request.headers.get("if-none-match")


class Deadline:
    def __init__(self, seconds: float) -> None:
        self._at = time.monotonic() + seconds

    @property
    def left(self) -> float:
        return 0.0 if _STOPPING.is_set() else max(0.0, self._at - time.monotonic())


def tagged(response: Response, etag: str, waited: float | None) -> Response:
    response.headers["ETag"] = etag
    if waited is not None:
        response.headers["Preference-Applied"] = f"wait={waited:g}"
    return response


def not_modified(etag: str, waited: float) -> Response:
    return tagged(Response(status_code=304), etag, waited)
