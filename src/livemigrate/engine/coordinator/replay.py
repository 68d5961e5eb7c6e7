"""Replay and cutover: apply the source's changes to the target until asked to cut over, then drain.

While it replays, four things run beside it, each with its own evidence for the verdict:
- the verification pass (`verify/passes.py`) reads both sides into the ledger once, and from then on the
  documents changed are read again every few seconds (`verify/refresh.py`), so that the cutover reads
  only what changed last;
- the destination's change streams mark every document written there, by us or anyone else;
- the divergence monitor (`verify/divergence.py`) compares both sides' counts.
Both sides' resume points are checkpointed together after each round, once the changes they pass
are applied and marked; a restart resumes from there.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from pymongo import MongoClient
from pymongo.errors import OperationFailure

from livemigrate.engine.apply import apply_changes
from livemigrate.engine.capture.spool import SpooledCapture
from livemigrate.engine.capture.streams import Capture, ClusterCapture, CollectionCapture, NoCapture
from livemigrate.engine.changes import CapturedEvent, event_time, namespace_of
from livemigrate.engine.checkpoints import CheckpointStore, Document
from livemigrate.engine.coordinator.late_collections import LateCollections
from livemigrate.engine.coordinator.progress import Progress
from livemigrate.engine.errors import EngineError, redact
from livemigrate.engine.events import Phase, VerificationState
from livemigrate.engine.ledger import Side, VerificationLedger
from livemigrate.engine.mongo.connect import wire_version
from livemigrate.engine.mongo.write_block import WriteBlock
from livemigrate.engine.options import CaptureScope, MigrationOptions
from livemigrate.engine.verify.divergence import DivergenceMonitor
from livemigrate.engine.verify.passes import VerificationPass
from livemigrate.engine.verify.refresh import LedgerRefresh

log = logging.getLogger("livemigrate.engine")

SOURCE_TOKENS = "token:"
_QUIET_WAIT_MAX_SECONDS = 1.0
DESTINATION_TOKENS = "dest-token:"


@dataclass(frozen=True)
class Controls:
    """What other threads ask of a running migration, and the wake-up that cuts a quiet poll's wait short."""

    stopping: threading.Event = field(default_factory=threading.Event)
    cutover: threading.Event = field(default_factory=threading.Event)
    wake: threading.Event = field(default_factory=threading.Event)


class ReplayOutcome(Enum):
    DRAINED = "drained"  # cutover asked, every change delivered is applied: time for the verdict
    CAUGHT_UP = "caught up"  # ready for cutover (run with `until_caught_up`)
    STOPPED = "stopped"


def token_documents(prefix: str, tokens: dict[str, Any]) -> dict[str, Document]:
    """Resume tokens as checkpoint documents: the source's under `token:`, the destination's under `dest-token:`."""
    return {f"{prefix}{stream}": {"stream": stream, "token": token} for stream, token in tokens.items()}


def saved_tokens(checkpoints: CheckpointStore, prefix: str) -> dict[str, Any]:
    return {doc["stream"]: doc["token"] for doc in checkpoints.load(prefix).values()}


