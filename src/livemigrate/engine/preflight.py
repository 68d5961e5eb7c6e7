"""Pre-flight: what a migration will do, before it writes anything that stays — per namespace its
documents, size and indexes and whatever will not be migrated as is, an estimate of the copy's time
from a measured sample, and the source's change history against it.

The estimate: up to `sample_seconds` reading the largest collection (raw documents, one cursor), then
writing what was read into a scratch collection on the destination (`livemigrate_preflight.sample`,
dropped at once) in batches, as the copy writes. The copy's time is the documents to copy divided by
the slower of the two rates. One stream each: the copy runs `--workers` of them, which pays on servers
that serve them in parallel (the estimate leans long), while the copy's own bookkeeping is not in the
sample (it leans short). `make bench` measures it against the copy (`bench/engine.py`).

The destination's disk: its free space, as dbStats reports it (`fsTotalSize - fsUsedSize`, where the
server reports them), against what the copy writes — the source's data and indexes in the namespaces
migrated (collStats' `size`, uncompressed, and `totalIndexSize`), and a margin — blocks the migration
when it cannot fit, as mongosync 1.22 checks before it starts. A destination that does not report its
free space is said to be unknown, never blocked.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bson.raw_bson import RawBSONDocument
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from livemigrate.engine.capture.spool import LIMIT_SETTING
from livemigrate.engine.checkpoints import human_size
from livemigrate.engine.discover import discover
from livemigrate.engine.mongo import writer
from livemigrate.engine.mongo.collections import CollectionSpec
from livemigrate.engine.mongo.connect import wire_version
from livemigrate.engine.mongo.reader import in_batches, raw_collection
from livemigrate.engine.options import PREFLIGHT_DATABASE, STATE_DATABASE, MigrationOptions
from livemigrate.engine.sharding import ShardingPlan, plan_sharding
from livemigrate.engine.versions import WIRE_WRITE_BLOCKING

SCRATCH_NAMESPACE = f"{PREFLIGHT_DATABASE}.sample"
_KEY_SAMPLE = 1000  # documents per collection whose field names are looked at
# Added to the source's data and indexes for what the copy writes: the destination's own overhead
# (its storage's pages and the oplog's inserts) is not measured here, while WiredTiger's compression
# of the data usually gives back more than this (the sizes are uncompressed).
SPACE_MARGIN = 0.10
# The destination's change history a reversible migration needs: a reverse asked for within this long after
# the cutover finds every write made on the destination since.
REVERSE_HISTORY_SECONDS = 3600
REVERSE_SCRATCH = "reverse_check"


@dataclass(frozen=True)
class NamespaceCheck:
    namespace: str
    kind: str  # collection, view, timeseries
    documents: int
    size_bytes: int | None
    indexes: int
    notes: tuple[str, ...] = ()  # what will happen to it, when it is not migrated as is
    blocking: str | None = None  # why the migration cannot start as asked
    index_bytes: int | None = None  # the source's indexes (for the destination's space, not reported)

    def to_document(self) -> dict[str, Any]:
        return {"namespace": self.namespace, "kind": self.kind, "documents": self.documents,
                "sizeBytes": self.size_bytes, "indexes": self.indexes, "notes": list(self.notes),
                "blocking": self.blocking}


@dataclass(frozen=True)
class SpaceCheck:
    """The destination's free space against what the copy writes there."""

    free_bytes: int | None  # fsTotalSize - fsUsedSize of the destination's dbStats; None: not reported
    data_bytes: int  # the source's, in the namespaces copied (a size the source did not tell counts 0)
    index_bytes: int

    @property
    def needed_bytes(self) -> int:
        return round((self.data_bytes + self.index_bytes) * (1 + SPACE_MARGIN))

    def _needed(self) -> str:
        return (f"about {human_size(self.needed_bytes)} ({human_size(self.data_bytes)} of data and "
                f"{human_size(self.index_bytes)} of indexes on the source, in the namespaces copied, and a "
                f"{SPACE_MARGIN:.0%} margin)")

    @property
    def blocking(self) -> str | None:
        if self.free_bytes is None or self.free_bytes >= self.needed_bytes:
            return None
        return (f"the destination's disk has {human_size(self.free_bytes)} free (fsTotalSize - fsUsedSize in "
                f"its dbStats) and the copy writes {self._needed()}: grow its storage or free space there")

    @property
    def warning(self) -> str | None:
        if self.free_bytes is not None:
            return None
        return ("the destination does not report its free space (no fsTotalSize and fsUsedSize in its dbStats): "
                f"make sure it has room for what the copy writes, {self._needed()}")

    def summary(self) -> str:
        if self.free_bytes is None:
            return "the destination's free space is unknown"
        return (f"the destination has {human_size(self.free_bytes)} free for the copy's about "
                f"{human_size(self.needed_bytes)}")


