"""The copy of a sharded source, planned along its chunks.

A sharded cluster's data is already cut into natural parts: each sharded collection's chunks
(`config.chunks`: a shard key interval [min, max) and the shard that owns it). A collection the source
shards on a **ranged key** (fields of 1) is copied in ranges made of its chunks: contiguous chunks of one
shard grouped, so that there are about as many ranges as `initial_copy.range_counts` asks for — more when
the chunks lie in more runs of one shard than that (whole rounds of what it asks for: 8 ranges, not 6,
for 4 workers, so that no worker idles through the last round), since no range ever spans two shards:
each is read
through mongos from the one shard that owns it (`mongo/key_ranges.py`), and several worker processes
and migration hosts (`shared.py`) read different shards at once. When a run of chunks is to give more
ranges than it has chunks (a cluster of a few large chunks), its chunks are cut at their own key values
(`key_ranges.split_points`), each part still on its shard.

Chunks carry no document counts: a chunk's size is estimated as its shard's count of the collection
(`$collStats` through mongos: one answer per shard) over the shard's chunks of it. Those per-shard counts
are also each shard's total in the copy's progress.

A collection sharded on a **hashed key** keeps `_id` ranges: its chunks are intervals of the key's hash,
which a query filter cannot name — MongoDB reads such a chunk with `hint` on the hashed index and `min`/
`max` bounds of hash values, which neither mongos' targeting nor the servers the tests run on (nx-27017
knows no `min`/`max`) would follow; its `_id` ranges read every shard, and its progress is not told per
shard. An **unsharded** collection of a sharded source lives on its database's primary shard: its `_id`
ranges are that shard's.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bson.max_key import MaxKey
from bson.min_key import MinKey
from pymongo import MongoClient
from pymongo.errors import OperationFailure

from livemigrate.engine.mongo import topology
from livemigrate.engine.mongo.faults import retry
from livemigrate.engine.mongo.key_ranges import Bound, KeyRange, split_points, value_span

log = logging.getLogger("livemigrate.engine")


@dataclass(frozen=True)
class Chunk:
    lower: Bound | None  # None: MinKey on every field
    upper: Bound | None  # None: MaxKey on every field
    shard: str


@dataclass(frozen=True)
class KeyPlan:
    """A collection's ranges planned along its chunks, each with its shard, and each shard's count."""

    ranges: list[tuple[KeyRange, str | None]]
    shard_totals: dict[str, int]
    chunks: int


@dataclass(frozen=True)
class SourceShape:
    """What the copy's plan needs of a sharded source: each sharded collection's key, each database's
    primary shard. Empty for a replica set."""

    sharded: bool = False
    keys: dict[str, topology.ShardKey] = field(default_factory=dict)
    primaries: dict[str, str] = field(default_factory=dict)

    @classmethod
    def read(cls, source: MongoClient[Any]) -> SourceShape:
        if not topology.is_mongos(source):
            return cls()
        databases = retry(source, "reading the databases' primary shards",
                          lambda: list(source.config["databases"].find({}, {"primary": 1})))
        return cls(True, topology.shard_keys(source), {str(entry["_id"]): str(entry["primary"])
                                                       for entry in databases if entry.get("primary")})

    def ranged_key(self, namespace: str) -> tuple[str, ...] | None:
        """The fields of the collection's shard key when it is ranged (every field 1), else None."""
        key = self.keys.get(namespace)
        if key is None or any(isinstance(kind, str) or kind != 1 for _, kind in key.pattern):
            return None
        return key.fields

    def home(self, namespace: str) -> str | None:
        """The shard holding a whole collection: an unsharded one's primary shard (None when sharded)."""
        if not self.sharded or namespace in self.keys:
            return None
        return self.primaries.get(namespace.split(".", 1)[0])


def _bound(values: dict[str, Any], fields: Sequence[str], edge: type) -> Bound | None:
    bound = tuple(values.get(name) for name in fields)
    return None if all(isinstance(value, edge) for value in bound) else bound


def read_chunks(source: MongoClient[Any], namespace: str, fields: Sequence[str]) -> list[Chunk]:
    """The collection's chunks in key order, their bounds on `fields`."""
    return [Chunk(_bound(dict(chunk["min"]), fields, MinKey), _bound(dict(chunk["max"]), fields, MaxKey),
                  str(chunk["shard"])) for chunk in topology.chunks_of(source, namespace)]