class Replay:
    def __init__(self, source: MongoClient[Any], target: MongoClient[Any], *, options: MigrationOptions,
                 checkpoints: CheckpointStore, ledger: VerificationLedger, controls: Controls, progress: Progress,
                 migration_id: str, capture_scope: str, target_uri: str, planned: Callable[[], list[str]],
                 namespaces_now: Callable[[], list[str]], key_fields: Mapping[str, Sequence[str]] | None = None) -> None:
        """`key_fields`: each sharded destination collection's shard key fields, which replayed writes carry."""
        self._source, self._target = source, target
        self._key_fields = dict(key_fields or {})
        self._options = options
        self._checkpoints = checkpoints
        self._ledger = ledger
        self._controls = controls
        self._progress = progress
        self._migration_id = migration_id
        self._capture_scope = capture_scope
        self._target_uri = target_uri
        self._planned = planned
        self._namespaces_now = namespaces_now
        self._end_of_run = threading.Event()  # ends the verification pass with the run that started it
        self._end_of_replication = threading.Event()  # ends the count checks: at cutover, or with the run
        self._verification_pass: VerificationPass | None = None
        self._refresh: LedgerRefresh | None = None
        self._monitor: DivergenceMonitor | None = None
        self._destination: Capture | None = None
        self._applied = 0
        self._applied_by_namespace: Counter[str] = Counter()
        # A stream per collection sees only those that existed at the start: the others are looked for.
        self._late = (LateCollections(source, target, options, checkpoints, ledger)
                      if capture_scope == CaptureScope.COLLECTION.value else None)
        self.write_block = WriteBlock(source, "destination" if options.reverse_from is not None else "source")
        self._drain_began: float | None = None  # when the cutover's drain began (seconds since the epoch)
        self._writes_after_drain = 0

    # --- what progress reads (`progress.ReplayState`) ------------------------------------------

    @property
    def applied(self) -> int:
        return self._applied

    @property
    def verification_pending(self) -> bool:
        """Until both sides are in the ledger and the changes made meanwhile read again: a cutover would
        read them otherwise."""
        return self._verification_pass is not None and (
            self._verification_pass.running
            or self._verification_pass.complete and self._refresh is not None and not self._refresh.caught_up)

    def counts_agree(self) -> bool:
        return self._monitor is not None and self._monitor.state().agrees

    def warning(self) -> str | None:
        return self._monitor.warning() if self._monitor is not None else None

    def changes_by_namespace(self) -> Mapping[str, int]:
        return dict(self._applied_by_namespace)

    def verification_by_namespace(self) -> Mapping[str, VerificationState]:
        return self._verification_pass.states() if self._verification_pass is not None else {}

    # --- the loop --------------------------------------------------------------------------------

    def run(self, capture: Capture, *, until_caught_up: bool, spooled: SpooledCapture | None = None) -> ReplayOutcome:
        """Rounds of: the cutover's first steps when it is asked for, collections created since, one batch
        of changes applied and noted, the destination's writes noted, the resume points saved, progress;
        until drained at cutover, caught up (with `until_caught_up`), or stopped.

        `spooled`: the capture, when it first hands out what was spooled during the copy; the ledger's
        refresh waits until that is applied, so that its first round reads the changes it marked."""
        self._progress.emit(Phase.REPLICATING, force=True, lag=None)
        log.info("replicating changes from the saved resume tokens")
        destination = self._destination = self._watch_destination()
        saved = self._save_tokens(capture, destination, {})
        monitor = self._start_beside(spooled)
        looked_at_cutover = False
        quiet_wait = self._options.poll_seconds
        while not self._controls.stopping.is_set():
            cutting_over = self._controls.cutover.is_set()
            if cutting_over:
                self._begin_drain()
            if self._late is not None and (self._late.due() or cutting_over and not looked_at_cutover):
                looked_at_cutover = cutting_over
                self._late.catch_up(capture)  # type: ignore[arg-type]  # a per-collection capture
            captured = capture.poll(self._options.batch_size)
            self._apply(captured, monitor)
            self._note_destination_writes(destination, drain=cutting_over and not captured)
            saved = self._save_tokens(capture, destination, saved)
            self._progress.emit(Phase.CUTTING_OVER if cutting_over else Phase.REPLICATING, force=not captured,
                                lag=self._lag(captured, monitor))
            if captured:
                quiet_wait = self._options.poll_seconds
                continue
            if cutting_over:
                log.info("cutover: every change the change stream delivered is applied; verifying")
                return ReplayOutcome.DRAINED
            if until_caught_up and not self.verification_pending and monitor.state().agrees:
                log.info("caught up: the copy is done, the lag is zero, both sides' counts agree and both "
                         "sides are read for verification")
                return ReplayOutcome.CAUGHT_UP
            quiet_wait = self._wait_quietly(quiet_wait)
        return ReplayOutcome.STOPPED

    def _start_beside(self, spooled: SpooledCapture | None) -> DivergenceMonitor:
        """What runs beside the loop, started once the destination is watched — before the pass reads
        anything and before any change is applied, so that from here on every change applied, and every
        write the destination sees, marks its document: the verification pass, the ledger's refresh
        after it, and the divergence monitor. Each wakes the loop when readiness may have changed."""
        controls = self._controls
        refresh = self._refresh = LedgerRefresh(self._source, self._target, self._ledger, self._planned,
                                                ready=lambda: verification_pass.complete
                                                and (spooled is None or not spooled.draining),
                                                every_seconds=self._options.ledger_refresh_seconds,
                                                on_caught_up=controls.wake.set)

        def pass_ended() -> None:
            refresh.nudge()
            controls.wake.set()

        verification_pass = self._verification_pass = VerificationPass(
            self._source, self._target, self._ledger, self._planned(), self._end_of_run, on_end=pass_ended,
            sample=self._options.verify_sample)
        refresh.start()
        monitor = self._monitor = DivergenceMonitor(
            self._source, self._target, self._namespaces_now, self._options.count_check_seconds,
            self._end_of_replication, capture=self._capture_scope, exact=self._options.exact_counts,
            on_change=controls.wake.set, remedies=self._options.capture_remedies,
            catching_up=lambda: spooled is not None and spooled.draining).start()
        return monitor

    def _begin_drain(self) -> None:
        """The cutover asked for: the count checks and the ledger's refresh end (the verdict counts and
        reads for itself), and, the first time, the source's user writes are blocked."""
        self._end_of_replication.set()
        if self._refresh is not None:
            self._refresh.stop()
        if self._drain_began is None:
            self._drain_began = time.time()
            self.write_block.engage()

    def _apply(self, captured: list[CapturedEvent], monitor: DivergenceMonitor) -> None:
        """One batch of changes applied to the destination, and marked in the ledger before the resume
        tokens move past them; the monitor learns what was delivered of each namespace."""
        if not captured:
            return
        events = [item.event for item in captured]
        if self._drain_began is not None:
            self._count_writes_after_drain(events)
        apply_changes(self._target, events, self._key_fields)
        self._ledger.note_events(events)
        delivered = Counter(namespace_of(event) for event in events)
        monitor.delivered(delivered)
        self._applied_by_namespace.update(delivered)
        self._applied += len(captured)

    def _wait_quietly(self, quiet_wait: float) -> float:
        """A quiet source is looked at less and less often, up to once a second: each look is a getMore
        per stream (and some servers answer at once whatever maxAwaitTimeMS says). A wake-up (a
        cutover, the verification pass's end, the counts changing) looks at once. The next wait."""
        woken = self._controls.wake.wait(quiet_wait)
        self._controls.wake.clear()
        return self._options.poll_seconds if woken else min(quiet_wait * 2, _QUIET_WAIT_MAX_SECONDS)

    @property
    def writes_after_drain(self) -> int:
        return self._writes_after_drain

    def source_writes_blocked(self) -> bool | None:
        """None until the drain begins; then whether the source refuses the application's writes."""
        return None if self._drain_began is None else self.write_block.engaged

    def _count_writes_after_drain(self, events: list[dict[str, Any]]) -> None:
        """Writes the source made after the drain began, with no write block to refuse them: applied like
        the others, and reported, never silently taken."""
        assert self._drain_began is not None
        late = sum(1 for event in events if (event_time(event) or 0) > self._drain_began + 1)  # clusterTime: 1 s steps
        if late and not self.write_block.engaged:
            if self._writes_after_drain == 0:
                log.warning("writes reach the source after the cutover's drain began: the application has not "
                            "stopped writing (they are applied and counted)")
            self._writes_after_drain += late

    def usable_ledger(self) -> VerificationLedger | None:
        """The ledger, if the verdict may read through it: the pass ended and nothing made it unusable."""
        passed = self._verification_pass is not None and self._verification_pass.wait()
        if self._refresh is not None:
            self._refresh.join()  # a round under way ends before the verdict reads
        reason = self._ledger.unusable_reason() or (None if passed else "the verification pass did not end")
        if reason is not None:
            log.info("verifying every document (%s)", reason)
            return None
        return self._ledger

    def end(self, *, clean: bool) -> None:
        """Stop what runs beside the loop. After a failure the destination's server may be gone: closing
        its streams would wait on it for nothing, and closing the client releases them anyway."""
        self._end_of_run.set()
        self._end_of_replication.set()
        if self._verification_pass is not None:
            self._verification_pass.wait(timeout=10)
        if self._monitor is not None:
            self._monitor.join(timeout=10)
        if self._refresh is not None:
            self._refresh.join(timeout=10)
        if clean and self._destination is not None:
            self._destination.close()

    # --- the destination's writes ----------------------------------------------------------------

    def _watch_destination(self) -> Capture:
        """The destination's change streams, resumed where the last run left them when its ledger is
        kept; when they cannot be (no saved point, history gone), the ledger forgets the destination's
        side — the pass reads it again — since the writes made in between are unknown."""
        tokens = saved_tokens(self._checkpoints, DESTINATION_TOKENS)
        if tokens:
            try:
                return self._open_destination_watch(tokens)
            except EngineError as error:
                log.info("the destination's changes since the last run are unknown (%s); the pass reads it again",
                         error.message)
        if self._ledger.unusable_reason() is None:
            self._ledger.forget_side(Side.TARGET)  # the source's record stays sound: its changes are all marked
        else:
            self._ledger.begin(self._migration_id)  # a change the ledger could not follow: both sides again
        try:
            return self._open_destination_watch({})
        except OperationFailure as error:  # a standalone destination, or a user without changeStream
            reason = f"the destination cannot be watched ({redact(str(error), self._target_uri)})"
            log.warning("%s: cutover will read every document", reason)
            self._ledger.mark_unusable(reason)
            return NoCapture()

    def _open_destination_watch(self, tokens: dict[str, Any]) -> Capture:
        # Keys only, and no waiting: the source's streams set the pace of the loop.
        if self._capture_scope == CaptureScope.CLUSTER.value:
            return ClusterCapture(self._target, self._options.namespaces, tokens.get("*"), wire_version(self._target),
                                  max_await_ms=1, keys_only=True, role="destination")
        return CollectionCapture(self._target, self._planned(), tokens, max_await_ms=1, keys_only=True,
                                 role="destination")

    def _note_destination_writes(self, destination: Capture, *, drain: bool) -> None:
        """Mark what the destination saw written: ours (already marked) and anyone else's. At cutover
        (`drain`) until nothing is left; otherwise one batch, so replication is not held up."""
        while True:
            seen = destination.poll(self._options.batch_size)
            self._ledger.note_events([item.event for item in seen])
            if not seen or not drain:
                return

    # --- checkpoints and lag ---------------------------------------------------------------------

    def _save_tokens(self, capture: Capture, destination: Capture, saved: dict[str, Document]) -> dict[str, Document]:
        """Both sides' resume points in one checkpoint, after the changes they pass were applied and marked."""
        tokens = (token_documents(SOURCE_TOKENS, capture.tokens())
                  | token_documents(DESTINATION_TOKENS, destination.tokens()))
        if tokens != saved:
            self._checkpoints.save(tokens)
        return tokens

    def _lag(self, captured: list[CapturedEvent], monitor: DivergenceMonitor) -> float:
        """The age of the last change applied, or, when the counts show a difference the stream does not
        explain, how long they have shown it: a stream that delivers nothing does not read as lag 0."""
        stream_lag = 0.0
        if captured:
            moment = event_time(captured[-1].event)
            stream_lag = max(0.0, time.time() - moment) if moment is not None else 0.0
        monitor.stream_lag(stream_lag)
        return max(stream_lag, monitor.state().unexplained_seconds)
