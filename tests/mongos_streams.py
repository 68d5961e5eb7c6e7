"""Change streams through the mongos emulator (`tests/mongos.py`), built on nx-27017's per-collection
streams, the only ones it has.

`ChangeLog` tails one nx-27017 stream per (shard, collection) that any stream through the emulator
covers, and gives each event it reads a place in one log: a sequence number and a cluster time (a BSON
Timestamp from the emulator's clock). nx-27017's own `clusterTime` is a date stamped when the event is
read (measured), so it orders nothing across shards; instead the emulator reads a shard's stream right
after every write it routes there (under its write lock), so the log holds the writes made through it in
the order they completed, as MongoDB's cluster times would order them. A write made on a shard directly
is placed when the log next reads that shard: per shard the order is kept, across shards it is the
order of arrival. Events are shaped on the way in as mongos shows them: `documentKey` holds the shard
key's fields and `_id` (nx-27017 gives `_id` alone, an integer turned into a string; the event's
`fullDocument` — which nx-27017 also gives for a delete, the document before it — supplies both), the
documents' ObjectIds, dates and BinData are decoded from nx-27017's JSON, and a delete loses the
`fullDocument` MongoDB would not send. Events caused by a chunk migration are marked `fromMigrate` and
never shown, unless the stream asks for `showMigrationEvents` (then with `fromMigrate: true`). A document
moved to another shard by a change of its shard key (`mongos_shard_keys.py`) shows as the `delete` and
the `insert` of one transaction (`ChangeLog.transaction`): one cluster time, the client's `lsid` and
`txnNumber`, not fromMigrate, the delete first unless `move_order` says otherwise.

`ChangeStreamCursor` is one client's stream over a collection, a database or the whole deployment
(`allChangesForCluster`), reading the log after its position. Its resume token encodes the position:
`_data` is a hex string (`82` + the cluster time + the sequence number + the emulator's instance id),
so `resumeAfter`, `startAfter` and `startAtOperationTime` work for as long as the emulator runs; a token
from another emulator instance is answered ChangeStreamHistoryLost. The log is kept in memory whole, so
a stream through the emulator never loses history (nx-27017's own keeps its last ~1,000 events). A
`getMore` with nothing new waits up to its `maxTimeMS` (the stream's maxAwaitTimeMS; 1 s when none), as
MongoDB does and nx-27017 does not. Drops made through the emulator appear as `drop` (and
`dropDatabase`) events, followed by `invalidate` on a collection's (or a database's) stream, which ends.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bson import Timestamp
from pymongo import MongoClient
from pymongo.change_stream import ChangeStream
from pymongo.errors import PyMongoError

from tests.mongos_catalog import Clock
from tests.mongos_values import from_nx_json, run_stages
from tests.mongos_wire import CommandError

SourceKey = tuple[str, str, str]  # shard, database, collection
DocumentKey = Callable[[str, str, Mapping[str, Any]], dict[str, Any]]  # db, coll, document -> documentKey
SYSTEM_DATABASES = frozenset({"admin", "config", "local"})
_TOKEN = re.compile(r"^82([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{16})([0-9A-F]{2})([0-9a-f]{8})$")
_STREAM_STAGES = frozenset({"$match", "$project", "$unset"})


@dataclass(frozen=True)
class Logged:
    seq: int
    time: Timestamp
    db: str
    coll: str | None
    event: dict[str, Any]  # as mongos shows it, without its `_id` (the token, made per stream)
    from_migrate: bool = False


class _Source:
    """One shard's nx-27017 stream over one collection, read to its end on each `pull`."""

    def __init__(self, client: MongoClient[Any], db: str, coll: str) -> None:
        self._collection = client[db][coll]
        self._stream: ChangeStream[Any] = self._collection.watch()
        self._token = self._stream.resume_token

    def pull(self) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        while True:
            if not self._stream.alive:  # nx-27017 ends a cursor whose connection closed: reopen where it was
                self._stream = self._collection.watch(resume_after=self._token)
            try:
                event = self._stream.try_next()
            except PyMongoError:
                self._stream = self._collection.watch(resume_after=self._token)
                continue
            if event is None:
                return events
            self._token = self._stream.resume_token
            events.append(event)

    def close(self) -> None:
        with contextlib.suppress(PyMongoError):
            self._stream.close()


