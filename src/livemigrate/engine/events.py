"""Progress as structured events, for the CLI's display, the agent's reports and logs alike."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class Phase(str, Enum):
    CONNECTING = "CONNECTING"
    INITIAL_SYNC = "INITIAL_SYNC"
    BUILDING_INDEXES = "BUILDING_INDEXES"
    REPLICATING = "REPLICATING"
    CUTTING_OVER = "CUTTING_OVER"
    VERIFYING = "VERIFYING"
    COMPLETE = "COMPLETE"
    STOPPED = "STOPPED"
    FAILED = "FAILED"


class VerificationState(str, Enum):
    """How far a namespace's verification has come, as `watch` and the progress document show it."""

    PENDING = "PENDING"  # not read yet: the copy goes on, or the pass has not come to it
    READING = "READING"  # the verification pass is reading both sides into the ledger
    READ = "READ"  # both sides are in the ledger: the cutover reads again only what changes
    VERIFIED = "VERIFIED"  # the cutover's verdict found both sides equal
    DIFFERENT = "DIFFERENT"  # the cutover's verdict found a difference


@dataclass(frozen=True)
class ShardProgress:
    """A namespace's copy on one shard of a sharded source: what its ranges there copied, of the shard's count."""

    shard: str
    copied: int
    total: int
    done: bool


@dataclass(frozen=True)
class NamespaceProgress:
    namespace: str
    copied: int
    total: int
    done: bool
    changes_applied: int = 0  # changes of this namespace replayed on the destination
    verification: VerificationState = VerificationState.PENDING
    # On a sharded source, per shard (`copy/chunks.py`): empty where the ranges are not a shard's
    # (a replica set; a collection sharded on a hashed key).
    shards: tuple[ShardProgress, ...] = ()


@dataclass(frozen=True)
class MigrationEvent:
    """A snapshot of the migration: emitted on every phase change, copy batch and replay round."""

    phase: Phase
    namespaces: tuple[NamespaceProgress, ...] = ()
    docs_per_second: float = 0.0
    lag_seconds: float | None = None
    applied_events: int = 0
    resumed: bool = False
    # The target is still being read for verification: a cutover now would wait for that reading.
    verification_pending: bool = False
    # Both sides' counts were checked while replicating and agree, but for changes in flight
    # (`verify/divergence.py`): evidence that does not come from the change stream.
    counts_agree: bool = False
    # A divergence the change stream does not explain: what, the likely cause, the remedy.
    warning: str | None = None
    # The cutover: whether the source blocks user writes (None before the drain, or where it refused),
    # and how many writes reached it after the drain began all the same.
    source_writes_blocked: bool | None = None
    writes_after_drain: int = 0
    # Round trips tried again after a fault that passed (`mongo/faults.py`), by side: "source", "destination".
    retries: dict[str, int] = field(default_factory=dict)
    message: str | None = None
    last_error: str | None = None
    details: dict[str, object] = field(default_factory=dict)

    @property
    def copied(self) -> int:
        return sum(progress.copied for progress in self.namespaces)

    @property
    def total(self) -> int:
        return sum(progress.total for progress in self.namespaces)
