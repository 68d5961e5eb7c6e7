"""The coordinator: one migration from a source deployment to a target, phase by phase.

    checks → start point → plan → copy (parallel `_id` ranges, `copy/initial_copy.py`) → indexes, views
    (the changes meanwhile spooled, `capture/spool.py`) → replay, the spool first → cutover (`coordinator/replay.py`)
    → verdict (`verify/verdict.py`);  progress throughout (`coordinator/progress.py`)

This module keeps the order of the phases and what survives a restart (the checkpointed step);
each phase is a module of its own.

Verification is spread over the run (`ledger.py`, `coordinator/replay.py`): cutover reads again only
the documents changed since both sides were read, and never trusts the change stream alone.

Guarantees, and where they come from:
- nothing is written to the target before both ends answer, the migration holds its claim on the
  target (`mongo/claim.py`: no other migration writes it meanwhile), and the target is known
  to be empty (or `drop_target` is set);
- the change-capture start point is saved before the first document is copied, and the streams are
  read from there all through the copy into the spool (`capture/spool.py`), so every change made during the
  copy is replayed afterwards, however long the copy outlasts the source's change history;
- copy progress (the last `_id` of every range) and the resume token of every stream are
  checkpointed after each batch; a process killed at any moment resumes from there, and what it
  re-sends is absorbed (duplicate keys skipped, changes replayed as idempotent writes); a fault that
  passes is ridden out where it is met (`mongo/faults.py`), or the run starts again from the checkpoints
  (`coordinator/restarts.py`).
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from livemigrate.engine.capture.spool import Spool, SpooledCapture, Spooler
from livemigrate.engine.capture.streams import Capture
from livemigrate.engine.checkpoints import CheckpointStore, Document
from livemigrate.engine.coordinator.progress import EventListener, Progress
from livemigrate.engine.coordinator.replay import (
    SOURCE_TOKENS,
    Controls,
    Replay,
    ReplayOutcome,
    saved_tokens,
    token_documents,
)
from livemigrate.engine.coordinator.restarts import connect_for_a_run, run_through_faults
from livemigrate.engine.coordinator.reverse import hand_writes_back, kept_point, start_reverse
from livemigrate.engine.coordinator.run_state import (
    FreshStart,
    MigrationResult,
    Step,
    check_state,
    migration_id_of,
    open_capture,
)
from livemigrate.engine.copy import initial_copy
from livemigrate.engine.copy.initial_copy import InitialCopy
from livemigrate.engine.copy.processes import CopyProcesses
from livemigrate.engine.copy.shared import SharedHost
from livemigrate.engine.discover import collection_namespaces, discover
from livemigrate.engine.errors import EngineError, EngineErrorCode, redact, redact_uri
from livemigrate.engine.events import Phase
from livemigrate.engine.ledger import Side, VerificationLedger
from livemigrate.engine.mongo import writer
from livemigrate.engine.mongo.claim import DestinationClaim, default_holder
from livemigrate.engine.mongo.connect import wire_version
from livemigrate.engine.options import CaptureScope, MigrationOptions
from livemigrate.engine.sharding import (
    BalancerPause,
    balancer_refusal,
    destination_key_fields,
    plan_sharding,
    shard_destination,
    unsharded,
)
from livemigrate.engine.verify.verdict import reach_verdict
from livemigrate.engine.versions import WIRE_DEPLOYMENT_STREAMS

log = logging.getLogger("livemigrate.engine")


class Migration:
    """Build it with URIs, options, a checkpoint store and (to keep it across restarts) a verification
    ledger; `run()` it; `stop()` or `request_cutover()` it from another thread."""

    def __init__(self, source_uri: str, target_uri: str, options: MigrationOptions, checkpoints: CheckpointStore,
                 on_event: EventListener | None = None, ledger: VerificationLedger | None = None,
                 spool_path: Path | None = None, shared: SharedHost | None = None, holder: str | None = None) -> None:
        """`spool_path`: where the changes read during the copy wait (`capture/spool.py`); beside the checkpoints,
        so that a restarted host finds them. None keeps them in memory. `shared`: this host holds the
        change capture of a migration whose copy several hosts share (`copy/shared.py`); its
        checkpoints are then the shared ones (`mongo/destination_state.py`). `holder`: who runs it, as another
        migration refused the destination is told (`mongo/claim.py`)."""
        self.shared = shared
        self.holder = holder or default_holder()
        self.source_uri = source_uri
        self.spool_path = spool_path
        self.target_uri = target_uri
        # A reverse covers what its forward run migrated, never the destination's other namespaces.
        self.options = options if options.reverse_from is None else replace(
            options, namespaces=options.reverse_from.filter())
        self.checkpoints = checkpoints
        self.ledger = ledger if ledger is not None else VerificationLedger()
        self._controls = Controls()
        self._progress = Progress([on_event] if on_event else [])
        self._copy: InitialCopy | None = None
        self._resumed = False
        # A fresh migration's id: the same through runs started again after a fault before it was saved,
        # so that such a run finds its own claim on the destination rather than another migration's.
        self._fresh_id = uuid.uuid4().hex

    # --- control from other threads ------------------------------------------------------------

    def stop(self) -> None:
        """Stop at the next safe point; everything done so far is checkpointed."""
        self._controls.stopping.set()
        self._controls.wake.set()

    def request_cutover(self) -> None:
        """Apply every change the source has made, then stop reading, verify and complete."""
        self._controls.cutover.set()
        self._controls.wake.set()

    # --- the run -------------------------------------------------------------------------------

    def run(self, *, until_caught_up: bool = False) -> MigrationResult:
        """Run until stopped, cut over, or (with `until_caught_up`) ready for cutover: the copy done, the
        lag zero and both sides read for verification, so that a later cutover is short. A fault that
        no round trip rode out starts the run again from its checkpoints (`coordinator/restarts.py`)."""
        return run_through_faults(
            lambda after_fault: self._run_once(until_caught_up=until_caught_up, after_fault=after_fault),
            limit_seconds=self.options.fault_limit_seconds, stopping=self._controls.stopping,
            retries=self._progress.retries, on_failed=self._failed,
            describe=lambda error: redact(str(error), self.source_uri, self.target_uri)[:300])

    def _failed(self, error: PyMongoError) -> None:
        self._progress.emit(Phase.FAILED, force=True, last_error=redact(str(error), self.source_uri, self.target_uri))

    def _run_once(self, *, until_caught_up: bool, after_fault: bool) -> MigrationResult:
        """One run, from the checkpoints; `after_fault`: the last one ended on a fault, and reaching the
        servers again may take a while (within the fault limit)."""
        self._progress.emit(Phase.CONNECTING, force=True)
        source = self._connect(self.source_uri, "source", after_fault=after_fault)
        try:
            target = self._connect(self.target_uri, "target", after_fault=after_fault)
        except EngineError:
            source.close()
            raise
        capture: Capture | None = None
        replay: Replay | None = None
        claim: DestinationClaim | None = None
        clean_exit = completed = False
        spool = Spool(self.spool_path, self.options.spool_limit_bytes)
        balancer: BalancerPause | None = None
        try:
            balancer = BalancerPause(source, asked=self.options.stop_balancer)
            claim, start = self._claim_destination(source, target)
            meta, capture = self._start_or_resume(source, target, spool, claim.migration_id, start)
            if meta["phase"] == Step.COPY and balancer.running is not None:
                raise EngineError(EngineErrorCode.SOURCE_BALANCER_RUNNING, balancer_refusal(balancer.running))
            replay = Replay(source, target, options=self.options, checkpoints=self.checkpoints, ledger=self.ledger,
                            controls=self._controls, progress=self._progress, migration_id=migration_id_of(meta),
                            capture_scope=str(meta["capture"]), target_uri=self.target_uri,
                            planned=self._collections, namespaces_now=lambda: self._namespaces_now(source),
                            key_fields=destination_key_fields(target))
            result = self._run_phases(source, target, meta, capture, replay, spool, until_caught_up)
            if claim.lost is not None:
                raise claim.lost  # stopped because another migration took the destination: not resumable
            clean_exit = True
            completed = result.phase is Phase.COMPLETE
            return result
        finally:
            if replay is not None and not completed:
                replay.write_block.lift()  # a cutover that did not complete: the source takes writes again
            if replay is not None:
                replay.end(clean=clean_exit)
            if clean_exit and capture is not None:
                capture.close()
            if spool.tokens() is None:
                spool.remove()  # nothing left to apply: the file goes
            else:
                spool.close()
            if claim is not None:
                claim.release()  # writing no more: a stopped run that another migration follows cannot resume
            if balancer is not None:
                balancer.end()
            source.close()
            target.close()

    def _connect(self, uri: str, role: str, *, after_fault: bool) -> MongoClient[Any]:
        return connect_for_a_run(uri, role, limit_seconds=self.options.fault_limit_seconds,
                                 socket_timeout_seconds=self.options.socket_timeout_seconds,
                                 retries=self._progress.retries, stopping=self._controls.stopping,
                                 after_fault=after_fault)

    def _run_phases(self, source: MongoClient[Any], target: MongoClient[Any], meta: Document, capture: Capture,
                    replay: Replay, spool: Spool, until_caught_up: bool) -> MigrationResult:
        copy = self._copy = self._progress.copy = InitialCopy(
            self.options, self.checkpoints, self._controls.stopping,
            on_batch=lambda: self._progress.emit(Phase.INITIAL_SYNC),
            record=lambda namespace, batch: self.ledger.record(Side.SOURCE, namespace, batch))
        if meta["phase"] in (Step.COPY, Step.INDEXES):
            # The changes made meanwhile are read as they come, not resumed from the start point after.
            spooler = Spooler(capture, spool, self.options.batch_size, on_failure=self._controls.stopping,
                              quiet_seconds=self.options.poll_seconds)
            try:
                meta = self._copy_and_build_indexes(source, target, meta, copy)
            finally:
                spooler.finish()  # raises what stopped the spooler (a full spool, the history lost)
            log.info("%d change(s) spooled during the copy (%.1f MiB) are applied first", spool.pending(),
                     spool.size_bytes / 1024**2)
            if meta["phase"] != Step.REPLAY:
                return self._stopped()
        if meta["phase"] == Step.COMPLETE:
            log.info("this migration is already complete; verifying every document again")
            return self._verify(source, target, through=None)
        self._progress.replay = replay
        spooled: SpooledCapture | None = None
        if spool.tokens() is not None:
            capture = spooled = SpooledCapture(spool, capture, saved_tokens(self.checkpoints, SOURCE_TOKENS),
                                               self.options.batch_size, self.options.poll_seconds)
        try:
            outcome = replay.run(capture, until_caught_up=until_caught_up, spooled=spooled)
        finally:
            if spooled is not None:
                spooled.stop_spooling()  # a replay that ended mid-drain: nothing reads the capture behind it
        if outcome is ReplayOutcome.STOPPED:
            return self._stopped()
        if outcome is ReplayOutcome.CAUGHT_UP:
            return MigrationResult(Phase.REPLICATING, resumed=self._resumed)
        self._set_step(meta, Step.COMPLETE)
        result = self._verify(source, target, through=replay)
        if replay.writes_after_drain:
            log.warning("%d write(s) reached the source after the cutover's drain began", replay.writes_after_drain)
        return result

    def _copy_and_build_indexes(self, source: MongoClient[Any], target: MongoClient[Any], meta: Document,
                                copy: InitialCopy) -> Document:
        """The copy, then the indexes and views; the step reached (REPLAY, unless stopped before)."""
        if meta["phase"] == Step.COPY:
            self._progress.emit(Phase.INITIAL_SYNC, force=True)
            if self.shared is not None:
                if not self._copy_shared(source, target, copy, self.shared):
                    return meta
            elif not copy.run(source, target, resumed=self._resumed, workers=CopyProcesses.sharing(
                    self.checkpoints, self.ledger, self.source_uri, self.target_uri, self.options, self._progress.retries)):
                return meta
            self.ledger.copy_finished()
            meta = self._set_step(meta, Step.INDEXES)
        self._progress.emit(Phase.BUILDING_INDEXES, force=True)
        started = time.monotonic()
        copy.build_indexes_and_views(target)
        log.info("indexes and views built in %.1f s", time.monotonic() - started)
        return self._set_step(meta, Step.REPLAY)

    def _copy_shared(self, source: MongoClient[Any], target: MongoClient[Any], copy: InitialCopy,
                     shared: SharedHost) -> bool:
        """This host's part of a shared copy, until every range is done by one host or another."""
        started = time.monotonic()

        def on_batch() -> None:
            copy.refresh(every_seconds=1.0)  # the progress of every host, from the shared checkpoints
            self._progress.emit(Phase.INITIAL_SYNC)

        part = shared.copy_part(self.checkpoints, self.options, on_batch)
        if not part.run(source, target, self._controls.stopping):
            return False
        copy.refresh()
        copy.finished = time.monotonic()
        log.info("copy done: %d documents copied here, %d by every host, in %.1f s", part.copied,
                 sum(state.copied for state in part.ranges()), time.monotonic() - started)
        return True

    # --- start, or resume ------------------------------------------------------------------------

    def _claim_destination(self, source: MongoClient[Any],
                           target: MongoClient[Any]) -> tuple[DestinationClaim, FreshStart | None]:
        """This migration's claim on the destination, before anything is written there: refused while
        another migration writes it, to a resumed one when another has written it since, and (a fresh
        one) when the destination holds documents it would copy over without `drop_target`. Each
        refusal is decided by reading only, so that a refused run leaves nothing on the destination.
        Also what a fresh migration discovered of the source, and what it shards on the destination
        (refused, before anything is written, when it cannot be done: `sharding.py`)."""
        meta = self.checkpoints.load("meta").get("meta")
        if meta is not None:
            check_state(meta, self.source_uri, self.target_uri)
        claim = DestinationClaim(target, migration_id_of(meta) if meta is not None else self._fresh_id, self.holder)
        claim.check(resuming=meta is not None)
        start = None
        if meta is None:
            discovery = discover(source, self.options.namespaces)
            occupied = [] if self.options.reverse_from else writer.non_empty_namespaces(
                target, [spec.namespace for spec in discovery.collections])  # a reverse writes back over a copy
            if occupied and not self.options.drop_target:
                raise EngineError(EngineErrorCode.TARGET_NOT_EMPTY,
                                  f"the target already holds documents in {', '.join(occupied)}; "
                                  "pass --drop-target to replace them, or exclude those namespaces")
            start = FreshStart(discovery, plan_sharding(source, target, discovery, self.options)
                               if self.options.reverse_from is None else unsharded())  # a reverse copies nothing
            start.sharding.check()
        claim.take(resuming=meta is not None)
        claim.keep(on_lost=self.stop)
        return claim, start

    def _start_or_resume(self, source: MongoClient[Any], target: MongoClient[Any], spool: Spool,
                         migration_id: str, start: FreshStart | None) -> tuple[Document, Capture]:
        meta = self.checkpoints.load("meta").get("meta")
        if meta is None:
            assert start is not None  # the claim found no state, so it planned a fresh start
            spool.clear()  # a fresh migration: whatever another one left is not ours
            return self._start(source, target, migration_id, start)
        self._resumed = self._progress.resumed = True
        if not self.ledger.belongs_to(migration_id_of(meta)):
            log.info("no verification ledger of this migration here: both sides are read again after the copy")
            self.ledger.begin(migration_id_of(meta))
        tokens = saved_tokens(self.checkpoints, SOURCE_TOKENS)
        # Changes spooled and not applied yet stay in the spool: the capture resumes after them.
        spooled = spool.tokens()
        if spooled is not None:
            log.info("%d change(s) spooled before the restart wait to be applied; the capture resumes after them",
                     spool.pending())
        return meta, open_capture(source, self.options, str(meta["capture"]), spooled or tokens,
                                  [key for key in tokens if key != "*"])

    def _start(self, source: MongoClient[Any], target: MongoClient[Any], migration_id: str,
               start: FreshStart) -> tuple[Document, Capture]:
        discovery = start.discovery
        if self.options.reverse_from is not None:
            self.ledger.begin(migration_id)
            return start_reverse(source, self.options, self.checkpoints, migration_id, discovery, {
                "source": redact_uri(self.source_uri), "target": redact_uri(self.target_uri), "startedAt": time.time()})
        namespaces = [spec.namespace for spec in discovery.collections]
        scope = self.options.capture
        if scope is CaptureScope.AUTO:
            scope = (CaptureScope.CLUSTER if wire_version(source) >= WIRE_DEPLOYMENT_STREAMS
                     else CaptureScope.COLLECTION)
        meta: Document = {"id": migration_id, "source": redact_uri(self.source_uri),
                          "target": redact_uri(self.target_uri), "capture": scope.value, "phase": Step.COPY.value,
                          "startedAt": time.time(), "sharded": [
                              {"namespace": key.namespace, "key": key.as_document()} for key in start.sharding.keys]}
        self.ledger.begin(migration_id_of(meta))
        if self.shared is None:  # a shared copy is partly copied elsewhere: the pass reads the source
            self.ledger.expect_copy([spec.namespace for spec in discovery.copied])
        self.checkpoints.clear()  # what an earlier start wrote before it died (its plan, without `meta`)
        if self.options.drop_target:
            writer.drop_namespaces(target, namespaces)
        # The start point, before anything is copied.
        capture = open_capture(source, self.options, scope.value, {}, [spec.namespace for spec in discovery.copied])
        planned = initial_copy.plan(source, target, discovery, self.options)  # the collections created, empty
        shard_destination(source, target, start.sharding)
        self.checkpoints.save({"meta": meta} | token_documents(SOURCE_TOKENS, capture.tokens()) | planned)
        log.info("starting a fresh sync of %d collection(s) and %d view(s); change capture: %s%s",
                 len(discovery.copied), len(discovery.views), scope.value,
                 f"; skipped time-series: {', '.join(discovery.skipped)}" if discovery.skipped else "")
        return meta, capture

    def _set_step(self, meta: Document, step: Step) -> Document:
        updated = {**meta, "phase": step.value}
        self.checkpoints.save({"meta": updated})
        return updated

    # --- the end ---------------------------------------------------------------------------------

    def _verify(self, source: MongoClient[Any], target: MongoClient[Any], *, through: Replay | None) -> MigrationResult:
        """The verdict: through the replay's ledger when it is usable, otherwise by reading everything."""
        self._progress.emit(Phase.VERIFYING, force=True)
        ledger = through.usable_ledger() if through is not None else None  # may wait for the pass to end
        # Reading everything compares every namespace the source holds now; the ledger's re-read, the
        # planned ones, while the counts (and so the verdict) cover those created since too.
        namespaces = self._collections() if ledger is not None else self._namespaces_now(source)
        verdict = reach_verdict(source, target, namespaces, ledger, to_count=lambda: self._namespaces_now(source),
                                exact_counts=self.options.exact_counts, mismatch_sample=self.options.mismatch_sample)
        report = self._progress.verdict = verdict.report
        if report.equal:
            if self.options.reverse_from is not None:
                hand_writes_back(target)  # the source (this reverse's target) is current again
            point = kept_point(self.checkpoints, self._collections(), self.options.namespaces.include,
                               self.options.namespaces.exclude) if self.options.reversible else None
            self._progress.emit(Phase.COMPLETE, force=True, lag=0.0, message="verified: source and target are equal")
            return MigrationResult(Phase.COMPLETE, report, self._resumed, verdict, point)
        message = f"verification found differences in {report.describe_differences()}"
        self._progress.emit(Phase.FAILED, force=True, last_error=message)
        return MigrationResult(Phase.FAILED, report, self._resumed, verdict)

    def _collections(self) -> list[str]:
        return self._copy.collections() if self._copy is not None else []

    def _namespaces_now(self, source: MongoClient[Any]) -> list[str]:
        """The planned collections and those the source holds now: a collection created after the start
        is compared too, whether or not the change capture saw it."""
        return sorted(set(self._collections()) | set(collection_namespaces(source, self.options.namespaces)))

    def _stopped(self) -> MigrationResult:
        self._progress.emit(Phase.STOPPED, force=True, message="stopped; progress is checkpointed")
        return MigrationResult(Phase.STOPPED, resumed=self._resumed)
