"""Evidence that does not come from the change stream: each namespace's document count on both sides.

The ledger (`ledger.py`) re-reads only what the change stream said had changed, so a stream that
misses events — a server that accepts a `watch` and never emits, a capture that does not cover a
namespace created later, an event the engine does not understand — would pass its own check. Counts
asked of the servers do not depend on the stream. `verify/verdict.py` adds them (and a sample) to the
cutover's verdict; `verify/divergence.py` compares them at an interval while replicating.

By default a count is the `count` command (what `estimated_document_count` sends): O(1) on MongoDB,
from the collection's metadata, exact on an unsharded deployment after a clean shutdown. `exact=True`
counts every document instead (`count_documents({})`, a scan of each collection). Either way a
difference is only a reason to read everything, and reading everything is exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pymongo import MongoClient

from livemigrate.engine.mongo.faults import retry
from livemigrate.engine.verify.passes import on_both_sides


@dataclass(frozen=True)
class Counts:
    """Both sides' counts of the namespaces a verdict compares."""

    namespaces: tuple[str, ...]
    source: dict[str, int]
    target: dict[str, int]


def count(client: MongoClient[Any], namespace: str, *, exact: bool = False) -> int:
    """Documents in one namespace (0 when it does not exist)."""
    database, name = namespace.split(".", 1)
    collection = client[database][name]
    return retry(client, f"counting {namespace}",
                 lambda: collection.count_documents({}) if exact else collection.estimated_document_count())


def counts(client: MongoClient[Any], namespaces: Sequence[str], *, exact: bool = False) -> dict[str, int]:
    """Each namespace's count; one the server does not list is 0 without asking it: nx-27017 creates
    the collection a count names, and a collection dropped on the source came back, empty, at every
    count check (and on the destination once its drop was applied)."""
    listed = {database: set(retry(client, f"listing the collections of {database}",
                                  client[database].list_collection_names))
              for database in {namespace.split(".", 1)[0] for namespace in namespaces}}
    return {namespace: count(client, namespace, exact=exact)
            if namespace.split(".", 1)[1] in listed[namespace.split(".", 1)[0]] else 0 for namespace in namespaces}


def count_both_sides(source: MongoClient[Any], target: MongoClient[Any], namespaces: Sequence[str], *,
                     exact: bool = False) -> Counts:
    """Both sides at once, each on a thread of its own, so that the two readings are close in time."""
    on_source, on_target = on_both_sides(lambda client, _: counts(client, namespaces, exact=exact), source, target)
    return Counts(tuple(namespaces), on_source, on_target)


@dataclass(frozen=True)
class Evidence:
    """What the servers said at cutover, independently of the change stream."""

    counts: Counts
    sampled: int = 0  # documents drawn at random and read again on both sides
    sample_mismatches: dict[str, tuple[Any, ...]] = field(default_factory=dict)

    @property
    def count_differences(self) -> dict[str, tuple[int, int]]:
        return {namespace: (self.counts.source.get(namespace, 0), self.counts.target.get(namespace, 0))
                for namespace in self.counts.namespaces
                if self.counts.source.get(namespace, 0) != self.counts.target.get(namespace, 0)}

    @property
    def agrees(self) -> bool:
        return not self.count_differences and not self.sample_mismatches

    def describe(self) -> str:
        if self.agrees:
            return (f"counts of {len(self.counts.namespaces)} namespace(s) and a sample of {self.sampled} "
                    f"document(s) agree")
        parts = [f"{namespace}: {on_source} document(s) on the source, {on_target} on the destination"
                 for namespace, (on_source, on_target) in self.count_differences.items()]
        parts += [f"{namespace}: sampled _id {', '.join(map(str, ids[:5]))} differ"
                  for namespace, ids in self.sample_mismatches.items()]
        return "; ".join(parts)
