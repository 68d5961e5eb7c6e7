"""What a run of a migration carries between its phases: the step reached (checkpointed, where a restart
picks the migration up), what a fresh start found before it wrote anything, and the result."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from livemigrate.engine.checkpoints import Document
from livemigrate.engine.events import Phase
from livemigrate.engine.mongo.collections import Discovery
from livemigrate.engine.options import ReversePoint
from livemigrate.engine.sharding import ShardingPlan
from livemigrate.engine.verify.passes import VerifyReport
from livemigrate.engine.verify.verdict import Verdict


class Step(str, Enum):
    """How far a migration got, checkpointed: where a restart picks it up."""

    COPY = "copy"
    INDEXES = "indexes"
    REPLAY = "replay"
    COMPLETE = "complete"


@dataclass(frozen=True)
class MigrationResult:
    phase: Phase
    report: VerifyReport | None = None
    resumed: bool = False
    verdict: Verdict | None = None  # how the report was reached: which evidence, whether everything was read
    reverse_point: ReversePoint | None = None  # a reversible migration's, once complete (`reverse.py`)


@dataclass(frozen=True)
class FreshStart:
    """What a fresh migration found before it wrote anything: the source's collections, and the sharding."""

    discovery: Discovery
    sharding: ShardingPlan


def migration_id_of(meta: Document) -> str:
    return str(meta.get("id") or meta["startedAt"])  # state from before ids: the start time tells it apart
