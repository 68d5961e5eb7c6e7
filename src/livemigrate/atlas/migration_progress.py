"""What a migration's hosts report, relayed over the link: its status and figures, each host's part
of a shared migration, a cancelled migration's hosts saying they stopped, and the lag's history."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from livemigrate.atlas.destination_claims import alive_hosts
from livemigrate.atlas.migrations import expire_if_due
from livemigrate.contracts import HostProgress, ProgressReport
from livemigrate.directory.views import iso
from livemigrate.http.errors import ApiError, ErrorCode
from livemigrate.ids import is_object_id
from livemigrate.statuses import FINISHED, MigrationStatus
from livemigrate.store.database import Store
from livemigrate.store.models import LiveMigration, hosts_of, utcnow


def record_progress(store: Store, target_org_id: str, source_org_id: str, migration_id: str,
                    report: ProgressReport, window: timedelta) -> LiveMigration:
    """Progress relayed from a migration host; a finished migration is not changed any more. A figure
    the report leaves out (a final report's) stays as the target holds it."""
    with store.write() as session:
        migration = session.get(LiveMigration, migration_id, with_for_update=True) \
            if is_object_id(migration_id) else None
        if migration is None or migration.target_org_id != target_org_id or migration.source_org_id != source_org_id:
            raise ApiError(ErrorCode.LIVE_MIGRATION_NOT_FOUND, f"No live migration {migration_id} for this link.",
                           [migration_id])
        if migration.cancelled_at is not None:
            if report.stoppedHost is not None:
                _note_host_stopped(session, migration, report.stoppedHost)
            return migration  # cancelled: what its hosts report while they stop changes nothing else
        if expire_if_due(migration, window) or migration.status in FINISHED:
            return migration
        if report.host is not None:
            _record_host(migration, report.host)
            if report.host.role == "copy":
                return migration  # a host's own part of a shared copy: the migration is its capture's to report
        status = MigrationStatus(report.status)
        if status is MigrationStatus.COMPLETE and migration.cutover_requested_at is None:
            status = MigrationStatus.WORKING  # only a cutover completes a migration
        migration.status = status.value
        if report.phase is not None:
            migration.phase = report.phase.value
        if report.lagTimeSeconds is not None:
            migration.lag_time_seconds = float(report.lagTimeSeconds)
        ready = report.readyForCutover and status is MigrationStatus.WORKING
        if ready and migration.ready_since is None:
            migration.ready_since = utcnow()
        migration.ready_for_cutover = ready or (status is MigrationStatus.WORKING
                                                and migration.cutover_requested_at is not None
                                                and migration.ready_for_cutover)
        if report.copiedDocuments is not None:
            migration.copied_documents = report.copiedDocuments
        if report.totalDocuments is not None:
            migration.total_documents = report.totalDocuments
        if any(figure is not None for figure in (report.namespaces, report.warnings, report.eventsApplied,
                                                   report.docsPerSecond, report.retries)):
            migration.progress = _progress_with(migration, report)
        if status is MigrationStatus.FAILED:
            migration.error_message = report.errorMessage or "the migration host reported a failure"
            migration.ready_for_cutover = False
        elif status is MigrationStatus.COMPLETE:
            migration.ready_for_cutover = False
            migration.lag_time_seconds = 0.0
            if migration.reversible and report.reversePoint is not None:
                migration.reverse_point = report.reversePoint  # where its reverse would start
        if status in FINISHED:
            migration.destination_claim = None  # its host reported its end: it writes no more
            if migration.progress:
                migration.progress = {**migration.progress, "warnings": []}
        return migration


def _progress_with(migration: LiveMigration, report: ProgressReport) -> dict[str, Any]:
    """The progress document the target keeps, with what `report` says and what it leaves out as it was."""
    previous = migration.progress or {}
    cutover = {key: previous.get(key) for key in CUTOVER_FIELDS}
    if report.sourceWritesBlocked is not None:
        cutover["sourceWritesBlocked"] = report.sourceWritesBlocked
    if report.writesAfterCutoverBegan is not None:
        cutover["writesAfterCutoverBegan"] = report.writesAfterCutoverBegan
    return {**cutover, "hosts": previous.get("hosts", {}),
            "namespaces": previous.get("namespaces", []) if report.namespaces is None
            else [namespace.model_dump(mode="json", exclude_none=True) for namespace in report.namespaces],
            "warnings": previous.get("warnings", []) if report.warnings is None else list(report.warnings),
            "eventsApplied": previous.get("eventsApplied", 0) if report.eventsApplied is None else report.eventsApplied,
            "docsPerSecond": previous.get("docsPerSecond", 0) if report.docsPerSecond is None else report.docsPerSecond,
            "retries": previous.get("retries") if report.retries is None else report.retries.model_dump(mode="json"),
            "lagSamples": _with_lag_sample(previous.get("lagSamples", []), migration.lag_time_seconds)}


def _record_host(migration: LiveMigration, host: HostProgress) -> None:
    """One host's part of a shared migration, as it last reported it."""
    previous = migration.progress or {}
    hosts = dict(previous.get("hosts", {}))
    if host.role == "capture":  # one holder at a time: whoever held it before holds it no more
        hosts = {name: {**part, "role": "copy"} if part.get("role") == "capture" else part
                 for name, part in hosts.items()}
    hosts[host.hostname] = {**host.model_dump(mode="json"), "reportedAt": iso(utcnow())}
    migration.progress = {**previous, "hosts": hosts}


def _note_host_stopped(session: Session, migration: LiveMigration, hostname: str) -> None:
    """A host of a cancelled migration stopped writing and removed the job's state. Once every host that
    could still write has said so, the destination is free."""
    progress = dict(migration.progress or {})
    stopped = sorted({*progress.get("stoppedHosts", []), hostname})
    migration.progress = {**progress, "stoppedHosts": stopped}
    remaining = set(hosts_of(migration)) - set(stopped)
    alive = alive_hosts(session, migration)
    if not remaining or (alive is not None and not remaining & alive):
        migration.hosts_stopped_at = migration.hosts_stopped_at or utcnow()
        migration.destination_claim = None


# What the cutover reports of the source: kept as last reported, shown as they are.
CUTOVER_FIELDS = ("sourceWritesBlocked", "writesAfterCutoverBegan")
_LAG_SAMPLE_SECONDS = 2.0
_LAG_SAMPLES_KEPT = 400


def _with_lag_sample(samples: list[list[float]], lag: float | None) -> list[list[float]]:
    """The lag's history for the console's chart: a sample every 2 s at most; past 400 samples every
    other one is dropped, so that a long migration keeps its whole history at a coarser step and the
    progress document stays small."""
    now = utcnow().timestamp()
    if lag is None or samples and now - samples[-1][0] < _LAG_SAMPLE_SECONDS:
        return samples
    kept = [*samples, [round(now, 1), round(float(lag), 2)]]
    return kept[::2] + ([kept[-1]] if len(kept) % 2 == 0 else []) if len(kept) > _LAG_SAMPLES_KEPT else kept
