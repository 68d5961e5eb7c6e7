"""What crosses a process boundary on a migration's path, as models both ends share.

A source org's `Inventory` is pushed source → target over the link. A job travels target → source
(`LinkJob`) → migration host (`HostJob`); its progress report travels back, agent → source → target
(`ProgressReport`). Each hop validates what it
receives against the same model: a malformed report is refused with a 400 at the first hop that
sees it, and nothing of it is stored; a job list that does not validate is not acted on.
"""

from __future__ import annotations

from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)

from livemigrate.engine.events import Phase, VerificationState
from livemigrate.statuses import MigrationStatus, ValidationStatus

# What a migration host may report (NEW and EXPIRED are the target's to decide), and the statuses of a
# migration that has a job: running, or FAILED by a cancel its hosts have yet to confirm (`cancelRequested`).
ReportedStatus = Literal[MigrationStatus.WORKING, MigrationStatus.COMPLETE, MigrationStatus.FAILED]
ListedStatus = Literal[MigrationStatus.NEW, MigrationStatus.WORKING, MigrationStatus.FAILED]
# The change capture a migration asks of its hosts: one deployment-wide stream, one per collection, or
# the host's choice (by the source's version).
ChangeCapture = Literal["AUTO", "DEPLOYMENT", "COLLECTION"]
# A migration's way: from the source into the destination, or (a reverse, after its cutover) back.
Direction = Literal["FORWARD", "REVERSE"]


class Contract(BaseModel):
    """Unknown fields are refused: a sender and a receiver that disagree on a contract should say so."""

    model_config = ConfigDict(extra="forbid")


class ShardReport(Contract):
    """An extension: a namespace's copy on one shard of a sharded source (`engine/copy/chunks.py`)."""

    shard: StrictStr = Field(min_length=1)
    copied: StrictInt = Field(ge=0)
    total: StrictInt = Field(ge=0)
    done: StrictBool


class NamespaceReport(Contract):
    namespace: StrictStr = Field(min_length=1)
    copied: StrictInt = Field(ge=0)
    total: StrictInt = Field(ge=0)
    done: StrictBool
    changesApplied: StrictInt | None = Field(default=None, ge=0)  # changes of the namespace replayed
    verification: VerificationState | None = None
    # On a sharded source, per shard where its ranges are a shard's; absent otherwise.
    shards: list[ShardReport] | None = Field(default=None, max_length=1000)


class PreflightNamespace(Contract):
    """One namespace as the pre-flight found it (`engine/preflight.py` says how)."""

    namespace: StrictStr = Field(min_length=1)
    kind: Literal["collection", "view", "timeseries"]
    documents: StrictInt = Field(ge=0)
    sizeBytes: StrictInt | None = Field(default=None, ge=0)
    indexes: StrictInt = Field(ge=0)
    notes: list[StrictStr] = Field(default_factory=list)  # what will happen to it, when not migrated as is
    blocking: StrictStr | None = None  # why the migration cannot start as asked


ShardKeyPattern = dict[StrictStr, StrictInt | StrictStr]  # {field: 1 | "hashed", …}, in the key's order


class ShardKeyField(Contract):
    """One field of a shard key: 1 (ascending) or "hashed". Atlas also lists -1, on which MongoDB cannot
    shard a collection: it is refused with that reason. A key naming a field twice, or holding two hashed
    fields, is refused by the request's checks (LIVE_MIGRATION_INVALID_REQUEST)."""

    model_config = ConfigDict(extra="allow", json_schema_extra={
        "minProperties": 1, "maxProperties": 1, "propertyNames": {"minLength": 1, "pattern": "^[^$]"},
        "additionalProperties": {"enum": [1, "hashed"]}})

    @model_validator(mode="after")
    def one_field(self) -> ShardKeyField:
        fields = dict(self.model_extra or {})
        if len(fields) != 1:
            raise ValueError("each key item names one field, e.g. {\"customerId\": 1}")
        name, kind = next(iter(fields.items()))
        if not name or name.startswith("$"):
            raise ValueError(f"{name!r} is not a field name")
        if kind == -1 and not isinstance(kind, bool):
            raise ValueError(f"{name}: -1: MongoDB shards on ascending (1) or hashed fields, never descending ones")
        if isinstance(kind, bool) or kind not in (1, "hashed"):
            raise ValueError(f"{name}: 1 or \"hashed\"")
        if isinstance(kind, float):  # 1.0 is JSON's 1
            setattr(self, name, 1)
        return self

    def pair(self) -> tuple[str, int | str]:
        return next(iter(dict(self.model_extra or {}).items()))


