"""A mongos for the tests: a MongoDB-wire server in front of several nx-27017 servers, one per shard, that
answers as MongoDB documents a mongos answering (MongoDB 7.0 by default; `version=` says another 5.0+
release, which moves the version-dependent rules below). No real mongos can be installed here, and
nx-27017 knows nothing of sharding: this is what lets the engine meet a sharded source or destination.

    mongos = Mongos([shard_a, shard_b], version="7.0").start()   # NxServer objects, or their ports
    client = MongoClient(mongos.uri)                             # a plain URI: pymongo sees a Sharded topology
    client.admin.command({"shardCollection": "db.people", "key": {"team": 1}})
    mongos.split("db.people", {"team": "m"}); mongos.move_chunk("db.people", {"team": "z"}, "shard02")
    ...
    mongos.stop()

What it emulates, each from MongoDB's documentation of mongos:

- `hello` (and the legacy `isMaster`) with `msg: "isdbgrid"` and the release's wire version, so that a
  driver sees a mongos and a Sharded topology; `isdbgrid`, `buildInfo`, `listShards`, `ping`.
- The `config` database, read-only, in MongoDB 5.0+ shapes (`mongos_catalog.py`): `shards` (the shards
  are `shard01`, `shard02`, ... with their `127.0.0.1:PORT` as host), `databases` (each with its primary
  shard), `collections` (`key`, `unique`, `uuid`), `chunks` (`uuid`, `min`, `max`, `shard`, `lastmod`),
  `settings` (the balancer), `version`. `find`, `count` and `aggregate` on them; `listCollections`.
- `enableSharding` (with `primaryShard`); a database is created where it is first written (on the shard
  holding the fewest databases) and one already on a shard when the emulator starts is adopted there.
- `shardCollection` (`key` of ascending and at most one hashed field, `unique`): a non-empty collection
  needs an index that starts with the key (InvalidOptions 72 otherwise); an empty one gets the index
  created. An empty collection with a hashed key is pre-split across the shards (two chunks a shard
  before 7.2, one from 7.2 on); anything else starts as one chunk on the primary shard. `split` (with
  `middle`) and `moveChunk` (`find` or `bounds`, `to`) — and `split()` / `move_chunk()` here — spread it.
- `balancerStatus` (`mode` "full"/"off", `inBalancerRound`, `numBalancerRounds`), `balancerStop` (which
  waits, up to its maxTimeMS, for a round in progress to end) and `balancerStart`; `balancer_round()`
  holds a round open, to show what a migration in progress looks like. The balancer never moves
  anything by itself.
- Routing, merging and refusals of reads and writes: `mongos_routing.py` (reads) and `mongos_writes.py`
  (writes, refusals, migrations) say how. Unsharded collections live on their primary shard.
- `createIndexes`/`dropIndexes` on every shard for a sharded collection (the primary for an unsharded
  one); `listIndexes`, `listCollections` and `create` on the primary; `drop`, `dropDatabase` on every
  shard; `listDatabases` merged (with `config` and `admin`); `setUserWriteBlockMode` on every shard.
- Change streams on a collection, a database or the deployment, merged from the shards' per-collection
  streams in one cluster-time order, `documentKey` holding the shard key, migration events hidden
  (`mongos_streams.py`, which also says how the order is made and what a resume token holds).

What it does not emulate: replica-set shards (each shard is one nx-27017, its `config.shards` host a
plain `host:port`) and a config server of its own (the catalog lives in the emulator's memory, gone when
it stops); authentication; sessions and transactions across shards, retryable-write deduplication
(`lsid`, `txnNumber` and the like are dropped before a command reaches a shard); `topologyVersion` and
streaming `hello` (pymongo then polls); zones, jumbo chunks, automatic splitting and balancing, orphans
left by an interrupted migration (a migration here always completes); changing a document's shard key
value; `$lookup`/`$graphLookup` across shards and pipeline stages after a merge other than $match,
$project, $unset, $sort, $skip, $limit, $count, $group (field paths and literals) and $sample (refused,
CommandNotSupported 115); collection-level collations. What nx-27017 lacks passes through (TESTING.md):
an `update` change event carries no `updateDescription`, a replace arrives as an update, integer `_id`s
sort by their decimal text, and so on. A command the emulator does not know goes to the database's
primary shard (`admin` commands to the first shard) unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from bson import Binary, Int64
from pymongo import MongoClient

from tests.loopback import LoopbackServer
from tests.mongos_catalog import Catalog, Chunk
from tests.mongos_cursors import ListCursor
from tests.mongos_routing import forwardable
from tests.mongos_streams import ChangeLog
from tests.mongos_values import matches
from tests.mongos_wire import CommandError, Request, parse, reply
from tests.mongos_writes import ChunkMove, WriteRouter
from tests.nx import NxServer

WIRE_VERSIONS = {(5, 0): 13, (5, 1): 14, (5, 2): 15, (5, 3): 16, (6, 0): 17, (6, 1): 18, (6, 2): 19, (6, 3): 20,
                 (7, 0): 21, (7, 1): 22, (7, 2): 23, (7, 3): 24, (8, 0): 25}
_HELLO = frozenset({"hello", "isMaster", "ismaster"})


class Mongos(LoopbackServer):
    """The emulator (see the module). `shards`: the nx-27017 servers (or their ports), one per shard."""

    def __init__(self, shards: Sequence[NxServer | int], version: str = "7.0") -> None:
        super().__init__()
        parsed = tuple(int(part) for part in version.split(".")[:2])
        if parsed not in WIRE_VERSIONS:
            raise ValueError(f"version {version}: one of {sorted(WIRE_VERSIONS)} (the config shapes are 5.0+'s)")
        self.version = version
        self._release = (parsed[0], parsed[1])
        ports = [shard if isinstance(shard, int) else shard.port for shard in shards]
        self.shard_ids = [f"shard{index + 1:02d}" for index in range(len(ports))]
        self._clients = {shard: MongoClient(f"mongodb://127.0.0.1:{port}/?directConnection=true",
                                            document_class=dict, datetime_conversion="DATETIME_AUTO")
                         for shard, port in zip(self.shard_ids, ports, strict=True)}
        self.catalog = Catalog({shard: f"127.0.0.1:{port}" for shard, port in zip(self.shard_ids, ports, strict=True)},
                               self._release)
        self.log = ChangeLog(self._clients, self.catalog.clock, self._document_key)
        self.router = WriteRouter(self._clients, self.catalog, self.log, self._release)
        self._pool = ThreadPoolExecutor(max_workers=64, thread_name_prefix="mongos")
        self._connections = itertools.count(1)
        self._tasks: set[asyncio.Task[Any]] = set()
        self.commands: list[str] = []  # every command name received, in order: what a test may check

    # --- the test's side ----------------------------------------------------------------------------------

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/"

    def client(self, **options: Any) -> MongoClient[Any]:
        return MongoClient(self.uri, serverSelectionTimeoutMS=5000, **options)

    def start(self) -> Mongos:
        super().start()
        for shard in self.shard_ids:  # databases already on a shard stay there
            for entry in self.router.run(shard, "admin", {"listDatabases": 1, "nameOnly": True})["databases"]:
                if entry["name"] not in ("admin", "config", "local"):
                    self.catalog.add_database(entry["name"], shard)
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._close_connections(), self._loop).result(timeout=5)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.router.cursors.close_all()
        self.log.close()
        super().stop()
        for client in self._clients.values():
            client.close()

    def shard_client(self, shard: str) -> MongoClient[Any]:
        """The emulator's own client of one shard (to look at what a shard holds)."""
        return self._clients[shard]

    def shard_collection(self, namespace: str, key: Mapping[str, Any], unique: bool = False) -> None:
        self._shard_collection({"shardCollection": namespace, "key": dict(key), "unique": unique})

    def split(self, namespace: str, middle: Mapping[str, Any]) -> tuple[Chunk, Chunk]:
        return self.catalog.split(namespace, middle)

    def move_chunk(self, namespace: str, find: Mapping[str, Any], to: str) -> ChunkMove:
        """Moves the chunk holding the shard key values in `find` to shard `to` (`mongos_writes.py`)."""
        return self.router.move_chunk(namespace, self.catalog.chunk_for(namespace, find=find), to)

    def chunks(self, namespace: str) -> list[dict[str, Any]]:
        collection = self.catalog.sharded(namespace)
        uuid = collection.uuid if collection else None
        return [chunk for chunk in self.catalog.config_documents("chunks")
                if uuid is not None and chunk["uuid"].as_uuid() == uuid]

    def shard_of(self, namespace: str, document: Mapping[str, Any]) -> str:
        """The shard a document with these shard key values belongs on."""
        collection = self.catalog.sharded(namespace)
        if collection is None:
            return self.router.primary(namespace.split(".", 1)[0], create=False)
        return collection.shard_of(document)

    @property
    def moves(self) -> list[ChunkMove]:
        return self.router.moves

    @contextlib.contextmanager
    def balancer_round(self) -> Iterator[None]:
        """A balancing round in progress for as long as inside (`inBalancerRound: true`)."""
        with self.catalog.lock:
            self.catalog.in_balancer_round = True
        try:
            yield
        finally:
            with self.catalog.lock:
                self.catalog.in_balancer_round = False
                self.catalog.balancer_rounds += 1
                self.catalog.round_ended.notify_all()

    # --- the wire -----------------------------------------------------------------------------------------

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = next(self._connections)
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            while True:
                header = await reader.readexactly(4)
                message = header + await reader.readexactly(int.from_bytes(header, "little", signed=True) - 4)
                request = parse(message)
                if request is None:
                    break
                answer = await loop.run_in_executor(self._pool, self._answer, request, connection)
                if answer is not None:
                    writer.write(answer)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, RuntimeError, asyncio.CancelledError):
            pass  # the client went away, or the emulator is stopping
        finally:
            writer.close()
            if task is not None:
                self._tasks.discard(task)

    async def _close_connections(self) -> None:
        tasks = [task for task in self._tasks if task is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _answer(self, request: Request, connection: int) -> bytes | None:
        self.commands.append(request.name)
        try:
            document = self.dispatch(request.database, request.command, connection)
        except CommandError as refused:
            document = refused.document()
        except Exception as failure:  # a bug of the emulator's: said as a server error, not a dropped connection
            document = CommandError(1, f"mongos emulator: {type(failure).__name__}: {failure}").document()
        return None if request.more_to_come else reply(request, document)

    def dispatch(self, db: str, command: Mapping[str, Any], connection: int = 0) -> dict[str, Any]:
        name = next(iter(command), "")
        router = self.router
        if name in _HELLO:
            return self._hello(command, legacy=name != "hello", connection=connection)
        if db == "local":
            raise CommandError(20, "Can't use 'local' database through mongos")
        handlers = {
            "find": router.find, "getMore": router.get_more, "killCursors": router.kill_cursors,
            "count": router.count, "distinct": router.distinct, "aggregate": router.aggregate,
            "listIndexes": router.list_indexes, "collStats": router.coll_stats, "collstats": router.coll_stats,
            "dbStats": router.db_stats, "dbstats": router.db_stats, "insert": router.insert, "update": router.update,
            "delete": router.delete, "findAndModify": router.find_and_modify,
            "findandmodify": router.find_and_modify,
        }
        if name in handlers:
            return handlers[name](db, command)
        simple = {
            "ping": lambda: {"ok": 1.0}, "endSessions": lambda: {"ok": 1.0},
            "isdbgrid": lambda: {"isdbgrid": 1, "hostname": f"127.0.0.1:{self.port}", "ok": 1.0},
            "buildInfo": self._build_info, "buildinfo": self._build_info,
            "balancerStatus": self.catalog.balancer_status,
            "listShards": lambda: {"shards": self.catalog.config_documents("shards"), "ok": 1.0},
            "flushRouterConfig": lambda: {"flushed": True, "ok": 1.0},
        }
        if name in simple:
            return simple[name]()
        own = {
            "shardCollection": self._shard_collection, "shardcollection": self._shard_collection,
            "enableSharding": self._enable_sharding, "enablesharding": self._enable_sharding,
            "split": self._split, "moveChunk": self._move_chunk, "movechunk": self._move_chunk,
            "balancerStop": self._balancer_stop, "balancerStart": self._balancer_start,
            "listDatabases": self._list_databases, "setUserWriteBlockMode": self._on_every_shard,
        }
        if name in own:
            return own[name](command)
        ddl = {"listCollections": self._list_collections, "create": self._create, "drop": self._drop,
               "dropDatabase": self._drop_database, "createIndexes": self._indexes, "dropIndexes": self._indexes,
               "renameCollection": self._rename}
        if name in ddl:
            return ddl[name](db, command)
        shard = self.shard_ids[0] if db == "admin" else router.primary(db, create=False)
        return router.run(shard, db, forwardable(command))

    # --- answers of its own -------------------------------------------------------------------------------

    def _hello(self, command: Mapping[str, Any], legacy: bool, connection: int) -> dict[str, Any]:
        answer: dict[str, Any] = {"ismaster" if legacy else "isWritablePrimary": True, "msg": "isdbgrid",
                                  "maxBsonObjectSize": 16 * 1024 * 1024, "maxMessageSizeBytes": 48_000_000,
                                  "maxWriteBatchSize": 100_000, "localTime": datetime.now(UTC).replace(tzinfo=None),
                                  "logicalSessionTimeoutMinutes": 30, "connectionId": connection,
                                  "minWireVersion": 0, "maxWireVersion": WIRE_VERSIONS[self._release],
                                  "readOnly": False}
        if command.get("helloOk"):
            answer["helloOk"] = True
        return {**answer, "ok": 1.0}

    def _build_info(self) -> dict[str, Any]:
        major, minor = self._release
        return {"version": f"{major}.{minor}.0", "versionArray": [major, minor, 0, 0], "gitVersion": "mongos-emulator",
                "modules": [], "bits": 64, "debug": False, "maxBsonObjectSize": 16 * 1024 * 1024,
                "storageEngines": ["wiredTiger"], "ok": 1.0}

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
                if entry["name"] in ("admin", "config", "local"):
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

    def _document_key(self, db: str, coll: str, document: Mapping[str, Any]) -> dict[str, Any]:
        collection = self.catalog.sharded(f"{db}.{coll}")
        if collection is None:
            return {"_id": document.get("_id")}
        return collection.document_key(document)
