"""Cursors the mongos emulator (`tests/mongos.py`) holds for its clients: a merge of the shards' cursors
(sorted across shards when the find has a sort, shard after shard when not; skip and limit applied
after the merge; the documents a shard holds but does not own — the copies of a chunk being migrated —
left out, as a shard's ownership filter leaves out orphans), or a list the emulator made itself. Like
MongoDB's, they outlive the client connection that opened them; a `getMore` on one that is gone is
answered CursorNotFound.
"""

from __future__ import annotations

import contextlib
import functools
import heapq
import itertools
import secrets
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol

import bson
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from tests.mongos_values import sort_comparator
from tests.mongos_wire import CODEC, CommandError

REPLY_BUDGET = 16 * 1024 * 1024  # bytes of documents in one batch, as MongoDB fills a getMore


class Cursor(Protocol):
    namespace: str

    def next_batch(self, size: int | None) -> list[dict[str, Any]]: ...

    @property
    def exhausted(self) -> bool: ...

    def close(self) -> None: ...


def _fill(pull: Callable[[], dict[str, Any] | None], size: int | None) -> list[dict[str, Any]]:
    """Documents from `pull` up to `size` of them, or up to the reply budget without a size."""
    batch: list[dict[str, Any]] = []
    used = 0
    while size is None or len(batch) < size:
        document = pull()
        if document is None:
            break
        batch.append(document)
        used += len(bson.encode(document, codec_options=CODEC))
        if used >= REPLY_BUDGET:
            break
    return batch


class ShardCursor:
    """A cursor one shard holds, read lazily with getMore."""

    def __init__(self, client: MongoClient[Any], db: str, reply: Mapping[str, Any], shard: str) -> None:
        cursor = reply["cursor"]
        self.shard = shard
        self._db = client[db]
        self._collection = str(cursor.get("ns", f"{db}.")).split(".", 1)[1]
        self._id = int(cursor.get("id", 0))
        self._buffer: deque[dict[str, Any]] = deque(cursor.get("firstBatch", []))

    def peek(self) -> dict[str, Any] | None:
        while not self._buffer and self._id:
            reply = self._db.command({"getMore": self._id, "collection": self._collection, "batchSize": 1000},
                                     codec_options=CODEC)
            self._id = int(reply["cursor"].get("id", 0))
            self._buffer.extend(reply["cursor"].get("nextBatch", []))
        return self._buffer[0] if self._buffer else None

    def pop(self) -> dict[str, Any] | None:
        document = self.peek()
        if document is not None:
            self._buffer.popleft()
        return document

    def close(self) -> None:
        if self._id:
            with contextlib.suppress(PyMongoError):
                self._db.command({"killCursors": self._collection, "cursors": [self._id]})
            self._id = 0


class MergeCursor:
    """The shards' cursors as one: `keep(shard, document)` says whether that shard owns the document;
    `strip` names fields added for the sort or the ownership test, removed before the client sees them."""

    def __init__(self, namespace: str, parts: list[ShardCursor], sort: Mapping[str, Any] | None, skip: int,
                 limit: int | None, keep: Callable[[str, dict[str, Any]], bool] | None = None,
                 strip: tuple[str, ...] = ()) -> None:
        self.namespace = namespace
        self._parts = parts
        self._keep = keep
        self._strip = strip
        self._documents = self._merged(sort)
        self._ahead: dict[str, Any] | None = None
        self._done = False
        self._remaining: int | None = None
        for _ in range(skip):
            if self._next() is None:
                break
        self._remaining = limit if limit else None

    def _owned(self, part: ShardCursor) -> Iterator[dict[str, Any]]:
        while (document := part.pop()) is not None:
            if self._keep is None or self._keep(part.shard, document):
                yield document

    def _merged(self, sort: Mapping[str, Any] | None) -> Iterator[dict[str, Any]]:
        streams = [self._owned(part) for part in self._parts]
        if not sort:
            return itertools.chain.from_iterable(streams)
        key = functools.cmp_to_key(sort_comparator(sort))
        return heapq.merge(*streams, key=key)

    def _peek(self) -> dict[str, Any] | None:
        """The next document, read ahead (a sorted merge already holds one from every shard)."""
        if self._ahead is None and not self._done:
            self._ahead = next(self._documents, None)
            self._done = self._ahead is None
        return self._ahead

    def _next(self) -> dict[str, Any] | None:
        if self._remaining == 0 or self._peek() is None:
            return None
        document, self._ahead = self._ahead, None
        if self._remaining is not None:
            self._remaining -= 1
        for name in self._strip:
            document.pop(name, None)
        return document

    def next_batch(self, size: int | None) -> list[dict[str, Any]]:
        return _fill(self._next, size)

    @property
    def exhausted(self) -> bool:
        return self._remaining == 0 or self._peek() is None

    def close(self) -> None:
        self._done = True
        for part in self._parts:
            part.close()


class ListCursor:
    """Documents the emulator already has (config metadata, a merged aggregation's results)."""

    def __init__(self, namespace: str, documents: list[dict[str, Any]]) -> None:
        self.namespace = namespace
        self._documents = deque(documents)

    def next_batch(self, size: int | None) -> list[dict[str, Any]]:
        return _fill(lambda: self._documents.popleft() if self._documents else None, size)

    @property
    def exhausted(self) -> bool:
        return not self._documents

    def close(self) -> None:
        self._documents.clear()


class CursorRegistry:
    """The emulator's open cursors by id (ids of its own, never a shard's)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cursors: dict[int, Any] = {}

    def add(self, cursor: Any) -> int:
        with self._lock:
            while True:
                cursor_id = secrets.randbits(62) + 1
                if cursor_id not in self._cursors:
                    self._cursors[cursor_id] = cursor
                    return cursor_id

    def get(self, cursor_id: int) -> Any:
        with self._lock:
            cursor = self._cursors.get(cursor_id)
        if cursor is None:
            raise CommandError(43, f"cursor id {cursor_id} not found")
        return cursor

    def remove(self, cursor_id: int) -> Any | None:
        with self._lock:
            return self._cursors.pop(cursor_id, None)

    def close_all(self) -> None:
        with self._lock:
            cursors, self._cursors = list(self._cursors.values()), {}
        for cursor in cursors:
            with contextlib.suppress(Exception):
                cursor.close()
