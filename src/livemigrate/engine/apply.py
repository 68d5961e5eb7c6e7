"""Turning change events, in MongoDB's documented shapes, into idempotent writes on the target.

`translate()` is pure: an event in, a `DocumentWrite` or a `CommandChange` out (or nothing for
events with no effect on data). Replaying an event twice, or replaying events the initial copy
already reflects, converges on the source's state: inserts and replaces are upserts of the full
document, updates apply their `updateDescription` (or, when a source sends none, the full
document), deletes are by key.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pymongo import DeleteOne, MongoClient, ReplaceOne, UpdateOne

from livemigrate.engine.changes import COMMAND_OPERATIONS, DOCUMENT_OPERATIONS, namespace_of
from livemigrate.engine.mongo import writer
from livemigrate.engine.mongo.collections import CollectionSpec, secondary_indexes

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


def translate(event: dict[str, Any]) -> DocumentWrite | CommandChange | None:
    kind = event.get("operationType")
    namespace = namespace_of(event)
    if kind in DOCUMENT_OPERATIONS:
        key = dict(event["documentKey"])
        if kind == "delete":
            return DocumentWrite(namespace, (DeleteOne(key),))
        description = event.get("updateDescription")
        if kind == "update" and description:
            return DocumentWrite(namespace, update_operations(key, description))
        document = event.get("fullDocument")
        if document is None:
            # An update whose document was deleted before it could be looked up: its delete follows.
            return None
        return DocumentWrite(namespace, (ReplaceOne(key, document, upsert=True),))
    if kind in COMMAND_OPERATIONS:
        detail: dict[str, Any] = {}
        if kind == "rename":
            detail["to"] = namespace_of({"ns": event["to"]})
        if kind in ("create", "createIndexes", "dropIndexes", "modify"):
            detail.update(event.get("operationDescription") or {})
        return CommandChange(kind, namespace, detail)
    return None


def apply_changes(target: MongoClient[Any], events: Sequence[dict[str, Any]]) -> None:
    """Apply events in source order: document writes grouped per namespace (in order), flushed
    before any change to collections, which must see every write that preceded it."""
    pending: dict[str, list[Any]] = {}

    def flush() -> None:
        for namespace, operations in pending.items():
            writer.write_in_order(target, namespace, operations)
        pending.clear()

    for event in events:
        change = translate(event)
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
