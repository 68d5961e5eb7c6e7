"""Reads through the mongos emulator (`tests/mongos.py`): how each read command reaches the shards and how
their answers come back as one.

- An unsharded collection lives on its database's primary shard: the command goes there unchanged.
- A sharded one: `find` goes to the shards owning the chunks the filter can touch (by its equalities — or
  `$in` — on the whole shard key, else its bounds on a ranged key: `mongos_targeting.py`), each with the
  client's limit raised by its skip; the emulator merges the answers (the sort applied across shards)
  and applies skip and limit after the merge, in a cursor of its own. `count` and `distinct` add up the
  shards' answers; `aggregate` sends the pipeline's leading per-document stages ($match, $project, ...)
  to the shards and runs the rest over the merged documents (a leading $group of $sum/$min/$max, or a
  $count, is pushed down and its partial results combined); `collStats` and `dbStats` add up the
  shards' figures with the shards' own under `shards`/`raw`.
- The `config` database is answered from the catalog; `local` is refused, as mongos refuses it.
- An `aggregate` opening a change stream (`$changeStream`) opens a `mongos_streams.ChangeStreamCursor`.
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from collections.abc import Iterator, Mapping
from typing import Any

from bson import Int64
from pymongo import MongoClient
from pymongo.errors import OperationFailure

from tests.mongos_catalog import Catalog, ShardedCollection
from tests.mongos_cursors import CursorRegistry, ListCursor, MergeCursor, ShardCursor
from tests.mongos_streams import ChangeLog, ChangeStreamCursor
from tests.mongos_values import matches, order_key, project, run_stages, sorted_documents
from tests.mongos_wire import CODEC, CommandError

# Arguments a driver adds to any command, which the emulator answers for itself rather than pass on.
GENERIC_ARGUMENTS = frozenset({"lsid", "txnNumber", "autocommit", "startTransaction", "$clusterTime",
                               "$readPreference", "readConcern", "writeConcern", "apiVersion", "apiStrict",
                               "apiDeprecationErrors", "maxTimeMS", "comment", "$audit", "$client",
                               "mayBypassWriteBlocking"})
PER_DOCUMENT_STAGES = frozenset({"$match", "$project", "$addFields", "$set", "$unset", "$replaceRoot",
                                 "$replaceWith"})
_PUSHABLE_ACCUMULATORS = frozenset({"$sum", "$min", "$max"})


def forwardable(command: Mapping[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in command.items() if name not in GENERIC_ARGUMENTS}


class SharedExclusiveLock:
    """Routed writes share it; a chunk migration takes it alone (no write lands mid-move)."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._sharing = 0
        self._exclusive = False

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        with self._changed:
            self._changed.wait_for(lambda: not self._exclusive)
            self._sharing += 1
        try:
            yield
        finally:
            with self._changed:
                self._sharing -= 1
                self._changed.notify_all()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._changed:
            self._changed.wait_for(lambda: not self._exclusive)
            self._exclusive = True
            self._changed.wait_for(lambda: self._sharing == 0)
        try:
            yield
        finally:
            with self._changed:
                self._exclusive = False
                self._changed.notify_all()


def widen_projection(projection: Mapping[str, Any] | None,
                     needed: list[str]) -> tuple[dict[str, Any] | None, tuple[str, ...]]:
    """A projection that keeps the fields the merge needs (sort and shard key), and which of them to
    remove again before the client sees the documents."""
    if not projection:
        return None, ()
    widened = dict(projection)
    added: list[str] = []
    inclusive = any(bool(value) for name, value in projection.items() if (name != "_id" or len(projection) == 1)
                    and isinstance(value, bool | int | float))  # {_id: 1} alone includes
    for name in dict.fromkeys(needed):
        parts = name.split(".")
        parents = [".".join(parts[:end]) for end in range(1, len(parts) + 1)]
        if name == "_id" or not inclusive:
            for parent in parents:
                if parent in widened and isinstance(widened[parent], bool | int | float) and not widened[parent]:
                    del widened[parent]
                    added.append(parent)
        elif not any(parent in widened for parent in parents):
            widened[name] = 1
            added.append(name)
    return widened, tuple(added)


