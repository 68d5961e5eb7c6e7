"""A range of a collection's `_id`s: the unit the copy is planned, checkpointed and shared out in,
and the loop that copies one — in the coordinator's threads or in a worker process alike."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from bson.raw_bson import RawBSONDocument
from pymongo import MongoClient

from livemigrate.engine.checkpoints import CheckpointStore, Document
from livemigrate.engine.mongo import writer
from livemigrate.engine.mongo.reader import IdRange, prefetch, read_batches

log = logging.getLogger("livemigrate.engine")

def load_ranges(checkpoints: CheckpointStore) -> list[RangeState]:
    """Every range of the plan as the checkpoints have it now, in key order."""
    return sorted((RangeState.from_document(document) for document in checkpoints.load("range:").values()),
                  key=lambda state: state.key)


Record = Callable[[str, list[RawBSONDocument]], None]


class EventLike(Protocol):
    """A `threading.Event` or a `multiprocessing` one: all a copy loop asks of its stop signal."""

    def is_set(self) -> bool: ...


@dataclass
class RangeState:
    namespace: str
    index: int
    id_range: IdRange
    resumable: bool
    copied: int = 0
    last_id: Any = None
    has_last: bool = False
    done: bool = False

    @property
    def key(self) -> str:
        return f"range:{self.namespace}:{self.index:04d}"

    def to_document(self) -> Document:
        return {"namespace": self.namespace, "index": self.index, "lower": self.id_range.lower,
                "upper": self.id_range.upper, "resumable": self.resumable, "copied": self.copied,
                "last": self.last_id, "hasLast": self.has_last, "done": self.done}

    @classmethod
    def from_document(cls, document: Document) -> RangeState:
        return cls(document["namespace"], document["index"], IdRange(document["lower"], document["upper"]),
                   document["resumable"], document["copied"], document["last"], document["hasLast"], document["done"])


def copy_range(source: MongoClient[Any], target: MongoClient[Any], state: RangeState, batch_size: int,
               stopping: EventLike, record: Record | None,
               after_batch: Callable[[RangeState, int], None]) -> None:
    """Copy one range from where its state says, batch by batch: each batch recorded (`record`, before
    it is written), written, and handed to `after_batch` with how many it held, which checkpoints it."""
    has_after = state.has_last and state.resumable
    if state.has_last and not state.resumable:
        log.info("%s: range %d has mixed _id types and restarts from its beginning (duplicates are skipped)",
                 state.namespace, state.index)
    for batch in prefetch(read_batches(source, state.namespace, state.id_range, state.last_id, has_after, batch_size,
                                       resumable=state.resumable)):
        if record is not None:
            record(state.namespace, batch)
        writer.insert_batch(target, state.namespace, batch)
        state.copied += len(batch)
        state.last_id, state.has_last = batch[-1]["_id"], True
        after_batch(state, len(batch))
        if stopping.is_set():
            return
    state.done = True
    after_batch(state, 0)


