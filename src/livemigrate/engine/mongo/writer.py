"""Writing the target: collections, document batches, indexes, views, and replayed changes.

Every write here is safe to repeat: a batch re-sent after a crash meets documents already there
(duplicate keys are the only error ignored), and replayed changes are upserts and deletes by key.
So each is tried again after a fault that passes (`faults.retry`): a connection reset, a reply that
never came, a primary stepping down.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from pymongo import MongoClient
from pymongo.collection import Collection
from pymongo.errors import BulkWriteError, CollectionInvalid, OperationFailure

from livemigrate.engine.mongo.collections import CollectionSpec
from livemigrate.engine.mongo.faults import patient, retry

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
        collection = collection_of(client, namespace)
        if retry(client, f"looking for documents in {namespace}",
                 lambda collection=collection: collection.find_one({}, {"_id": 1})) is not None:  # type: ignore[misc]
            found.append(namespace)
    return found


def drop_namespaces(client: MongoClient[Any], namespaces: Sequence[str]) -> None:
    for namespace in namespaces:
        retry(client, f"dropping {namespace}", collection_of(client, namespace).drop)


def create_collection(client: MongoClient[Any], spec: CollectionSpec) -> None:
    options = {name: value for name, value in spec.options.items() if name not in _NOT_CREATE_OPTIONS}

    def create() -> None:
        try:
            client[spec.database].create_collection(spec.name, **options)
        except CollectionInvalid:
            pass  # already there: a resumed run, a try again, or created by a replayed event
        except OperationFailure as error:
            if error.code != NAMESPACE_EXISTS:
                raise

    retry(client, f"creating {spec.namespace}", create)


def create_view(client: MongoClient[Any], spec: CollectionSpec) -> None:
    def create() -> None:
        try:
            client[spec.database].command({"create": spec.name, "viewOn": spec.options["viewOn"],
                                           "pipeline": spec.options.get("pipeline", [])})
        except OperationFailure as error:
            if error.code != NAMESPACE_EXISTS:
                raise

    retry(client, f"creating the view {spec.namespace}", create)


def insert_batch(client: MongoClient[Any], namespace: str, documents: Sequence[Any]) -> None:
    """Insert unordered; documents already present (a batch re-sent after a crash or a fault) are
    skipped. (No count is returned: pymongo lists no inserted ids for raw documents, which is what the
    copy sends.)"""
    collection = collection_of(client, namespace)

    def insert() -> None:
        try:
            collection.insert_many(documents, ordered=False)
        except BulkWriteError as error:
            problems = error.details.get("writeErrors", [])
            if any(problem.get("code") != DUPLICATE_KEY for problem in problems) \
                    or error.details.get("writeConcernErrors"):
                raise

    retry(client, f"writing a copy batch of {namespace}", insert)


def build_indexes(client: MongoClient[Any], namespace: str, indexes: Sequence[dict[str, Any]]) -> None:
    """On the patient client (no socket timeout): a build answers once the index is built."""
    collection = collection_of(patient(client), namespace)
    for index in indexes:
        options = {name: value for name, value in index.items() if name != "key"}
        keys = [(field_name, direction) for field_name, direction in index["key"]]

        def create(keys: list[Any] = keys, options: dict[str, Any] = options) -> None:
            try:
                collection.create_index(keys, **options)
            except OperationFailure as error:
                # 85/86: an index with this key or name exists already (a resumed run): keep it.
                if error.code not in (85, 86):
                    raise

        retry(client, f"building an index of {namespace}", create)


def drop_index(client: MongoClient[Any], namespace: str, name: str) -> None:
    def drop() -> None:
        try:
            collection_of(client, namespace).drop_index(name)
        except OperationFailure as error:
            if error.code not in (INDEX_NOT_FOUND, NAMESPACE_NOT_FOUND):
                raise

    retry(client, f"dropping the index {name} of {namespace}", drop)


def rename(client: MongoClient[Any], namespace: str, new_namespace: str) -> None:
    def rename_once() -> None:
        try:
            client.admin.command({"renameCollection": namespace, "to": new_namespace, "dropTarget": True})
        except OperationFailure as error:
            if error.code != NAMESPACE_NOT_FOUND:  # already renamed: a replay after a crash, or a try again
                raise

    retry(client, f"renaming {namespace}", rename_once)
    log.debug("renamed %s to %s", namespace, new_namespace)


def write_in_order(client: MongoClient[Any], namespace: str, operations: Sequence[Any]) -> None:
    """Replayed changes of one namespace, in order; all of them again after a fault (each is idempotent:
    an upsert of a whole document, a `$set`/`$unset`, a delete by key)."""
    if operations:
        collection = collection_of(client, namespace)
        retry(client, f"applying changes to {namespace}", lambda: collection.bulk_write(list(operations), ordered=True))
