"""Reading the source for the initial copy: `_id` ranges, and batches of raw BSON in `_id` order.

Documents stay raw BSON from the source socket to the target socket (RawBSONDocument): the engine
never decodes what it only forwards, which is most of what a copy costs in Python.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from queue import Full, Queue
from typing import Any

from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from pymongo import ASCENDING, MongoClient
from pymongo.collection import Collection

from livemigrate.engine.mongo.faults import resumable_reads, retry

RAW = CodecOptions(document_class=RawBSONDocument)

# BSON comparison brackets: values of one bracket sort together and `$gt`/`$lt` compare only within it.
_NUMBERS = (int, float)


@dataclass(frozen=True)
class IdRange:
    """[lower, upper) in `_id` order; None is unbounded. `typed` ranges may resume with `$gt`."""

    lower: Any = None
    upper: Any = None


def raw_collection(client: MongoClient[Any], namespace: str) -> Collection[RawBSONDocument]:
    database, name = namespace.split(".", 1)
    return client[database].get_collection(name, codec_options=RAW)


def _bracket(value: Any) -> str:
    return "number" if isinstance(value, _NUMBERS) and not isinstance(value, bool) else type(value).__name__


def _edge_id(client: MongoClient[Any], collection: Collection[Any], direction: int) -> Any:
    found = retry(client, f"reading the {'lowest' if direction == ASCENDING else 'highest'} _id of "
                          f"{collection.full_name}",
                  lambda: collection.find_one({}, {"_id": 1}, sort=[("_id", direction)]))
    return None if found is None else found["_id"]


def single_bracket(client: MongoClient[Any], namespace: str) -> bool:
    """True when every `_id` is of one comparison bracket — then ranges and `$gt` resumption are exact."""
    database, name = namespace.split(".", 1)
    collection = client[database][name]
    lowest, highest = _edge_id(client, collection, ASCENDING), _edge_id(client, collection, -1)
    return lowest is None or _bracket(lowest) == _bracket(highest)


def plan_ranges(client: MongoClient[Any], namespace: str, count: int, parts: int) -> list[IdRange]:
    """Split a single-bracket collection of about `count` documents into about `parts` ranges of similar
    size (`copy/initial_copy.range_counts` decides how many); one walk of the `_id` index per boundary."""
    if parts < 2 or count < 2 or not single_bracket(client, namespace):
        return [IdRange()]
    database, name = namespace.split(".", 1)
    collection = client[database][name]
    step = max(count // parts, 1)
    bounds: list[Any] = []
    for index in range(1, parts):
        found = retry(client, f"planning the copy's ranges of {namespace}",
                      lambda index=index: list(collection.find({}, {"_id": 1}).sort("_id", ASCENDING)  # type: ignore[misc]
                                               .skip(step * index).limit(1)))
        if found and (not bounds or found[0]["_id"] != bounds[-1]):
            bounds.append(found[0]["_id"])
    edges = [None, *bounds, None]
    return [IdRange(edges[index], edges[index + 1]) for index in range(len(edges) - 1)]


def read_batches(client: MongoClient[Any], namespace: str, id_range: IdRange, after: Any, has_after: bool,
                 batch_size: int, *, resumable: bool = True) -> Iterator[list[RawBSONDocument]]:
    """Batches of documents of the range in `_id` order, starting after `after` when resuming.

    A fault in the middle (a reset, a timeout, a stepdown: `faults.py`) opens the read again after the
    last `_id` handed on — exact when the range is `resumable` (its `_id`s of one comparison bracket);
    otherwise from where this read began, and what is read twice is skipped by the writer."""
    collection = raw_collection(client, namespace)

    def open_from(position: tuple[bool, Any]) -> Iterator[list[RawBSONDocument]]:
        resuming, last = position
        bounds: dict[str, Any] = {}
        if resuming:
            bounds["$gt"] = last
        elif id_range.lower is not None:
            bounds["$gte"] = id_range.lower
        if id_range.upper is not None:
            bounds["$lt"] = id_range.upper
        query = {"_id": bounds} if bounds else {}
        return in_batches(collection.find(query).sort("_id", ASCENDING).batch_size(batch_size), batch_size)

    start = (has_after, after)
    return resumable_reads(client, f"reading {namespace} for the copy", open_from,
                           lambda batch: (True, batch[-1]["_id"]) if resumable else start, start)


# A batch also ends once it holds this many bytes. Counted in documents alone, a batch of a thousand
# documents of up to 16 MiB each could hold 16 GiB, and the read-ahead (`prefetch`) keeps three
# batches. 16 MiB is what a server sends in one reply, and an insert of that size is still one
# message (MongoDB takes up to 48 MB).
BATCH_BYTES = 16 * 1024**2


def in_batches(documents: Iterable[RawBSONDocument], batch_size: int,
               max_bytes: int = BATCH_BYTES) -> Iterator[list[RawBSONDocument]]:
    """`documents` in lists of `batch_size`, or fewer where they reach `max_bytes` first."""
    batch: list[RawBSONDocument] = []
    size = 0
    for document in documents:
        batch.append(document)
        size += len(document.raw)
        if len(batch) >= batch_size or size >= max_bytes:
            yield batch
            batch = []
            size = 0
    if batch:
        yield batch


class _End:
    """Marks the end of a prefetched stream, carrying the reader's error if it failed."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


def prefetch(batches: Iterator[list[RawBSONDocument]], depth: int = 2) -> Iterator[list[RawBSONDocument]]:
    """Read ahead on a thread of its own, so that the source is read while the target writes.

    Without it a copy worker alternates between waiting on the source and waiting on the target;
    with it the two overlap and the copy runs at the pace of the slower end.
    """
    queue: Queue[list[RawBSONDocument] | _End] = Queue(maxsize=depth)
    abandoned = threading.Event()

    def produce() -> None:
        try:
            for batch in batches:
                while not abandoned.is_set():
                    try:
                        queue.put(batch, timeout=0.1)
                        break
                    except Full:
                        continue
                if abandoned.is_set():
                    return
            queue.put(_End())
        except BaseException as error:  # handed to the consumer, which raises it
            queue.put(_End(error))

    threading.Thread(target=produce, name="copy-read", daemon=True).start()
    try:
        while True:
            item = queue.get()
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            yield item
    finally:
        abandoned.set()
