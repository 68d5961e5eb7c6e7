"""A store connection that the database ended under a request (`pg_terminate_backend`, a restart, a
failover) costs a retry, not an error, when the request has written nothing yet: it is made once more,
on a new connection (the disconnect invalidated the pooled ones), and only if that fails too does the
client get the documented 503. "Written nothing" is read from what the store was sent: no statement but
SELECTs, and no commit. Authentication writes first (on PostgreSQL every authenticated request records
its digest nonce count, in memory and in the store): its writes are not made again — the second attempt
keeps the caller the first one authenticated, as one request authenticates once — so a request whose
handler has only read is made again; one whose authentication failed after it wrote (the count made
again would be refused as a replay), or whose handler wrote, answers 503. Either way the transaction
that met the disconnect was rolled back by it: nothing of it was written. What a handler does outside
the store before it writes — a push over the link, a job list relayed from the target — is repeated;
each of those is a read or an idempotent PUT.
"""

from __future__ import annotations

import contextvars
import logging
from typing import Any

from fastapi import FastAPI
from sqlalchemy import event
from sqlalchemy.engine import Engine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from livemigrate.http.auth import PRINCIPAL_KEY

log = logging.getLogger("livemigrate.http")

_DISCONNECTED = "livemigrate.store_disconnected"  # set in the scope by the 503 of a connection the store ended


class _Attempt:
    """What one attempt at a request sent the store: anything but a read (a statement other than a
    SELECT, or a commit) before its caller was authenticated, and since."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.wrote_authenticating = False
        self.wrote = False

    def note_write(self) -> None:
        if PRINCIPAL_KEY in self.scope:
            self.wrote = True
        else:
            self.wrote_authenticating = True

    def repeatable(self) -> bool:
        return not self.wrote if PRINCIPAL_KEY in self.scope else not self.wrote_authenticating


_ATTEMPT: contextvars.ContextVar[_Attempt | None] = contextvars.ContextVar("livemigrate_store_attempt", default=None)


def _note_commit(_connection: Any) -> None:
    """Every engine's commit, before it is sent (a failure during it leaves the outcome unknown: no retry)."""
    attempt = _ATTEMPT.get()
    if attempt is not None:
        attempt.note_write()


def _note_statement(_connection: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
    """Every engine's statements, before they are sent: one that is not a SELECT may write."""
    attempt = _ATTEMPT.get()
    if attempt is not None and statement.lstrip()[:6].upper() != "SELECT":
        attempt.note_write()


def mark_disconnected(scope: Scope) -> None:
    """Said by the 503 of a store connection the database ended: the request may be made again."""
    scope[_DISCONNECTED] = True


class StoreRetryMiddleware:
    """Makes a request once more when its first attempt met a store connection the database ended before
    it wrote anything, and sent no answer (see the module); the body it read is handed to the second
    attempt again, with the caller it authenticated."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        original = dict(scope)  # routing adds to the scope: the second attempt starts from the request as it came
        received: list[Message] = []
        attempt = _Attempt(scope)
        held: list[Message] = []  # the first attempt's answer, once it is to be replaced

        async def recording() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                received.append(message)
            return message

        async def holding(message: Message) -> None:
            if not held and message["type"] == "http.response.start" and message["status"] == 503 \
                    and scope.get(_DISCONNECTED) and attempt.repeatable():
                held.append(message)
            elif held:
                held.append(message)  # the rest of the answer being replaced
            else:
                await send(message)

        token = _ATTEMPT.set(attempt)
        try:
            await self.app(scope, recording, holding)
        finally:
            _ATTEMPT.reset(token)
        if not held:
            return
        log.warning("%s %s met a store connection the database ended before it wrote anything: made again on a "
                    "new connection", scope.get("method"), scope.get("path"))
        principal = scope.get(PRINCIPAL_KEY)
        scope.clear()
        scope.update(original)
        if principal is not None:
            scope[PRINCIPAL_KEY] = principal
        replay = list(received)

        async def replaying() -> Message:
            return replay.pop(0) if replay else await receive()

        await self.app(scope, replaying, send)


def install(app: FastAPI) -> None:
    for name, listener in (("commit", _note_commit), ("before_cursor_execute", _note_statement)):
        if not event.contains(Engine, name, listener):
            event.listen(Engine, name, listener)
    app.add_middleware(StoreRetryMiddleware)
