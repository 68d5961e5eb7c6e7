"""The initial copy: every collection's documents in `_id` ranges copied in parallel, then indexes and
views — and how far it has got, which is what a resumed run and the progress events read.

Copy progress (each range's last copied `_id`) is checkpointed after every batch, so a process killed
at any moment resumes from there; what it copies twice is absorbed (duplicate keys are skipped).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Any

from pymongo import MongoClient

from livemigrate.engine.checkpoints import CheckpointStore, Document
from livemigrate.engine.copy.processes import CopyProcesses, default_processes
from livemigrate.engine.copy.ranges import RangeState, Record, copy_range, load_ranges
from livemigrate.engine.events import NamespaceProgress
from livemigrate.engine.mongo import writer
from livemigrate.engine.mongo.collections import CollectionSpec, Discovery
from livemigrate.engine.mongo.faults import retry
from livemigrate.engine.mongo.reader import plan_ranges, single_bracket
from livemigrate.engine.options import MigrationOptions

log = logging.getLogger("livemigrate.engine")


# The smallest range a shared copy's plan makes (`range_counts` says why this size).
MIN_SHARED_RANGE = 4_000


def range_counts(totals: dict[str, int], options: MigrationOptions) -> dict[str, int]:
    """How many ranges each collection is planned in, from its estimated count.

    A single host splits only a collection of more than `split_threshold` documents, into as many
    ranges as it copies at once (`workers`, or its worker processes). A copy that `copy_hosts` hosts
    share (`shared.py`) is split for all of their workers: each collection into ranges no larger
    than one worker's fair part of the whole copy (its documents over hosts x workers), so that
    about hosts x workers ranges cover it, a larger collection cut into more in proportion to its
    size. A collection over the threshold is still cut into at least as many as a single host would.

    No range is planned under `MIN_SHARED_RANGE` documents, so a small collection stays whole. A
    range costs more than its documents: a walk of the `_id` index to find its lower bound when
    planned; when copied, a lease claimed and released through the source API (two round trips that
    may cross the internet), a checkpoint read and a query of its own — each about a batch's round trip.
    Four thousand documents — four batches of the default size — keep those fixed costs a small part
    of each range, yet let a copy of a few tens of thousands of documents be spread over two hosts'
    workers (below about hosts x workers x 4,000 documents, fewer ranges than workers are planned)."""
    at_once = max(options.workers, options.processes or default_processes())
    single = {namespace: at_once if count > options.split_threshold else 1 for namespace, count in totals.items()}
    if options.copy_hosts < 2:
        return single
    share = sum(totals.values()) / (options.copy_hosts * max(1, options.workers))
    return {namespace: max(single[namespace], 1, min(math.ceil(count / share) if share else 1,
                                                      count // MIN_SHARED_RANGE))
            for namespace, count in totals.items()}


def plan(source: MongoClient[Any], target: MongoClient[Any], discovery: Discovery,
         options: MigrationOptions) -> dict[str, Document]:
    """The plan as checkpoint documents — each namespace's spec, each collection's ranges
    (`range_counts`) and estimated total — with the collections created on the target (empty, with
    their options)."""
    documents: dict[str, Document] = {}
    for spec in discovery.collections:
        documents[f"ns:{spec.namespace}"] = spec.to_document()
    totals = {spec.namespace: retry(source, f"counting {spec.namespace}",
                                    source[spec.database][spec.name].estimated_document_count)
              for spec in discovery.copied}
    counts = range_counts(totals, options)
    planned: dict[str, int] = {}
    for spec in discovery.copied:
        total = totals[spec.namespace]
        ranges = plan_ranges(source, spec.namespace, total, counts[spec.namespace])
        planned[spec.namespace] = len(ranges)
        resumable = single_bracket(source, spec.namespace)
        for index, id_range in enumerate(ranges):
            state = RangeState(spec.namespace, index, id_range, resumable)
            documents[state.key] = state.to_document()
        documents[f"total:{spec.namespace}"] = {"total": total}
        writer.create_collection(target, spec)
    if options.copy_hosts > 1:
        log.info("the copy is planned for %d hosts of %d worker(s) each, in %d range(s): %s", options.copy_hosts,
                 options.workers, sum(planned.values()), "; ".join(
                     f"{namespace} ({totals[namespace]:,} document(s)) in {count}" for namespace, count in planned.items()))
    return documents


class InitialCopy:
    """The copy of one migration, as its checkpoints describe it; `on_batch` is told after each batch."""

    def __init__(self, options: MigrationOptions, checkpoints: CheckpointStore, stopping: threading.Event,
                 on_batch: Callable[[], None], record: Record | None = None) -> None:
        """`record` is given each batch read, before it is written: the verification ledger keeps the
        source's side from the copy's own bytes instead of reading the source again."""
        self._options = options
        self._record = record
        self._checkpoints = checkpoints
        self._stopping = stopping
        self._on_batch = on_batch
        self._lock = threading.Lock()
        self.specs = [CollectionSpec.from_document(dict(doc)) for doc in checkpoints.load("ns:").values()]
        self._ranges = load_ranges(checkpoints)
        self._totals = {key.split(":", 1)[1]: int(doc["total"]) for key, doc in checkpoints.load("total:").items()}
        self.copied_now = 0  # by this run
        self._refreshed = 0.0
        self.started = time.monotonic()
        self.finished: float | None = None  # when this run's copy ended: its rate stops at that moment

    def refresh(self, every_seconds: float = 0.0) -> None:
        """Read every range's state again from the checkpoints (other hosts copy some of a shared
        migration's); at most every `every_seconds`."""
        if time.monotonic() - self._refreshed < every_seconds:
            return
        self._refreshed = time.monotonic()
        ranges = load_ranges(self._checkpoints)
        with self._lock:
            self._ranges = ranges

    def collections(self) -> list[str]:
        return [spec.namespace for spec in self.specs if spec.kind == "collection"]

    def run(self, source: MongoClient[Any], target: MongoClient[Any], *, resumed: bool,
            workers: CopyProcesses | None = None) -> bool:
        """Copy every range not yet done; False if stopped before the end. With `workers`, the ranges
        are copied by worker processes (`copy/processes.py`) when there are enough to share."""
        if resumed:
            log.info("resuming the copy from its checkpoint: %d of about %d documents already copied, "
                     "%d of %d ranges done", sum(state.copied for state in self._ranges), sum(self._totals.values()),
                     sum(state.done for state in self._ranges), len(self._ranges))
        self.started = time.monotonic()
        pending = [state for state in self._ranges if not state.done]
        processes = workers.count_for(len(pending), sum(self._totals.values())) if workers is not None else 1
        if workers is not None and processes > 1:
            log.info("copying %d range(s) in %d worker processes", len(pending), processes)
            workers.run(pending, processes, self._stopping, self._on_worker_batch)
        else:
            self._run_in_threads(source, target, pending)
        if self._stopping.is_set():
            return False
        self.finished = time.monotonic()
        log.info("copy done: %d documents in %.1f s", self.copied_now, self.finished - self.started)
        return True

    def _run_in_threads(self, source: MongoClient[Any], target: MongoClient[Any], pending: list[RangeState]) -> None:
        with ThreadPoolExecutor(max_workers=max(1, self._options.workers), thread_name_prefix="copy") as pool:
            futures = [pool.submit(copy_range, source, target, state, self._options.batch_size, self._stopping,
                                   self._record, self._after_batch) for state in pending]
            finished, _ = wait(futures, return_when=FIRST_EXCEPTION)
            for future in finished:
                if future.exception() is not None:
                    self._stopping.set()
                    raise future.exception()  # type: ignore[misc]

    def _after_batch(self, state: RangeState, copied: int) -> None:
        """A batch of a range copied in this process: checkpointed, counted, told."""
        self._checkpoints.save({state.key: state.to_document()})
        with self._lock:
            self.copied_now += copied
        self._on_batch()

    def _on_worker_batch(self, document: Document, copied: int) -> None:
        """A batch a worker process copied (and checkpointed): its range's state here follows, for progress."""
        reported = RangeState.from_document(document)
        with self._lock:
            for state in self._ranges:
                if state.key == reported.key:
                    state.copied, state.last_id = reported.copied, reported.last_id
                    state.has_last, state.done = reported.has_last, reported.done
            self.copied_now += copied
        self._on_batch()

    def build_indexes_and_views(self, target: MongoClient[Any]) -> None:
        for spec in self.specs:
            if spec.kind == "collection":
                writer.build_indexes(target, spec.namespace, spec.indexes)
            else:
                writer.create_view(target, spec)

    def progress(self) -> tuple[NamespaceProgress, ...]:
        copied: dict[str, int] = {}
        done: dict[str, bool] = {}
        with self._lock:
            for state in self._ranges:
                copied[state.namespace] = copied.get(state.namespace, 0) + state.copied
                done[state.namespace] = done.get(state.namespace, True) and state.done
        # A total is the count when the copy began; once a namespace is copied, what was copied is its
        # total (a writer inserts and deletes meanwhile), so that a finished copy never reads 503/501.
        return tuple(NamespaceProgress(namespace, copied.get(namespace, 0),
                                       copied.get(namespace, 0) if done.get(namespace, False) else total,
                                       done.get(namespace, False))
                     for namespace, total in sorted(self._totals.items()))
