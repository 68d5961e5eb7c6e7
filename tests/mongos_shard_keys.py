"""Changing a document's shard key value through the mongos emulator (`tests/mongos.py`), as MongoDB's manual
documents it (core/sharding-change-shard-key-value: on a mongos, as a retryable write or in a transaction,
with an equality on the full shard key; core/sharding-set-missing-shard-key-fields), with the codes and
messages MongoDB answers, which the manual does not give: those of the server's update and upsert stages
and of mongos' write command (5.0 to 8.0; checked in MongoDB's source, never measured on a real server).

An update statement — the `update` command's (replacement or operators), `findAndModify`'s — changes a
document's shard key when the document it matched has other shard key values afterwards (compared field
by field as BSON values; a missing field and null are equal, so setting a missing field to null changes
nothing). Such a change is checked in MongoDB's order, and refused as a write error of its statement (a
command error for findAndModify) unless:

- the filter has an equality on the full shard key — before 7.1 always ("Shard key update is not allowed
  without specifying the full shard key in the query", code 31025); from 7.1 a filter without it is
  allowed when the write is a retryable one (MongoDB's "write without shard key" then runs it), but not
  an update whose filter holds an exact `_id` and no full shard key (broadcast by `_id`: still 31025);
- the statement is not `multi: true` (InvalidOptions 72, "Multi-update operations are not allowed when
  updating the shard key field."; before 7.1 the missing full shard key is refused first);
- the command is a retryable write or in a transaction: it carried a `txnNumber`, which pymongo sends
  for single-statement writes (retryWrites, its default) and never with a `multi: true` statement
  (IllegalOperation 20, "Must run update to shard key field in a multi-statement transaction or with
  retryWrites: true."). The emulator drops `lsid`/`txnNumber` before a shard sees the command; it only
  checks that they came.

An allowed change that keeps the document in a chunk of its shard is a plain update on that shard. One
whose new values belong to another shard's chunk moves it, as mongos does in a transaction: the
document is deleted from its shard and inserted, updated, on the owner of its new values — only if the
command holds that one statement ("Document shard key value updates that cause the doc to move shards
must be sent with write batch of size 1", InvalidOptions 72, at the statement's index: a bulk write of
several statements cannot move a document). An `_id` already on the new shard fails it with nothing
changed (DuplicateKey 11000, "Failed to update document's shard key field. There is either an orphan for
this document or _id for this collection is not globally unique."). The reply counts it as one matched
and modified document. An upsert that matches nothing and whose new document belongs on another shard
than the one its filter targeted is inserted there, as a retryable write only ("... Cross-shard upserts
are only allowed when running in a transaction or with retryWrites: true.", IllegalOperation 20).

A stream through the emulator shows a move as MongoDB's do: a `delete` on the old shard and an `insert`
on the new one, not marked fromMigrate, with one cluster time and the client's `lsid` and `txnNumber` (the
fields of a transaction's events: MongoDB's default path runs the move as a transaction in the client's
own session). MongoDB usually shows the delete first and sometimes the insert first (SERVER-95461,
SERVER-104246, both open or declined): `ChangeLog.move_order` says which the emulator shows.
(Underneath, it inserts first, so that a failed insert changes nothing.)

To know what a statement does before a shard runs it, the emulator finds its document(s) and applies
operator updates to copies in a scratch collection on the same nx-27017 (database `mongosEmulatorScratch`,
hidden from `listDatabases`): nx-27017's own update semantics decide the new values. Only statements that
may touch a shard key field (or `_id`) pay for this: a replacement whose shard key values equal the
filter's, or operators that name no shard key path, are routed as before. Pipeline updates are passed on
unchecked (nx-27017 runs none). Along the way an update that alters `_id` is refused (ImmutableField 66),
as MongoDB refuses it and nx-27017 does not. Not emulated: the transaction variant of the batch-size
refusal (a command error), sessions for the 7.1 "write without shard key" (whose events MongoDB may tag
with an internal session), and a move's atomicity against other clients' concurrent writes.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bson import Binary, Int64, ObjectId

from tests.mongos_catalog import ShardedCollection, exact_id
from tests.mongos_routing import Router
from tests.mongos_values import order_key, path_value, same
from tests.mongos_wire import CODEC, CommandError

SCRATCH_DATABASE = "mongosEmulatorScratch"
WITHOUT_SHARD_KEY = "without shard key"
_NO_USER_UID = Binary(hashlib.sha256(b"").digest())  # an lsid's `uid` without authentication
_BATCH_OF_ONE = ("Document shard key value updates that cause the doc to move shards must be sent with write "
                 "batch of size 1")
_DUPLICATE = ("Failed to update document's shard key field. There is either an orphan for this document or _id "
              "for this collection is not globally unique.")


@dataclass(frozen=True)
class KeyCheck:
    """An update statement that may change a shard key, checked when it runs: `route` is where it goes
    otherwise (a list of shards, or WITHOUT_SHARD_KEY)."""

    route: list[str] | str


@dataclass(frozen=True)
class Moved:
    """A document the emulator moved to another shard: before (None for an upsert) and after."""

    old: dict[str, Any] | None
    new: dict[str, Any]


def _paths(update: Mapping[str, Any]) -> list[str]:
    paths: list[str] = []
    for operator, argument in update.items():
        if isinstance(argument, Mapping):
            paths += [str(name) for name in argument]
            if operator == "$rename":
                paths += [str(value) for value in argument.values()]
    return paths


def _related(path: str, field: str) -> bool:
    """Whether writing `path` may change `field` (one is a prefix of the other; `$` segments match any)."""
    written, wanted = path.split("."), field.split(".")
    return all(a == b or a.startswith("$") for a, b in zip(written, wanted, strict=False))


def may_change_key(sharded: ShardedCollection, statement: Mapping[str, Any]) -> bool:
    """Whether an update statement might change a document's shard key or `_id` (cheap, before any read)."""
    update = statement.get("u")
    if not isinstance(update, Mapping):
        return False  # a pipeline: nx-27017 runs none, the shard refuses it
    fields = [*sharded.fields, "_id"]
    if any(str(name).startswith("$") for name in update):
        return any(_related(path, field) for path in _paths(update) for field in fields)
    query = statement.get("q") or {}
    key = sharded.exact_key(query)
    if key is None or not all(same(path_value(update, name), key[name]) for name in sharded.fields):
        return True
    return "_id" in update and not same(query.get("_id"), update["_id"])


