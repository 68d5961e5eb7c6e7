"""Collections as the engine carries them: a collection's or view's spec (options, indexes), what a
discovery of the source found, and the secondary indexes to build again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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
