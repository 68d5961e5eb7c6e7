"""Progress: the snapshots a migration gives its listeners (the CLI's display, the agent's reports, logs).

Each phase reports when it has something to say; this decides how often that reaches a listener — at
once on a phase change or a moment that matters (`force`), otherwise at most every quarter second —
and gathers what the snapshot holds from the copy and the replay, whichever is under way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Protocol

from livemigrate.engine.copy.initial_copy import InitialCopy
from livemigrate.engine.events import MigrationEvent, NamespaceProgress, Phase, VerificationState
from livemigrate.engine.mongo.faults import RetryCounts
from livemigrate.engine.verify.passes import VerifyReport

EventListener = Callable[[MigrationEvent], None]

_EMIT_INTERVAL = 0.25


class ReplayState(Protocol):
    """What the replay phase tells of itself (`replay.Replay`)."""

    @property
    def applied(self) -> int: ...

    @property
    def verification_pending(self) -> bool: ...

    def counts_agree(self) -> bool: ...

    def warning(self) -> str | None: ...

    def changes_by_namespace(self) -> Mapping[str, int]: ...

    def source_writes_blocked(self) -> bool | None: ...

    @property
    def writes_after_drain(self) -> int: ...

    def verification_by_namespace(self) -> Mapping[str, VerificationState]: ...


class Progress:
    def __init__(self, listeners: list[EventListener], retries: RetryCounts | None = None) -> None:
        self._listeners = listeners
        self.retries = retries if retries is not None else RetryCounts()
        self.copy: InitialCopy | None = None
        self.replay: ReplayState | None = None
        self.resumed = False
        self.verdict: VerifyReport | None = None  # the cutover's, once reached
        self._phase = Phase.CONNECTING
        self._last_emit = 0.0

    def emit(self, phase: Phase, *, force: bool = False, lag: float | None = None, message: str | None = None,
             last_error: str | None = None) -> None:
        now = time.monotonic()
        if not force and phase == self._phase and now - self._last_emit < _EMIT_INTERVAL:
            return
        self._phase, self._last_emit = phase, now
        copy, replay = self.copy, self.replay
        # The copy's rate over the copy alone: once it has ended, replication's time does not dilute it.
        elapsed = max((copy.finished or now) - copy.started, 1e-6) if copy is not None else 1.0
        event = MigrationEvent(phase=phase, namespaces=self._namespaces(),
                               docs_per_second=copy.copied_now / elapsed if copy is not None else 0.0,
                               lag_seconds=lag, applied_events=replay.applied if replay is not None else 0,
                               resumed=self.resumed,
                               verification_pending=replay is not None and replay.verification_pending,
                               counts_agree=replay is not None and replay.counts_agree(),
                               warning=replay.warning() if replay is not None else None,
                               source_writes_blocked=replay.source_writes_blocked() if replay is not None else None,
                               writes_after_drain=replay.writes_after_drain if replay is not None else 0,
                               retries=self.retries.snapshot(),
                               message=message, last_error=last_error)
        for listener in self._listeners:
            listener(event)

    def _namespaces(self) -> tuple[NamespaceProgress, ...]:
        """The copy's figures per namespace, with the changes replayed and how far verification has come."""
        if self.copy is None:
            return ()
        replay = self.replay
        changes = replay.changes_by_namespace() if replay is not None else {}
        states = dict(replay.verification_by_namespace()) if replay is not None else {}
        if self.verdict is not None:
            states.update({comparison.namespace: VerificationState.VERIFIED if comparison.equal
                           else VerificationState.DIFFERENT for comparison in self.verdict.namespaces})
        return tuple(replace(progress, changes_applied=changes.get(progress.namespace, 0),
                             verification=states.get(progress.namespace, VerificationState.PENDING))
                     for progress in self.copy.progress())
