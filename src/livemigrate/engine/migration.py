"""The coordinator: one migration from a source deployment to a target, phase by phase.

    checks → start point → plan → copy (parallel `_id` ranges, `initial_copy.py`) → indexes, views → replay
    → cutover → verdict (`verdict.py`)

Verification is spread over the run (`ledger.py`): once the copy is done, one pass reads both sides
into a ledger while changes replicate, and the destination is watched so that any write there marks
its document too; cutover reads again only the documents changed since. Neither readiness nor the
verdict trusts the change stream alone: while replicating, both sides' counts are compared
(`divergence.py`), and the verdict adds counts and a sample read on both sides (`verdict.py`).

Guarantees, and where they come from:
- nothing is written to the target before both ends answer and the target is known to be empty
  (or `drop_target` is set);
- the change-capture start point is saved before the first document is copied, so every change
  made during the copy is replayed afterwards;
- copy progress (the last `_id` of every range) and the resume token of every stream are
  checkpointed after each batch; a process killed at any moment resumes from there, and what it
  re-sends is absorbed (duplicate keys skipped, changes replayed as idempotent writes).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pymongo import MongoClient
from pymongo.errors import OperationFailure, PyMongoError

from livemigrate.engine import initial_copy, writer
from livemigrate.engine.apply import apply_changes, namespace_of
from livemigrate.engine.capture import (
    Capture,
    CapturedEvent,
    ClusterCapture,
    CollectionCapture,
    NoCapture,
    event_time,
)
from livemigrate.engine.checkpoints import CheckpointStore, Document
from livemigrate.engine.connect import connect, wire_version
from livemigrate.engine.discover import collection_namespaces, discover
from livemigrate.engine.divergence import DivergenceMonitor
from livemigrate.engine.errors import EngineError, EngineErrorCode, redact, redact_uri
from livemigrate.engine.events import MigrationEvent, Phase
from livemigrate.engine.initial_copy import InitialCopy
from livemigrate.engine.ledger import VerificationLedger
from livemigrate.engine.options import CaptureScope, MigrationOptions
from livemigrate.engine.verdict import Verdict, reach_verdict
from livemigrate.engine.verify import VerificationPass, VerifyReport

log = logging.getLogger("livemigrate.engine")

WIRE_VERSION_CLUSTER_STREAMS = 7  # MongoDB 4.0
_EMIT_INTERVAL = 0.25

EventListener = Callable[[MigrationEvent], None]


@dataclass(frozen=True)
class MigrationResult:
    phase: Phase
    report: VerifyReport | None = None
    resumed: bool = False
    verdict: Verdict | None = None  # how the report was reached: which evidence, whether everything was read


def _migration_id(meta: Document) -> str:
    return str(meta.get("id") or meta["startedAt"])  # state from before ids: the start time tells it apart


def _token_documents(prefix: str, tokens: dict[str, Any]) -> dict[str, Document]:
    """Resume tokens as checkpoint documents: the source's under `token:`, the destination's under `dest-token:`."""
    return {f"{prefix}{stream}": {"stream": stream, "token": token} for stream, token in tokens.items()}


class Migration:
    """Build it with URIs, options, a checkpoint store and (to keep it across restarts) a verification
    ledger; `run()` it; `stop()` or `request_cutover()` it from another thread."""

    def __init__(self, source_uri: str, target_uri: str, options: MigrationOptions, checkpoints: CheckpointStore,
                 on_event: EventListener | None = None, ledger: VerificationLedger | None = None) -> None:
        self.source_uri = source_uri
        self.target_uri = target_uri
        self.options = options
        self.checkpoints = checkpoints
        self.ledger = ledger if ledger is not None else VerificationLedger()
        self._verification_pass: VerificationPass | None = None
        self._destination_watch: Capture | None = None
        self._end_of_run = threading.Event()  # ends the verification pass with the run that started it
        self._monitor: DivergenceMonitor | None = None
        self._end_of_replication = threading.Event()  # ends the count checks: at cutover, or with the run
        self._listeners: list[EventListener] = [on_event] if on_event else []
        self._stopping = threading.Event()
        self._cutover = threading.Event()
        self._wake = threading.Event()  # cuts a quiet poll's wait short when stop or cutover is asked
        self._copy: InitialCopy | None = None
        self._last_emit = 0.0
        self._applied = 0
        self._resumed = False
        self._phase = Phase.CONNECTING
        self._capture: Capture | None = None
        self._capture_scope = CaptureScope.AUTO.value

    # --- control from other threads ------------------------------------------------------------

    def stop(self) -> None:
        """Stop at the next safe point; everything done so far is checkpointed."""
        self._stopping.set()
        self._wake.set()

    def request_cutover(self) -> None:
        """Apply every change the source has made, then stop reading, verify and complete."""
        self._cutover.set()
        self._wake.set()

    # --- the run -------------------------------------------------------------------------------

    def run(self, *, until_caught_up: bool = False) -> MigrationResult:
        """Run until stopped, cut over, or (with `until_caught_up`) ready for cutover: the copy done, the
        lag zero and both sides read for verification, so that a later cutover is short."""
        self._emit(Phase.CONNECTING, force=True)
        source = connect(self.source_uri, "source")
        try:
            target = connect(self.target_uri, "target")
        except EngineError:
            source.close()
            raise
        self._capture = None
        clean_exit = False
        try:
            result = self._run_phases(source, target, until_caught_up)
            clean_exit = True
            return result
        except PyMongoError as error:
            message = redact(str(error), self.source_uri, self.target_uri)
            self._emit(Phase.FAILED, force=True, last_error=message)
            raise
        finally:
            self._end_of_run.set()
            self._end_of_replication.set()
            if self._verification_pass is not None:
                self._verification_pass.wait(timeout=10)
            if self._monitor is not None:
                self._monitor.join(timeout=10)
            # After a failure the streams' server may be gone: closing them would wait on it for
            # nothing, and closing the client releases them anyway.
            if clean_exit:
                for streams in (self._capture, self._destination_watch):
                    if streams is not None:
                        streams.close()
            source.close()
            target.close()

    def _run_phases(self, source: MongoClient[Any], target: MongoClient[Any], until_caught_up: bool) -> MigrationResult:
        meta = self.checkpoints.load("meta").get("meta")
        if meta is None:
            meta, self._capture = self._start(source, target)
        else:
            self._check_state(meta)
            self._resumed = True
            if not self.ledger.belongs_to(_migration_id(meta)):
                log.info("no verification ledger of this migration here: both sides are read again after the copy")
                self.ledger.begin(_migration_id(meta))
            self._capture = self._reopen_capture(source, meta)
        self._capture_scope = str(meta["capture"])
        copy = self._copy = InitialCopy(self.options, self.checkpoints, self._stopping,
                                        on_batch=lambda: self._emit(Phase.INITIAL_SYNC))
        if meta["phase"] == "copy":
            self._emit(Phase.INITIAL_SYNC, force=True)
            if not copy.run(source, target, resumed=self._resumed):
                return self._stopped()
            meta = self._set_phase(meta, "indexes")
        if meta["phase"] == "indexes":
            self._emit(Phase.BUILDING_INDEXES, force=True)
            started = time.monotonic()
            copy.build_indexes_and_views(target)
            log.info("indexes and views built in %.1f s", time.monotonic() - started)
            meta = self._set_phase(meta, "replay")
        if meta["phase"] == "complete":
            log.info("this migration is already complete; verifying every document again")
            return self._verify(source, target, through_ledger=False)
        return self._replay(source, target, self._capture, meta, until_caught_up)

    # --- start, or resume ------------------------------------------------------------------------

    def _start(self, source: MongoClient[Any], target: MongoClient[Any]) -> tuple[Document, Capture]:
        discovery = discover(source, self.options.namespaces)
        namespaces = [spec.namespace for spec in discovery.collections]
        occupied = writer.non_empty_namespaces(target, namespaces)
        if occupied and not self.options.drop_target:
            raise EngineError(EngineErrorCode.TARGET_NOT_EMPTY,
                              f"the target already holds documents in {', '.join(occupied)}; "
                              "pass --drop-target to replace them, or exclude those namespaces")
        scope = self.options.capture
        if scope is CaptureScope.AUTO:
            scope = (CaptureScope.CLUSTER if wire_version(source) >= WIRE_VERSION_CLUSTER_STREAMS
                     else CaptureScope.COLLECTION)
        meta: Document = {"id": uuid.uuid4().hex, "source": redact_uri(self.source_uri),
                          "target": redact_uri(self.target_uri), "capture": scope.value, "phase": "copy",
                          "startedAt": time.time()}
        self.ledger.begin(_migration_id(meta))
        if self.options.drop_target:
            writer.drop_namespaces(target, namespaces)
        # The start point, before anything is copied.
        capture = self._open_capture(source, meta, {}, [spec.namespace for spec in discovery.copied])
        tokens = capture.tokens()
        self.checkpoints.save({"meta": meta} | _token_documents("token:", tokens)
                              | initial_copy.plan(source, target, discovery, self.options))
        log.info("starting a fresh sync of %d collection(s) and %d view(s); change capture: %s%s",
                 len(discovery.copied), len(discovery.views), scope.value,
                 f"; skipped time-series: {', '.join(discovery.skipped)}" if discovery.skipped else "")
        return meta, capture

    def _check_state(self, meta: Document) -> None:
        if meta["source"] != redact_uri(self.source_uri) or meta["target"] != redact_uri(self.target_uri):
            raise EngineError(EngineErrorCode.STATE_MISMATCH,
                              f"the state directory belongs to a migration from {meta['source']} to {meta['target']}; "
                              "use another --state-dir for this one")

    def _reopen_capture(self, source: MongoClient[Any], meta: Document) -> Capture:
        tokens = self._saved_tokens("token:")
        namespaces = [key for key in tokens if key != "*"]
        return self._open_capture(source, meta, tokens, namespaces)

    def _open_capture(self, source: MongoClient[Any], meta: Document, tokens: dict[str, Any],
                      namespaces: list[str]) -> Capture:
        if meta["capture"] == CaptureScope.CLUSTER.value:
            return ClusterCapture(source, self.options.namespaces, tokens.get("*"), wire_version(source),
                                  max_await_ms=int(self.options.poll_seconds * 1000))
        # Many streams are polled one after another: each may wait only a little.
        return CollectionCapture(source, namespaces, tokens, max_await_ms=50)

    def _set_phase(self, meta: Document, phase: str) -> Document:
        updated = {**meta, "phase": phase}
        self.checkpoints.save({"meta": updated})
        return updated

    # --- replay ----------------------------------------------------------------------------------

    def _replay(self, source: MongoClient[Any], target: MongoClient[Any], capture: Capture | None, meta: Document,
                until_caught_up: bool) -> MigrationResult:
        assert capture is not None
        self._emit(Phase.REPLICATING, force=True, lag=None)
        log.info("replicating changes from the saved resume tokens")
        # Before the pass reads anything and before any change is applied: from here on every change
        # applied, and every write the destination sees, marks its document dirty. The pass's end
        # wakes the replay loop, whose next event says cutover no longer waits for it.
        destination = self._destination_watch = self._watch_destination(target, meta)
        saved_tokens = self._save_tokens(capture, destination, {})
        self._verification_pass = VerificationPass(source, target, self.ledger, self._collections(), self._end_of_run,
                                                   on_end=self._wake.set, sample=self.options.verify_sample)
        monitor = self._monitor = DivergenceMonitor(
            source, target, lambda: self._namespaces_now(source), self.options.count_check_seconds,
            self._end_of_replication, capture=self._capture_scope, exact=self.options.exact_counts,
            on_change=self._wake.set).start()
        while not self._stopping.is_set():
            cutting_over = self._cutover.is_set()
            if cutting_over:
                self._end_of_replication.set()  # the verdict counts for itself
            captured = capture.poll(self.options.batch_size)
            if captured:
                events = [item.event for item in captured]
                apply_changes(target, events)
                self.ledger.note_events(events)  # before the tokens move past them
                monitor.delivered(Counter(namespace_of(event) for event in events))
                self._applied += len(captured)
            self._note_destination_writes(destination, drain=cutting_over and not captured)
            saved_tokens = self._save_tokens(capture, destination, saved_tokens)
            lag = self._lag(captured, monitor)
            self._emit(Phase.CUTTING_OVER if cutting_over else Phase.REPLICATING, force=not captured, lag=lag)
            if not captured:
                if cutting_over:
                    log.info("cutover: every change the change stream delivered is applied; verifying")
                    self._set_phase(meta, "complete")
                    return self._verify(source, target, through_ledger=True)
                if until_caught_up and not self._verification_pass.running and monitor.state().agrees:
                    log.info("caught up: the copy is done, the lag is zero, both sides' counts agree and both "
                             "sides are read for verification")
                    return MigrationResult(Phase.REPLICATING, resumed=self._resumed)
                self._wake.wait(self.options.poll_seconds)
                self._wake.clear()
        return self._stopped()

    def _watch_destination(self, target: MongoClient[Any], meta: Document) -> Capture:
        """The destination's change streams, resumed where the last run left them when its ledger is
        kept; when they cannot be (no saved point, history gone), the ledger starts over — the pass
        reads both sides again — since the writes made in between are unknown."""
        tokens = self._saved_tokens("dest-token:")
        if tokens:
            try:
                return self._open_destination_watch(target, meta, tokens)
            except EngineError as error:
                log.info("the destination's changes since the last run are unknown (%s); verifying from scratch",
                         error.message)
        self.ledger.begin(_migration_id(meta))
        try:
            return self._open_destination_watch(target, meta, {})
        except OperationFailure as error:  # a standalone destination, or a user without changeStream
            reason = f"the destination cannot be watched ({redact(str(error), self.target_uri)})"
            log.warning("%s: cutover will read every document", reason)
            self.ledger.mark_unusable(reason)
            return NoCapture()

    def _open_destination_watch(self, target: MongoClient[Any], meta: Document, tokens: dict[str, Any]) -> Capture:
        # Keys only, and no waiting: the source's streams set the pace of the replay loop.
        if meta["capture"] == CaptureScope.CLUSTER.value:
            return ClusterCapture(target, self.options.namespaces, tokens.get("*"), wire_version(target),
                                  max_await_ms=1, keys_only=True, role="destination")
        return CollectionCapture(target, self._collections(), tokens, max_await_ms=1, keys_only=True,
                                 role="destination")

    def _note_destination_writes(self, destination: Capture, *, drain: bool) -> None:
        """Mark what the destination saw written: ours (already marked) and anyone else's. At cutover
        (`drain`) until nothing is left; otherwise one batch, so replication is not held up."""
        while True:
            seen = destination.poll(self.options.batch_size)
            self.ledger.note_events([item.event for item in seen])
            if not seen or not drain:
                return

    def _saved_tokens(self, prefix: str) -> dict[str, Any]:
        return {doc["stream"]: doc["token"] for doc in self.checkpoints.load(prefix).values()}

    def _save_tokens(self, capture: Capture, destination: Capture, saved: dict[str, Document]) -> dict[str, Document]:
        """Both sides' resume points in one checkpoint, after the changes they pass were applied and marked."""
        tokens = _token_documents("token:", capture.tokens()) | _token_documents("dest-token:", destination.tokens())
        if tokens != saved:
            self.checkpoints.save(tokens)
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

    # --- the end ---------------------------------------------------------------------------------

    def _verify(self, source: MongoClient[Any], target: MongoClient[Any], *, through_ledger: bool) -> MigrationResult:
        self._emit(Phase.VERIFYING, force=True)
        ledger = self._usable_ledger() if through_ledger else None
        # Reading everything compares every namespace the source holds now; the ledger's re-read, the
        # planned ones, while the counts (and so the verdict) cover those created since too.
        namespaces = self._collections() if ledger is not None else self._namespaces_now(source)
        verdict = reach_verdict(source, target, namespaces, ledger, to_count=lambda: self._namespaces_now(source),
                                exact_counts=self.options.exact_counts, mismatch_sample=self.options.mismatch_sample)
        report = verdict.report
        if report.equal:
            self._emit(Phase.COMPLETE, force=True, lag=0.0, message="verified: source and target are equal")
            return MigrationResult(Phase.COMPLETE, report, self._resumed, verdict)
        message = f"verification found differences in {report.describe_differences()}"
        self._emit(Phase.FAILED, force=True, last_error=message)
        return MigrationResult(Phase.FAILED, report, self._resumed, verdict)

    def _usable_ledger(self) -> VerificationLedger | None:
        passed = self._verification_pass is not None and self._verification_pass.wait()
        reason = self.ledger.unusable_reason() or (None if passed else "the verification pass did not end")
        if reason is not None:
            log.info("verifying every document (%s)", reason)
            return None
        return self.ledger

    def _collections(self) -> list[str]:
        return self._copy.collections() if self._copy is not None else []

    def _namespaces_now(self, source: MongoClient[Any]) -> list[str]:
        """The planned collections and those the source holds now: a collection created after the start
        is compared too, whether or not the change capture saw it."""
        return sorted(set(self._collections()) | set(collection_namespaces(source, self.options.namespaces)))

    def _stopped(self) -> MigrationResult:
        self._emit(Phase.STOPPED, force=True, message="stopped; progress is checkpointed")
        return MigrationResult(Phase.STOPPED, resumed=self._resumed)

    # --- events ----------------------------------------------------------------------------------

    def _emit(self, phase: Phase, *, force: bool = False, lag: float | None = None, message: str | None = None,
              last_error: str | None = None) -> None:
        now = time.monotonic()
        if not force and phase == self._phase and now - self._last_emit < _EMIT_INTERVAL:
            return
        self._phase, self._last_emit = phase, now
        copy = self._copy
        elapsed = max(now - copy.started, 1e-6) if copy is not None else 1.0
        monitor = self._monitor
        counts = monitor.state() if monitor is not None else None
        event = MigrationEvent(phase=phase, namespaces=copy.progress() if copy is not None else (),
                               docs_per_second=copy.copied_now / elapsed if copy is not None else 0.0,
                               lag_seconds=lag, applied_events=self._applied, resumed=self._resumed,
                               verification_pending=self._verification_pass is not None and self._verification_pass.running,
                               counts_agree=counts is not None and counts.agrees,
                               warning=monitor.warning() if monitor is not None else None,
                               message=message, last_error=last_error)
        for listener in self._listeners:
            listener(event)
