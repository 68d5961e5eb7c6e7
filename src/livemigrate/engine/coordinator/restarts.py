"""A run started again after a fault that no round trip rode out, and the connections such a run opens.

Most of a migration's round trips ride out faults by themselves (`mongo/faults.py`). A few steps have
no retry of their own — discovering the source, listing its collections, a replayed change to
collections. A transient fault there starts the whole run again from its checkpoints, as a restarted
process would (what it does twice is absorbed: the checkpoints are the only state it resumes from),
within the same limit as any fault; and the run started again waits for a server that is still away,
within that limit too, where a first start says at once that it cannot reach it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from livemigrate.engine.errors import EngineError, EngineErrorCode
from livemigrate.engine.mongo.connect import connect
from livemigrate.engine.mongo.faults import RESTARTS, RetryCounts, is_transient

log = logging.getLogger("livemigrate.engine")

T = TypeVar("T")

# A run that lasted this long before its fault got somewhere: the fault after it starts a new streak.
_PROGRESSED_SECONDS = 30.0


def run_through_faults(run_once: Callable[[bool], T], *, limit_seconds: float, stopping: threading.Event,
                       retries: RetryCounts, on_failed: Callable[[PyMongoError], None],
                       describe: Callable[[PyMongoError], str]) -> T:
    """`run_once(after_fault)` until it returns, started again after each transient fault it raises,
    until the faults have lasted `limit_seconds` (then `on_failed` is told, and the fault raised). A run
    that lasted a while before its fault made progress: the streak starts again from it."""
    failing_since: float | None = None
    while True:
        began = time.monotonic()
        try:
            return run_once(failing_since is not None)
        except PyMongoError as error:
            if not is_transient(error) or stopping.is_set():
                on_failed(error)
                raise
            now = time.monotonic()
            if failing_since is None or now - began > min(_PROGRESSED_SECONDS, limit_seconds / 4):
                failing_since = now
            if now - failing_since >= limit_seconds:
                on_failed(error)
                raise
            retries.add(RESTARTS)
            log.warning("a fault outside any retry (%s): the run starts again from its checkpoints", describe(error))
            stopping.wait(min(2.0, limit_seconds / 10))


def connect_for_a_run(uri: str, role: str, *, limit_seconds: float, socket_timeout_seconds: float,
                      retries: RetryCounts, stopping: threading.Event, after_fault: bool) -> MongoClient[Any]:
    """A client that rides out faults within `limit_seconds`, its retries counted in `retries`.
    `after_fault`: a server that cannot be reached is tried again until the limit."""
    began = time.monotonic()
    while True:
        try:
            return connect(uri, role, fault_limit_seconds=limit_seconds,
                           socket_timeout_ms=int(socket_timeout_seconds * 1000), counts=retries)
        except EngineError as error:
            unreachable = error.code in (EngineErrorCode.SOURCE_UNREACHABLE, EngineErrorCode.TARGET_UNREACHABLE)
            if not after_fault or not unreachable or time.monotonic() - began >= limit_seconds or stopping.is_set():
                raise
            retries.add("source" if role == "source" else "destination")
            log.warning("%s; trying again", error.message)
            stopping.wait(2.0)
