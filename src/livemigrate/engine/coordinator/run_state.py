"""What a run of a migration carries between its phases: the step reached (checkpointed, where a restart
picks the migration up), what a fresh start found before it wrote anything, and the result; and what
every run does with its checkpoints' start: checks they are this migration's, opens the change capture
from the saved points."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from pymongo import MongoClient

from livemigrate.engine.capture.streams import Capture, ClusterCapture, CollectionCapture
from livemigrate.engine.checkpoints import Document
from livemigrate.engine.errors import EngineError, EngineErrorCode, redact_uri
from livemigrate.engine.events import Phase
from livemigrate.engine.mongo.collections import Discovery
from livemigrate.engine.mongo.connect import wire_version
from livemigrate.engine.options import CaptureScope, MigrationOptions, ReversePoint
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


def open_capture(source: MongoClient[Any], options: MigrationOptions, capture: str, tokens: dict[str, Any],
                 namespaces: list[str]) -> Capture:
    """The change capture a run reads, from `tokens` (none: from now)."""
    if capture == CaptureScope.CLUSTER.value:
        return ClusterCapture(source, options.namespaces, tokens.get("*"), wire_version(source),
                              max_await_ms=int(options.poll_seconds * 1000))
    # Many streams are polled one after another: each may wait only a little.
    return CollectionCapture(source, namespaces, tokens, max_await_ms=50)


def check_state(meta: Document, source_uri: str, target_uri: str) -> None:
    """A state directory serves the migration it was made for, one way."""
    if meta["source"] != redact_uri(source_uri) or meta["target"] != redact_uri(target_uri):
        raise EngineError(EngineErrorCode.STATE_MISMATCH,
                          f"the state directory belongs to a migration from {meta['source']} to {meta['target']}; "
                          "use another --state-dir for this one")
