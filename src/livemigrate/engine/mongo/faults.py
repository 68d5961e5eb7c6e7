"""Faults on the way to a deployment, and riding them out: which driver errors MongoDB documents as
transient, a bounded retry of one round trip, and the count of retries that progress reports.

A migration lasts hours across networks and elections. What MongoDB's drivers are built for — a
connection reset, a reply that never comes (the socket timeout), a primary stepping down
(NotWritablePrimary, InterruptedDueToReplStateChange, PrimarySteppedDown), a server shutting down —
passes in seconds; the driver retries one read or one write once by itself, and nothing more: a
`getMore` of a copy is not retried at all, and a second fault in a row ends the operation. Each round
trip of the engine that may meet such a fault goes through `retry()` here, and says how it starts
again: a copy read from the last `_id` it handed on, a batch written again (its documents already
there are skipped), a change stream reopened at the last resume token handed on, a batch of changes
applied again (they are idempotent). None of these duplicates or loses a document.

What is transient, as MongoDB documents it: a network error or timeout (`AutoReconnect` and its
subclasses, which include the driver's "not primary" errors), and a server error whose code is one
of the retryable-writes specification's retryable codes, the change-streams specification's
resumable ones, or which carries the `RetryableWriteError` or `ResumableChangeStreamError` label.
Never transient: the history of a change stream being gone (ChangeStreamHistoryLost 286,
ChangeStreamFatalError 280, the `NonResumableChangeStreamError` label), authentication, a duplicate
key, a full disk — those are answered where they are met, or end the migration with their sentence.

A fault that outlasts `FaultPolicy.limit_seconds` (the time since the round trip first failed) ends
the round trip with an `EngineError` naming the side, what was being done and the cause; the
migration ends FAILED with that sentence, and a later run resumes it from its checkpoints.

Which side a client reaches, and its policy, travel with the client (`Endpoint`, made by
`connect.connect`), so that every function that is handed a client can retry on it without more
arguments.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pymongo import MongoClient
from pymongo.errors import AutoReconnect, BulkWriteError, ConnectionFailure, OperationFailure, PyMongoError

from livemigrate.engine.errors import EngineError, EngineErrorCode

log = logging.getLogger("livemigrate.engine.faults")

T = TypeVar("T")

# The retryable-writes specification's retryable codes (which include the "not primary" and "node is
# recovering" ones of server discovery), the change-streams specification's resumable ones, and a
# cursor the server no longer holds, which a read here starts again without.
TRANSIENT_CODES = frozenset({
    6,  # HostUnreachable
    7,  # HostNotFound
    43,  # CursorNotFound: a read starts again from where it was
    63,  # StaleShardVersion
    89,  # NetworkTimeout
    91,  # ShutdownInProgress
    133,  # FailedToSatisfyReadPreference
    134,  # ReadConcernMajorityNotAvailableYet
    150,  # StaleEpoch
    189,  # PrimarySteppedDown
    234,  # RetryChangeStream
    262,  # ExceededTimeLimit
    9001,  # SocketException
    10058,  # LegacyNotPrimary
    10107,  # NotWritablePrimary
    11600,  # InterruptedAtShutdown
    11602,  # InterruptedDueToReplStateChange
    13388,  # StaleConfig
    13435,  # NotPrimaryNoSecondaryOk
    13436,  # NotPrimaryOrSecondary
})
TRANSIENT_LABELS = frozenset({"RetryableWriteError", "ResumableChangeStreamError", "TransientTransactionError"})
NOT_RESUMABLE_LABEL = "NonResumableChangeStreamError"
HISTORY_GONE_CODES = frozenset({136, 280, 286})  # CappedPositionLost, ChangeStreamFatalError, ChangeStreamHistoryLost
OUT_OF_DISK_SPACE = 14031
# The key under which `RetryCounts` counts runs started again from their checkpoints after a fault
# outside any retry (`coordinator/migration.py`), beside "source" and "destination".
RESTARTS = "restarts"


def _labels(error: PyMongoError) -> set[str]:
    details = getattr(error, "details", None) or {}
    labels = set(details.get("errorLabels") or []) if isinstance(details, dict) else set()
    return labels | {label for label in TRANSIENT_LABELS | {NOT_RESUMABLE_LABEL} if error.has_error_label(label)}


def _codes(error: PyMongoError) -> set[int]:
    """The server's codes in an error: its own, or those of a bulk write's write errors and write concern."""
    if isinstance(error, BulkWriteError):
        details = error.details or {}
        found = {int(problem.get("code", 0)) for problem in details.get("writeErrors", [])}
        found |= {int(problem.get("code", 0)) for problem in details.get("writeConcernErrors", [])}
        return found
    code = getattr(error, "code", None)
    return {int(code)} if code is not None else set()


def is_transient(error: BaseException) -> bool:
    """Whether MongoDB documents this error as one that passes: the round trip may be tried again."""
    if not isinstance(error, PyMongoError):
        return False
    if isinstance(error, AutoReconnect):  # network errors, timeouts, "not primary": NotPrimaryError, NetworkTimeout
        return True
    labels = _labels(error)
    codes = _codes(error)
    if NOT_RESUMABLE_LABEL in labels or codes & HISTORY_GONE_CODES or OUT_OF_DISK_SPACE in codes:
        return False
    if isinstance(error, BulkWriteError):
        # Every write error transient (a duplicate key among them is what a batch written again meets).
        return bool(codes) and codes <= TRANSIENT_CODES | {11000} and bool(codes & TRANSIENT_CODES)
    if isinstance(error, OperationFailure):
        return bool(codes & TRANSIENT_CODES) or bool(labels & TRANSIENT_LABELS)
    return isinstance(error, ConnectionFailure)


def is_out_of_disk_space(error: BaseException) -> bool:
    if not isinstance(error, PyMongoError):
        return False
    return OUT_OF_DISK_SPACE in _codes(error) or "no space left on device" in str(error).lower()


class RetryCounts:
    """How many round trips were tried again, per side: what progress, `watch`, the console and
    `/metrics` report. Shared by every thread of a migration."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def add(self, side: str, count: int = 1) -> None:
        with self._lock:
            self._counts[side] += count

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


