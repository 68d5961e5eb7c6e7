"""Turning change events, in MongoDB's documented shapes, into idempotent writes on the target.

`translate()` is pure: an event in, a `DocumentWrite` or a `CommandChange` out (or nothing for
events with no effect on data). Replaying an event twice, or replaying events the initial copy
already reflects, converges on the source's state: inserts and replaces are upserts of the full
document, updates apply their `updateDescription` (or, when a source sends none, the full
document), deletes are by key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pymongo import DeleteOne, ReplaceOne, UpdateOne

DOCUMENT_OPERATIONS = frozenset({"insert", "update", "replace", "delete"})
COMMAND_OPERATIONS = frozenset({"drop", "rename", "dropDatabase", "create", "createIndexes", "dropIndexes",
                                "modify", "invalidate"})


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


def namespace_of(event: dict[str, Any]) -> str:
    ns = event.get("ns") or {}
    return f"{ns.get('db')}.{ns['coll']}" if ns.get("coll") else str(ns.get("db"))


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
