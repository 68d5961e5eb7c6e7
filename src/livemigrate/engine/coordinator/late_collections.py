"""Collections created on the source after the migration started, under a per-collection capture.

A deployment-wide change stream sees a new collection's writes on its own; a stream per collection
(MongoDB 3.6, a user allowed to watch only its collections, or a server like nx-27017) sees only the
collections that existed when it was opened. So while replicating, every `interval` and once more when
the cutover's drain begins, the source's collections are listed again, and each new one gets what the
first ones got at the start, in the same order: its stream opened (its start point), then its documents
copied and its indexes built, then its stream read with the others — whatever changed during its copy
is replayed after it, as for the initial copy. A collection dropped on the source ends its stream with
a drop, which is applied on the destination; one that is simply gone at a look (its stream said
nothing: nx-27017 never does) ends its stream the same way, after the events it still held.

The verification ledger has not read a late collection, so it is marked unusable: the cutover's
verdict then reads every document of every namespace on both sides (the cost: one full read of both
sides at cutover, as without a ledger).

A late copy that a restart interrupts is started again from nothing: its stream was not saved with the
others (its token is saved only once its copy is done), and its partial copy on the destination, ours
(a checkpoint says so), is dropped first. A destination that already held documents in a namespace the
migration did not plan is left alone, with a warning, unless the destination may be replaced.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

from pymongo import MongoClient

from livemigrate.engine.checkpoints import CheckpointStore
from livemigrate.engine.discover import collection_namespaces, discover
from livemigrate.engine.ledger import VerificationLedger
from livemigrate.engine.mongo import writer
from livemigrate.engine.mongo.reader import in_batches, raw_collection
from livemigrate.engine.options import MigrationOptions, NamespaceFilter

log = logging.getLogger("livemigrate.engine.late")

LATE_PREFIX = "late:"


class PerCollectionCapture(Protocol):
    def watched(self) -> set[str]:
        """The namespaces whose streams are open (or were, until their collection was dropped)."""

    def open_stream(self, namespace: str) -> Any:
        """Open the namespace's stream at the present: the handle `add_stream` takes once it is copied."""

    def add_stream(self, namespace: str, stream: Any) -> None: ...

    def end_stream(self, namespace: str) -> None:
        """Its collection is gone from the source: deliver what the stream holds, then a drop."""


class LateCollections:
    def __init__(self, source: MongoClient[Any], target: MongoClient[Any], options: MigrationOptions,
                 checkpoints: CheckpointStore, ledger: VerificationLedger) -> None:
        self._source, self._target = source, target
        self._options = options
        self._checkpoints = checkpoints
        self._ledger = ledger
        self._last_look = time.monotonic()
        self._left_alone: set[str] = set()

    def due(self) -> bool:
        return time.monotonic() - self._last_look >= self._options.discover_seconds

    def catch_up(self, capture: PerCollectionCapture) -> list[str]:
        """Copy each collection the source has now and the capture does not watch; the ones added."""
        self._last_look = time.monotonic()
        watched = capture.watched()
        present = collection_namespaces(self._source, self._options.namespaces)
        for namespace in sorted(watched - set(present)):
            log.info("%s is no longer on the source: dropped on the destination after its last changes", namespace)
            capture.end_stream(namespace)
        new = [namespace for namespace in present if namespace not in watched and namespace not in self._left_alone]
        added = []
        for namespace in new:
            if self._copy(namespace, capture):
                added.append(namespace)
        return added

    def _copy(self, namespace: str, capture: PerCollectionCapture) -> bool:
        key = f"{LATE_PREFIX}{namespace}"
        ours = bool(self._checkpoints.load(LATE_PREFIX).get(key))
        if writer.non_empty_namespaces(self._target, [namespace]):
            if not (ours or self._options.drop_target):
                log.warning("%s was created on the source after the start, but the destination already holds "
                            "documents there: left alone (the verdict will compare it)", namespace)
                self._left_alone.add(namespace)
                return False
            writer.drop_namespaces(self._target, [namespace])
        specs = [spec for spec in discover(self._source, NamespaceFilter((namespace,))).copied
                 if spec.namespace == namespace]
        if not specs:  # dropped again meanwhile
            return False
        spec = specs[0]
        started = time.monotonic()
        stream = capture.open_stream(namespace)  # the start point: before the first document is read
        self._checkpoints.save({key: {"namespace": namespace, "started": time.time()}})
        self._ledger.mark_unusable(f"{namespace} was created on the source during the migration")
        writer.create_collection(self._target, spec)
        copied = 0
        for batch in in_batches(raw_collection(self._source, namespace).find(), self._options.batch_size):
            writer.insert_batch(self._target, namespace, batch)
            copied += len(batch)
        writer.build_indexes(self._target, namespace, spec.indexes)
        capture.add_stream(namespace, stream)  # its token is saved with the others from the next round on
        log.info("%s, created on the source during the migration: %d document(s) copied in %.1f s; its changes "
                 "replicate from now on", namespace, copied, time.monotonic() - started)
        return True
