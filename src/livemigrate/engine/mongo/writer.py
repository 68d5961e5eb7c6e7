"""Writing the target: collections, document batches, indexes, views, and replayed changes.

Every write here is safe to repeat: a batch re-sent after a crash meets documents already there
(duplicate keys are the only error ignored), and replayed changes are upserts and deletes by key.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from pymongo import MongoClient
from pymongo.collection import Collection
from pymongo.errors import BulkWriteError, CollectionInvalid, OperationFailure

from livemigrate.engine.mongo.collections import CollectionSpec

log = logging.getLogger("livemigrate.engine.writer")

DUPLICATE_KEY = 11000
NAMESPACE_EXISTS = 48
NAMESPACE_NOT_FOUND = 26
INDEX_NOT_FOUND = 27

# Collection options that describe a view or the server's own bookkeeping, not a create option.
_NOT_CREATE_OPTIONS = frozenset({"viewOn", "pipeline", "uuid"})


def collection_of(client: MongoClient[Any], namespace: str) -> Collection[Any]:
    database, name = namespace.split(".", 1)
    return client[database][name]


def non_empty_namespaces(client: MongoClient[Any], namespaces: Sequence[str]) -> list[str]:
    """The namespaces that hold at least one document on the target."""
    found = []
    for namespace in namespaces:
        if collection_of(client, namespace).find_one({}, {"_id": 1}) is not None:
            found.append(namespace)
    return found


def drop_namespaces(client: MongoClient[Any], namespaces: Sequence[str]) -> None:
    for namespace in namespaces:
        collection_of(client, namespace).drop()


def create_collection(client: MongoClient[Any], spec: CollectionSpec) -> None:
    options = {name: value for name, value in spec.options.items() if name not in _NOT_CREATE_OPTIONS}
    try:
        client[spec.database].create_collection(spec.name, **options)
    except CollectionInvalid:
        pass  # already there: a resumed run, or created by a replayed event
    except OperationFailure as error:
        if error.code != NAMESPACE_EXISTS:
            raise


def create_view(client: MongoClient[Any], spec: CollectionSpec) -> None:
    try:
        client[spec.database].command({"create": spec.name, "viewOn": spec.options["viewOn"],
                                       "pipeline": spec.options.get("pipeline", [])})
    except OperationFailure as error:
        if error.code != NAMESPACE_EXISTS:
            raise


def insert_batch(client: MongoClient[Any], namespace: str, documents: Sequence[Any]) -> None:
    """Insert unordered; documents already present (a batch re-sent after a crash) are skipped. (No count
    is returned: pymongo lists no inserted ids for raw documents, which is what the copy sends.)"""
    try:
        collection_of(client, namespace).insert_many(documents, ordered=False)
    except BulkWriteError as error:
        problems = error.details.get("writeErrors", [])
        if any(problem.get("code") != DUPLICATE_KEY for problem in problems):
            raise


def build_indexes(client: MongoClient[Any], namespace: str, indexes: Sequence[dict[str, Any]]) -> None:
    collection = collection_of(client, namespace)
    for index in indexes:
        options = {name: value for name, value in index.items() if name != "key"}
        keys = [(field_name, direction) for field_name, direction in index["key"]]
        try:
            collection.create_index(keys, **options)
        except OperationFailure as error:
            # 85/86: an index with this key or name exists already (a resumed run): keep it.
            if error.code not in (85, 86):
                raise


def drop_index(client: MongoClient[Any], namespace: str, name: str) -> None:
    try:
        collection_of(client, namespace).drop_index(name)
    except OperationFailure as error:
        if error.code not in (INDEX_NOT_FOUND, NAMESPACE_NOT_FOUND):
            raise


def rename(client: MongoClient[Any], namespace: str, new_namespace: str) -> None:
    source = collection_of(client, namespace)
    try:
        client.admin.command({"renameCollection": namespace, "to": new_namespace, "dropTarget": True})
    except OperationFailure as error:
        if error.code != NAMESPACE_NOT_FOUND:  # already renamed: a replay after a crash
            raise
    log.debug("renamed %s to %s", source.full_name, new_namespace)


def write_in_order(client: MongoClient[Any], namespace: str, operations: Sequence[Any]) -> None:
    if operations:
        collection_of(client, namespace).bulk_write(list(operations), ordered=True)
