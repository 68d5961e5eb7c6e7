"""Checkpoints that outlive the host that wrote them: on the destination, for hosts that share a migration.

When several migration hosts share one migration (`agent/shared_job.py`), a host that dies must
leave behind what another needs to go on: the plan, each range's last copied `_id`, the resume
tokens of the change capture. They are kept where every host of the migration can already reach
and where they cost least: the destination, in a database of their own (`STATE_DATABASE`, which no
migration copies or counts), one collection per migration, one document per checkpoint key — as
MongoDB's own migration tools keep theirs in a reserved database of the destination. The control
plane was the other candidate; but a checkpoint is saved after every batch the copy writes, and
the destination takes that batch anyway, while the control plane is two HTTP hops away and would
make the API's availability a condition of the copy's progress.

What is not here, and why that is sound: the spool (changes read ahead during the copy; a new
holder of the capture reads them again from the last applied resume token) and the verification
ledger (a new holder begins its own, and its verification pass reads both sides whole).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pymongo import MongoClient, ReplaceOne
from pymongo.collection import Collection

from livemigrate.engine.checkpoints import Document
from livemigrate.engine.options import STATE_DATABASE

_LAST = "meta"  # saved after the rest of its batch: a checkpoint that has it has the rest
_ENDED = "ended"


class DestinationCheckpointStore:
    """The `CheckpointStore` of one shared migration, in `STATE_DATABASE.checkpoints_<migration id>` of the destination.

    A save is one ordered bulk write, not a transaction (a destination need not support them): the
    keys are written in order, `meta` last, so a run killed in the middle of the first save finds no
    `meta` and starts afresh, and any other save half written leaves each key either old or new —
    the engine's checkpoints are each valid alone (a range's progress, a stream's token)."""

    def __init__(self, client: MongoClient[Any], migration_id: str) -> None:
        self._collection: Collection[Any] = client[STATE_DATABASE][f"checkpoints_{migration_id}"]

    def load(self, prefix: str) -> dict[str, Document]:
        # A range of `_id`s rather than a regular expression: every server answers it from the index.
        found = self._collection.find({"_id": {"$gte": prefix, "$lt": prefix + "\uffff"}})
        return {str(document["_id"]): dict(document["value"]) for document in found}

    def save(self, documents: Mapping[str, Document]) -> None:
        ordered = sorted(documents.items(), key=lambda item: item[0] == _LAST)
        if ordered:
            self._collection.bulk_write([ReplaceOne({"_id": key}, {"_id": key, "value": dict(value)}, upsert=True)
                                         for key, value in ordered], ordered=True)

    def clear(self) -> None:
        self._collection.delete_many({})

    def drop(self) -> None:
        """The migration was cancelled: nothing of it is to be resumed."""
        self._collection.drop()

    def end(self, status: str) -> None:
        """The migration ended (COMPLETE, FAILED): its checkpoints go, and one document says it ended, so
        that a host that takes the capture late does not start the migration afresh (a fresh start
        drops the destination's namespaces when asked to) nor resume what is over."""
        self._collection.delete_many({"_id": {"$ne": _ENDED}})
        self._collection.replace_one({"_id": _ENDED}, {"_id": _ENDED, "value": {"status": status}}, upsert=True)

    def ended(self) -> str | None:
        """How the migration ended, once it has."""
        found = self._collection.find_one({"_id": _ENDED})
        return None if found is None else str(found["value"]["status"])