@dataclass(frozen=True)
class Preflight:
    namespaces: tuple[NamespaceCheck, ...]
    read_docs_per_second: float | None
    write_docs_per_second: float | None
    estimate_seconds: float | None
    history_seconds: float | None  # the source's change history (oplog window), when it tells it
    warnings: tuple[str, ...] = field(default_factory=tuple)
    space: SpaceCheck | None = None  # the destination's free space against the copy's writes
    sharding: ShardingPlan | None = None  # both sides' shapes, and what is sharded on the destination
    reverse_blocking: tuple[str, ...] = ()  # what a reverse would need and these deployments do not give

    @property
    def blocking(self) -> list[str]:
        found = [f"{check.namespace}: {check.blocking}" for check in self.namespaces if check.blocking]
        if self.space is not None and self.space.blocking is not None:
            found.append(self.space.blocking)
        if self.sharding is not None:
            found += self.sharding.all_blocking
        return found + list(self.reverse_blocking)

    def summary(self) -> str:
        """The findings in a sentence, for an answer that a person reads before the structured fields."""
        documents = sum(check.documents for check in self.namespaces)
        not_as_is = sum(1 for check in self.namespaces if check.notes)
        if self.estimate_seconds is None:
            estimate = "nothing to copy"
        else:
            took = f"about {self.estimate_seconds:,.0f} s" if self.estimate_seconds >= 1 else "under 1 s"
            estimate = (f"the copy takes {took} ({self.read_docs_per_second:,} reads/s, "
                        f"{self.write_docs_per_second:,} writes/s measured)")
        history = ("the source does not tell its change history" if self.history_seconds is None
                   else f"the source keeps {self.history_seconds:,.0f} s of change history")
        outcome = f"blocked: {'; '.join(self.blocking)}" if self.blocking else "nothing blocks the migration"
        space = f"{self.space.summary()}; " if self.space is not None else ""
        shapes = ""
        if self.sharding is not None and (self.sharding.source.sharded or self.sharding.destination.sharded):
            shapes = (f"from {self.sharding.source.describe()} into {self.sharding.destination.describe()}, "
                      f"{len(self.sharding.keys)} collection(s) sharded there; ")
        return (f"{len(self.namespaces)} namespace(s), {documents:,} document(s): {estimate}; {history}; {space}"
                f"{shapes}{not_as_is} namespace(s) not migrated as they are; {outcome}.")

    def to_document(self) -> dict[str, Any]:
        return {"summary": self.summary(), "namespaces": [check.to_document() for check in self.namespaces],
                "readDocsPerSecond": self.read_docs_per_second, "writeDocsPerSecond": self.write_docs_per_second,
                "copyEstimateSeconds": self.estimate_seconds, "historySeconds": self.history_seconds,
                "warnings": list(self.warnings), "blocking": self.blocking,
                "sharding": self.sharding.to_document() if self.sharding is not None else None}


def _dollar_fields(document: Mapping[str, Any], prefix: str = "") -> Iterable[str]:
    for key, value in document.items():
        if key.startswith("$"):
            yield f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from _dollar_fields(value, f"{prefix}{key}.")