class ShardCollection(Contract):
    key: list[ShardKeyField] = Field(min_length=1, max_length=32)


class ShardingEntry(Contract):
    database: StrictStr = Field(min_length=1, max_length=64)
    collection: StrictStr = Field(min_length=1, max_length=255)
    shardCollection: ShardCollection


class Sharding(Contract):
    """Atlas' `sharding` of a live migration: the collections to shard on a sharded destination before the
    copy, and whether the migration creates the index each key needs."""

    createSupportingIndexes: StrictBool = False
    shardingEntries: list[ShardingEntry] = Field(default_factory=list, max_length=1000)

    def problems(self) -> list[str]:
        """What the schema cannot say is wrong: a collection named twice, a key naming a field twice or
        holding two hashed fields."""
        found = []
        named = [f"{entry.database}.{entry.collection}" for entry in self.shardingEntries]
        for namespace in sorted({namespace for namespace in named if named.count(namespace) > 1}):
            found.append(f"sharding: {namespace} is named twice")
        for entry in self.shardingEntries:
            pairs = [part.pair() for part in entry.shardCollection.key]
            names = [name for name, _ in pairs]
            if len(set(names)) != len(names):
                found.append(f"sharding {entry.database}.{entry.collection}: the key names a field twice")
            if sum(1 for _, kind in pairs if kind == "hashed") > 1:
                found.append(f"sharding {entry.database}.{entry.collection}: a key has at most one hashed field")
        return found


class BalancerShape(Contract):
    mode: StrictStr
    inBalancerRound: StrictBool


class ShardedCollectionShape(Contract):
    namespace: StrictStr
    key: ShardKeyPattern
    unique: StrictBool = False


class DeploymentShape(Contract):
    """A side as the pre-flight found it: a sharded cluster (its shards, keys and balancer) or not."""

    sharded: StrictBool
    shards: list[StrictStr] = Field(default_factory=list)
    shardedCollections: list[ShardedCollectionShape] = Field(default_factory=list)
    balancer: BalancerShape | None = None


class CollectionToShard(ShardedCollectionShape):
    carriedFromSource: StrictBool = False  # the source's own key, no shardingEntries naming it


class PreflightSharding(Contract):
    """What the pre-flight found of sharding (`engine/sharding.py`)."""

    source: DeploymentShape
    destination: DeploymentShape
    toShard: list[CollectionToShard] = Field(default_factory=list)
    notes: list[StrictStr] = Field(default_factory=list)
    blocking: list[StrictStr] = Field(default_factory=list)


class PreflightReport(Contract):
    """A migration host's pre-flight of a validation: the source read, a sample copied, an estimate."""

    summary: StrictStr  # the findings in a sentence
    namespaces: list[PreflightNamespace]
    readDocsPerSecond: StrictFloat | StrictInt | None = Field(default=None, ge=0)
    writeDocsPerSecond: StrictFloat | StrictInt | None = Field(default=None, ge=0)
    copyEstimateSeconds: StrictFloat | StrictInt | None = Field(default=None, ge=0)
    historySeconds: StrictFloat | StrictInt | None = Field(default=None, ge=0)  # the source's oplog window
    warnings: list[StrictStr] = Field(default_factory=list)
    blocking: list[StrictStr] = Field(default_factory=list)
    sharding: PreflightSharding | None = None


class HostProgress(Contract):
    """One host's part of a shared migration: the host that holds the change capture reports the
    migration with it; the others report only this."""

    hostname: StrictStr = Field(min_length=1)
    role: Literal["capture", "copy"]
    copiedDocuments: StrictInt = Field(ge=0)  # copied by this host
    partitions: list[StrictStr] = Field(default_factory=list, max_length=1000)  # the ranges it holds now