@dataclass(frozen=True)
class FaultPolicy:
    """How long a fault may last on one side before the migration ends, and the waits between tries
    (doubling from `first_delay` up to `max_delay`)."""

    side: str = "source"  # "source" or "destination", as the sentences name it
    limit_seconds: float = 300.0
    first_delay: float = 0.05
    max_delay: float = 2.0
    counts: RetryCounts = field(default_factory=RetryCounts, compare=False)


class Endpoint(MongoClient[Any]):
    """A client that knows which side it reaches and how long a fault there may be ridden out. (Class
    attributes, not only instance ones: an unknown attribute of a client is a database of that name.)"""

    fault_policy: FaultPolicy = FaultPolicy()
    address_text: str = ""
    _patient: MongoClient[Any] | None = None
    _patient_opening: tuple[str, dict[str, Any]] | None = None
    _patient_lock = threading.Lock()  # one for every endpoint: taken once per index build

    def patient(self) -> MongoClient[Any]:
        """A client of the same deployment without a socket timeout, opened on first use: for an index
        build, which answers only once the index is built — hours, on a large collection — and which a
        retry would only join again (MongoDB waits for the build in progress)."""
        with self._patient_lock:
            if self._patient is None:
                if self._patient_opening is None:
                    return self
                uri, options = self._patient_opening
                self._patient = MongoClient(uri, **options)
            return self._patient

    def open_patient_with(self, uri: str, options: dict[str, Any]) -> None:
        """How `patient()` opens its client: this one's URI and options, without the socket timeout."""
        self._patient_opening = (uri, {name: value for name, value in options.items() if name != "socketTimeoutMS"})

    def close(self) -> None:
        if self._patient is not None:
            self._patient.close()
        super().close()


def patient(client: MongoClient[Any]) -> MongoClient[Any]:
    """The client to build indexes with (`Endpoint.patient`); any other client is its own."""
    return client.patient() if isinstance(client, Endpoint) else client


def policy_of(client: MongoClient[Any]) -> FaultPolicy:
    return client.fault_policy if isinstance(client, Endpoint) else FaultPolicy()


def _where(client: MongoClient[Any]) -> str:
    return client.address_text if isinstance(client, Endpoint) and client.address_text else "the server"