def _option_notes(options: Mapping[str, Any]) -> list[str]:
    notes = []
    if options.get("capped"):
        notes.append(f"capped ({options.get('size')} bytes): created capped with the same size; its documents are "
                     "copied in _id order, not in insertion order")
    if options.get("clusteredIndex"):
        notes.append("clustered: created clustered on the same key")
    collation = options.get("collation")
    if collation and collation.get("locale") not in (None, "simple"):
        notes.append(f"collation {collation.get('locale')}: created with it (queries and indexes compare as on the "
                     "source)")
    if options.get("validator"):
        notes.append(f"validator ({options.get('validationAction', 'error')}): created with it; a document it "
                     "refuses stops the copy")
    return notes


def _check_collection(source: MongoClient[Any], target: MongoClient[Any], spec: CollectionSpec,
                      occupied: set[str], drop_target: bool, replace_data: str) -> NamespaceCheck:
    database, name = spec.database, spec.name
    collection = source[database][name]
    documents = collection.estimated_document_count()
    try:
        stats = source[database].command("collStats", name)
        size: int | None = int(stats.get("size") or 0)
        index_bytes: int | None = int(stats.get("totalIndexSize") or 0)
    except PyMongoError:
        size = index_bytes = None
    notes = _option_notes(spec.options)
    dollars = sorted({key for document in collection.find({}, limit=_KEY_SAMPLE) for key in _dollar_fields(document)})
    if dollars:
        notes.append(f"field names starting with $ ({', '.join(dollars[:3])}): copied as they are (MongoDB 5.0+ "
                     "stores them); a destination older than 5.0 refuses them")
    blocking = None
    if spec.namespace in occupied and not drop_target:
        blocking = f"the destination already holds documents here (empty it, or {replace_data})"
    elif not drop_target:
        ours = {tuple(tuple(pair) for pair in index["key"]) for index in spec.indexes}
        theirs = [index for index in target[database][name].list_indexes()
                  if index.get("unique") and index.get("name") != "_id_"
                  and tuple((key, value) for key, value in dict(index["key"]).items()) not in ours]
        if theirs:
            blocking = (f"the destination has unique index {theirs[0]['name']} that the source has not: documents "
                        f"the source allows could be refused (drop it, or {replace_data})")
    return NamespaceCheck(spec.namespace, "collection", documents, size, len(spec.indexes) + 1, tuple(notes), blocking,
                          index_bytes)


def _free_bytes(target: MongoClient[Any], databases: Iterable[str]) -> int | None:
    """The destination's free space, from the first dbStats that reports its disk: `admin`'s (there on
    every deployment), else a database the copy writes. A database not created yet may answer 0 for
    both figures, and some servers leave them out: None when no answer tells."""
    for database in ("admin", *sorted(set(databases))):
        try:
            stats = target[database].command("dbStats")
        except PyMongoError:
            continue  # not allowed there, say: another database may tell
        total, used = stats.get("fsTotalSize"), stats.get("fsUsedSize")
        if isinstance(total, (int, float)) and isinstance(used, (int, float)) and total > 0:
            return max(0, int(total - used))
    return None


def _space(target: MongoClient[Any], checks: Iterable[NamespaceCheck]) -> SpaceCheck:
    copied = [check for check in checks if check.kind == "collection"]
    return SpaceCheck(_free_bytes(target, [check.namespace.split(".", 1)[0] for check in copied]),
                      sum(check.size_bytes or 0 for check in copied), sum(check.index_bytes or 0 for check in copied))


def _history_seconds(source: MongoClient[Any]) -> float | None:
    try:
        oplog = source.local["oplog.rs"]
        first = oplog.find_one({}, sort=[("$natural", 1)], projection={"ts": 1})
        last = oplog.find_one({}, sort=[("$natural", -1)], projection={"ts": 1})
    except PyMongoError:
        return None
    if not first or not last:
        return None
    return float(last["ts"].time - first["ts"].time)


