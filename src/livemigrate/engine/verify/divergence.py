"""Readiness that can see a silent change stream: each namespace's count on both sides, checked at an
interval while replicating.

A change stream that delivers nothing looks exactly like a quiet source: no events, lag 0. Counts
read from the servers tell them apart. Counts on both sides are never read at the same instant,
and changes are in flight for as long as the lag, so a difference alone proves nothing. The rule:

- a difference is *explained* while the capture has delivered at least as many changes of that
  namespace as the difference, within the last lag plus two intervals: those are changes in flight;
- an unexplained difference makes the migration not ready for cutover at once, and the lag counts
  from when it was first seen (a stream that never delivers an event no longer shows lag 0);
- one that stays unexplained for longer than the stream's lag plus `GRACE_SECONDS` is a
  *divergence*: a warning that names the namespaces, the likely cause and the remedy.

Why counts: O(1) per namespace on MongoDB (the `count` command reads collection metadata), so a
check every few seconds costs little however large the data. They see inserts and deletes a stream
missed, not updates: the cutover's sample (`verify/evidence.py`) looks at content.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from livemigrate.engine.verify.evidence import count_both_sides

log = logging.getLogger("livemigrate.engine.divergence")

GRACE_SECONDS = 3.0
# While a difference is unexplained, look again this often (or at the interval, if shorter).
RECHECK_SECONDS = 1.0


@dataclass(frozen=True)
class Divergence:
    namespace: str
    source_count: int
    destination_count: int
    seconds: float  # for how long the difference has been unexplained


@dataclass(frozen=True)
class CountCheck:
    """The monitor's latest word."""

    checked: bool = False  # at least one check has been made
    pending: tuple[str, ...] = ()  # unexplained, not (yet) for longer than the lag
    divergences: tuple[Divergence, ...] = ()
    unexplained_seconds: float = 0.0  # age of the oldest unexplained difference

    @property
    def agrees(self) -> bool:
        """Counts checked, and every difference they show is explained by changes in flight."""
        return self.checked and not self.pending and not self.divergences


# How a person runs `livemigrate migrate` again with the other change capture; a migration host's jobs
# say it in the API's words instead (`MigrationOptions.capture_remedies`).
MIGRATE_REMEDIES = {
    "collection": "run with --capture collection (a migration host: `livemigrate agent --capture collection` or "
                  "LIVEMIGRATE_AGENT_CAPTURE=collection), starting the migration again",
    "cluster": "on a source with deployment-wide change streams run with --capture cluster; otherwise start the "
               "migration again once the source's collections are all created, or leave out the collections made "
               "later with --exclude",
}


def warning_text(divergences: Sequence[Divergence], capture: str, remedies: Mapping[str, str] | None = None) -> str:
    """The warning, its likely cause by the capture in use, and the remedy: to switch to the other capture,
    said as `remedies` (keyed by the capture to switch to) says it."""
    shown = "; ".join(f"{d.namespace}: {d.source_count} document(s) on the source, {d.destination_count} on the "
                      f"destination for {d.seconds:.0f} s" for d in divergences[:10])
    more = f" and {len(divergences) - 10} more namespace(s)" if len(divergences) > 10 else ""
    said = {**MIGRATE_REMEDIES, **(remedies or {})}
    if capture == "cluster":
        cause = ("the change capture is likely delivering nothing: some servers accept a deployment-wide change "
                 f"stream and never emit. Remedy: {said['collection']}")
    else:
        cause = ("the change capture is likely missing changes: per-collection streams do not see collections created "
                 f"after the migration started, and some servers accept a stream and never emit. Remedy: "
                 f"{said['cluster']}")
    return f"the destination is behind the source and the change stream does not explain it ({shown}{more}); {cause}."