class Router:
    """What the emulator knows and holds: the shards' clients, the catalog, the change log, the cursors."""

    def __init__(self, clients: Mapping[str, MongoClient[Any]], catalog: Catalog, log: ChangeLog,
                 version: tuple[int, int]) -> None:
        self.clients = dict(clients)
        self.catalog = catalog
        self.log = log
        self.version = version
        self.cursors = CursorRegistry()
        self.writes = SharedExclusiveLock()
        self.sent: deque[tuple[str, str, str]] = deque(maxlen=100_000)  # (shard, db, command): what tests check

    def sent_to(self, command: str, db: str | None = None) -> list[str]:
        """The shards that received `command` (in `db`), in order, since the last `sent.clear()`."""
        return [shard for shard, where, name in list(self.sent) if name == command and db in (None, where)]

    # --- shards ---------------------------------------------------------------------------------------

    def run(self, shard: str, db: str, command: Mapping[str, Any]) -> dict[str, Any]:
        """A command on one shard; its `{ok: 0}` raised as the same error."""
        self.sent.append((shard, db, next(iter(command), "")))
        try:
            return dict(self.clients[shard][db].command(dict(command), codec_options=CODEC))
        except OperationFailure as failure:
            details = dict(failure.details or {})
            extra = {name: value for name, value in details.items()
                     if name not in ("ok", "errmsg", "code", "codeName")}
            raise CommandError(failure.code or 8, str(details.get("errmsg", failure)), **extra) from None

    def primary(self, db: str, create: bool = True) -> str:
        """The database's primary shard. A database the catalog does not know yet is looked for on the
        shards (data written there before the emulator started); when `create`, a new one is registered."""
        if db in self.catalog.databases:
            return self.catalog.databases[db].primary
        for shard in self.catalog.shard_order:
            listed = self.run(shard, "admin", {"listDatabases": 1, "nameOnly": True}).get("databases", [])
            if any(entry.get("name") == db for entry in listed):
                return self.catalog.add_database(db, shard).primary
        if create:
            return self.catalog.add_database(db).primary
        return self.catalog.shard_order[0]

    def targets(self, db: str, coll: str, query: Mapping[str, Any], create: bool = False) -> list[str]:
        sharded = self.catalog.sharded(f"{db}.{coll}")
        if sharded is None:
            return [self.primary(db, create)]
        return sharded.shards_for(query, self.catalog.shard_order)

    @contextlib.contextmanager
    def writing(self, shard: str, db: str, coll: str) -> Iterator[None]:
        """Around a write routed to a shard: the collection tailed before it when a stream covers it, and
        read right after it, so that the change log orders the write where it happened."""
        tailed = self.log.wanted(db, coll)
        if tailed:
            self.log.track(shard, db, coll)
        try:
            yield
        finally:
            if tailed:
                self.log.pull([(shard, db, coll)])

    def owner_filter(self, sharded: ShardedCollection) -> Any:
        def keep(shard: str, document: dict[str, Any]) -> bool:
            with self.catalog.lock:
                return sharded.shard_of(document) == shard
        return keep

    def open_cursor(self, cursor: Any, batch_size: int | None, single_batch: bool = False) -> dict[str, Any]:
        first = cursor.next_batch(101 if batch_size is None else int(batch_size))
        if single_batch or cursor.exhausted:
            cursor.close()
            cursor_id = 0
        else:
            cursor_id = self.cursors.add(cursor)
        return {"cursor": {"firstBatch": first, "id": Int64(cursor_id), "ns": cursor.namespace}, "ok": 1.0}

    def passthrough(self, shard: str, db: str, command: Mapping[str, Any], batch_size: int | None = None,
                    namespace: str | None = None, single_batch: bool = False) -> dict[str, Any]:
        """A cursor command run on one shard, its cursor held by the emulator."""
        reply = self.run(shard, db, command)
        part = ShardCursor(self.clients[shard], db, reply, shard)
        return self.open_cursor(MergeCursor(namespace or str(reply["cursor"].get("ns")), [part], None, 0, None),
                                batch_size, single_batch)

    # --- reads ----------------------------------------------------------------------------------------

    def config_documents(self, coll: str, query: Mapping[str, Any] | None) -> list[dict[str, Any]]:
        return [document for document in self.catalog.config_documents(coll) if matches(document, query or {})]

    def find(self, db: str, command: Mapping[str, Any]) -> dict[str, Any]:
        coll = str(command["find"])
        namespace = f"{db}.{coll}"
        batch_size = command.get("batchSize")
        single = bool(command.get("singleBatch")) or (command.get("limit") or 0) < 0
        if db == "config":
            documents = self.config_documents(coll, command.get("filter"))
            if command.get("sort"):
                documents = sorted_documents(documents, command["sort"])
            skip, limit = int(command.get("skip") or 0), abs(int(command.get("limit") or 0))
            documents = documents[skip:skip + limit] if limit else documents[skip:]
            if command.get("projection"):
                documents = [project(document, command["projection"]) for document in documents]
            return self.open_cursor(ListCursor(namespace, documents), batch_size, single)
        shard_command = forwardable(command)
        for name in ("batchSize", "singleBatch"):
            shard_command.pop(name, None)
        sharded = self.catalog.sharded(namespace)
        if sharded is None:
            return self.passthrough(self.primary(db, create=False), db, shard_command, batch_size, namespace, single)
        skip = int(shard_command.pop("skip", 0) or 0)
        limit = abs(int(shard_command.pop("limit", 0) or 0)) or None
        if limit:
            shard_command["limit"] = skip + limit
        sort = command.get("sort") or None
        projection, strip = widen_projection(command.get("projection"), [*(sort or {}), *sharded.fields])
        if projection is not None:
            shard_command["projection"] = projection
        parts = [ShardCursor(self.clients[shard], db, self.run(shard, db, shard_command), shard)
                 for shard in sharded.shards_for(command.get("filter") or {}, self.catalog.shard_order)]
        cursor = MergeCursor(namespace, parts, sort, skip, limit, self.owner_filter(sharded), strip)
        return self.open_cursor(cursor, batch_size, single)

    def get_more(self, db: str, command: Mapping[str, Any]) -> dict[str, Any]:
        cursor_id = int(command["getMore"])
        cursor = self.cursors.get(cursor_id)
        size = command.get("batchSize")
        if isinstance(cursor, ChangeStreamCursor):
            events, token = cursor.batch(int(size or 1000), command.get("maxTimeMS"))
            if not cursor.alive:
                self.cursors.remove(cursor_id)
            return {"cursor": {"nextBatch": events, "postBatchResumeToken": token,
                               "id": Int64(cursor_id if cursor.alive else 0), "ns": cursor.namespace}, "ok": 1.0}
        batch = cursor.next_batch(int(size) if size else None)
        if cursor.exhausted:
            self.cursors.remove(cursor_id)
            cursor.close()
            cursor_id = 0
        return {"cursor": {"nextBatch": batch, "id": Int64(cursor_id), "ns": cursor.namespace}, "ok": 1.0}

    def kill_cursors(self, db: str, command: Mapping[str, Any]) -> dict[str, Any]:
        killed, missing = [], []
        for cursor_id in command.get("cursors", []):
            cursor = self.cursors.remove(int(cursor_id))
            if cursor is None:
                missing.append(cursor_id)
            else:
                cursor.close()
                killed.append(cursor_id)
        return {"cursorsKilled": killed, "cursorsNotFound": missing, "cursorsAlive": [], "cursorsUnknown": [],
                "ok": 1.0}

    def count(self, db: str, command: Mapping[str, Any]) -> dict[str, Any]:
        coll = str(command["count"])
        query = command.get("query") or {}
        skip, limit = int(command.get("skip") or 0), abs(int(command.get("limit") or 0))
        if db == "config":
            total = len(self.config_documents(coll, query))
        elif self.catalog.sharded(f"{db}.{coll}") is None:
            return self.run(self.primary(db, create=False), db, forwardable(command))
        else:
            shard_command = {name: value for name, value in forwardable(command).items() if name not in ("skip", "limit")}
            if limit:
                shard_command["limit"] = skip + limit
            total = sum(int(self.run(shard, db, shard_command).get("n", 0))
                        for shard in self.targets(db, coll, query))
        n = max(0, total - skip)
        return {"n": min(n, limit) if limit else n, "ok": 1.0}

    def distinct(self, db: str, command: Mapping[str, Any]) -> dict[str, Any]:
        coll = str(command["distinct"])
        if self.catalog.sharded(f"{db}.{coll}") is None:
            return self.run(self.primary(db, create=False), db, forwardable(command))
        values: dict[tuple[Any, ...], Any] = {}
        for shard in self.targets(db, coll, command.get("query") or {}):
            for value in self.run(shard, db, forwardable(command)).get("values", []):
                values.setdefault(order_key(value), value)
        return {"values": [values[key] for key in sorted(values)], "ok": 1.0}

    def aggregate(self, db: str, command: Mapping[str, Any]) -> dict[str, Any]:
        target = command["aggregate"]
        pipeline = list(command.get("pipeline") or [])
        batch_size = (command.get("cursor") or {}).get("batchSize")
        if pipeline and "$changeStream" in pipeline[0]:
            return self._open_change_stream(db, target, pipeline, batch_size)
        if not isinstance(target, str):
            raise CommandError(115, f"a database-level aggregate ({pipeline[:1]}) is not supported by the mongos "
                                    "emulator")
        namespace = f"{db}.{target}"
        if db == "config":
            documents = run_stages(self.catalog.config_documents(target), pipeline)
            return self.open_cursor(ListCursor(namespace, documents), batch_size)
        sharded = self.catalog.sharded(namespace)
        if sharded is None:
            return self.passthrough(self.primary(db, create=False), db, forwardable(command), batch_size, namespace)
        if pipeline and "$collStats" in pipeline[0]:
            return self.open_cursor(ListCursor(namespace, self._coll_stats_stage(db, target, pipeline)), batch_size)
        prefix = []
        while pipeline and next(iter(pipeline[0])) in PER_DOCUMENT_STAGES:
            prefix.append(pipeline.pop(0))
        if pipeline and "$count" in pipeline[0]:
            name = pipeline.pop(0)["$count"]
            pipeline[:0] = [{"$group": {"_id": None, name: {"$sum": 1}}}, {"$project": {"_id": 0, name: 1}}]
        merge: list[dict[str, Any]] = []
        if pipeline and "$group" in pipeline[0] and all(
                isinstance(spec, Mapping) and next(iter(spec)) in _PUSHABLE_ACCUMULATORS
                for name, spec in pipeline[0]["$group"].items() if name != "_id"):
            group = pipeline.pop(0)
            prefix.append(group)
            merge.append({"$group": {"_id": "$_id", **{name: {next(iter(spec)): f"${name}"}
                                                       for name, spec in group["$group"].items() if name != "_id"}}})
        query = prefix[0]["$match"] if prefix and "$match" in prefix[0] else {}
        documents: list[dict[str, Any]] = []
        shard_command = {**forwardable(command), "pipeline": prefix or [{"$match": {}}], "cursor": {}}
        keep = self.owner_filter(sharded) if not merge and not any("$group" in stage for stage in prefix) else None
        for shard in sharded.shards_for(query, self.catalog.shard_order):
            part = ShardCursor(self.clients[shard], db, self.run(shard, db, shard_command), shard)
            while (document := part.pop()) is not None:
                if keep is None or _lacks_key(document, sharded) or keep(shard, document):
                    documents.append(document)
        return self.open_cursor(ListCursor(namespace, run_stages(documents, merge + pipeline)), batch_size)

    def _coll_stats_stage(self, db: str, coll: str, pipeline: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
        documents = []
        for shard in self.catalog.shard_order:
            stats = self.run(shard, db, {"collStats": coll})
            documents.append({"ns": f"{db}.{coll}", "shard": shard, "host": self.catalog.shard_hosts[shard],
                              "storageStats": {name: value for name, value in stats.items() if name != "ok"},
                              "count": stats.get("count", 0)})
        return run_stages(documents, pipeline[1:])

    def _open_change_stream(self, db: str, target: Any, pipeline: list[Mapping[str, Any]],
                            batch_size: int | None) -> dict[str, Any]:
        stage = dict(pipeline[0]["$changeStream"] or {})
        if db == "admin" and target == 1:
            if not stage.get("allChangesForCluster"):
                raise CommandError(73, "$changeStream on the admin database needs allChangesForCluster: true")
            scope_db, scope_coll = None, None
        elif target == 1:
            scope_db, scope_coll = db, None
        else:
            scope_db, scope_coll = db, str(target)
        self.log.cover(scope_db, scope_coll)
        for shard in self.catalog.shard_order:  # what exists now is tailed from now on
            for name in self._collections_on(shard, scope_db, scope_coll):
                self.log.track(shard, *name)
        cursor = ChangeStreamCursor(self.log, scope_db, scope_coll, stage, list(pipeline[1:]))
        events, token = cursor.batch(int(batch_size) if batch_size is not None else 101, 0)
        cursor_id = self.cursors.add(cursor) if cursor.alive else 0
        return {"cursor": {"firstBatch": events, "postBatchResumeToken": token, "id": Int64(cursor_id),
                           "ns": cursor.namespace}, "ok": 1.0}

    def _collections_on(self, shard: str, db: str | None, coll: str | None) -> list[tuple[str, str]]:
        if db is not None and coll is not None:
            return [(db, coll)]
        databases = [db] if db is not None else [
            entry["name"] for entry in self.run(shard, "admin", {"listDatabases": 1, "nameOnly": True})["databases"]]
        found = []
        for name in databases:
            if name in ("admin", "config", "local"):
                continue
            listed = self.run(shard, name, {"listCollections": 1, "nameOnly": True})["cursor"]["firstBatch"]
            found += [(name, entry["name"]) for entry in listed if not entry["name"].startswith("system.")]
        return found

    def list_indexes(self, db: str, command: Mapping[str, Any]) -> dict[str, Any]:
        batch_size = (command.get("cursor") or {}).get("batchSize")
        namespace = f"{db}.{command['listIndexes']}"
        return self.passthrough(self.primary(db, create=False), db, forwardable(command), batch_size, namespace)

    def coll_stats(self, db: str, command: Mapping[str, Any]) -> dict[str, Any]:
        coll = str(command.get("collStats") or command.get("collstats"))
        namespace = f"{db}.{coll}"
        sharded = self.catalog.sharded(namespace)
        if sharded is None:
            return {**self.run(self.primary(db, create=False), db, {"collStats": coll}), "sharded": False}
        shards = {shard: self.run(shard, db, {"collStats": coll}) for shard in self.catalog.shard_order}
        totals: dict[str, Any] = {"sharded": True, "ns": namespace}
        for name in ("count", "size", "storageSize", "totalIndexSize", "totalSize"):
            totals[name] = sum(stats.get(name, 0) or 0 for stats in shards.values())
        totals["avgObjSize"] = totals["size"] / totals["count"] if totals["count"] else 0
        totals["nindexes"] = max((stats.get("nindexes", 0) or 0) for stats in shards.values())
        totals["nchunks"] = len(sharded.chunks)
        totals["shards"] = shards
        return {**totals, "ok": 1.0}

    def db_stats(self, db: str, command: Mapping[str, Any]) -> dict[str, Any]:
        raw = {self.catalog.shard_hosts[shard]: self.run(shard, db, {"dbStats": 1})
               for shard in self.catalog.shard_order}
        totals: dict[str, Any] = {"raw": raw, "db": db}
        for name in ("collections", "views", "objects", "dataSize", "storageSize", "indexes", "indexSize",
                     "totalSize", "fsUsedSize", "fsTotalSize"):
            totals[name] = sum(stats.get(name, 0) or 0 for stats in raw.values())
        totals["avgObjSize"] = totals["dataSize"] / totals["objects"] if totals["objects"] else 0
        return {**totals, "ok": 1.0}


def _lacks_key(document: Mapping[str, Any], sharded: ShardedCollection) -> bool:
    """A document a pipeline reshaped so that its shard key is gone cannot be told orphan or not: kept."""
    return not all(name.split(".")[0] in document for name in sharded.fields)