def _measure(source: MongoClient[Any], target: MongoClient[Any], namespace: str, batch_size: int,
             seconds: float) -> tuple[float, float]:
    """Documents a second: read from the source, then written to the destination's scratch collection."""
    read: list[RawBSONDocument] = []
    started = time.monotonic()
    for document in raw_collection(source, namespace).find().batch_size(batch_size):
        read.append(document)
        if time.monotonic() - started >= seconds:
            break
    read_rate = len(read) / max(time.monotonic() - started, 1e-3)
    scratch_database = SCRATCH_NAMESPACE.split(".", 1)[0]  # ours alone: dropped before and after
    target.drop_database(scratch_database)
    started = time.monotonic()
    written = 0
    try:
        for batch in in_batches(read, batch_size):
            writer.insert_batch(target, SCRATCH_NAMESPACE, batch)
            written += len(batch)
            if time.monotonic() - started >= seconds:
                break
        write_rate = written / max(time.monotonic() - started, 1e-3)
    finally:
        target.drop_database(scratch_database)
    return read_rate, write_rate


_WRITES = frozenset({"insert", "update", "remove"})


def _write_refusal(source: MongoClient[Any], databases: Iterable[str]) -> str | None:
    """Why the migration host's user may not write the migrated databases on the source, from its own
    privileges (`connectionStatus` with `showPrivileges`: nothing is written to find out); None when it may,
    or when the source runs without access control. On MongoDB 6.0+ it also needs bypassWriteBlockingMode:
    the forward cutover leaves the source write-blocked, and the reverse writes through the block."""
    status = source.admin.command({"connectionStatus": 1, "showPrivileges": True})
    auth = status.get("authInfo") or {}
    if not auth.get("authenticatedUsers"):
        return None
    privileges = auth.get("authenticatedUserPrivileges") or []

    def granted(database: str | None) -> set[str]:
        found: set[str] = set()
        for privilege in privileges:
            resource = privilege.get("resource") or {}
            if resource.get("anyResource") or (database is None and resource.get("cluster")) or (
                    database is not None and resource.get("db") in ("", database) and resource.get("collection") == ""):
                found |= set(privilege.get("actions") or [])
        return found

    for database in sorted(set(databases)):
        missing = _WRITES - granted(database)
        if missing:
            return f"its user may not {', '.join(sorted(missing))} in {database}"
    state_missing = {"find", "insert", "update"} - granted(STATE_DATABASE)  # the reverse's claim on the source
    if state_missing:
        return f"its user may not {', '.join(sorted(state_missing))} in {STATE_DATABASE}, where a reverse holds its claim"
    if wire_version(source) >= WIRE_WRITE_BLOCKING and "bypassWriteBlockingMode" not in granted(None):
        return "its user lacks bypassWriteBlockingMode (MongoDB 6.0+ keeps the source write-blocked after the cutover)"
    return None


def _reverse_checks(source: MongoClient[Any], target: MongoClient[Any],
                    databases: Iterable[str]) -> tuple[list[str], list[str]]:
    """What a reverse of this migration needs, checked now rather than at the worst moment: (blocking,
    warnings). Its run reads the destination's changes from the forward cutover on, so the destination
    must offer change streams and keep them long enough; it writes the migrated databases on the source,
    so the migration host's user must be allowed to (read from its privileges: nothing is written); each
    cutover blocks the side it leaves, where the version has write blocking (MongoDB 6.0)."""
    blocking: list[str] = []
    warnings: list[str] = []
    history = _history_seconds(target)
    if history is None:
        warnings.append("reversible: the destination does not tell its change history: a reverse must be asked for "
                        "before the destination's oplog rolls past the cutover")
    elif history < REVERSE_HISTORY_SECONDS:
        blocking.append(f"reversible: the destination keeps {history:,.0f} s of change history, and a reverse reads "
                        f"the writes made there since the cutover: it needs at least {REVERSE_HISTORY_SECONDS:,} s "
                        "(grow the destination's oplog, or migrate without reversible)")
    try:
        with target[PREFLIGHT_DATABASE][REVERSE_SCRATCH].watch(max_await_time_ms=1):
            pass
    except PyMongoError as error:
        blocking.append(f"reversible: the destination offers no change stream to this user ({_short(error)}), and a "
                        "reverse reads the destination's changes")
    try:
        refusal = _write_refusal(source, databases)
    except PyMongoError as error:
        refusal = f"its privileges cannot be read ({_short(error)})"
    if refusal is not None:
        blocking.append(f"reversible: the source cannot be written by the migration host's user: {refusal}; a reverse "
                        "writes the destination's changes back there (grant readWrite on those databases, and on "
                        "MongoDB 6.0+ bypassWriteBlockingMode)")
    for side, client in (("source", source), ("destination", target)):
        if wire_version(client) < WIRE_WRITE_BLOCKING:
            warnings.append(f"reversible: the {side} cannot block writes (MongoDB 6.0+ can): stop the application's "
                            f"writes there yourself at each cutover that leaves it")
    return blocking, warnings