class DivergenceMonitor:
    """Started by the replay loop, which tells it what the capture delivered and the stream's lag."""

    def __init__(self, source: MongoClient[Any], target: MongoClient[Any], namespaces: Callable[[], Sequence[str]],
                 interval: float, stopping: threading.Event, *, capture: str, exact: bool = False,
                 on_change: Callable[[], None] | None = None, remedies: Mapping[str, str] | None = None,
                 catching_up: Callable[[], bool] | None = None) -> None:
        """`catching_up`: true while changes read before (the copy's, from the spool) are still being applied:
        the destination is behind then for a reason the stream's lag does not show, so a difference waits."""
        self._catching_up = catching_up or (lambda: False)
        self._clients = (source, target)
        self._capture = capture
        self._remedies = remedies
        self._namespaces = namespaces
        self._interval = interval
        self._stopping = stopping
        self._exact = exact
        self._on_change = on_change
        self._lock = threading.Lock()
        self._delivered: dict[str, int] = {}  # changes the capture delivered, per namespace, since the start
        self._history: deque[tuple[float, dict[str, int]]] = deque(maxlen=1000)  # (when, delivered) per check
        self._stream_lag = 0.0
        self._unexplained_since: dict[str, float] = {}
        self._state = CountCheck()
        self._thread = threading.Thread(target=self._run, name="count-check", daemon=True)

    def start(self) -> DivergenceMonitor:
        self._thread.start()
        return self

    def delivered(self, per_namespace: Mapping[str, int]) -> None:
        with self._lock:
            for namespace, number in per_namespace.items():
                self._delivered[namespace] = self._delivered.get(namespace, 0) + number

    def stream_lag(self, lag: float) -> None:
        self._stream_lag = lag

    def state(self) -> CountCheck:
        with self._lock:
            state = self._state
            if not self._unexplained_since:
                return state
            age = time.monotonic() - min(self._unexplained_since.values())
        return CountCheck(state.checked, state.pending, state.divergences, age)

    def warning(self) -> str | None:
        """What to tell a person while there is a divergence: which namespaces, the likely cause, the remedy."""
        divergences = self.state().divergences
        return warning_text(divergences, self._capture, self._remedies) if divergences else None

    def join(self, timeout: float | None = None) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.check()
            except PyMongoError as error:  # the replay loop meets the same error and decides; look again later
                log.debug("count check skipped: %s", type(error).__name__)
            calm = not self._unexplained_since
            self._stopping.wait(self._interval if calm else min(self._interval, RECHECK_SECONDS))

    def _delivered_within(self, namespace: str, seconds: float, now: float) -> int:
        """Changes of `namespace` the capture delivered in the last `seconds`."""
        baseline = 0
        for moment, delivered in self._history:
            if moment > now - seconds:
                break
            baseline = delivered.get(namespace, 0)
        return self._delivered.get(namespace, 0) - baseline

    def check(self) -> None:
        """One look at both sides' counts; updates the state the replay loop reads."""
        namespaces = list(self._namespaces())
        counted = count_both_sides(*self._clients, namespaces, exact=self._exact)
        on_source, on_target = counted.source, counted.target
        now = time.monotonic()
        lag = self._stream_lag
        window = lag + 2 * self._interval
        catching_up = self._catching_up()
        with self._lock:
            previous = self._state
            pending: list[str] = []
            divergences: list[Divergence] = []
            for namespace in namespaces:
                difference = on_source[namespace] - on_target[namespace]
                if difference == 0 or abs(difference) <= self._delivered_within(namespace, window, now):
                    self._unexplained_since.pop(namespace, None)
                    continue
                since = self._unexplained_since.setdefault(namespace, now)
                if catching_up:  # the spooled changes still being applied explain it: its clock starts after them
                    self._unexplained_since[namespace] = now
                    pending.append(namespace)
                elif now - since > lag + GRACE_SECONDS:
                    divergences.append(Divergence(namespace, on_source[namespace], on_target[namespace], now - since))
                else:
                    pending.append(namespace)
            for namespace in set(self._unexplained_since) - set(namespaces):
                del self._unexplained_since[namespace]
            self._history.append((now, dict(self._delivered)))
            self._state = CountCheck(True, tuple(pending), tuple(divergences))
        if divergences and {d.namespace for d in divergences} != {d.namespace for d in previous.divergences}:
            log.warning("%s", warning_text(divergences, self._capture, self._remedies))
        elif previous.divergences and not divergences:
            log.info("counts agree again on every namespace")
        if self._on_change is not None and (previous.agrees != self._state.agrees
                                            or previous.divergences != self._state.divergences):
            self._on_change()
