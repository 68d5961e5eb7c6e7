"""The mongos emulator's (`tests/mongos.py`) answers to the commands that change or describe the cluster
rather than its documents: `enableSharding`, `shardCollection` (with its supporting-index rule), `split`,
`moveChunk`, the balancer's `balancerStop`/`balancerStart`, `listDatabases`, `listCollections`, `create`,
`drop`, `dropDatabase`, `createIndexes`/`dropIndexes`, `renameCollection`, and commands run on every shard.
`tests/mongos.py`'s docstring says what each does, from MongoDB's documentation.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from bson import Binary, Int64

from tests.mongos_catalog import Catalog
from tests.mongos_cursors import ListCursor
from tests.mongos_routing import forwardable
from tests.mongos_shard_keys import SCRATCH_DATABASE
from tests.mongos_streams import ChangeLog
from tests.mongos_values import matches
from tests.mongos_wire import CommandError
from tests.mongos_writes import WriteRouter

HIDDEN_DATABASES = frozenset({"admin", "config", "local", SCRATCH_DATABASE})  # never a database of the cluster's


class AdminCommands:
    """The handlers, for `Mongos` (which holds what they use)."""

    router: WriteRouter
    catalog: Catalog
    log: ChangeLog
    shard_ids: list[str]

    def _enable_sharding(self, command: Mapping[str, Any]) -> dict[str, Any]:
        name = str(command.get("enableSharding") or command.get("enablesharding"))
        primary = command.get("primaryShard")
        existing = self.catalog.databases.get(name)
        if existing is not None and primary is not None and existing.primary != primary:
            raise CommandError(117, f"database {name} already exists on {existing.primary}")
        self.catalog.add_database(name, primary)
        return {"ok": 1.0}

    def _shard_collection(self, command: Mapping[str, Any]) -> dict[str, Any]:
        namespace = str(command.get("shardCollection") or command.get("shardcollection"))
        db, _, coll = namespace.partition(".")
        if not db or not coll:
            raise CommandError(73, f"Invalid namespace {namespace}")
        key = dict(command.get("key") or {})
        primary = self.router.primary(db)
        if not self._exists(primary, db, coll):
            self.router.run(primary, db, {"create": coll})
        empty = not self.router.run(primary, db, {"find": coll, "limit": 1})["cursor"]["firstBatch"]
        if not self._has_shard_key_index(primary, namespace, key):
            if not empty:
                raise CommandError(72, "Please create an index that starts with the proposed shard key before "
                                       "sharding the collection")
            self._indexes(db, {"createIndexes": coll, "indexes": [
                {"key": key, "name": "_".join(f"{field}_{kind}" for field, kind in key.items()),
                 **({"unique": True} if command.get("unique") else {})}]}, only=[primary])
        self.catalog.shard_collection(namespace, key, bool(command.get("unique")), empty, primary)
        collection = self.catalog.sharded(namespace)
        assert collection is not None
        return {"collectionsharded": namespace, "collectionUUID": Binary.from_uuid(collection.uuid), "ok": 1.0}

    def _exists(self, shard: str, db: str, coll: str) -> bool:
        listed = self.router.run(shard, db, {"listCollections": 1, "filter": {"name": coll}, "nameOnly": True})
        return any(entry.get("name") == coll for entry in listed["cursor"]["firstBatch"])

    def _has_shard_key_index(self, shard: str, namespace: str, key: Mapping[str, Any]) -> bool:
        """An index whose leading fields are the shard key's. nx-27017 lists a hashed index as ascending
        (measured), so the keys of indexes created through the emulator count too."""
        db, coll = namespace.split(".", 1)
        listed = self.router.run(shard, db, {"listIndexes": coll})["cursor"]["firstBatch"]
        keys = [dict(index["key"]) for index in listed] + self.catalog.index_keys.get(namespace, [])
        wanted = list(key.items())
        for index_key in keys:
            leading = list(index_key.items())[:len(wanted)]
            if [name for name, _ in leading] == [name for name, _ in wanted] and all(
                    (kind == "hashed") == (found == "hashed") or found in (1, 1.0) and kind == "hashed"
                    and index_key in self.catalog.index_keys.get(namespace, [])
                    for (_, kind), (_, found) in zip(wanted, leading, strict=True)):
                return True
        return False

    def _split(self, command: Mapping[str, Any]) -> dict[str, Any]:
        if "middle" not in command:
            raise CommandError(115, "the mongos emulator splits at `middle` only")
        self.catalog.split(str(command["split"]), dict(command["middle"]))
        return {"ok": 1.0}

    def _move_chunk(self, command: Mapping[str, Any]) -> dict[str, Any]:
        namespace = str(command.get("moveChunk") or command.get("movechunk"))
        bounds = command.get("bounds")
        chunk = self.catalog.chunk_for(namespace, find=command.get("find"),
                                       bounds=[dict(bound) for bound in bounds] if bounds else None)
        started = time.monotonic()
        self.router.move_chunk(namespace, chunk, str(command.get("to")))
        return {"millis": int((time.monotonic() - started) * 1000), "ok": 1.0}

    def _balancer_stop(self, command: Mapping[str, Any]) -> dict[str, Any]:
        wait = float(command.get("maxTimeMS") or 60_000) / 1000
        with self.catalog.lock:
            self.catalog.balancer_mode = "off"
            if not self.catalog.round_ended.wait_for(lambda: not self.catalog.in_balancer_round, wait):
                raise CommandError(50, "operation exceeded time limit waiting for the balancing round to end")
        return {"ok": 1.0}

    def _balancer_start(self, command: Mapping[str, Any]) -> dict[str, Any]:
        with self.catalog.lock:
            self.catalog.balancer_mode = "full"
        return {"ok": 1.0}

    def _on_every_shard(self, command: Mapping[str, Any]) -> dict[str, Any]:
        for shard in self.shard_ids:
            self.router.run(shard, "admin", forwardable(command))
        return {"ok": 1.0}

    def _list_databases(self, command: Mapping[str, Any]) -> dict[str, Any]:
        sizes: dict[str, int] = {"admin": 4096, "config": 4096}
        empty: dict[str, bool] = {"admin": False, "config": False}
        for shard in self.shard_ids:
            for entry in self.router.run(shard, "admin", {"listDatabases": 1})["databases"]:
                if entry["name"] in HIDDEN_DATABASES:
                    continue
                sizes[entry["name"]] = sizes.get(entry["name"], 0) + int(entry.get("sizeOnDisk", 0))
                empty[entry["name"]] = empty.get(entry["name"], True) and bool(entry.get("empty"))
        entries = [{"name": name, "sizeOnDisk": Int64(size), "empty": empty[name]}
                   for name, size in sorted(sizes.items()) if matches({"name": name}, command.get("filter") or {})]
        if command.get("nameOnly"):
            return {"databases": [{"name": entry["name"]} for entry in entries], "ok": 1.0}
        return {"databases": entries, "totalSize": Int64(sum(sizes.values())), "ok": 1.0}

    def _list_collections(self, db: str, command: Mapping[str, Any]) -> dict[str, Any]:
        batch_size = (command.get("cursor") or {}).get("batchSize")
        if db == "config":
            entries = [{"name": name, "type": "collection", "options": {}, "info": {"readOnly": False}}
                       for name in self.catalog.config_collections()]
            entries = [entry for entry in entries if matches(entry, command.get("filter") or {})]
            return self.router.open_cursor(ListCursor(f"{db}.$cmd.listCollections", entries), batch_size)
        return self.router.passthrough(self.router.primary(db, create=False), db, forwardable(command), batch_size,
                                       f"{db}.$cmd.listCollections")

    def _create(self, db: str, command: Mapping[str, Any]) -> dict[str, Any]:
        coll = str(command["create"])
        shard = self.router.primary(db)
        with self.router.writes.shared(), self.router.writing(shard, db, coll):
            return self.router.run(shard, db, forwardable(command))

    def _drop(self, db: str, command: Mapping[str, Any]) -> dict[str, Any]:
        coll = str(command["drop"])
        existed = any(self._exists(shard, db, coll) for shard in self.shard_ids)
        with self.router.writes.shared():
            self.log.pull(self.log.sources(db, coll))
            for shard in self.shard_ids:
                self.router.run(shard, db, forwardable(command))
            self.catalog.drop_collection(f"{db}.{coll}")
            self.log.forget(db, coll)
            if existed and self.log.wanted(db, coll):
                self.log.append(db, coll, {"operationType": "drop", "ns": {"db": db, "coll": coll}})
        return {"ns": f"{db}.{coll}", "ok": 1.0}  # a missing collection too: mongos answers ok (SERVER-36317)

    def _drop_database(self, db: str, command: Mapping[str, Any]) -> dict[str, Any]:
        with self.router.writes.shared():
            colls = sorted({name for shard in self.shard_ids for _, name in self.router._collections_on(shard, db, None)})
            self.log.pull(self.log.sources(db))
            for shard in self.shard_ids:
                self.router.run(shard, db, {"dropDatabase": 1})
            self.catalog.drop_database(db)
            self.log.forget(db)
            for coll in colls:
                if self.log.wanted(db, coll):
                    self.log.append(db, coll, {"operationType": "drop", "ns": {"db": db, "coll": coll}})
            if colls and any(self.log.wanted(db, coll) for coll in colls):
                self.log.append(db, None, {"operationType": "dropDatabase", "ns": {"db": db}})
        return {"dropped": db, "ok": 1.0}

    def _indexes(self, db: str, command: Mapping[str, Any], only: list[str] | None = None) -> dict[str, Any]:
        name = next(iter(command))
        coll = str(command[name])
        namespace = f"{db}.{coll}"
        if name == "createIndexes":
            self.catalog.index_keys.setdefault(namespace, []).extend(
                dict(index["key"]) for index in command.get("indexes", []))
        shards = only or (self.shard_ids if self.catalog.sharded(namespace) else [self.router.primary(db)])
        raw = {self.catalog.shard_hosts[shard]: self.router.run(shard, db, forwardable(command)) for shard in shards}
        return {"raw": raw, "ok": 1.0}

    def _rename(self, db: str, command: Mapping[str, Any]) -> dict[str, Any]:
        source = str(command["renameCollection"])
        shards = self.shard_ids if self.catalog.sharded(source) else [self.router.primary(source.split(".", 1)[0])]
        for shard in shards:
            self.router.run(shard, "admin", forwardable(command))
        with self.catalog.lock:
            moved = self.catalog.collections.pop(source, None)
            if moved is not None:
                moved.namespace = str(command["to"])
                self.catalog.collections[moved.namespace] = moved
        return {"ok": 1.0}