def retry(client: MongoClient[Any], doing: str, operation: Callable[[], T]) -> T:
    """`operation()`, tried again while it fails in a way that passes, within the side's limit.
    `doing` names the round trip for the log and the final sentence ("writing a copy batch of db.c")."""
    faults = Faults(client, doing)
    while True:
        try:
            return operation()
        except PyMongoError as error:
            faults.passed_or_raise(error)


class Faults:
    """One round trip's streak of faults: counts each, waits between tries, and raises the one sentence
    once the streak outlasts the limit. For loops that retry in their own way (`resumable_reads`)."""

    def __init__(self, client: MongoClient[Any], doing: str) -> None:
        self._client = client
        self._policy = policy_of(client)
        self._doing = doing
        self._first: float | None = None
        self._tries = 0

    def passed_or_raise(self, error: PyMongoError) -> None:
        """Wait before the next try if `error` passes; otherwise raise it, or the limit's sentence."""
        if is_out_of_disk_space(error) and self._policy.side == "destination":
            raise EngineError(EngineErrorCode.TARGET_OUT_OF_SPACE, (
                f"the destination ({_where(self._client)}) is out of disk space while {self._doing}: "
                f"{_short(error)}; free space there (or grow its storage), then run the migration again: "
                "it resumes from its checkpoints")) from None
        if not is_transient(error):
            raise error
        self._wait_or_give_up(_short(error))

    def resumed_by_the_driver(self) -> None:
        """The driver met a fault and resumed a change stream by itself (its answer then says nothing of
        what is pending): counted, waited on and bounded like any other fault."""
        self._wait_or_give_up("the driver resumed the change stream after a fault")

    def _wait_or_give_up(self, cause: str) -> None:
        now = time.monotonic()
        if self._first is None:
            self._first = now
        lasted = now - self._first
        if lasted >= self._policy.limit_seconds:
            code = (EngineErrorCode.SOURCE_UNREACHABLE if self._policy.side == "source"
                    else EngineErrorCode.TARGET_UNREACHABLE)
            raise EngineError(code, (
                f"the {self._policy.side} ({_where(self._client)}) kept failing for {lasted:.0f} s while "
                f"{self._doing}, past the {self._policy.limit_seconds:.0f} s a fault may last: {cause}; "
                "check that it is up and reachable from the migration host, then run the migration again: "
                "it resumes from its checkpoints")) from None
        self._policy.counts.add(self._policy.side)
        delay = min(self._policy.max_delay, self._policy.first_delay * 2 ** self._tries)
        self._tries += 1
        log.warning("the %s failed while %s (%s); trying again in %.2f s", self._policy.side, self._doing,
                    cause, delay)
        time.sleep(delay)

    def succeeded(self) -> None:
        """A round trip went through: the next fault starts a streak of its own."""
        self._first = None
        self._tries = 0


DRIVER_DETAIL = re.compile(r"(?:, Timeout: [\d.]+s)?, Topology Description: .*$|\s*\(configured timeouts:[^)]*\)",
                            re.DOTALL)


def _short(error: BaseException) -> str:
    """The cause in a few words: the class and the server's message (or the first line of the driver's),
    without the driver's topology dump or the whole reply document."""
    details = getattr(error, "details", None)
    message = details.get("errmsg") if isinstance(details, dict) else None
    text = [str(message)] if message else DRIVER_DETAIL.sub("", str(error)).split(", full error:")[0].strip().splitlines()
    code = getattr(error, "code", None)
    return f"{type(error).__name__}{f' {code}' if code is not None else ''}: {text[0][:200] if text else ''}"


def resumable_reads(client: MongoClient[Any], doing: str, open_from: Callable[[Any], Iterator[T]],
                    position_of: Callable[[T], Any], start: Any) -> Iterator[T]:
    """Items of a read that starts again, after a fault, from the position of the last item handed on:
    `open_from(position)` opens the read from a position (`start` first), `position_of(item)` is where
    the read stands once `item` is handed on. Nothing is skipped or handed on twice, provided
    `open_from` is exact."""
    faults = Faults(client, doing)
    position = start
    while True:
        try:
            for item in open_from(position):
                yield item
                position = position_of(item)
                faults.succeeded()
            return
        except PyMongoError as error:
            faults.passed_or_raise(error)
