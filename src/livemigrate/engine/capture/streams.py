"""Change capture on the source: one deployment-wide change stream, or one stream per collection.

Both record their start point before the copy begins (the resume token a new stream reports) and
hand back events with the token to save once they are applied. MongoDB 4.0+ offers the
deployment-wide stream; MongoDB 3.6 — or a user allowed to watch only its collections — needs a
stream per collection, which sees only the collections that existed when it started (those created
later are looked for, copied and added: `coordinator/late_collections.py`).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol

from pymongo import MongoClient
from pymongo.change_stream import ChangeStream
from pymongo.errors import OperationFailure, PyMongoError

from livemigrate.engine.changes import CapturedEvent
from livemigrate.engine.errors import EngineError, EngineErrorCode
from livemigrate.engine.mongo.faults import Faults, retry
from livemigrate.engine.options import NamespaceFilter
from livemigrate.engine.versions import WIRE_EXPANDED_EVENTS

log = logging.getLogger("livemigrate.engine.capture")

CLUSTER_STREAM = "*"
# Server answers to a resume token whose history is gone: ChangeStreamHistoryLost,
# ChangeStreamFatalError, CappedPositionLost.
HISTORY_LOST_CODES = frozenset({286, 280, 136})


def history_lost(error: OperationFailure) -> bool:
    labels = (error.details or {}).get("errorLabels", [])
    return error.code in HISTORY_LOST_CODES or "NonResumableChangeStreamError" in labels


@contextmanager
def history_guard(stream: str, role: str = "source") -> Iterator[None]:
    """Turn the server's "that history is gone" into the error a person can act on."""
    try:
        yield
    except OperationFailure as error:
        if not history_lost(error):
            raise
        raise EngineError(
            EngineErrorCode.RESUME_TOKEN_LOST,
            f"the {role} no longer has the changes after the saved resume token of stream {stream!r} "
            f"({error.code}: {(error.details or {}).get('errmsg', error)}); a fresh sync is needed: "
            "start again with a new --state-dir and --drop-target",
        ) from None


def _stream_options(max_await_ms: int, keys_only: bool) -> dict[str, Any]:
    """`keys_only`: which documents changed, not how — what watching the destination needs."""
    if keys_only:
        return {"max_await_time_ms": max_await_ms,
                "pipeline": [{"$project": {"operationType": 1, "ns": 1, "documentKey": 1}}]}
    return {"max_await_time_ms": max_await_ms, "full_document": "updateLookup"}


class Capture(Protocol):
    def tokens(self) -> dict[str, Any]:
        """The resume token of every stream now: saved as the start point, and after each applied batch."""

    def poll(self, max_events: int) -> list[CapturedEvent]:
        """Up to `max_events` new events, in source order per stream; empty when the source is quiet."""

    def close(self) -> None: ...


class NoCapture:
    """Nothing watched: stands in for a deployment that offers no change streams (a standalone)."""

    def tokens(self) -> dict[str, Any]:
        return {}

    def poll(self, max_events: int) -> list[CapturedEvent]:
        return []

    def close(self) -> None:
        pass


def _next_or_reopen(stream: ChangeStream[Any], faults: Faults,
                    reopen: Callable[[Any], ChangeStream[Any]]) -> tuple[Any | None, ChangeStream[Any]]:
    """The stream's next event (None only when the server says there is none now), and the stream to
    read on. After a fault that passes — the driver resumes a stream once by itself, and gives up at the
    second fault — the stream is opened again at the resume token of the last event handed on (nothing
    skipped, nothing twice) and read again: a fault never passes for a quiet stream, which the cutover's
    drain would take for "every change applied". A fault that outlasts the side's limit, or a history
    that is gone, is raised."""
    while True:
        # The driver's own resume answers None from the new cursor's first batch, which the server sends
        # empty, whatever is pending: that None says nothing of the stream. Seen by the cursor it reads
        # changing (a private attribute: where it is gone, a resume goes unseen, as it did before).
        cursor = getattr(stream, "_cursor", None)
        try:
            event = stream.try_next()
            if event is None and cursor is not None and getattr(stream, "_cursor", None) is not cursor \
                    and stream.alive:
                faults.resumed_by_the_driver()
                continue
        except PyMongoError as error:
            faults.passed_or_raise(error)
            token = stream.resume_token
            if token is None:  # never happens once a stream has answered: its start point is a token
                raise
            try:
                stream.close()
            except PyMongoError:
                pass  # the connection it was on is gone: nothing to close there
            stream = reopen(token)
            continue
        faults.succeeded()
        return event, stream


