"""What a migration is asked to do: which namespaces, how hard to push, how to capture changes."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

# The pre-flight's scratch database on a destination (`preflight.py`): while a validation samples
# the writes there, another validation must not find the destination occupied by it.
PREFLIGHT_DATABASE = "livemigrate_preflight"
# Where the hosts that share a migration keep its checkpoints, on the destination (`mongo/destination_state.py`).
STATE_DATABASE = "livemigrate_state"
SYSTEM_DATABASES = frozenset({"admin", "local", "config", PREFLIGHT_DATABASE, STATE_DATABASE})


class CaptureScope(str, Enum):
    """How changes are captured. `auto` chooses by the source's wire version: a deployment-wide
    change stream on MongoDB 4.0+, one stream per collection on 3.6. `collection` forces the
    latter, e.g. for a user allowed to watch only its collections."""

    AUTO = "auto"
    CLUSTER = "cluster"
    COLLECTION = "collection"


@dataclass(frozen=True)
class NamespaceFilter:
    """`--include` / `--exclude` patterns: `db` (whole database), `db.coll`, or shell wildcards (`db.logs_*`)."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    @staticmethod
    def _matches(namespace: str, pattern: str) -> bool:
        if "." not in pattern and not any(char in pattern for char in "*?["):
            return namespace.split(".", 1)[0] == pattern
        return fnmatch.fnmatchcase(namespace, pattern)

    def wants(self, namespace: str) -> bool:
        database, _, collection = namespace.partition(".")
        if database in SYSTEM_DATABASES or collection.startswith("system."):
            return False
        if self.include and not any(self._matches(namespace, pattern) for pattern in self.include):
            return False
        return not any(self._matches(namespace, pattern) for pattern in self.exclude)

    def wants_database(self, database: str) -> bool:
        if database in SYSTEM_DATABASES:
            return False
        if not self.include:
            return True
        return any(pattern.split(".", 1)[0] == database or any(c in pattern.split(".", 1)[0] for c in "*?[")
                   for pattern in self.include)


# Below this many documents in all, the default copies in the coordinator's threads: spawned worker
# processes cost an interpreter each, more than they save on a copy this small.
SHARE_OUT_DOCUMENTS = 100_000


@dataclass(frozen=True)
class MigrationOptions:
    namespaces: NamespaceFilter = field(default_factory=NamespaceFilter)
    drop_target: bool = False
    workers: int = 4
    # Worker processes for the copy (`copy/processes.py`): None is one per core when the copy is large
    # enough to pay for them; 1 copies in this process's `workers` threads.
    processes: int | None = None
    batch_size: int = 1000
    # A collection with more documents than this is split into `_id` ranges copied concurrently.
    # Smaller collections are copied whole (several at once): splitting costs one sorted index
    # walk per boundary and one range query per part, which only pays off on large collections.
    split_threshold: int = 100_000
    capture: CaptureScope = CaptureScope.AUTO
    # How long one poll of the change streams may wait for an event before reporting lag 0.
    poll_seconds: float = 0.2
    mismatch_sample: int = 20
    # While replicating, both sides' counts are compared this often (`verify/divergence.py`).
    count_check_seconds: float = 10.0
    # Documents picked at random on the source and compared on the destination at cutover.
    verify_sample: int = 100
    # Count every document (a scan) rather than ask for the collection's count (metadata).
    exact_counts: bool = False
    # With a per-collection capture, how often the source's collections are listed again, for those
    # created since the start (`coordinator/late_collections.py`); and once more when the cutover's drain begins.
    discover_seconds: float = 5.0
    # The most the changes read during the copy may take on disk before they are applied (`capture/spool.py`).
    spool_limit_bytes: int = 10 * 1024**3
    # While replicating, the documents changed are read again this often, so that the cutover reads only
    # what changed since (`verify/refresh.py`).
    ledger_refresh_seconds: float = 5.0
    # How long a fault on one side (the server unreachable, a reply that never comes, an election) may
    # last before the migration ends FAILED; shorter faults are ridden out (`mongo/faults.py`).
    fault_limit_seconds: float = 300.0
    # A reply not come after this long counts as a fault (the driver's socket timeout; index builds
    # wait as long as they take).
    socket_timeout_seconds: float = 120.0
    # How a person starts this migration again with the other change capture, keyed by that capture
    # ("collection", "cluster"), for the warning of a capture that seems to miss changes
    # (`verify/divergence.py`); empty: as `livemigrate migrate` is run.
    capture_remedies: Mapping[str, str] = field(default_factory=dict)
