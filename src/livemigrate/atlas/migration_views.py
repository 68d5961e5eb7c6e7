"""A migration as the API answers it: Atlas' fields, and this implementation's own beside them."""

from __future__ import annotations

from typing import Any

from livemigrate.atlas.migration_progress import CUTOVER_FIELDS
from livemigrate.atlas.migrations import hosts_gone_warning
from livemigrate.directory.views import iso
from livemigrate.engine.events import Phase  # the phases a migration host reports, as contracts.py names them
from livemigrate.statuses import FINISHED, MigrationStatus
from livemigrate.store.models import LiveMigration, hosts_of, utcnow


def hosts_progress(migration: LiveMigration) -> list[dict[str, Any]]:
    """Each host's part, for a migration that several share (or one host's, as its capture reports it)."""
    return [dict(part) for _, part in sorted((migration.progress or {}).get("hosts", {}).items())]


def lag_samples(migration: LiveMigration) -> list[list[float]]:
    return list((migration.progress or {}).get("lagSamples", []))


def events_applied(migration: LiveMigration) -> int:
    """Changes the migration host has replayed on the destination, as last reported."""
    return int((migration.progress or {}).get("eventsApplied", 0))


def retries_of(migration: LiveMigration) -> dict[str, int]:
    """Round trips the migration host tried again after a fault (`source`, `destination`), and runs it
    started again from their checkpoints (`restarts`), as last reported."""
    reported = (migration.progress or {}).get("retries") or {}
    return {side: int(reported.get(side, 0)) for side in ("source", "destination", "restarts")}


def _progress_summary(migration: LiveMigration) -> dict[str, Any]:
    """What a person or a script asks of a running migration, in the spirit of mongosync's progress:
    may it be cut over, may the application write to the destination, how long so far, how long to go."""
    finished_at = migration.updated_at if migration.status in FINISHED else utcnow()
    elapsed = (finished_at - migration.created_at).total_seconds()
    rate = float((migration.progress or {}).get("docsPerSecond") or 0)
    copying = migration.phase == Phase.INITIAL_SYNC.value and rate > 0
    return {
        "canCutover": migration.status == MigrationStatus.WORKING.value and migration.ready_for_cutover
        and migration.cutover_requested_at is None,
        "canWrite": migration.status == MigrationStatus.COMPLETE.value,  # the destination takes the writes now
        "elapsedSeconds": round(max(elapsed, 0.0), 1),
        "copyEtaSeconds": round(max(migration.total_documents - migration.copied_documents, 0) / rate, 1)
        if copying else None,
    }


def migration_view(migration: LiveMigration) -> dict[str, Any]:
    return {
        "_id": migration.id,
        "groupId": migration.project_id,
        "status": migration.status,
        # Atlas types it int64: whole seconds for its SDK and CLI; `lagSeconds` (ours) keeps the fraction.
        "lagTimeSeconds": None if migration.lag_time_seconds is None else round(migration.lag_time_seconds),
        "lagSeconds": migration.lag_time_seconds,
        "readyForCutover": migration.ready_for_cutover,
        "migrationHosts": hosts_of(migration),
        "phase": migration.phase,
        "copiedDocuments": migration.copied_documents,
        "totalDocuments": migration.total_documents,
        "eventsApplied": events_applied(migration),
        # An extension: round trips its host tried again after a fault that passed, by side.
        "retries": retries_of(migration),
        **_progress_summary(migration),
        "namespaces": migration.progress.get("namespaces", []) if migration.progress else [],
        # An extension: each host's part when several share the migration (`agent/shared_job.py`).
        "hosts": hosts_progress(migration),
        **{key: (migration.progress or {}).get(key) for key in CUTOVER_FIELDS},
        # What the migration host sees that a person should act on, e.g. a change stream that
        # delivers nothing: the counts on both sides differ and readyForCutover stays false; and
        # what the target sees, its hosts all gone.
        "warnings": [*hosts_gone_warning(migration),
                     *(migration.progress.get("warnings", []) if migration.progress else [])],
        "errorMessage": migration.error_message,
        "source": {"clusterName": migration.source_cluster_name, "groupId": migration.source_project_id},
        "destination": {"clusterName": migration.destination_cluster_name, "groupId": migration.project_id,
                        "hostnameSchemaType": migration.hostname_schema_type},
        "dropDestinationData": migration.drop_destination_data,
        # Extensions: the change capture asked for (null: the migration host's setting), and a cancel.
        "changeCapture": migration.change_capture,
        "cancelledAt": iso(migration.cancelled_at) if migration.cancelled_at else None,
        "cancelledBy": migration.cancelled_by,
        "hostsStoppedAt": iso(migration.hosts_stopped_at) if migration.hosts_stopped_at else None,
        # Extensions: a way back. FORWARD: from the source into the destination; REVERSE: back, after the
        # forward migration `reverseOf` completed; `canReverse`: a reverse may be asked for now.
        "reversible": migration.reversible,
        "direction": migration.direction,
        "reverseOf": migration.reverse_of,
        "canReverse": migration.reversible and migration.direction == "FORWARD"
        and migration.status == MigrationStatus.COMPLETE.value and migration.reverse_point is not None,
    }
