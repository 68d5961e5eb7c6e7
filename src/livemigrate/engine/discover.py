"""What the source holds: its collections (with options and indexes) and views, filtered.

Time-series collections are skipped with a warning, as Atlas live migration does; views are
re-created on the target after the copy, since they hold no documents.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from pymongo import MongoClient

from livemigrate.engine.options import NamespaceFilter

log = logging.getLogger("livemigrate.engine.discover")

# Index fields the server derives or that cannot be passed back to createIndexes.
_INDEX_FIELDS_NOT_COPIED = frozenset({"v", "ns", "key", "background"})


@dataclass(frozen=True)
class CollectionSpec:
    database: str
    name: str
    kind: str  # "collection" or "view"
    options: dict[str, Any] = field(default_factory=dict)
    indexes: tuple[dict[str, Any], ...] = ()

    @property
    def namespace(self) -> str:
        return f"{self.database}.{self.name}"

    def to_document(self) -> dict[str, Any]:
        return {"database": self.database, "name": self.name, "kind": self.kind, "options": self.options,
                "indexes": list(self.indexes)}

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> CollectionSpec:
        return cls(document["database"], document["name"], document["kind"], dict(document["options"]),
                   tuple(dict(index) for index in document["indexes"]))


@dataclass(frozen=True)
class Discovery:
    collections: tuple[CollectionSpec, ...]
    skipped: tuple[str, ...]

    @property
    def copied(self) -> tuple[CollectionSpec, ...]:
        return tuple(spec for spec in self.collections if spec.kind == "collection")

    @property
    def views(self) -> tuple[CollectionSpec, ...]:
        return tuple(spec for spec in self.collections if spec.kind == "view")


def secondary_indexes(raw_indexes: list[dict[str, Any]]) -> tuple[dict[str, Any], ...]:
    """Index definitions to re-create: every index but `_id_`, as {key: [...], options...}."""
    found = []
    for index in raw_indexes:
        if index.get("name") == "_id_":
            continue
        definition = {name: value for name, value in index.items() if name not in _INDEX_FIELDS_NOT_COPIED}
        definition["key"] = [[field_name, direction] for field_name, direction in dict(index["key"]).items()]
        found.append(definition)
    return tuple(found)


def collection_namespaces(client: MongoClient[Any], namespaces: NamespaceFilter) -> list[str]:
    """The namespaces of the collections the filter wants, as the source holds them now (no views, no
    time-series): cheaper than `discover`, for checks that run while replicating and at cutover."""
    found = []
    for database in client.list_database_names():
        if not namespaces.wants_database(database):
            continue
        for info in client[database].list_collections():
            namespace = f"{database}.{info['name']}"
            options = info.get("options") or {}
            if info.get("type", "collection") == "collection" and "timeseries" not in options \
                    and namespaces.wants(namespace):
                found.append(namespace)
    return sorted(found)


def discover(client: MongoClient[Any], namespaces: NamespaceFilter) -> Discovery:
    collections: list[CollectionSpec] = []
    skipped: list[str] = []
    for database in sorted(client.list_database_names()):
        if not namespaces.wants_database(database):
            continue
        for info in sorted(client[database].list_collections(), key=lambda entry: entry["name"]):
            name = info["name"]
            namespace = f"{database}.{name}"
            if not namespaces.wants(namespace):
                continue
            options = dict(info.get("options") or {})
            kind = info.get("type", "collection")
            if kind == "timeseries" or "timeseries" in options:
                log.warning("skipping time-series collection %s: live migration does not copy time-series "
                            "collections", namespace)
                skipped.append(namespace)
                continue
            if kind == "view":
                collections.append(CollectionSpec(database, name, "view", options))
                continue
            indexes = secondary_indexes([dict(index) for index in client[database][name].list_indexes()])
            collections.append(CollectionSpec(database, name, "collection", options, indexes))
    return Discovery(tuple(collections), tuple(skipped))
