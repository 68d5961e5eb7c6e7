"""Writes through the mongos emulator (`tests/mongos.py`), routed as MongoDB documents mongos routing them
("Sharded Cluster Query Routing", "Operational Restrictions in Sharded Clusters", the `update`,
`delete` and `findAndModify` pages' notes on sharded collections):

- `insert`: each document to the shard owning its shard key's chunk (a missing field counts as null; a
  document without `_id` gets an ObjectId first, as mongos gives it one), the batch split per shard —
  ordered batches in runs, so that an error stops the rest as it would on one server.
- `update` / `delete`: to the shards the filter targets (see `Catalog.shards_for`). Refused as mongos
  refuses them: an upsert whose filter lacks an equality on the full shard key (ShardKeyNotFound 61,
  "Failed to target upsert by query :: could not extract exact shard key"); before 7.1, a single-document
  update (multi: false) that targets more than one shard without an exact `_id` (InvalidOptions 72) —
  a replacement is targeted by its own shard key instead — and a single-document delete (limit: 1)
  without the full shard key or an exact `_id` (ShardKeyNotFound 61). From 7.1 such writes run, as
  MongoDB's "write without shard key" does: a matching document is looked for on the shards, then
  written on its own shard by its `_id`. Refusals are write errors at their statement's index.
- `findAndModify`: to the one shard its filter targets; before 7.1 refused (61) when it targets more,
  from 7.1 done as above; an upsert needs the full shard key.
- An update statement that may change a document's shard key value (or `_id`) is checked when it runs,
  by `mongos_shard_keys.py` (its docstring has the rules): refused (a write error at its index), moved
  to another shard by the emulator itself, or routed as above.
- A chunk migration (`move_chunk`): the donor's documents in the chunk are inserted on the recipient,
  the chunk's owner flips, and the donor deletes them; their change events are marked fromMigrate.
  Routed writes wait while it runs (MongoDB's migration lets them continue until its short critical
  section); reads go on, shards' copies they do not own left out.

Not emulated: retryable-write deduplication, transactions across shards (a document moved by a shard
key change is deleted and inserted by the emulator, not in a transaction: see `mongos_shard_keys.py`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bson import ObjectId

from tests.mongos_catalog import Chunk, ShardedCollection, exact_id
from tests.mongos_routing import forwardable
from tests.mongos_shard_keys import WITHOUT_SHARD_KEY, KeyCheck, Moved, ShardKeyWrites, may_change_key
from tests.mongos_values import project
from tests.mongos_wire import CommandError

_WITHOUT_SHARD_KEY = WITHOUT_SHARD_KEY
_BATCH = 1000
Plan = list[str] | str | KeyCheck | CommandError  # shards, a write without shard key, checked when it runs, refused


@dataclass(frozen=True)
class ChunkMove:
    """One migration the emulator made: what moved where, and how many documents."""

    namespace: str
    min: dict[str, Any]
    max: dict[str, Any]
    donor: str
    recipient: str
    documents: int


class WriteRouter(ShardKeyWrites):
    """The emulator's router: `Router`'s reads, and writes (`ShardKeyWrites`: shard key changes)."""

    moves: list[ChunkMove]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.moves = []

    # --- where each statement goes ----------------------------------------------------------------------

    def _update_plan(self, sharded: ShardedCollection, statement: Mapping[str, Any]) -> list[str] | str | KeyCheck:
        route = self._update_route(sharded, statement)
        return KeyCheck(route) if may_change_key(sharded, statement) else route

    def _update_route(self, sharded: ShardedCollection, statement: Mapping[str, Any]) -> list[str] | str:
        query = statement.get("q") or {}
        order = self.catalog.shard_order
        if statement.get("upsert"):
            key = sharded.exact_key(query)
            if key is None:
                raise CommandError(61, "Failed to target upsert by query :: could not extract exact shard key")
            return [sharded.chunk_at(sharded.point(key)).shard]
        targets = sharded.shards_for(query, order)
        if len(targets) == 1 or statement.get("multi"):
            return targets
        update = statement.get("u")
        if isinstance(update, Mapping) and update and not any(str(name).startswith("$") for name in update):
            replacement = dict(update)
            if "_id" not in replacement and exact_id(query):
                replacement["_id"] = query["_id"]
            return [sharded.shard_of(replacement)]
        if exact_id(query):
            return targets
        if self.version >= (7, 1):
            return _WITHOUT_SHARD_KEY
        raise CommandError(72, "A {multi:false} update on a sharded collection must contain an exact match on _id "
                               "(and have the collection default collation) or target a single shard (and have the "
                               f"simple collation), but this update targeted {len(targets)} shards. Update request: "
                               f"{dict(statement)}, shard key pattern: {sharded.key}")

    def _delete_plan(self, sharded: ShardedCollection, statement: Mapping[str, Any]) -> list[str] | str:
        query = statement.get("q") or {}
        key = sharded.exact_key(query)
        if key is not None:
            return [sharded.chunk_at(sharded.point(key)).shard]
        targets = sharded.shards_for(query, self.catalog.shard_order)
        if not statement.get("limit") or exact_id(query):
            return targets
        if self.version >= (7, 1):
            return _WITHOUT_SHARD_KEY
        raise CommandError(61, "A single delete on a sharded collection must contain an exact match on _id (and "
                               "have the collection default collation) or contain the shard key (and have the "
                               f"simple collation). Delete request: {dict(statement)}, shard key pattern: "
                               f"{sharded.key}")

    # --- running them ----------------------------------------------------------------------------------

    def _execute(self, db: str, command: Mapping[str, Any], name: str, field: str, plans: list[Plan]) -> dict[str, Any]:
        coll = str(command[name])
        statements = list(command.get(field) or [])
        ordered = bool(command.get("ordered", True))
        extra = {key: value for key, value in forwardable(command).items() if key not in (name, field, "ordered")}
        groups: list[tuple[Any, list[int]]] = []
        for index, plan in enumerate(plans):
            single = isinstance(plan, list) and len(plan) == 1
            same = [group for group in (groups[-1:] if ordered else groups) if single and group[0] == plan]
            if same:
                same[0][1].append(index)
            else:
                groups.append((plan, [index]))
        result: dict[str, Any] = {"n": 0}
        if name == "update":
            result["nModified"] = 0
        upserted: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for plan, indexes in groups:
            replies: list[dict[str, Any]] = []  # each with indexes within the group
            batch = [statements[index] for index in indexes]
            try:
                if isinstance(plan, CommandError):
                    raise plan
                runs = self._runs(db, coll, name, plan, batch, command, len(statements), replies)
            except CommandError as refused:  # a refusal: the statement's write error
                replies, runs = [{"writeErrors": [{"index": 0, "code": refused.code, "errmsg": refused.errmsg}]}], []
            for shard, sent in runs:
                with self.writing(shard, db, coll):
                    replies.append(self.run(shard, db, {name: coll, field: sent, "ordered": ordered, **extra}))
            for reply in replies:
                result["n"] += int(reply.get("n", 0))
                if name == "update":
                    result["nModified"] += int(reply.get("nModified", 0))
                upserted += [{**entry, "index": indexes[entry["index"]]} for entry in reply.get("upserted", [])]
                errors += [{**entry, "index": indexes[entry["index"]]} for entry in reply.get("writeErrors", [])]
            if ordered and errors:
                break
        if upserted:
            result["upserted"] = sorted(upserted, key=lambda entry: entry["index"])
        if errors:
            result["writeErrors"] = sorted(errors, key=lambda entry: entry["index"])
        return {**result, "ok": 1.0}

    def _runs(self, db: str, coll: str, name: str, plan: Plan, batch: list[Any], command: Mapping[str, Any],
              statements: int, replies: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
        """Where a group of statements goes; a shard key change the emulator made itself adds its reply."""
        if isinstance(plan, KeyCheck):
            moved = self.shard_key_update(db, coll, batch[0], plan.route, command, statements)
            if moved is not None:
                upserted = [{"index": 0, "_id": moved.new["_id"]}] if moved.old is None else []
                replies.append({"n": 1, "nModified": 0 if upserted else 1, "upserted": upserted})
                return []
            plan = plan.route
        if plan == _WITHOUT_SHARD_KEY:
            return self._without_shard_key(db, coll, name, batch[0])
        assert isinstance(plan, list)
        return [(shard, batch) for shard in plan]

    def _without_shard_key(self, db: str, coll: str, name: str,
                           statement: Mapping[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
        sharded = self.catalog.sharded(f"{db}.{coll}")
        assert sharded is not None
        found = self._find_one(db, coll, sharded, statement.get("q") or {}, statement.get("sort"))
        if found is None:
            return []
        shard, identifier = found
        return [(shard, [{**statement, "q": {"$and": [dict(statement.get("q") or {}), {"_id": identifier}]}}])]

    def _plans(self, db: str, coll: str, statements: list[Mapping[str, Any]], plan: Any) -> list[Plan]:
        sharded = self.catalog.sharded(f"{db}.{coll}")
        if sharded is None:
            return [[self.primary(db)] for _ in statements]
        plans: list[Plan] = []
        for statement in statements:
            try:
                plans.append(plan(sharded, statement))
            except CommandError as refused:
                plans.append(refused)
        return plans

    def insert(self, db: str, command: Mapping[str, Any]) -> dict[str, Any]:
        if db in ("config", "local"):
            raise CommandError(20, f"cannot write to '{db}.{command['insert']}' through the mongos emulator")
        coll = str(command["insert"])
        documents = [document if "_id" in document else {"_id": ObjectId(), **document}
                     for document in command.get("documents") or []]
        sharded = self.catalog.sharded(f"{db}.{coll}")
        primary = self.primary(db)
        plans: list[Plan] = [[sharded.shard_of(document) if sharded else primary] for document in documents]
        with self.writes.shared():
            return self._execute(db, {**command, "documents": [dict(document) for document in documents]},
                                 "insert", "documents", plans)

    def update(self, db: str, command: Mapping[str, Any]) -> dict[str, Any]:
        coll = str(command["update"])
        statements = list(command.get("updates") or [])
        with self.writes.shared():
            return self._execute(db, command, "update", "updates", self._plans(db, coll, statements, self._update_plan))

    def delete(self, db: str, command: Mapping[str, Any]) -> dict[str, Any]:
        coll = str(command["delete"])
        statements = list(command.get("deletes") or [])
        with self.writes.shared():
            return self._execute(db, command, "delete", "deletes", self._plans(db, coll, statements, self._delete_plan))

    def find_and_modify(self, db: str, command: Mapping[str, Any]) -> dict[str, Any]:
        coll = str(command.get("findAndModify") or command.get("findandmodify"))
        query = dict(command.get("query") or {})
        sharded = self.catalog.sharded(f"{db}.{coll}")
        sent = {"findAndModify": coll, **{name: value for name, value in forwardable(command).items()
                                          if name not in ("findAndModify", "findandmodify")}}
        with self.writes.shared():
            if sharded is None:
                shard = self.primary(db)
            elif command.get("upsert"):
                key = sharded.exact_key(query)
                if key is None:
                    raise CommandError(61, "Query for sharded findAndModify must contain the shard key")
                shard = sharded.chunk_at(sharded.point(key)).shard
            else:
                targets = sharded.shards_for(query, self.catalog.shard_order)
                if len(targets) == 1:
                    shard = targets[0]
                elif self.version >= (7, 1):
                    found = self._find_one(db, coll, sharded, query, command.get("sort"))
                    if found is None:
                        return {"lastErrorObject": {"n": 0, "updatedExisting": False}, "value": None, "ok": 1.0}
                    shard, identifier = found
                    sent["query"] = {"$and": [query, {"_id": identifier}]}
                else:
                    raise CommandError(61, "Query for sharded findAndModify must contain the shard key")
            statement = {"q": query, "u": command.get("update"), "upsert": bool(command.get("upsert")),
                         "sort": command.get("sort"), "arrayFilters": command.get("arrayFilters")}
            statement = {name: value for name, value in statement.items() if value is not None}
            if sharded is not None and not command.get("remove") and may_change_key(sharded, statement):
                moved = self.shard_key_update(db, coll, statement, [shard], command, 1, sent.get("query") or query)
                if moved is not None:
                    return self._found_and_moved(moved, command)
            with self.writing(shard, db, coll):
                return self.run(shard, db, sent)

    @staticmethod
    def _found_and_moved(moved: Moved, command: Mapping[str, Any]) -> dict[str, Any]:
        """findAndModify's answer for a document the emulator moved to another shard."""
        last: dict[str, Any] = {"n": 1, "updatedExisting": moved.old is not None}
        if moved.old is None:
            last["upserted"] = moved.new["_id"]
        value = moved.new if command.get("new") else moved.old
        if value is not None and command.get("fields"):
            value = project(value, command["fields"])
        return {"lastErrorObject": last, "value": value, "ok": 1.0}

    # --- migrations ------------------------------------------------------------------------------------

    def move_chunk(self, namespace: str, chunk: Chunk, recipient: str) -> ChunkMove:
        """Moves one chunk's documents from its shard to `recipient` (see the module)."""
        if recipient not in self.catalog.shard_hosts:
            raise CommandError(70, f"Shard {recipient} not found")
        db, coll = namespace.split(".", 1)
        with self.writes.exclusive():
            sharded = self.catalog.sharded(namespace)
            if sharded is None:
                raise CommandError(118, f"Collection {namespace} is not sharded.")
            donor = chunk.shard
            move = ChunkMove(namespace, dict(chunk.min), dict(chunk.max), donor, recipient, 0)
            if donor == recipient:
                return move
            identifiers = [document["_id"] for document in self._documents_on(donor, db, coll, sharded)
                           if sharded.chunk_at(sharded.point(sharded.values_of(document))) is chunk]
            keys = [(donor, db, coll), (recipient, db, coll)]
            tailed = self.log.wanted(db, coll)
            for key in keys if tailed else []:
                self.log.track(*key)
            with self.log.migration(keys if tailed else []):
                for start in range(0, len(identifiers), _BATCH):
                    part = identifiers[start:start + _BATCH]
                    found = self.run(donor, db, {"find": coll, "filter": {"_id": {"$in": part}}, "batchSize": _BATCH + 1})
                    documents = found["cursor"]["firstBatch"]
                    if documents:
                        self.run(recipient, db, {"insert": coll, "documents": documents, "ordered": False})
                self.catalog.assign(namespace, chunk, recipient)
                for start in range(0, len(identifiers), _BATCH):
                    part = identifiers[start:start + _BATCH]
                    self.run(donor, db, {"delete": coll, "deletes": [{"q": {"_id": {"$in": part}}, "limit": 0}]})
            move = ChunkMove(namespace, dict(chunk.min), dict(chunk.max), donor, recipient, len(identifiers))
            self.moves.append(move)
            return move

    def _documents_on(self, shard: str, db: str, coll: str, sharded: ShardedCollection) -> list[dict[str, Any]]:
        """Every document's `_id` and shard key on one shard (the chunk is picked out here: nx-27017's
        range operators compare across types and know no MinKey/MaxKey)."""
        projection = {"_id": 1, **dict.fromkeys(sharded.fields, 1)}
        reply = self.run(shard, db, {"find": coll, "filter": {}, "projection": projection, "batchSize": 100000})
        documents = list(reply["cursor"]["firstBatch"])
        cursor_id = int(reply["cursor"].get("id", 0))
        while cursor_id:
            more = self.run(shard, db, {"getMore": cursor_id, "collection": coll, "batchSize": 100000})
            documents += more["cursor"]["nextBatch"]
            cursor_id = int(more["cursor"].get("id", 0))
        return documents