class Retries(Contract):
    """Round trips a migration host tried again after a fault that passed (a reset, a timeout, an
    election), by side; `restarts`: runs started again from their checkpoints after one."""

    source: StrictInt = Field(default=0, ge=0)
    destination: StrictInt = Field(default=0, ge=0)
    restarts: StrictInt = Field(default=0, ge=0)


class ProgressReport(Contract):
    """A migration's state as its migration host sees it; the target decides what it means for the
    migration (only a requested cutover completes one)."""

    status: ReportedStatus = MigrationStatus.WORKING
    phase: Phase | None = None
    lagTimeSeconds: StrictFloat | StrictInt | None = Field(default=None, ge=0)
    readyForCutover: StrictBool = False
    # Absent (a final report) leaves the figures the target holds as they are.
    copiedDocuments: StrictInt | None = Field(default=None, ge=0)
    totalDocuments: StrictInt | None = Field(default=None, ge=0)
    eventsApplied: StrictInt | None = Field(default=None, ge=0)  # changes replayed on the destination
    docsPerSecond: StrictFloat | StrictInt | None = Field(default=None, ge=0)  # the copy's rate, for its ETA
    namespaces: list[NamespaceReport] | None = None
    sourceWritesBlocked: StrictBool | None = None  # from the cutover's drain on: setUserWriteBlockMode engaged
    writesAfterCutoverBegan: StrictInt | None = Field(default=None, ge=0)  # writes the source took all the same
    retries: Retries | None = None  # since this host started the job
    # What a person should act on while the migration runs, e.g. a change stream that delivers nothing.
    warnings: list[StrictStr] | None = None
    errorMessage: StrictStr | None = None
    preflight: PreflightReport | None = None  # a validation job's answer
    host: HostProgress | None = None  # from a host of a shared migration
    # A cancelled job's confirmation: this host has stopped writing and removed the job's state.
    stoppedHost: StrictStr | None = Field(default=None, min_length=1, max_length=255)
    # A reversible migration's final COMPLETE: where its reverse starts (`engine.options.ReversePoint`).
    reversePoint: StrictStr | None = Field(default=None, max_length=4_000_000, repr=False)

    def to_json(self) -> dict[str, object]:
        """As sent and as stored: plain JSON values, absent fields left out."""
        return self.model_dump(mode="json", exclude_none=True)


# A migration to run, or a validation whose pre-flight the migration host runs (it reads the source
# and copies a sample into a scratch database of the destination, then answers once).
JobKind = Literal["MIGRATION", "VALIDATION"]


class LinkJob(Contract):
    """A running migration as the target lists it to the source over the link: what the source needs
    to give its migration host a job. The destination's connection string and the source password
    leave the target's store only here (and never appear in a `repr`, so never in a log)."""

    id: StrictStr
    kind: JobKind = "MIGRATION"
    status: ListedStatus
    sourceProjectId: StrictStr
    sourceClusterName: StrictStr
    migrationHost: StrictStr  # the first listed
    migrationHosts: list[StrictStr] = Field(default_factory=list)  # all of them; empty: `migrationHost` alone
    sourceUsername: StrictStr | None = None
    sourcePassword: StrictStr | None = Field(default=None, repr=False)
    sourceSsl: StrictBool = False
    sourceCaCertificatePath: StrictStr | None = None
    destinationUri: StrictStr | None = Field(default=None, repr=False)  # None: the cluster was deregistered
    dropDestinationData: StrictBool = False
    cutoverRequested: StrictBool = False
    changeCapture: ChangeCapture | None = None  # None: the migration host's setting
    sharding: Sharding | None = None  # Atlas' `sharding`, as asked
    stopSourceBalancer: StrictBool = False  # our extension: the migration stops a sharded source's balancer
    reversible: StrictBool = False  # our extension: keep the point a reverse starts from, check what it needs
    # A reverse: from the destination back into the source, from the point its forward migration kept.
    direction: Direction = "FORWARD"
    reverseFrom: StrictStr | None = Field(default=None, repr=False)
    # Cancelled: stop writing, lift a write block, remove the job's state, then report `stoppedHost`.
    cancelRequested: StrictBool = False

    def hosts(self) -> list[str]:
        return list(self.migrationHosts or [self.migrationHost])


