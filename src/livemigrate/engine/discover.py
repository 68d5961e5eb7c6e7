"""What the source holds: its collections (with options and indexes) and views, filtered.

Time-series collections are skipped with a warning, as Atlas live migration does; views are
re-created on the target after the copy, since they hold no documents.
"""

from __future__ import annotations

import logging
from typing import Any

from pymongo import MongoClient

from livemigrate.engine.mongo.collections import CollectionSpec, Discovery, secondary_indexes
from livemigrate.engine.options import NamespaceFilter

log = logging.getLogger("livemigrate.engine.discover")

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
