"""The copy in worker processes, so that one host copies on more than one core.

One Python process copies on about one core: reading a batch, recording its digests and handing it
to the driver all hold the GIL. With `processes` above 1 the copy's ranges are shared out among
that many worker processes, each copying one range at a time, while the coordinator keeps the
change capture, the spool and progress in its own.

What a worker needs it finds where the coordinator keeps it: the connection strings (passed at
start, never on a command line), the checkpoint file (each batch checkpointed there, as the
coordinator's threads do) and the verification ledger's file (each batch's source side recorded
there). SQLite lets several processes write one file, one transaction at a time; a worker that
finds it busy waits (`checkpoints.BUSY_SECONDS`). After each batch a worker also tells the coordinator the
range's state, for progress; a killed worker loses nothing the checkpoint file does not hold.

Spawned, not forked: the coordinator runs driver threads (monitors, the spooler) whose locks a fork
would copy in whatever state they are in. A spawned worker costs an interpreter and its imports,
which is why a small copy is not shared out (`count_for`).
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing.synchronize import Event as ProcessEvent
from pathlib import Path
from typing import Any

from pymongo import MongoClient

from livemigrate.engine.checkpoints import CheckpointStore, Document, SqliteCheckpointStore
from livemigrate.engine.copy.ranges import RangeState, copy_range
from livemigrate.engine.errors import EngineError, EngineErrorCode
from livemigrate.engine.ledger import Side, VerificationLedger
from livemigrate.engine.mongo.connect import connect
from livemigrate.engine.mongo.faults import RetryCounts
from livemigrate.engine.options import SHARE_OUT_DOCUMENTS, MigrationOptions

log = logging.getLogger("livemigrate.engine")



def default_processes() -> int:
    """One worker process per core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class WorkerSetup:
    """What each worker process starts with: where to connect, and the coordinator's files."""

    source_uri: str
    target_uri: str
    checkpoint_dir: Path
    ledger_path: Path | None
    batch_size: int
    fault_limit_seconds: float
    socket_timeout_ms: int


class CopyProcesses:
    """`processes` None: the default — one per core, for a copy of at least `SHARE_OUT_DOCUMENTS`."""

    def __init__(self, setup: WorkerSetup, processes: int | None, retries: RetryCounts | None = None) -> None:
        """`retries`: where the workers' retries after a fault are counted, for progress."""
        self._setup = setup
        self._processes = processes
        self._retries = retries if retries is not None else RetryCounts()

    @classmethod
    def sharing(cls, checkpoints: CheckpointStore, ledger: VerificationLedger, source_uri: str, target_uri: str,
                options: MigrationOptions, retries: RetryCounts) -> CopyProcesses | None:
        """Worker processes for a run's copy, when they can share its files: the checkpoints and the ledger
        on disk (a run with either in memory copies in its own threads)."""
        if not isinstance(checkpoints, SqliteCheckpointStore) or ledger.path is None:
            return None
        return cls(WorkerSetup(source_uri, target_uri, checkpoints.path.parent, ledger.path, options.batch_size,
                               options.fault_limit_seconds, int(options.socket_timeout_seconds * 1000)),
                   options.processes, retries)

    def count_for(self, ranges: int, documents: int) -> int:
        """How many worker processes to copy `ranges` pending ranges of about `documents` documents; 1
        copies in this process. Never more than there are ranges to share."""
        wanted = self._processes
        if wanted is None:
            wanted = default_processes() if documents >= SHARE_OUT_DOCUMENTS else 1
        return max(1, min(wanted, ranges))

    def run(self, pending: Sequence[RangeState], processes: int, stopping: threading.Event,
            on_batch: Callable[[Document, int], None]) -> None:
        """Copy `pending` in `processes` workers; `on_batch` is told of each batch (the range's state and
        how many documents it held). Returns once every range is done or, after `stopping`, once each
        worker has checkpointed its batch; raises the first worker's error."""
        context = multiprocessing.get_context("spawn")
        news: multiprocessing.Queue[News] = context.Queue()
        stop = context.Event()
        with ProcessPoolExecutor(max_workers=processes, mp_context=context, initializer=_start_worker,
                                 initargs=(self._setup, news, stop)) as pool:
            futures = [pool.submit(_copy, state.to_document()) for state in pending]
            try:
                self._follow(futures, news, stopping, stop, self._counted(on_batch))
            finally:
                stop.set()  # an error, or this thread interrupted: the others stop at their next batch
        _drain(news, self._counted(on_batch))
        for future in futures:
            if future.done() and not future.cancelled() and future.exception() is not None:
                stopping.set()
                error = future.exception()
                if isinstance(error, BrokenProcessPool):
                    raise EngineError(EngineErrorCode.COPY_WORKER_LOST,
                                      "a worker process of the copy ended before its range was copied (killed, or "
                                      "out of memory); what it copied is checkpointed: run again to resume") from None
                raise error  # type: ignore[misc]
        _log_shares([future.result() for future in futures if future.done() and not future.cancelled()])

    def _counted(self, on_batch: Callable[[Document, int], None]) -> Callable[[News], None]:
        def told(news: News) -> None:
            document, copied, retries = news
            for side, count in retries.items():
                self._retries.add(side, count)
            on_batch(document, copied)
        return told

    @staticmethod
    def _follow(futures: list[Future[WorkerShare]], news: multiprocessing.Queue[News],
                stopping: threading.Event, stop: ProcessEvent, on_batch: Callable[[News], None]) -> None:
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=0.2, return_when=FIRST_EXCEPTION)
            _drain(news, on_batch)
            if stopping.is_set() or any(future.exception() is not None for future in done):
                stop.set()
                for future in pending:
                    future.cancel()  # those not started yet


