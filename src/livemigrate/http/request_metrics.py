"""Requests counted for `/metrics`: by route template (never the raw path, whose ids would make a series
per object), method and status, with their latency to the last byte of the answer.

A digest challenge — the 401 that asks a client to answer it, sent to every first request of a digest
client, which carries no credentials yet, and to one whose nonce has expired — is part of how digest
works, not a refusal: it is counted apart (`livemigrate_http_digest_challenges_total`), so that the
requests' 401s are the refusals alone (a wrong key, a replayed nonce count, a missing role) and an
alert on them means something.

Pure ASGI, outermost: it sees every answer, the errors the inner middleware renders included.
"""

from __future__ import annotations

import time

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HTTP_REQUESTS = Counter("livemigrate_http_requests", "HTTP requests answered, by route template, method and status.",
                        ["route", "method", "status"])
HTTP_LATENCY = Histogram("livemigrate_http_request_duration_seconds",
                         "Time to answer an HTTP request (to its last byte), by route template and method.",
                         ["route", "method"],
                         buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0))

DIGEST_CHALLENGES = Counter("livemigrate_http_digest_challenges", "Digest challenges answered (401 to a request "
                            "without credentials, or with an expired nonce), by route template and method.",
                            ["route", "method"])

UNMATCHED = "unmatched"  # the route label of a request no route matched (404, 405)


def _is_challenge(scope: Scope, message: Message) -> bool:
    """A 401 that asks for credentials rather than refusing the ones given."""
    if message["status"] != 401:
        return False
    challenge = next((value for name, value in message.get("headers", ()) if name.lower() == b"www-authenticate"),
                     None)
    if challenge is None:
        return False
    carried = any(name == b"authorization" for name, _ in scope.get("headers", ()))
    return not carried or b"stale=true" in challenge.lower()


class RequestMetricsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers if the application ends without a response
        challenge = False

        async def send_counted(message: Message) -> None:
            nonlocal status, challenge
            if message["type"] == "http.response.start":
                status = message["status"]
                challenge = _is_challenge(scope, message)
            await send(message)

        try:
            await self.app(scope, receive, send_counted)
        finally:
            route = getattr(scope.get("route"), "path", UNMATCHED)  # routing puts the matched route in the scope
            method = scope.get("method", "")
            (DIGEST_CHALLENGES.labels(route, method) if challenge else HTTP_REQUESTS.labels(route, method, str(status))).inc()
            HTTP_LATENCY.labels(route, method).observe(time.perf_counter() - started)