class ClusterCapture:
    def __init__(self, client: MongoClient[Any], namespaces: NamespaceFilter, token: Any | None,
                 wire_version: int, max_await_ms: int, *, keys_only: bool = False, role: str = "source") -> None:
        self._namespaces = namespaces
        self._role = role
        self._client = client
        self._options = _stream_options(max_await_ms, keys_only)
        if wire_version >= WIRE_EXPANDED_EVENTS:
            self._options["show_expanded_events"] = True
        self._faults = Faults(client, f"reading the {role}'s change stream")
        self._stream: ChangeStream[Any] = self._open(token)

    def _open(self, token: Any | None) -> ChangeStream[Any]:
        with history_guard(CLUSTER_STREAM, self._role):
            return retry(self._client, f"opening the {self._role}'s change stream",
                         lambda: self._client.watch(resume_after=token, **self._options))

    def tokens(self) -> dict[str, Any]:
        return {CLUSTER_STREAM: self._stream.resume_token}

    def poll(self, max_events: int) -> list[CapturedEvent]:
        found: list[CapturedEvent] = []
        with history_guard(CLUSTER_STREAM, self._role):
            while len(found) < max_events:
                event, self._stream = _next_or_reopen(self._stream, self._faults, self._open)
                if event is None:
                    break
                ns = event.get("ns") or {}
                wanted = (self._namespaces.wants(f"{ns.get('db')}.{ns['coll']}") if ns.get("coll")
                          else self._namespaces.wants_database(str(ns.get("db"))))
                if wanted:
                    found.append(CapturedEvent(CLUSTER_STREAM, event))
        return found

    def close(self) -> None:
        self._stream.close()


class CollectionCapture:
    """One stream per collection; a stream that sees its collection dropped ends (invalidate)."""

    def __init__(self, client: MongoClient[Any], namespaces: list[str], tokens: Mapping[str, Any],
                 max_await_ms: int, *, keys_only: bool = False, role: str = "source") -> None:
        self._role = role
        self._client = client
        self._options = _stream_options(max_await_ms, keys_only)
        self._streams: dict[str, ChangeStream[Any]] = {}
        self._faults: dict[str, Faults] = {}
        self._pending: list[CapturedEvent] = []  # from streams ended by `end_stream`, for the next poll
        for namespace in namespaces:
            self._streams[namespace] = self._watch(namespace, tokens.get(namespace))

    def _watch(self, namespace: str, token: Any | None) -> ChangeStream[Any]:
        collection = self._client.get_database(namespace.split(".", 1)[0])[namespace.split(".", 1)[1]]
        with history_guard(namespace, self._role):
            return retry(self._client, f"opening the {self._role}'s change stream of {namespace}",
                         lambda: collection.watch(resume_after=token, **self._options))

    def _faults_of(self, namespace: str) -> Faults:
        if namespace not in self._faults:
            self._faults[namespace] = Faults(self._client, f"reading the {self._role}'s change stream of {namespace}")
        return self._faults[namespace]

    # A collection created after the start (`coordinator/late_collections.py`): its stream is opened before its copy
    # and read with the others once the copy is done.

    def watched(self) -> set[str]:
        return set(self._streams)

    def open_stream(self, namespace: str) -> ChangeStream[Any]:
        return self._watch(namespace, None)

    def add_stream(self, namespace: str, stream: ChangeStream[Any]) -> None:
        self._streams[namespace] = stream

    def end_stream(self, namespace: str) -> None:
        """The collection is gone from the source, and its stream has not said so (nx-27017 never does):
        what the stream still holds, then a drop, go out with the next poll, and the stream ends."""
        stream = self._streams.pop(namespace, None)
        if stream is None:
            return
        with history_guard(namespace, self._role):
            while True:
                event, stream = _next_or_reopen(stream, self._faults_of(namespace),
                                                functools.partial(self._watch, namespace))
                if event is None:
                    break
                self._pending.append(CapturedEvent(namespace, event))
        stream.close()
        database, name = namespace.split(".", 1)
        self._pending.append(CapturedEvent(namespace, {"operationType": "drop", "ns": {"db": database, "coll": name}}))

    def tokens(self) -> dict[str, Any]:
        return {namespace: stream.resume_token for namespace, stream in self._streams.items()}

    def poll(self, max_events: int) -> list[CapturedEvent]:
        found, self._pending = self._pending, []
        per_stream = max(1, max_events // max(len(self._streams), 1))
        for namespace, stream in list(self._streams.items()):
            taken = 0
            with history_guard(namespace, self._role):
                while taken < per_stream:
                    event, stream = _next_or_reopen(stream, self._faults_of(namespace),
                                                    functools.partial(self._watch, namespace))
                    self._streams[namespace] = stream
                    if event is None:
                        break
                    taken += 1
                    found.append(CapturedEvent(namespace, event))
                    if event.get("operationType") == "invalidate":
                        log.info("change stream of %s ended (collection dropped or renamed)", namespace)
                        stream.close()
                        del self._streams[namespace]
                        break
        return found

    def close(self) -> None:
        for stream in self._streams.values():
            stream.close()
