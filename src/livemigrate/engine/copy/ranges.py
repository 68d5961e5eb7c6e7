"""A range of a collection: the unit the copy is planned, checkpointed and shared out in, and the loop
that copies one — in the coordinator's threads or in a worker process alike.

A range is an interval of `_id`s (`mongo/reader.IdRange`), or, for a collection a sharded source shards
on a ranged key, an interval of its shard key (`mongo/key_ranges.KeyRange`, planned along the source's
chunks: `chunks.py`) — then it also remembers its shard, and its position is the last (key…, `_id`)
copied. A checkpoint saved before key ranges existed holds neither: it reads as an `_id` range."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from bson.raw_bson import RawBSONDocument
from pymongo import MongoClient

from livemigrate.engine.checkpoints import CheckpointStore, Document
from livemigrate.engine.mongo import writer
from livemigrate.engine.mongo.key_ranges import KeyRange, read_key_batches
from livemigrate.engine.mongo.reader import IdRange, prefetch, read_batches

log = logging.getLogger("livemigrate.engine")

def load_ranges(checkpoints: CheckpointStore) -> list[RangeState]:
    """Every range of the plan as the checkpoints have it now, in key order."""
    return sorted((RangeState.from_document(document) for document in checkpoints.load("range:").values()),
                  key=lambda state: state.key)


def spread_over_shards(states: list[RangeState]) -> list[RangeState]:
    """The ranges in the order to copy them: one of each shard in turn (in plan order within a shard), so
    that the ranges copied at once are read from different shards; ranges of no shard count as one more."""
    by_shard: dict[str | None, list[RangeState]] = {}
    for state in states:
        by_shard.setdefault(state.shard, []).append(state)
    rounds = max((len(held) for held in by_shard.values()), default=0)
    return [held[turn] for turn in range(rounds) for held in by_shard.values() if turn < len(held)]


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
    key_range: KeyRange | None = None  # a shard key interval; None: `id_range`
    shard: str | None = None  # the source's shard it is read from, where one holds it all
    last_key: list[Any] | None = None  # a key range's position: the last (key…, `_id`) copied

    @property
    def key(self) -> str:
        return f"range:{self.namespace}:{self.index:04d}"

    def to_document(self) -> Document:
        document = {"namespace": self.namespace, "index": self.index, "lower": self.id_range.lower,
                    "upper": self.id_range.upper, "resumable": self.resumable, "copied": self.copied,
                    "last": self.last_id, "hasLast": self.has_last, "done": self.done}
        if self.key_range is not None:
            document |= {"keyRange": self.key_range.to_document(), "lastKey": self.last_key}
        return document | ({"shard": self.shard} if self.shard is not None else {})

    @classmethod
    def from_document(cls, document: Document) -> RangeState:
        key_range = document.get("keyRange")
        return cls(document["namespace"], document["index"], IdRange(document["lower"], document["upper"]),
                   document["resumable"], document["copied"], document["last"], document["hasLast"], document["done"],
                   KeyRange.from_document(key_range) if key_range is not None else None, document.get("shard"),
                   list(document["lastKey"]) if document.get("lastKey") is not None else None)

    def describe(self) -> str:
        """The range as a log line names it: its bounds, and its shard when it has one."""
        where = f" on {self.shard}" if self.shard else ""
        if self.key_range is None:
            lower, upper = self.id_range.lower, self.id_range.upper
            return f"_id [{'MinKey' if lower is None else repr(lower)}, {'MaxKey' if upper is None else repr(upper)}){where}"
        return f"key [{_bound(self.key_range.lower, 'MinKey')}, {_bound(self.key_range.upper, 'MaxKey')}){where}"


def copy_range(source: MongoClient[Any], target: MongoClient[Any], state: RangeState, batch_size: int,
               stopping: EventLike, record: Record | None,
               after_batch: Callable[[RangeState, int], None]) -> None:
    """Copy one range from where its state says, batch by batch: each batch recorded (`record`, before
    it is written), written, and handed to `after_batch` with how many it held, which checkpoints it."""
    has_after = state.has_last and state.resumable
    if state.has_last and not state.resumable:
        log.info("%s: range %d has mixed _id types and restarts from its beginning (duplicates are skipped)",
                 state.namespace, state.index)
    if state.key_range is not None:
        batches = read_key_batches(source, state.namespace, state.key_range,
                                   state.last_key if state.has_last else None, batch_size)
    else:
        batches = read_batches(source, state.namespace, state.id_range, state.last_id, has_after, batch_size,
                               resumable=state.resumable)
    for batch in prefetch(batches):
        if record is not None:
            record(state.namespace, batch)
        writer.insert_batch(target, state.namespace, batch)
        state.copied += len(batch)
        state.last_id, state.has_last = batch[-1]["_id"], True
        if state.key_range is not None:
            state.last_key = state.key_range.position_of(batch[-1])
        after_batch(state, len(batch))
        if stopping.is_set():
            return
    state.done = True
    after_batch(state, 0)


def _bound(bound: tuple[Any, ...] | None, edge: str) -> str:
    """A key bound as a log names it: `'m'` for one field, `('m', MinKey)` for several; `edge` when unbounded."""
    if bound is None:
        return edge
    shown = [type(value).__name__ if type(value).__name__ in ("MinKey", "MaxKey") else repr(value) for value in bound]
    return shown[0] if len(shown) == 1 else "(" + ", ".join(shown) + ")"