class ShardKeyWrites(Router):
    """The checks and moves of the module, for `mongos_writes.WriteRouter`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._scratch_lock = threading.Lock()

    def _matching(self, db: str, coll: str, sharded: ShardedCollection, shards: Sequence[str],
                  query: Mapping[str, Any], sort: Mapping[str, Any] | None, limit: int) -> list[tuple[str, Any]]:
        """The documents (with their shard) a filter matches on these shards, shards' copies they do not own
        left out; at most `limit` (0: all)."""
        keep = self.owner_filter(sharded)
        found: list[tuple[str, Any]] = []
        size = 16 if limit else 100000
        for shard in shards:
            command: dict[str, Any] = {"find": coll, "filter": dict(query), "batchSize": size}
            if sort:
                command["sort"] = dict(sort)
            cursor = self.run(shard, db, command)["cursor"]
            documents, cursor_id = cursor["firstBatch"], int(cursor.get("id", 0))
            while True:
                found += [(shard, document) for document in documents if keep(shard, document)]
                if limit and len(found) >= limit:
                    if cursor_id:
                        self.run(shard, db, {"killCursors": coll, "cursors": [Int64(cursor_id)]})
                    return found[:limit]
                if not cursor_id:
                    break
                more = {"getMore": Int64(cursor_id), "collection": coll, "batchSize": size}
                cursor = self.run(shard, db, more)["cursor"]
                documents, cursor_id = cursor["nextBatch"], int(cursor.get("id", 0))
        return found

    def _find_one(self, db: str, coll: str, sharded: ShardedCollection, query: Mapping[str, Any],
                  sort: Mapping[str, Any] | None) -> tuple[str, Any] | None:
        """The shard and `_id` of a document matching `query`: the first step of a write without shard key."""
        found = self._matching(db, coll, sharded, sharded.shards_for(query, self.catalog.shard_order), query, sort, 1)
        return (found[0][0], found[0][1]["_id"]) if found else None

    def _scratch(self, shard: str, documents: list[dict[str, Any]],
                 statement: Mapping[str, Any]) -> list[dict[str, Any]] | None:
        """The documents as the statement leaves them (or the one it upserts into an empty collection),
        applied by nx-27017 to copies; None when it refuses the statement (the shard will too)."""
        database = self.clients[shard][SCRATCH_DATABASE]
        scratch = database.get_collection("changes", codec_options=CODEC)
        sent = {name: value for name, value in statement.items() if name not in ("hint", "sort")}
        with self._scratch_lock:
            scratch.delete_many({})
            try:
                if documents:
                    scratch.insert_many(documents)
                reply = database.command({"update": "changes", "updates": [sent]}, codec_options=CODEC)
                return None if reply.get("writeErrors") else list(scratch.find({}))
            finally:
                scratch.delete_many({})

    def _after(self, shard: str, found: list[dict[str, Any]],
               statement: Mapping[str, Any]) -> list[dict[str, Any]] | None:
        """Each found document as the statement leaves it, in the same order."""
        update = statement["u"]
        if not any(str(name).startswith("$") for name in update):
            return [{"_id": update.get("_id", old["_id"]), **{k: v for k, v in update.items() if k != "_id"}}
                    for old in found]
        applied = self._scratch(shard, found, statement)
        if applied is None or len(applied) == len(found) == 1:
            return applied
        by_id = {order_key(document["_id"]): document for document in applied}
        return [by_id.get(order_key(old["_id"]), {**old, "_id": None}) for old in found]  # gone: its _id changed

    def _upserted(self, shard: str, statement: Mapping[str, Any]) -> dict[str, Any] | None:
        update, query = statement["u"], statement.get("q") or {}
        if not any(str(name).startswith("$") for name in update):
            identifier = update.get("_id", query.get("_id") if exact_id(query) else ObjectId())
            return {"_id": identifier, **{k: v for k, v in update.items() if k != "_id"}}
        applied = self._scratch(shard, [], {**statement, "multi": False})
        return applied[0] if applied else None

    def _refusal(self, sharded: ShardedCollection, statement: Mapping[str, Any], retryable: bool,
                 find_and_modify: bool) -> CommandError | None:
        query = statement.get("q") or {}
        full = sharded.exact_key(query) is not None
        missing_key = CommandError(31025, "Shard key update is not allowed without specifying the full shard key "
                                          "in the query")
        multi = CommandError(72, "Multi-update operations are not allowed when updating the shard key field.")
        if self.version < (7, 1) and not full:
            return missing_key
        if statement.get("multi"):
            return multi
        if not full and exact_id(query) and not statement.get("upsert") and not find_and_modify:
            return missing_key  # 7.1+: an update broadcast by _id, not a write without shard key
        if not retryable:
            return CommandError(20, "Must run update to shard key field in a multi-statement transaction or "
                                    "with retryWrites: true.")
        return None

    def shard_key_update(self, db: str, coll: str, statement: Mapping[str, Any], route: list[str] | str,
                         command: Mapping[str, Any], statements: int,
                         where: Mapping[str, Any] | None = None) -> Moved | None:
        """Runs the module's checks for one statement: raises its refusal, moves its document (Moved), or
        answers None: route the statement as usual. `where` (findAndModify's, whose filter a 7.1 write
        without shard key narrows by `_id`): the filter that finds its document."""
        sharded = self.catalog.sharded(f"{db}.{coll}")
        assert sharded is not None
        query = dict(where or statement.get("q") or {})
        shards = sharded.shards_for(query, self.catalog.shard_order) if route == WITHOUT_SHARD_KEY else list(route)
        limit = 0 if statement.get("multi") else 1
        found = self._matching(db, coll, sharded, shards, query, statement.get("sort"), limit)
        retryable = command.get("txnNumber") is not None
        if not found:
            return self._upsert_elsewhere(db, coll, sharded, statement, shards, command, statements, retryable)
        changed = []
        for shard in dict.fromkeys(shard for shard, _ in found):
            olds = [document for where_found, document in found if where_found == shard]
            news = self._after(shard, olds, statement)
            if news is None:
                return None
            for old, new in zip(olds, news, strict=True):
                if not same(old["_id"], new["_id"]):
                    raise CommandError(66, f"After applying the update, the (immutable) field '_id' was found to "
                                           f"have been altered to _id: {new['_id']!r}")
                if not all(same(path_value(old, name), path_value(new, name)) for name in sharded.fields):
                    changed.append((shard, old, new))
        if not changed:
            return None
        refusal = self._refusal(sharded, statement, retryable, where is not None)
        if refusal is not None:
            raise refusal
        shard, old, new = changed[0]
        owner = sharded.shard_of(new)
        if owner == shard:
            return None
        if statements != 1:
            raise CommandError(72, _BATCH_OF_ONE)
        self._move(db, coll, shard, owner, old, new, command)
        return Moved(old, new)

    def _upsert_elsewhere(self, db: str, coll: str, sharded: ShardedCollection, statement: Mapping[str, Any],
                          shards: list[str], command: Mapping[str, Any], statements: int,
                          retryable: bool) -> Moved | None:
        if not statement.get("upsert") or len(shards) != 1:
            return None
        document = self._upserted(shards[0], statement)
        if document is None or sharded.shard_of(document) == shards[0]:
            return None
        if not retryable:
            raise CommandError(20, "The upsert document could not be inserted onto the shard targeted by the "
                                   "query, since its shard key belongs on a different shard. Cross-shard upserts "
                                   "are only allowed when running in a transaction or with retryWrites: true.")
        if statements != 1:
            raise CommandError(72, _BATCH_OF_ONE)
        self._move(db, coll, None, sharded.shard_of(document), None, document, command)
        return Moved(None, document)

    def _move(self, db: str, coll: str, source: str | None, target: str, old: dict[str, Any] | None,
              new: dict[str, Any], command: Mapping[str, Any]) -> None:
        """The delete and the insert of one move, logged as one transaction's events."""
        session = {"lsid": {**dict(command.get("lsid") or {}), "uid": _NO_USER_UID},
                   "txnNumber": Int64(int(command.get("txnNumber") or 0))}
        keys = [(shard, db, coll) for shard in (source, target) if shard]
        with self.log.transaction(keys if self.log.wanted(db, coll) else [], session):
            with self.writing(target, db, coll):
                reply = self.run(target, db, {"insert": coll, "documents": [new]})
            for error in reply.get("writeErrors", []):
                if int(error.get("code", 0)) == 11000 and "._id" in str(error.get("errmsg")):
                    raise CommandError(11000, f"{_DUPLICATE} :: caused by :: E11000 duplicate key error collection: "
                                              f"{db}.{coll} index: _id_ dup key: {{ _id: {new['_id']!r} }}")
                raise CommandError(int(error.get("code", 8)), str(error.get("errmsg")))
            if source is not None and old is not None:
                with self.writing(source, db, coll):
                    self.run(source, db, {"delete": coll, "deletes": [{"q": {"_id": old["_id"]}, "limit": 1}]})
