"""The sharding catalog of the mongos emulator (`tests/mongos.py`), kept in memory: shards, databases and
their primary shard, sharded collections with their shard key and chunks, the balancer's state, and
the `config` database documents built from them in MongoDB 5.0+ shapes (as MongoDB 7.0 writes them):

- `config.shards`: `{_id, host, state: 1, topologyTime}`;
- `config.databases`: `{_id, primary, version: {uuid, timestamp, lastMod}}` (and `partitioned: true`
  before 6.0, which dropped it);
- `config.collections`: `{_id: "db.coll", lastmodEpoch, lastmod, timestamp, uuid, key, unique, noBalance}`;
- `config.chunks`: `{_id, uuid, min, max, shard, lastmod, onCurrentShardSince, history}`, keyed by the
  collection's `uuid` (5.0 replaced the `ns` field with it);
- `config.settings`: the balancer's `{_id: "balancer", mode, stopped}`; `config.version`: `{_id: 1, clusterId}`.

It also answers the routing questions: which chunk (and so shard) owns a shard key value, which shards
a query filter can be limited to, and whether a filter holds the full shard key or an exact `_id`.
Ranged keys compare in BSON order (`mongos_values.order_key`); a hashed field is placed by its
64-bit hash (`mongos_values.hashed`).
"""

from __future__ import annotations

import datetime
import itertools
import re
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bson import Binary, Int64, ObjectId, Timestamp
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.regex import Regex

from tests.mongos_targeting import targeted
from tests.mongos_values import hashed, order_key, path_value
from tests.mongos_wire import CommandError

_MAX_TARGET_POINTS = 1000  # a filter with more shard key combinations than this is broadcast