class ChangeLog:
    """Every change the emulator has read from the shards, in one order (see the module)."""

    def __init__(self, clients: Mapping[str, MongoClient[Any]], clock: Clock, document_key: DocumentKey) -> None:
        self._clients = clients
        self._clock = clock
        self._document_key = document_key
        self._lock = threading.RLock()
        self._sources: dict[SourceKey, _Source] = {}
        self._events: list[Logged] = []
        self._scopes: set[tuple[str | None, str | None]] = set()  # what streams have covered
        self._migrating: set[SourceKey] = set()
        self._transaction: list[tuple[str, str | None, dict[str, Any]]] | None = None  # a move's events, held
        self.move_order = ("delete", "insert")  # how a document moved by a shard key change shows (mongos_shard_keys)
        self.instance = secrets.token_hex(4)

    # --- which collections are tailed ---------------------------------------------------------------

    def cover(self, db: str | None, coll: str | None) -> None:
        """A stream over (db, coll) was opened (None: all of them): tail what it covers from now on."""
        with self._lock:
            self._scopes.add((db, coll))

    def wanted(self, db: str, coll: str) -> bool:
        if db in SYSTEM_DATABASES or coll.startswith("system."):
            return False
        with self._lock:
            return any(scope_db in (None, db) and scope_coll in (None, coll) for scope_db, scope_coll in self._scopes)

    def track(self, shard: str, db: str, coll: str) -> None:
        """Tails (shard, db.coll) from now on, before a write reaches it (nx-27017 records a collection's
        changes only from its first watch)."""
        with self._lock:
            if (shard, db, coll) not in self._sources:
                self._sources[(shard, db, coll)] = _Source(self._clients[shard], db, coll)

    def sources(self, db: str | None = None, coll: str | None = None) -> list[SourceKey]:
        with self._lock:
            return [key for key in self._sources if db in (None, key[1]) and coll in (None, key[2])]

    def forget(self, db: str, coll: str | None = None) -> None:
        """The collection (or database) was dropped: its triggers are gone, a new one is tailed anew."""
        with self._lock:
            for key in self.sources(db, coll):
                self._sources.pop(key).close()

    # --- reading ------------------------------------------------------------------------------------

    def pull(self, keys: Iterable[SourceKey] | None = None) -> None:
        """Reads the given sources (all when None) to their end, into the log."""
        with self._lock:
            for key in list(self._sources if keys is None else keys):
                source = self._sources.get(key)
                if source is None:
                    continue
                for raw in source.pull():
                    shaped = self._shape(key, raw)
                    if shaped is not None:
                        self._append(key[1], key[2], shaped, key in self._migrating)

    @contextlib.contextmanager
    def migration(self, keys: Iterable[SourceKey]) -> Iterator[None]:
        """What these sources show while inside is a chunk migration's doing: marked fromMigrate."""
        keys = list(keys)
        with self._lock:
            self.pull(keys)  # what came before is not the migration's
            self._migrating.update(keys)
        try:
            yield
        finally:
            with self._lock:
                self.pull(keys)
                self._migrating.difference_update(keys)

    @contextlib.contextmanager
    def transaction(self, keys: Iterable[SourceKey], session: Mapping[str, Any]) -> Iterator[None]:
        """What these sources show while inside is one transaction's doing (a document moving to another
        shard, `mongos_shard_keys.py`): logged at its end with one cluster time, the session's `lsid` and
        `txnNumber`, deletes and inserts in `move_order`. The log is held meanwhile: no other event slips in."""
        keys = list(keys)
        with self._lock:
            self.pull(keys)  # what came before is not the transaction's
            self._transaction = []
            try:
                yield
            finally:
                self.pull(keys)
                held, self._transaction = self._transaction, None
                moment = self._clock.tick()
                order = {operation: index for index, operation in enumerate(self.move_order)}
                for db, coll, event in sorted(held, key=lambda item: order.get(item[2]["operationType"], len(order))):
                    self._append(db, coll, {**event, **session}, False, moment)

    def append(self, db: str, coll: str | None, event: dict[str, Any]) -> None:
        """An event the emulator makes itself (drop, dropDatabase)."""
        with self._lock:
            self._append(db, coll, event, False)

    def _append(self, db: str, coll: str | None, event: dict[str, Any], from_migrate: bool,
                moment: Timestamp | None = None) -> None:
        if self._transaction is not None and moment is None and not from_migrate:
            self._transaction.append((db, coll, event))
            return
        moment = moment or self._clock.tick()
        shaped = {"operationType": event.pop("operationType"), "clusterTime": moment,
                  "wallTime": datetime.now(UTC).replace(tzinfo=None), **event}
        self._events.append(Logged(len(self._events) + 1, moment, db, coll, shaped, from_migrate))

    def _shape(self, key: SourceKey, raw: Mapping[str, Any]) -> dict[str, Any] | None:
        _shard, db, coll = key
        operation = raw.get("operationType")
        if operation not in ("insert", "update", "replace", "delete"):
            return None
        document = from_nx_json(raw.get("fullDocument")) if raw.get("fullDocument") else None
        if document is not None:
            document_key = self._document_key(db, coll, document)
        else:  # nothing to take the shard key from: nx-27017's documentKey, its `_id` maybe a string
            document_key = dict(raw.get("documentKey") or {})
        event: dict[str, Any] = {"operationType": operation, "ns": {"db": db, "coll": coll},
                                 "documentKey": document_key}
        if operation != "delete":
            event["fullDocument"] = document
        if operation == "update":
            event["updateDescription"] = raw.get("updateDescription")
        return event

    def head(self) -> int:
        with self._lock:
            return len(self._events)

    def after(self, seq: int, limit: int) -> list[Logged]:
        with self._lock:
            return self._events[seq:seq + limit]

    def at(self, seq: int) -> Logged | None:
        with self._lock:
            return self._events[seq - 1] if 0 < seq <= len(self._events) else None

    def first_at_or_after(self, moment: Timestamp) -> int:
        """The position just before the first event at or after a cluster time."""
        with self._lock:
            for logged in self._events:
                if (logged.time.time, logged.time.inc) >= (moment.time, moment.inc):
                    return logged.seq - 1
            return len(self._events)

    # --- tokens -------------------------------------------------------------------------------------

    def token(self, seq: int, invalidate: bool = False) -> dict[str, str]:
        logged = self.at(seq)
        moment = logged.time if logged else Timestamp(0, 0)
        return {"_data": f"82{moment.time:08X}{moment.inc:08X}{seq:016X}{int(invalidate):02X}{self.instance}"}

    def position_of(self, token: Any) -> int:
        data = token.get("_data") if isinstance(token, Mapping) else None
        found = _TOKEN.match(data) if isinstance(data, str) else None
        if found is None:
            raise CommandError(260, f"the resume token {token!r} is not one of this mongos emulator's")
        if found.group(5) != self.instance:
            raise CommandError(286, "Resume of change stream was not possible, as the resume point may no longer "
                                    "be in the oplog (the mongos emulator that made this token is gone: it keeps "
                                    "its change history in memory)")
        return int(found.group(3), 16)

    def close(self) -> None:
        with self._lock:
            for source in self._sources.values():
                source.close()
            self._sources.clear()


