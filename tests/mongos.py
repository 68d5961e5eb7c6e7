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
- Routing, merging and refusals of reads and writes: `mongos_routing.py` (reads), `mongos_targeting.py`
  (a ranged key's bounds in a filter) and `mongos_writes.py` (writes, refusals, migrations) say how.
  Unsharded collections live on their primary shard.
- Changing a document's shard key value ("Change a Document's Shard Key Value"; `mongos_shard_keys.py`):
  a single-document update (`update` or `findAndModify`) run as a retryable write (the command carried a
  `txnNumber`) with an equality on the full shard key in its filter (from 7.1 a filter without it will
  do, unless it is an exact `_id`) moves the document to the shard owning its new values when the
  command holds that one statement: deleted from its shard, inserted on the other, which a stream
  through mongos shows as a `delete` and an `insert` of one transaction. Otherwise refused as MongoDB
  refuses it: 31025 (no full shard key), InvalidOptions 72 (`multi: true`; a move in a batch of several
  statements), IllegalOperation 20 (not a retryable write); an altered `_id`, ImmutableField 66.
- The commands that change or describe the cluster are answered in `mongos_admin.py`.
- `createIndexes`/`dropIndexes` on every shard for a sharded collection (the primary for an unsharded
  one); `listIndexes`, `listCollections` and `create` on the primary; `drop`, `dropDatabase` on every
  shard; `listDatabases` merged (with `config` and `admin`); `setUserWriteBlockMode` on every shard.
- Change streams on a collection, a database or the deployment, merged from the shards' per-collection
  streams in one cluster-time order, `documentKey` holding the shard key, migration events hidden
  (`mongos_streams.py`, which also says how the order is made and what a resume token holds).

What it does not emulate: replica-set shards (each shard is one nx-27017, its `config.shards` host a
plain `host:port`) and a config server of its own (the catalog lives in the emulator's memory, gone when
it stops); authentication; sessions and transactions across shards, retryable-write deduplication
(`lsid`, `txnNumber` and the like are dropped before a command reaches a shard: the emulator only looks
whether a write carried a `txnNumber`, for shard key changes); `topologyVersion` and streaming `hello`
(pymongo then polls); zones, jumbo chunks, automatic splitting and balancing, orphans left by an
interrupted migration (a migration here always completes); `$lookup`/`$graphLookup` across shards and
pipeline stages after a merge other than $match, $project, $unset, $sort, $skip, $limit, $count, $group
(field paths and literals) and $sample (refused, CommandNotSupported 115); collection-level collations.
What nx-27017 lacks passes through (TESTING.md): an `update` change event carries no `updateDescription`,
a replace arrives as an update, integer `_id`s sort by their decimal text, and so on. A command the
emulator does not know goes to the database's primary shard (`admin` commands to the first shard) unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from pymongo import MongoClient

from tests.loopback import LoopbackServer
from tests.mongos_admin import HIDDEN_DATABASES, AdminCommands
from tests.mongos_catalog import Catalog, Chunk
from tests.mongos_routing import forwardable
from tests.mongos_streams import ChangeLog
from tests.mongos_wire import CommandError, Request, parse, reply
from tests.mongos_writes import ChunkMove, WriteRouter
from tests.nx import NxServer

WIRE_VERSIONS = {(5, 0): 13, (5, 1): 14, (5, 2): 15, (5, 3): 16, (6, 0): 17, (6, 1): 18, (6, 2): 19, (6, 3): 20,
                 (7, 0): 21, (7, 1): 22, (7, 2): 23, (7, 3): 24, (8, 0): 25}
_HELLO = frozenset({"hello", "isMaster", "ismaster"})


class Mongos(AdminCommands, LoopbackServer):
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
                if entry["name"] not in HIDDEN_DATABASES:
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

    def _document_key(self, db: str, coll: str, document: Mapping[str, Any]) -> dict[str, Any]:
        collection = self.catalog.sharded(f"{db}.{coll}")
        if collection is None:
            return {"_id": document.get("_id")}
        return collection.document_key(document)
