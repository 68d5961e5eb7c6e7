"""Turning change events, in MongoDB's documented shapes, into idempotent writes on the target.

`translate()` is pure: an event in, a `DocumentWrite` or a `CommandChange` out (or nothing for
events with no effect on data). Replaying an event twice, or replaying events the initial copy
already reflects, converges on the source's state: inserts and replaces are upserts of the full
document, updates apply their `updateDescription` (or, when a source sends none, the full
document), deletes are by key.

Each write finds its document by `_id` — the source's `documentKey` may carry the source's shard key
too, which the destination may not share. On a sharded destination (a collection with key fields
there, `key_fields`) a write must also carry what mongos routes by: an upsert's filter holds the full
shard key, taken from the document written, and an update adds the key fields the event's
`documentKey` holds (a sharded source's, when the keys are alike; else `_id` alone, which mongos
accepts for a single-document update or delete); a delete is by `_id` alone, since the copy it
removes may still hold a key value the source changed since. A document whose shard key value changed lives on
another shard than its new value's: an upsert there first deletes any copy of its `_id` whose key
differs (a broadcast `deleteMany`, which mongos always accepts), so that one document stays; an
update that sets or removes a key field is applied that way, from the full document, never as a
`$set` of the key (which mongos refuses without the old key in the filter).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pymongo import DeleteMany, DeleteOne, MongoClient, ReplaceOne, UpdateOne

from livemigrate.engine.changes import COMMAND_OPERATIONS, DOCUMENT_OPERATIONS, namespace_of
from livemigrate.engine.mongo import writer
from livemigrate.engine.mongo.collections import CollectionSpec, secondary_indexes
from livemigrate.engine.mongo.topology import value_at

log = logging.getLogger("livemigrate.engine.apply")



@dataclass(frozen=True)
class DocumentWrite:
    namespace: str
    operations: tuple[Any, ...]


@dataclass(frozen=True)
class CommandChange:
    """A change to collections or indexes; `namespace` is `db` alone for dropDatabase."""

    kind: str
    namespace: str
    detail: dict[str, Any]


def update_operations(key: dict[str, Any], description: dict[str, Any]) -> tuple[Any, ...]:
    """An update's delta as target writes: array truncations first, then sets and unsets (as the server
    applied them); two writes when both are present, since one update may not touch a path twice."""
    operations: list[Any] = []
    truncations = description.get("truncatedArrays") or []
    if truncations:
        operations.append(UpdateOne(key, {"$push": {entry["field"]: {"$each": [], "$slice": entry["newSize"]}
                                                    for entry in truncations}}))
    update: dict[str, Any] = {}
    if description.get("updatedFields"):
        update["$set"] = dict(description["updatedFields"])
    if description.get("removedFields"):
        update["$unset"] = {name: "" for name in description["removedFields"]}
    if update:
        operations.append(UpdateOne(key, update))
    return tuple(operations)


def _touches(description: Mapping[str, Any], key_fields: Sequence[str]) -> bool:
    """Whether an update's delta sets, removes or truncates a shard key field (or a part or parent of one)."""
    paths = [*(description.get("updatedFields") or {}), *(description.get("removedFields") or []),
             *(entry["field"] for entry in description.get("truncatedArrays") or [])]
    return any(path == field or path.startswith(f"{field}.") or field.startswith(f"{path}.")
               for path in paths for field in key_fields)


def _upsert(document: Mapping[str, Any], key_fields: Sequence[str]) -> tuple[Any, ...]:
    if not key_fields:
        return (ReplaceOne({"_id": document["_id"]}, document, upsert=True),)
    key = {field: value_at(document, field) for field in key_fields if field != "_id"}
    replace = ReplaceOne({"_id": document["_id"], **key}, document, upsert=True)
    if not key:  # sharded on _id alone: the key cannot change
        return (replace,)
    return DeleteMany({"_id": document["_id"], "$nor": [key]}), replace


def translate(event: dict[str, Any], key_fields: Sequence[str] = ()) -> DocumentWrite | CommandChange | None:
    """`key_fields`: the destination collection's shard key fields (none when it is not sharded)."""
    kind = event.get("operationType")
    namespace = namespace_of(event)
    if kind in DOCUMENT_OPERATIONS:
        event_key = dict(event["documentKey"])
        key = {"_id": event_key["_id"]}
        if key_fields and all(field in event_key for field in key_fields):
            key.update({field: event_key[field] for field in key_fields})
        if kind == "delete":
            # By `_id` alone, which mongos accepts for one document: the destination's copy may still hold
            # a key value the source changed since (an update whose lookup found the document gone).
            return DocumentWrite(namespace, (DeleteOne({"_id": event_key["_id"]}),))
        description = event.get("updateDescription")
        if kind == "update" and description and not _touches(description, key_fields):
            return DocumentWrite(namespace, update_operations(key, description))
        document = event.get("fullDocument")
        if document is None:
            # An update whose document was deleted before it could be looked up: its delete follows.
            return None
        return DocumentWrite(namespace, _upsert(document, key_fields))
    if kind in COMMAND_OPERATIONS:
        detail: dict[str, Any] = {}
        if kind == "rename":
            detail["to"] = namespace_of({"ns": event["to"]})
        if kind in ("create", "createIndexes", "dropIndexes", "modify"):
            detail.update(event.get("operationDescription") or {})
        return CommandChange(kind, namespace, detail)
    return None


def apply_changes(target: MongoClient[Any], events: Sequence[dict[str, Any]],
                  key_fields: Mapping[str, Sequence[str]] | None = None) -> None:
    """Apply events in source order: document writes grouped per namespace (in order), flushed
    before any change to collections, which must see every write that preceded it. `key_fields`: each
    sharded destination collection's shard key fields, by namespace."""
    pending: dict[str, list[Any]] = {}

    def flush() -> None:
        for namespace, operations in pending.items():
            writer.write_in_order(target, namespace, operations)
        pending.clear()

    for event in events:
        change = translate(event, (key_fields or {}).get(namespace_of(event), ()))
        if isinstance(change, DocumentWrite):
            pending.setdefault(change.namespace, []).extend(change.operations)
        elif isinstance(change, CommandChange):
            flush()
            apply_command(target, change)
    flush()


def apply_command(target: MongoClient[Any], change: CommandChange) -> None:
    if change.kind in ("invalidate", "modify"):
        return
    log.info("replaying %s on %s", change.kind, change.namespace)
    if change.kind == "drop":
        writer.drop_namespaces(target, [change.namespace])
    elif change.kind == "dropDatabase":
        target.drop_database(change.namespace)
    elif change.kind == "rename":
        writer.rename(target, change.namespace, str(change.detail["to"]))
    elif change.kind == "create":
        database, name = change.namespace.split(".", 1)
        options = {key: value for key, value in change.detail.items() if key != "idIndex"}
        if "viewOn" in options:
            writer.create_view(target, CollectionSpec(database, name, "view", options))
        else:
            writer.create_collection(target, CollectionSpec(database, name, "collection", options))
    elif change.kind == "createIndexes":
        writer.build_indexes(target, change.namespace, secondary_indexes(list(change.detail.get("indexes", []))))
    elif change.kind == "dropIndexes":
        for index in change.detail.get("indexes", []):
            writer.drop_index(target, change.namespace, str(index["name"]))