# What a worker tells the coordinator after each batch: the range's state, the documents the batch
# held, and the round trips it tried again since it last told (by side).
News = tuple[Document, int, dict[str, int]]


@dataclass(frozen=True)
class WorkerShare:
    """What one range cost the worker that copied it: its documents, and the worker's CPU so far."""

    pid: int
    documents: int
    cpu_seconds: float


def _log_shares(shares: Sequence[WorkerShare]) -> None:
    """Each worker's part of the copy, in the log: how the copy's work and CPU were spread."""
    documents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for share in shares:
        documents[share.pid] = documents.get(share.pid, 0) + share.documents
        cpu[share.pid] = max(cpu.get(share.pid, 0.0), share.cpu_seconds)
    log.info("the copy's worker processes: %s", "; ".join(
        f"process {pid} copied {documents[pid]:,} document(s) on {cpu[pid]:.1f} s of CPU" for pid in sorted(documents)))


def _drain(news: multiprocessing.Queue[News], on_batch: Callable[[News], None]) -> None:
    while True:
        try:
            told = news.get_nowait()
        except queue.Empty:
            return
        on_batch(told)


# --- in the worker process -----------------------------------------------------------------------


@dataclass
class _Worker:
    source: MongoClient[Any]
    target: MongoClient[Any]
    checkpoints: SqliteCheckpointStore
    ledger: VerificationLedger | None
    batch_size: int
    news: multiprocessing.Queue[News]
    stop: ProcessEvent
    retries: RetryCounts  # this process's, since it started
    # What of `retries` the coordinator was told, across every range this process copies: a range's copy
    # tells only what came since (counted per range, each would tell the process's whole count again).
    told_retries: dict[str, int] = field(default_factory=dict)

    def retries_since_told(self) -> dict[str, int]:
        retries = self.retries.snapshot()
        since = {side: count - self.told_retries.get(side, 0) for side, count in retries.items()
                 if count != self.told_retries.get(side, 0)}
        self.told_retries = retries
        return since


_worker: _Worker | None = None


def _start_worker(setup: WorkerSetup, news: multiprocessing.Queue[News], stop: ProcessEvent) -> None:
    global _worker
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    threading.Thread(target=_exit_with_coordinator, name="coordinator-watch", daemon=True).start()
    retries = RetryCounts()
    clients = [connect(uri, role, fault_limit_seconds=setup.fault_limit_seconds,
                       socket_timeout_ms=setup.socket_timeout_ms, counts=retries)
               for uri, role in ((setup.source_uri, "source"), (setup.target_uri, "target"))]
    _worker = _Worker(clients[0], clients[1], SqliteCheckpointStore(setup.checkpoint_dir),
                      VerificationLedger(setup.ledger_path) if setup.ledger_path is not None else None,
                      setup.batch_size, news, stop, retries)


def _exit_with_coordinator() -> None:
    """A worker whose coordinator is gone (killed, say) exits at once rather than copy on beside the
    coordinator's next run: every batch it wrote is checkpointed, and the next run resumes from there."""
    parent = multiprocessing.parent_process()
    if parent is not None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(1)


def _copy(document: Document) -> WorkerShare:
    worker = _worker
    assert worker is not None, "a copy worker runs _start_worker first"
    ledger = worker.ledger
    copied = 0

    def after_batch(state: RangeState, batch: int) -> None:
        nonlocal copied
        saved = state.to_document()
        worker.checkpoints.save({state.key: saved})
        worker.news.put((saved, batch, worker.retries_since_told()))
        copied += batch

    if not worker.stop.is_set():
        copy_range(worker.source, worker.target, RangeState.from_document(document), worker.batch_size, worker.stop,
                   (lambda namespace, batch: ledger.record(Side.SOURCE, namespace, batch)) if ledger else None,
                   after_batch)
    return WorkerShare(os.getpid(), copied, time.process_time())
