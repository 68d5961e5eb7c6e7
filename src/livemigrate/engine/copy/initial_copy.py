"""The initial copy: every collection's documents in ranges copied in parallel — `_id` ranges, or, for a
collection a sharded source shards on a ranged key, shard key ranges along its chunks (`chunks.py`) —
then indexes and views; and how far it has got, which is what a resumed run and the progress events
read (per namespace, and per source shard where the ranges know their shard).

Copy progress (each range's last copied `_id`, or key and `_id`) is checkpointed after every batch, so a
process killed at any moment resumes from there; what it copies twice is absorbed (duplicate keys are
skipped).
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
from livemigrate.engine.copy.chunks import SourceShape, plan_along_chunks
from livemigrate.engine.copy.processes import CopyProcesses, default_processes
from livemigrate.engine.copy.ranges import RangeState, Record, copy_range, load_ranges, spread_over_shards
from livemigrate.engine.events import NamespaceProgress, ShardProgress
from livemigrate.engine.mongo import writer
from livemigrate.engine.mongo.collections import CollectionSpec, Discovery
from livemigrate.engine.mongo.faults import retry
from livemigrate.engine.mongo.reader import IdRange, plan_ranges, single_bracket
from livemigrate.engine.options import MigrationOptions

log = logging.getLogger("livemigrate.engine")


# The smallest range a shared copy's plan makes (`range_counts` says why this size).
MIN_SHARED_RANGE = 4_000
SHOWN_RANGES = 24  # ranges a plan along chunks names in the log


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
    (`range_counts`; along its chunks when a sharded source shards it on a ranged key) and estimated
    total (and each shard's, on a sharded source) — with the collections created on the target (empty,
    with their options)."""
    documents: dict[str, Document] = {}
    for spec in discovery.collections:
        documents[f"ns:{spec.namespace}"] = spec.to_document()
    totals = {spec.namespace: retry(source, f"counting {spec.namespace}",
                                    source[spec.database][spec.name].estimated_document_count)
              for spec in discovery.copied}
    counts = range_counts(totals, options)
    shape = SourceShape.read(source)
    planned: dict[str, int] = {}
    for spec in discovery.copied:
        total, fields = totals[spec.namespace], shape.ranged_key(spec.namespace)
        if fields is not None:
            along = plan_along_chunks(source, spec.namespace, fields, counts[spec.namespace])
            states = [RangeState(spec.namespace, index, IdRange(), True, key_range=key_range, shard=shard)
                      for index, (key_range, shard) in enumerate(along.ranges)]
            shard_totals = along.shard_totals
            log.info("%s: planned along its %d chunk(s) on %d shard(s), in %d range(s): %s", spec.namespace,
                     along.chunks, len(shard_totals), len(states),
                     "; ".join(f"{state.index}: {state.describe()}" for state in states[:SHOWN_RANGES])
                     + ("; …" if len(states) > SHOWN_RANGES else ""))
        else:
            resumable, home = single_bracket(source, spec.namespace), shape.home(spec.namespace)
            states = [RangeState(spec.namespace, index, id_range, resumable, shard=home)
                      for index, id_range in enumerate(plan_ranges(source, spec.namespace, total,
                                                                   counts[spec.namespace]))]
            shard_totals = {home: total} if home is not None else {}
        planned[spec.namespace] = len(states)
        documents |= {state.key: state.to_document() for state in states}
        documents[f"total:{spec.namespace}"] = {"total": total, "shards": [[shard, count] for shard, count
                                                                          in sorted(shard_totals.items())]}
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
        saved = {key.split(":", 1)[1]: doc for key, doc in checkpoints.load("total:").items()}
        self._totals = {namespace: int(doc["total"]) for namespace, doc in saved.items()}
        # Each source shard's count, by namespace (a plan made before shards were counted has none).
        self._shard_totals = {namespace: {str(shard): int(count) for shard, count in doc.get("shards") or []}
                              for namespace, doc in saved.items()}
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
        pending = spread_over_shards([state for state in self._ranges if not state.done])
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
            self._ranges = [reported if state.key == reported.key else state for state in self._ranges]
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
        by_shard: dict[str, dict[str, list[int]]] = {}  # namespace -> shard -> [copied, ranges not done]
        with self._lock:
            ranges = list(self._ranges)
        for state in ranges:
            copied[state.namespace] = copied.get(state.namespace, 0) + state.copied
            done[state.namespace] = done.get(state.namespace, True) and state.done
            if state.shard is not None:
                figures = by_shard.setdefault(state.namespace, {}).setdefault(state.shard, [0, 0])
                figures[0] += state.copied
                figures[1] += not state.done
        # A total is the count when the copy began; once a namespace is copied, what was copied is its
        # total (a writer inserts and deletes meanwhile), so that a finished copy never reads 503/501. So
        # for each source shard: its count until its ranges are done.
        return tuple(NamespaceProgress(namespace, copied.get(namespace, 0),
                                       copied.get(namespace, 0) if done.get(namespace, False) else total,
                                       done.get(namespace, False),
                                       shards=_shards(by_shard.get(namespace, {}), self._shard_totals.get(namespace, {})))
                     for namespace, total in sorted(self._totals.items()))


def _shards(figures: dict[str, list[int]], totals: dict[str, int]) -> tuple[ShardProgress, ...]:
    """Each shard's [copied, ranges not done] as progress: its count for a total until its ranges are done."""
    return tuple(ShardProgress(shard, on_shard, totals.get(shard, 0) if left else on_shard, not left)
                 for shard, (on_shard, left) in sorted(figures.items()))