def shard_counts(source: MongoClient[Any], namespace: str) -> dict[str, int] | None:
    """Each shard's count of the collection (`$collStats`), or None where the source does not say."""
    database, name = namespace.split(".", 1)
    try:
        found = retry(source, f"counting {namespace} on each shard", lambda: list(
            source[database][name].aggregate([{"$collStats": {"count": {}}}])))
    except OperationFailure as error:
        log.info("%s: no count per shard (%s): the chunks are taken as equal", namespace, error)
        return None
    return {str(entry["shard"]): int(entry.get("count") or 0) for entry in found if entry.get("shard")}


def groups(sizes: Sequence[float], count: int) -> list[range]:
    """`count` runs of consecutive items (count <= len(sizes)), of about equal total size."""
    total = sum(sizes)
    cuts: list[int] = []
    reached = 0.0
    for position, size in enumerate(sizes[:-1]):
        reached += size
        left = count - 1 - len(cuts)
        if left and (reached >= total * (len(cuts) + 1) / count or len(sizes) - position - 1 == left):
            cuts.append(position + 1)
    edges = [0, *cuts, len(sizes)]
    return [range(edges[index], edges[index + 1]) for index in range(len(edges) - 1)]


def apportion(sizes: Sequence[float], total: int) -> list[int]:
    """`total` parts shared out in proportion to `sizes`, one at least each (so more than `total` when
    there are more sizes): whole quotas first, the rest to the largest remainders."""
    whole = sum(sizes)
    quotas = [total * size / whole if whole else total / len(sizes) for size in sizes]
    shares = [max(1, int(quota)) for quota in quotas]
    by_remainder = sorted(range(len(sizes)), key=lambda index: shares[index] - quotas[index])
    for index in by_remainder[:max(0, total - sum(shares))]:
        shares[index] += 1
    return shares


def plan_along_chunks(source: MongoClient[Any], namespace: str, fields: tuple[str, ...], parts: int) -> KeyPlan:
    """About `parts` ranges — or, when the chunks lie in more runs of one shard than that, whole rounds of
    `parts` with one run at least to each range — none spanning two shards (see the module)."""
    chunks = read_chunks(source, namespace, fields)
    if not chunks:  # a catalog being changed under us: the whole key space, on no known shard
        return KeyPlan([(KeyRange(fields), None)], {}, 0)
    counts = shard_counts(source, namespace)
    held = Counter(chunk.shard for chunk in chunks)
    if counts is None:
        total = retry(source, f"counting {namespace}", source[namespace.split(".", 1)[0]][
            namespace.split(".", 1)[1]].estimated_document_count)
        counts = {shard: total * number // len(chunks) for shard, number in held.items()}
    sizes = [counts.get(chunk.shard, 0) / held[chunk.shard] for chunk in chunks]
    span = value_span(source, namespace, fields[0])  # the types the filters look for (`KeyRange.span`)
    runs: list[list[int]] = []
    for position, chunk in enumerate(chunks):
        if runs and chunks[runs[-1][-1]].shard == chunk.shard:
            runs[-1].append(position)
        else:
            runs.append([position])
    # More runs than ranges asked for: whole rounds of the copy's parallelism (8 ranges, not 6, for 4
    # workers), so that no round ends with workers idle while the last ranges are copied.
    wanted = parts if len(runs) <= parts else math.ceil(len(runs) / parts) * parts
    ranges: list[tuple[KeyRange, str | None]] = []
    for run, share in zip(runs, apportion([sum(sizes[position] for position in run) for run in runs], wanted),
                          strict=True):
        shard = chunks[run[0]].shard
        if share <= len(run):
            for group in groups([sizes[position] for position in run], share):
                first, last = chunks[run[group.start]], chunks[run[group.stop - 1]]
                ranges.append((KeyRange(fields, first.lower, last.upper, span), shard))
            continue
        pieces_of = apportion([sizes[position] for position in run], share)
        for position, pieces in zip(run, pieces_of, strict=True):  # fewer chunks than ranges: cut at key values
            chunk = chunks[position]
            points = split_points(source, namespace, KeyRange(fields, chunk.lower, chunk.upper, span),
                                  int(sizes[position]), pieces)
            edges: list[Bound | None] = [chunk.lower, *points, chunk.upper]
            ranges += [(KeyRange(fields, edges[index], edges[index + 1], span), shard)
                       for index in range(len(edges) - 1)]
    return KeyPlan(ranges, {shard: counts.get(shard, 0) for shard in held}, len(chunks))