class HostJob(Contract):
    """A job as the source gives it to its migration host. The source's connection string is built on
    the source side, from its monitored hosts: the target never sees it. None: no host monitored."""

    id: StrictStr
    kind: JobKind = "MIGRATION"
    status: ListedStatus
    sourceClusterName: StrictStr
    sourceUri: StrictStr | None = Field(default=None, repr=False)
    destinationUri: StrictStr | None = Field(default=None, repr=False)
    dropDestinationData: StrictBool = False
    cutoverRequested: StrictBool = False
    changeCapture: ChangeCapture | None = None
    sharding: Sharding | None = None
    stopSourceBalancer: StrictBool = False
    reversible: StrictBool = False
    direction: Direction = "FORWARD"  # REVERSE: `sourceUri` is the destination's, `destinationUri` the source's
    reverseFrom: StrictStr | None = Field(default=None, repr=False)
    cancelRequested: StrictBool = False
    # Every host the migration lists: more than one share the copy through leases (`agent/shared_job.py`).
    migrationHosts: list[StrictStr] = Field(default_factory=list)


class ReportAnswer(Contract):
    """The target's answer to a progress report, relayed to the migration host: the migration's status
    as the target decided it (a validation's, for a pre-flight's answer), and whether a cutover is
    asked for."""

    status: MigrationStatus | ValidationStatus
    cutoverRequested: StrictBool = False


class Heartbeat(Contract):
    """What a migration host sends every few seconds: it is alive, and which version it runs."""

    agentVersion: StrictStr = Field(max_length=64)


class Lease(Contract):
    name: StrictStr
    holder: StrictStr
    expiresAt: StrictStr  # ISO-8601 UTC


class LeaseGrant(Contract):
    """The answer to a `LeaseRequest`: every live lease of the job, with its holder — the asking host's
    are those it holds now — and how long a lease lasts without renewal."""

    leaseSeconds: StrictFloat | StrictInt = Field(gt=0)
    leases: list[Lease] = Field(default_factory=list)


class LinkPushAnswer(Contract):
    """The target's answer to an inventory push over the link."""

    lastSyncedAt: StrictStr  # ISO-8601 UTC


class LeaseRequest(Contract):
    """What a host of a shared migration wants to hold now (`cloud_manager/job_leases.py`): the parts it holds
    and means to keep, and those it would take; anything it held and leaves out is released."""

    hostname: StrictStr = Field(min_length=1, max_length=255)
    hold: list[StrictStr] = Field(default_factory=list, max_length=1000)


class InventoryDeployment(Contract):
    """A source deployment as a linked target sees it (the fields Cloud Manager shows of a cluster)."""

    clusterId: StrictStr
    name: StrictStr = Field(min_length=1)
    mongoDBVersion: StrictStr | None = None
    featureCompatibilityVersion: StrictStr | None = None
    managed: StrictBool = False
    sharded: StrictBool = False
    shardsSize: StrictInt = Field(default=0, ge=0)
    tlsEnabled: StrictBool = False
    dbSizeBytes: StrictInt | None = Field(default=None, ge=0)
    oplogSizeMB: StrictFloat | StrictInt | None = Field(default=None, ge=0)
    agentVersion: StrictStr | None = None
    lastError: StrictStr | None = None  # set when no host of it can be reached


class InventoryProject(Contract):
    projectId: StrictStr
    name: StrictStr
    deployments: list[InventoryDeployment] = Field(default_factory=list)
    migrationHosts: list[StrictStr] = Field(default_factory=list)  # the live ones


class Inventory(Contract):
    """What a source org shows the target it is linked to, pushed on every change and at an interval."""

    projects: list[InventoryProject]


def describe_invalid(error: ValidationError) -> str:
    """What did not validate, by field, without the values: a job carries connection strings."""
    return "; ".join(f"{'.'.join(str(part) for part in problem['loc']) or 'body'}: {problem['msg']}"
                     for problem in error.errors(include_input=False, include_url=False))