def _short(error: PyMongoError) -> str:
    details = getattr(error, "details", None)
    return str(details.get("errmsg", error) if isinstance(details, dict) else error).split(", full error:")[0][:200]


def preflight(source: MongoClient[Any], target: MongoClient[Any], options: MigrationOptions,
              sample_seconds: float = 2.0, replace_data: str = "use --drop-target",
              stop_balancer: str = "pass --stop-balancer") -> Preflight:
    """`replace_data`, `stop_balancer`: how the caller's user asks for the destination's data to be replaced,
    and for the source's balancer to be stopped, in their words."""
    discovery = discover(source, options.namespaces)
    sharding = plan_sharding(source, target, discovery, options,
                             stop_balancer_help=f"stop it (sh.stopBalancer()), or {stop_balancer} to have the migration "
                                                "stop it while it runs")
    occupied = set(writer.non_empty_namespaces(target, [spec.namespace for spec in discovery.copied]))
    checks = [_check_collection(source, target, spec, occupied, options.drop_target, replace_data)
              for spec in discovery.copied]
    checks += [NamespaceCheck(spec.namespace, "view", 0, None, 0,
                              ("view: re-created on the destination after the copy, with its pipeline",))
               for spec in discovery.views]
    checks += [NamespaceCheck(namespace, "timeseries", 0, None, 0,
                              ("time-series: not migrated (as Atlas live migration does not); copy it yourself",))
               for namespace in discovery.skipped]
    total = sum(check.documents for check in checks)
    largest = max((check for check in checks if check.kind == "collection"), key=lambda check: check.documents,
                  default=None)
    read_rate = write_rate = estimate = None
    if largest is not None and largest.documents > 0:
        read_rate, write_rate = _measure(source, target, largest.namespace, options.batch_size, sample_seconds)
        slower = min(read_rate, write_rate)
        estimate = round(total / slower, 1) if slower > 0 else None
    history = _history_seconds(source)
    space = _space(target, checks)
    warnings = [space.warning] if space.warning is not None else []
    warnings += sharding.notes
    reverse_blocking, reverse_warnings = _reverse_checks(
        source, target, {spec.database for spec in discovery.copied}) if options.reversible else ([], [])
    warnings += reverse_warnings
    if history is None:
        warnings.append("the source does not tell its change history (no oplog to read): the spool keeps the "
                        f"changes of the copy, up to its limit ({LIMIT_SETTING})")
    elif estimate is not None and estimate > history:
        warnings.append(f"the copy (about {estimate:.0f} s) outlasts the source's change history ({history:.0f} s): "
                        f"the changes made meanwhile wait in the spool (its limit: {LIMIT_SETTING}); a restart during the copy "
                        "may find its resume point gone")
    return Preflight(tuple(checks), read_rate and round(read_rate), write_rate and round(write_rate), estimate,
                     history, tuple(warnings), space, sharding, tuple(reverse_blocking))