class ChangeStreamCursor:
    """One client's change stream: a collection's (db, coll), a database's (db, None) or the
    deployment's (None, None)."""

    def __init__(self, log: ChangeLog, db: str | None, coll: str | None, stage: Mapping[str, Any],
                 stages: list[Mapping[str, Any]]) -> None:
        for extra in stages:
            if next(iter(extra), None) not in _STREAM_STAGES:
                raise CommandError(115, f"change stream stage {next(iter(extra), None)} is not supported by the "
                                        "mongos emulator (it runs $match, $project and $unset)")
        self._log = log
        self.db = db
        self.coll = coll
        self._stages = stages
        self._full_document = stage.get("fullDocument", "default")
        self._show_migrations = bool(stage.get("showMigrationEvents"))
        self.alive = True
        self._pending_invalidate: int | None = None
        token = stage.get("resumeAfter") or stage.get("startAfter")
        if token is not None:
            self.position = log.position_of(token)
        elif stage.get("startAtOperationTime") is not None:
            self.position = log.first_at_or_after(stage["startAtOperationTime"])
        else:
            log.pull(self._sources())
            self.position = log.head()

    @property
    def namespace(self) -> str:
        return f"{self.db or 'admin'}.{self.coll or '$cmd.aggregate'}"

    def _sources(self) -> list[SourceKey]:
        return self._log.sources(self.db, self.coll)

    def _covers(self, logged: Logged) -> bool:
        if self.db is None:
            return logged.db not in SYSTEM_DATABASES
        return logged.db == self.db and (self.coll is None or logged.coll in (None, self.coll))

    def _ends_here(self, logged: Logged) -> bool:
        operation = logged.event["operationType"]
        if self.coll is not None:
            return operation == "drop" and logged.coll == self.coll or operation == "dropDatabase"
        return self.db is not None and operation == "dropDatabase"

    def batch(self, size: int, max_await_ms: float | None) -> tuple[list[dict[str, Any]], dict[str, str]]:
        """Up to `size` events after the stream's position (waiting up to `max_await_ms` for one), and
        the postBatchResumeToken."""
        deadline = time.monotonic() + (max_await_ms if max_await_ms is not None else 1000) / 1000
        found: list[dict[str, Any]] = []
        while True:
            if self._pending_invalidate is not None:
                seq = self._pending_invalidate
                logged = self._log.at(seq)
                found.append({"_id": self._log.token(seq, invalidate=True), "operationType": "invalidate",
                              "clusterTime": logged.time if logged else Timestamp(0, 0),
                              "wallTime": logged.event["wallTime"] if logged else datetime.now(UTC)})
                self.alive = False
                return found, found[-1]["_id"]
            self._log.pull(self._sources())
            while chunk := self._log.after(self.position, 256):
                for logged in chunk:
                    self.position = logged.seq
                    if not self._covers(logged) or (logged.from_migrate and not self._show_migrations):
                        continue
                    event = self._render(logged)
                    if event is not None:
                        found.append(event)
                    if self._ends_here(logged):
                        self._pending_invalidate = logged.seq
                        return found, self._log.token(logged.seq)
                    if len(found) >= size:
                        return found, self._log.token(self.position)
            if found or time.monotonic() >= deadline:
                return found, self._log.token(self.position)
            time.sleep(0.02)

    def _render(self, logged: Logged) -> dict[str, Any] | None:
        event = {"_id": self._log.token(logged.seq), **logged.event}
        if event["operationType"] == "update" and self._full_document == "default":
            event.pop("fullDocument", None)  # MongoDB sends an update's document only when asked
        if logged.from_migrate:
            event["fromMigrate"] = True
        if self._stages:
            kept = run_stages([event], self._stages)
            return kept[0] if kept else None
        return event