class Clock:
    """Cluster times for the catalog and the change log: Timestamps that only go forward."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = Timestamp(0, 0)

    def tick(self) -> Timestamp:
        with self._lock:
            now = int(time.time())
            self._last = Timestamp(now, 1) if now > self._last.time else Timestamp(self._last.time,
                                                                                   self._last.inc + 1)
            return self._last


@dataclass
class Chunk:
    min: dict[str, Any]
    max: dict[str, Any]
    shard: str
    lastmod: Timestamp
    since: Timestamp
    history: list[dict[str, Any]]
    id: ObjectId = field(default_factory=ObjectId)


@dataclass
class ShardedCollection:
    namespace: str
    key: dict[str, Any]
    unique: bool
    uuid: uuid.UUID
    timestamp: Timestamp
    chunks: list[Chunk]
    epoch: ObjectId = field(default_factory=ObjectId)
    lastmod: datetime.datetime = field(default_factory=lambda: datetime.datetime.now(datetime.UTC).replace(tzinfo=None))
    major: int = 1

    @property
    def fields(self) -> list[str]:
        return list(self.key)

    @property
    def hashed_field(self) -> str | None:
        return next((name for name, kind in self.key.items() if kind == "hashed"), None)

    def values_of(self, document: Mapping[str, Any]) -> dict[str, Any]:
        """The shard key's values in a document (a missing field counts as null, as MongoDB places it)."""
        return {name: path_value(document, name) for name in self.fields}

    def point(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Shard key values as the chunks bound them: the hashed field by its hash."""
        return {name: hashed(values.get(name)) if kind == "hashed" else values.get(name)
                for name, kind in self.key.items()}

    def _position(self, bound: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(order_key(bound.get(name)) for name in self.fields)

    def chunk_at(self, point: Mapping[str, Any]) -> Chunk:
        where = self._position(point)
        for chunk in self.chunks:
            if self._position(chunk.min) <= where < self._position(chunk.max):
                return chunk
        return self.chunks[-1]  # only MaxKey itself lands past the last chunk's exclusive max

    def shard_of(self, document: Mapping[str, Any]) -> str:
        return self.chunk_at(self.point(self.values_of(document))).shard

    def owners(self, shard_order: list[str]) -> list[str]:
        owning = {chunk.shard for chunk in self.chunks}
        return [shard for shard in shard_order if shard in owning]

    def document_key(self, document: Mapping[str, Any]) -> dict[str, Any]:
        """A change event's documentKey for this collection: the shard key's fields, then `_id`."""
        key = {name: path_value(document, name) for name in self.fields}
        if "_id" not in key:
            key["_id"] = document.get("_id")
        return key

    # --- what a query filter says about the shard key ----------------------------------------------

    def exact_key(self, query: Mapping[str, Any]) -> dict[str, Any] | None:
        """The full shard key when the filter has an equality on every field of it, else None."""
        values: dict[str, Any] = {}
        for name in self.fields:
            found = _equalities(query, name, exact=True)
            if found is None:
                return None
            values[name] = found[0]
        return values

    def shards_for(self, query: Mapping[str, Any], shard_order: list[str]) -> list[str]:
        """The shards a filter must reach: the owners of each shard key value it allows when it names
        them all (equalities or `$in` on every field), else those its bounds reach (`mongos_targeting`)."""
        choices = [_equalities(query, name, exact=False) for name in self.fields]
        if any(choice is None for choice in choices) or \
                _product_size([len(choice or []) for choice in choices]) > _MAX_TARGET_POINTS:
            if self.key[self.fields[0]] == "hashed":
                return self.owners(shard_order)
            return targeted(self.fields, self.chunks, query, shard_order, self.owners(shard_order))
        wanted = {self.chunk_at(self.point(dict(zip(self.fields, combination, strict=True)))).shard
                  for combination in itertools.product(*[choice or [] for choice in choices])}
        return [shard for shard in shard_order if shard in wanted]


def _product_size(sizes: Iterable[int]) -> int:
    total = 1
    for size in sizes:
        total *= size
    return total


def _is_operator_document(value: Any) -> bool:
    return isinstance(value, Mapping) and bool(value) and all(str(name).startswith("$") for name in value)


def _targetable(value: Any) -> bool:
    return not isinstance(value, list | Regex | re.Pattern) and not _is_operator_document(value)


def _equalities(query: Mapping[str, Any], name: str, exact: bool) -> list[Any] | None:
    """The values a filter allows for one field when it lists them (`{f: v}`, `{f: {$eq: v}}`, and
    unless `exact` also `{f: {$in: [...]}}`), looking into a top-level `$and`; None otherwise."""
    if name in query:
        condition = query[name]
        if _is_operator_document(condition):
            if "$eq" in condition and _targetable(condition["$eq"]):
                return [condition["$eq"]]
            if not exact and "$in" in condition and all(_targetable(item) for item in condition["$in"]):
                return list(condition["$in"])
            return None
        return [condition] if _targetable(condition) else None
    head, _, rest = name.partition(".")
    if rest and isinstance(query.get(head), Mapping) and not _is_operator_document(query[head]):
        inner = query[head]
        found = path_value(inner, rest)
        if found is not None or _has_path(inner, rest):
            return [found] if _targetable(found) else None
    for part in query.get("$and", []) or []:
        if isinstance(part, Mapping):
            found_in_part = _equalities(part, name, exact)
            if found_in_part is not None:
                return found_in_part
    return None


def _has_path(document: Mapping[str, Any], path: str) -> bool:
    current: Any = document
    for part in path.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return False
        current = current[part]
    return True


def exact_id(query: Mapping[str, Any]) -> bool:
    """Whether the filter has an equality on `_id` (what lets a single write go without the shard key)."""
    found = _equalities(query, "_id", exact=True)
    return found is not None


@dataclass
class DatabaseEntry:
    name: str
    primary: str
    uuid: uuid.UUID
    timestamp: Timestamp
    last_mod: int = 1


class Catalog:
    """Everything a config server would hold for the emulator; one lock guards it."""

    def __init__(self, shard_hosts: Mapping[str, str], version: tuple[int, int]) -> None:
        self.lock = threading.RLock()
        self.clock = Clock()
        self.version = version
        self.shard_hosts = dict(shard_hosts)
        self.shard_order = list(shard_hosts)
        self.topology_time = self.clock.tick()
        self.cluster_id = ObjectId()
        self.databases: dict[str, DatabaseEntry] = {}
        self.collections: dict[str, ShardedCollection] = {}
        self.index_keys: dict[str, list[dict[str, Any]]] = {}  # keys of createIndexes sent through the emulator
        self.balancer_mode = "full"
        self.in_balancer_round = False
        self.balancer_rounds = 0
        self.round_ended = threading.Condition(self.lock)

    # --- databases --------------------------------------------------------------------------------

    def add_database(self, name: str, primary: str | None = None) -> DatabaseEntry:
        with self.lock:
            if name in self.databases:
                return self.databases[name]
            if primary is None:  # the shard holding the fewest databases, as MongoDB picks one
                held = {shard: 0 for shard in self.shard_order}
                for entry in self.databases.values():
                    held[entry.primary] += 1
                primary = min(self.shard_order, key=lambda shard: held[shard])
            if primary not in self.shard_hosts:
                raise CommandError(70, f"Shard {primary} not found")
            entry = DatabaseEntry(name, primary, uuid.uuid4(), self.clock.tick())
            self.databases[name] = entry
            return entry

    def drop_database(self, name: str) -> list[str]:
        with self.lock:
            self.databases.pop(name, None)
            dropped = [namespace for namespace in self.collections if namespace.split(".", 1)[0] == name]
            for namespace in dropped:
                del self.collections[namespace]
            return dropped

    # --- sharded collections ----------------------------------------------------------------------

    def sharded(self, namespace: str) -> ShardedCollection | None:
        with self.lock:
            return self.collections.get(namespace)

    def shard_collection(self, namespace: str, key: Mapping[str, Any], unique: bool, empty: bool,
                         primary: str) -> ShardedCollection:
        """Registers a sharded collection and its first chunks: an empty collection with a hashed key
        is pre-split across every shard (two chunks a shard before 7.2, one from 7.2 on); any other
        starts as one chunk on the database's primary shard."""
        key = dict(key)
        if not key or any(kind not in (1, 1.0, "hashed") for kind in key.values()):
            raise CommandError(72, f"Unsupported shard key pattern {key}. Pattern must either be a single "
                                   "hashed field, or a list of ascending fields")
        if list(key.values()).count("hashed") > 1:
            raise CommandError(72, "A shard key pattern cannot contain more than one hashed field")
        if unique and "hashed" in key.values():
            raise CommandError(72, "hashed shard keys cannot be declared unique.")
        with self.lock:
            existing = self.collections.get(namespace)
            if existing is not None:
                if existing.key == key and existing.unique == unique:
                    return existing
                raise CommandError(23, f"sharding already enabled for collection {namespace} with options "
                                       f"{{key: {existing.key}, unique: {existing.unique}}}")
            now = self.clock.tick()
            collection = ShardedCollection(namespace, key, unique, uuid.uuid4(), now, [])
            lows = {name: MinKey() for name in key}
            highs = {name: MaxKey() for name in key}
            first = next(iter(key))
            if empty and key[first] == "hashed":
                per_shard = 2 if self.version < (7, 2) else 1
                count = per_shard * len(self.shard_order)
                points = [-2 ** 63 + index * (2 ** 64 // count) for index in range(1, count)]
                bounds = [lows, *[{name: Int64(point) if name == first else MinKey() for name in key}
                                  for point in points], highs]
                for index in range(count):
                    shard = self.shard_order[index * len(self.shard_order) // count]
                    collection.chunks.append(self._new_chunk(bounds[index], bounds[index + 1], shard,
                                                             Timestamp(1, index), now))
            else:
                collection.chunks.append(self._new_chunk(lows, highs, primary, Timestamp(1, 0), now))
            self.collections[namespace] = collection
            return collection

    @staticmethod
    def _new_chunk(low: dict[str, Any], high: dict[str, Any], shard: str, version: Timestamp,
                   now: Timestamp) -> Chunk:
        return Chunk(dict(low), dict(high), shard, version, now, [{"validAfter": now, "shard": shard}])

    def split(self, namespace: str, middle: Mapping[str, Any]) -> tuple[Chunk, Chunk]:
        """Splits the chunk holding `middle` (shard key values as the chunks bound them: a hashed field by
        its hash, as the `split` command takes it) into [min, middle) and [middle, max)."""
        with self.lock:
            collection = self._require(namespace)
            point = {name: middle.get(name) for name in collection.fields}
            chunk = collection.chunk_at(point)
            if collection._position(point) == collection._position(chunk.min):
                raise CommandError(2, f"cannot split chunk {chunk.min} -> {chunk.max} at its own min")
            minor = max(piece.lastmod.inc for piece in collection.chunks) + 1
            upper = self._new_chunk(point, chunk.max, chunk.shard, Timestamp(collection.major, minor),
                                    chunk.since)
            chunk.max = dict(point)
            chunk.lastmod = Timestamp(collection.major, minor + 1)
            collection.chunks.insert(collection.chunks.index(chunk) + 1, upper)
            return chunk, upper

    def chunk_for(self, namespace: str, find: Mapping[str, Any] | None = None,
                  bounds: list[Mapping[str, Any]] | None = None) -> Chunk:
        """The chunk a `moveChunk` names: by a document's shard key (`find`) or by its exact bounds."""
        with self.lock:
            collection = self._require(namespace)
            if bounds is not None:
                for chunk in collection.chunks:
                    if collection._position(chunk.min) == collection._position(bounds[0]) and \
                            collection._position(chunk.max) == collection._position(bounds[1]):
                        return chunk
                raise CommandError(2, f"no chunk of {namespace} has the bounds {bounds}")
            return collection.chunk_at(collection.point(collection.values_of(find or {})))

    def assign(self, namespace: str, chunk: Chunk, shard: str) -> None:
        """The commit of a migration: the chunk belongs to `shard` from now on, at a new major version."""
        with self.lock:
            collection = self._require(namespace)
            collection.major += 1
            now = self.clock.tick()
            chunk.shard = shard
            chunk.lastmod = Timestamp(collection.major, 0)
            chunk.since = now
            chunk.history.insert(0, {"validAfter": now, "shard": shard})

    def drop_collection(self, namespace: str) -> None:
        with self.lock:
            self.collections.pop(namespace, None)
            self.index_keys.pop(namespace, None)

    def _require(self, namespace: str) -> ShardedCollection:
        collection = self.collections.get(namespace)
        if collection is None:
            raise CommandError(118, f"Collection {namespace} is not sharded.")
        return collection

    # --- the config database ----------------------------------------------------------------------

    def config_collections(self) -> list[str]:
        return ["chunks", "collections", "databases", "settings", "shards", "version"]

    def config_documents(self, name: str) -> list[dict[str, Any]]:
        with self.lock:
            if name == "shards":
                return [{"_id": shard, "host": host, "state": 1, "topologyTime": self.topology_time}
                        for shard, host in self.shard_hosts.items()]
            if name == "databases":
                return [self._database_document(entry) for entry in sorted(self.databases.values(),
                                                                            key=lambda entry: entry.name)]
            if name == "collections":
                return [{"_id": c.namespace, "lastmodEpoch": c.epoch, "lastmod": c.lastmod, "timestamp": c.timestamp,
                         "uuid": Binary.from_uuid(c.uuid), "key": dict(c.key), "unique": c.unique,
                         "noBalance": False} for c in sorted(self.collections.values(), key=lambda c: c.namespace)]
            if name == "chunks":
                return [{"_id": chunk.id, "uuid": Binary.from_uuid(c.uuid), "min": dict(chunk.min),
                         "max": dict(chunk.max), "shard": chunk.shard, "lastmod": chunk.lastmod,
                         "onCurrentShardSince": chunk.since, "history": [dict(entry) for entry in chunk.history]}
                        for c in self.collections.values() for chunk in c.chunks]
            if name == "settings":
                return [{"_id": "balancer", "mode": self.balancer_mode, "stopped": self.balancer_mode == "off"}]
            if name == "version":
                return [{"_id": 1, "clusterId": self.cluster_id}]
            return []

    def _database_document(self, entry: DatabaseEntry) -> dict[str, Any]:
        document: dict[str, Any] = {"_id": entry.name, "primary": entry.primary}
        if self.version < (6, 0):
            document["partitioned"] = True
        document["version"] = {"uuid": Binary.from_uuid(entry.uuid), "timestamp": entry.timestamp,
                               "lastMod": entry.last_mod}
        return document

    def balancer_status(self) -> dict[str, Any]:
        with self.lock:
            return {"mode": self.balancer_mode, "inBalancerRound": self.in_balancer_round,
                    "numBalancerRounds": Int64(self.balancer_rounds), "ok": 1.0}
