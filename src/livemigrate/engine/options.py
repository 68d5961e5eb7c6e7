"""What a migration is asked to do: which namespaces, how hard to push, how to capture changes."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from bson import json_util

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


@dataclass(frozen=True)
class ShardingEntry:
    """One collection to shard on the destination before the copy: its namespace and key pattern, each
    field 1 or "hashed" (as the key is asked for; `mongo/topology.py` says what MongoDB takes)."""

    namespace: str
    key: tuple[tuple[str, Any], ...]


@dataclass(frozen=True)
class ShardingRequest:
    """Atlas' `sharding` of a live migration: the collections to shard on a sharded destination, and
    whether the migration creates the index each key needs. The source's own shard keys are carried
    over for the sharded collections it does not name (`sharding.py`)."""

    create_supporting_indexes: bool = False
    entries: tuple[ShardingEntry, ...] = ()

    @classmethod
    def from_json(cls, sharding: Mapping[str, Any]) -> ShardingRequest:
        """From Atlas' shape: `{createSupportingIndexes, shardingEntries: [{database, collection,
        shardCollection: {key: [{field: 1 | "hashed"}, …]}}]}`. Raises ValueError naming what is wrong."""
        if not isinstance(sharding, Mapping):
            raise ValueError("sharding: an object is expected")
        unknown = set(sharding) - {"createSupportingIndexes", "shardingEntries"}
        if unknown:
            raise ValueError(f"sharding: unknown field(s) {', '.join(sorted(unknown))}")
        create = sharding.get("createSupportingIndexes", False)
        if not isinstance(create, bool):
            raise ValueError("sharding.createSupportingIndexes: true or false")
        raw_entries = sharding.get("shardingEntries") or []
        if not isinstance(raw_entries, list):
            raise ValueError("sharding.shardingEntries: a list is expected")
        entries: list[ShardingEntry] = []
        for number, entry in enumerate(raw_entries):
            where = f"sharding.shardingEntries[{number}]"
            if not isinstance(entry, Mapping) or not isinstance(entry.get("database"), str) \
                    or not isinstance(entry.get("collection"), str) or not entry["database"] or not entry["collection"]:
                raise ValueError(f"{where}: database and collection (strings) are required")
            key = (entry.get("shardCollection") or {}).get("key") if isinstance(entry.get("shardCollection"),
                                                                              Mapping) else None
            if not isinstance(key, list) or not key or not all(isinstance(part, Mapping) and len(part) == 1
                                                               for part in key):
                raise ValueError(f"{where}.shardCollection.key: a list of one-field objects, e.g. "
                                 '[{"customerId": 1}] or [{"_id": "hashed"}]')
            namespace = f"{entry['database']}.{entry['collection']}"
            if any(other.namespace == namespace for other in entries):
                raise ValueError(f"{where}: {namespace} is named twice")
            entries.append(ShardingEntry(namespace, tuple(next(iter(part.items())) for part in key)))
        return cls(create, tuple(entries))

    def to_json(self) -> dict[str, Any]:
        return {"createSupportingIndexes": self.create_supporting_indexes,
                "shardingEntries": [{"database": entry.namespace.split(".", 1)[0],
                                     "collection": entry.namespace.split(".", 1)[1],
                                     "shardCollection": {"key": [{name: kind} for name, kind in entry.key]}}
                                    for entry in self.entries]}


@dataclass(frozen=True)
class ReversePoint:
    """Where a reverse sync starts: the destination's change streams' resume points when the forward
    cutover ended (after the migration's own last write there), so that every write made on the
    destination since — before the reverse is asked for, too — is replayed back into the source. Kept
    as extended JSON: it travels with the job, from the host that cut over to whichever host reverses."""

    capture: str  # the forward run's change capture: "cluster" (one token, "*") or "collection"
    tokens: Mapping[str, Any]  # namespace (or "*") -> resume token
    namespaces: tuple[str, ...]  # the collections the forward run migrated
    include: tuple[str, ...] = ()  # the forward run's namespace filter (`--include`, `--exclude`)
    exclude: tuple[str, ...] = ()

    def filter(self) -> NamespaceFilter:
        """What the reverse covers: the forward run's namespaces and no others the destination holds — its
        filter, and when it had none, the databases it migrated (collections created in them since
        included)."""
        include = self.include or tuple(sorted({namespace.split(".", 1)[0] for namespace in self.namespaces}))
        return NamespaceFilter(include or ("-",), self.exclude)  # "-": no database, when nothing was migrated

    def to_json(self) -> str:
        return json_util.dumps({"capture": self.capture, "tokens": dict(self.tokens),
                                "namespaces": list(self.namespaces), "include": list(self.include),
                                "exclude": list(self.exclude)}, json_options=json_util.CANONICAL_JSON_OPTIONS)

    @classmethod
    def from_json(cls, text: str) -> ReversePoint:
        """Raises ValueError for what no forward cutover wrote."""
        try:
            found = json_util.loads(text)
            return cls(str(found["capture"]), dict(found["tokens"]), tuple(str(name) for name in found["namespaces"]),
                       tuple(found.get("include") or ()), tuple(found.get("exclude") or ()))
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"not a reverse point ({type(error).__name__}: {error})") from None


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
    # Collections to shard on a sharded destination (Atlas' `sharding`); None: only the source's own keys,
    # carried to a sharded destination.
    sharding: ShardingRequest | None = None
    # A sharded source's balancer, running, blocks the migration (chunk moves during the copy); with this,
    # each run stops it, and starts it again when the run ends.
    stop_balancer: bool = False
    # A forward migration that may be reversed: at cutover it keeps where the destination's changes
    # start (`ReversePoint`), and its pre-flight checks what a reverse needs (`reversal.py`).
    reversible: bool = False
    # A reverse run: from the destination (this run's source) back into the source (its target), from
    # the point the forward cutover kept; no copy.
    reverse_from: ReversePoint | None = None
    # How a person starts this migration again with the other change capture, keyed by that capture
    # ("collection", "cluster"), for the warning of a capture that seems to miss changes
    # (`verify/divergence.py`); empty: as `livemigrate migrate` is run.
    capture_remedies: Mapping[str, str] = field(default_factory=dict)
    # How many migration hosts share the copy (`copy/shared.py`): the plan then splits the collections
    # for all of their workers (`copy/initial_copy.range_counts`); 1, a single host's plan.
    copy_hosts: int = 1
