"""Verification: per namespace, document counts and an order-independent hash of every document's BSON.

Each document is hashed as the exact BSON the server returns (field order included: MongoDB
compares documents that way too); a namespace's hash is the sum of its documents' hashes modulo
2**256, so it does not depend on the order documents are read in. Mismatches are listed by `_id`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import bson
from pymongo import MongoClient

from livemigrate.engine.reader import raw_collection

_MODULUS = 2**256


@dataclass(frozen=True)
class NamespaceComparison:
    namespace: str
    source_count: int
    target_count: int
    source_hash: str
    target_hash: str
    mismatched_ids: tuple[Any, ...] = ()
    mismatch_count: int = 0

    @property
    def equal(self) -> bool:
        return self.source_count == self.target_count and self.source_hash == self.target_hash


@dataclass(frozen=True)
class VerifyReport:
    namespaces: tuple[NamespaceComparison, ...] = field(default_factory=tuple)

    @property
    def equal(self) -> bool:
        return all(comparison.equal for comparison in self.namespaces)

    def to_document(self) -> dict[str, Any]:
        return {"equal": self.equal, "namespaces": [
            {"namespace": c.namespace, "equal": c.equal, "sourceCount": c.source_count, "targetCount": c.target_count,
             "sourceHash": c.source_hash, "targetHash": c.target_hash, "mismatchCount": c.mismatch_count,
             "mismatchedIds": [str(value) for value in c.mismatched_ids]} for c in self.namespaces]}


def _digests(client: MongoClient[Any], namespace: str) -> dict[bytes, tuple[Any, bytes]]:
    digests: dict[bytes, tuple[Any, bytes]] = {}
    for document in raw_collection(client, namespace).find({}).batch_size(1000):
        identifier = document["_id"]
        digests[bson.encode({"_id": identifier})] = (identifier, hashlib.sha256(document.raw).digest())
    return digests


def _namespace_hash(digests: dict[bytes, tuple[Any, bytes]]) -> str:
    total = sum(int.from_bytes(digest, "big") for _, digest in digests.values()) % _MODULUS
    return f"{total:064x}"


def _digests_of_all(client: MongoClient[Any], namespaces: Sequence[str]) -> dict[str, dict[bytes, tuple[Any, bytes]]]:
    return {namespace: _digests(client, namespace) for namespace in namespaces}


def compare_namespace(namespace: str, on_source: dict[bytes, tuple[Any, bytes]],
                      on_target: dict[bytes, tuple[Any, bytes]], sample: int) -> NamespaceComparison:
    mismatched = [identifier for key, (identifier, digest) in on_source.items()
                  if on_target.get(key, (None, b""))[1] != digest]
    mismatched += [identifier for key, (identifier, _) in on_target.items() if key not in on_source]
    return NamespaceComparison(
        namespace=namespace,
        source_count=len(on_source),
        target_count=len(on_target),
        source_hash=_namespace_hash(on_source),
        target_hash=_namespace_hash(on_target),
        mismatched_ids=tuple(mismatched[:sample]),
        mismatch_count=len(mismatched),
    )


def verify(source: MongoClient[Any], target: MongoClient[Any], namespaces: Sequence[str],
           sample: int = 20) -> VerifyReport:
    # Each side is read by a thread of its own, start to end: both servers stay busy at once, and
    # verification takes about as long as reading the larger side.
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="verify") as pool:
        source_side = pool.submit(_digests_of_all, source, namespaces)
        target_side = pool.submit(_digests_of_all, target, namespaces)
        on_source, on_target = source_side.result(), target_side.result()
    return VerifyReport(tuple(compare_namespace(namespace, on_source[namespace], on_target[namespace], sample)
                              for namespace in namespaces))
