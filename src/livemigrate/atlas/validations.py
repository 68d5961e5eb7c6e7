"""Validations of a migration request: the target's own checks, then the migration host's pre-flight.

The target checks what it knows (the source as the link's inventory shows it, the migration host
alive, the destination reachable and empty enough). Only the migration host can read the source, so
the rest is a job of that host, listed to it over the link like a migration: it reads every
namespace, copies a sample into a scratch database of the destination, and answers once with what
`engine/preflight.py` finds — per namespace its documents, size and indexes and what will not be
migrated as is, an estimate of the copy's time, the source's change history. A blocking finding
fails the validation; a host that does not answer within `HOST_ANSWER_SECONDS` fails it too.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from livemigrate.atlas.migration_jobs import link_job
from livemigrate.atlas.migration_requests import MigrationRequest, check_destination, find_source
from livemigrate.contracts import LinkJob, ProgressReport
from livemigrate.crypto import SecretBox
from livemigrate.http.errors import ApiError, ErrorCode
from livemigrate.ids import is_object_id, new_object_id
from livemigrate.statuses import MigrationStatus, ValidationStatus
from livemigrate.store.database import Store
from livemigrate.store.models import LiveMigrationValidation, utcnow

# Long enough for a host to notice the job (it long-polls its list) and to sample a slow source.
HOST_ANSWER_SECONDS = 120


def start_validation(store: Store, project_id: str, request: MigrationRequest) -> LiveMigrationValidation:
    validation = LiveMigrationValidation(id=new_object_id(), project_id=project_id,
                                         source_project_id=request.source.group_id,
                                         # Named from the start: a validation refused before its host is
                                         # asked still says what it validated.
                                         source_cluster_name=request.source.cluster_name,
                                         destination_cluster_name=request.destination_cluster_name,
                                         status=ValidationStatus.PENDING.value)
    with store.write() as session:
        session.add(validation)
    return validation


def run_validation(store: Store, secret_box: SecretBox, target_org_id: str, project_id: str, validation_id: str,
                   request: MigrationRequest) -> None:
    """The target's checks: FAILED with the first reason found, or a job for the migration host."""
    try:
        finding = find_source(store, target_org_id, request)
        check_destination(store, secret_box, project_id, request, probe=True)
    except ApiError as error:
        with store.write() as session:
            validation = session.get(LiveMigrationValidation, validation_id)
            if validation is not None:
                validation.status, validation.error_message = ValidationStatus.FAILED.value, error.detail
        return
    source = request.source
    with store.write() as session:
        validation = session.get(LiveMigrationValidation, validation_id)
        if validation is None:
            return
        validation.host_asked_at = utcnow()
        validation.target_org_id, validation.source_org_id = target_org_id, finding.source_org_id
        validation.source_cluster_name, validation.migration_host = source.cluster_name, request.migration_host
        validation.source_username, validation.source_ssl = source.username, source.ssl
        validation.source_password_encrypted = secret_box.seal(source.password) if source.password else None
        validation.source_ca_certificate_path = source.ca_certificate_path
        validation.destination_cluster_name = request.destination_cluster_name
        validation.drop_destination_data = request.drop_destination_data
        validation.sharding, validation.stop_source_balancer = request.sharding, request.stop_source_balancer
        validation.reversible = request.reversible


def _awaiting_host(validation: LiveMigrationValidation) -> bool:
    return validation.status == ValidationStatus.PENDING.value and validation.host_asked_at is not None


def _unanswered_too_long(validation: LiveMigrationValidation) -> bool:
    return (_awaiting_host(validation) and validation.host_asked_at is not None
            and utcnow() - validation.host_asked_at > timedelta(seconds=HOST_ANSWER_SECONDS))


def validation_jobs(store: Store, secret_box: SecretBox, target_org_id: str, source_org_id: str) -> list[LinkJob]:
    """The pre-flights the linked source org's migration hosts owe, as jobs of kind VALIDATION."""
    with store.read() as session:
        waiting = list(session.scalars(select(LiveMigrationValidation).where(
            LiveMigrationValidation.target_org_id == target_org_id,
            LiveMigrationValidation.source_org_id == source_org_id,
            LiveMigrationValidation.status == ValidationStatus.PENDING.value,
            LiveMigrationValidation.host_asked_at.is_not(None)).order_by(LiveMigrationValidation.id)))
    return [link_job(store, secret_box, validation, kind="VALIDATION", status=MigrationStatus.NEW)
            for validation in waiting
            if not _unanswered_too_long(validation) and validation.destination_cluster_name is not None]


def record_preflight(store: Store, target_org_id: str, source_org_id: str, validation_id: str,
                     report: ProgressReport) -> LiveMigrationValidation | None:
    """The host's answer to a validation job, once; None when `validation_id` is no validation of this link.
    Looked up in a read first: every migration's progress report passes here, and a write would wake
    every waiting migration host (`Store.write`)."""
    if not is_object_id(validation_id):
        return None
    with store.read() as session:
        found = session.get(LiveMigrationValidation, validation_id)
    if found is None or (found.target_org_id, found.source_org_id) != (target_org_id, source_org_id):
        return None
    with store.write() as session:
        validation = session.get(LiveMigrationValidation, validation_id)
        if validation is None or not _awaiting_host(validation):
            return validation or found  # answered already, or given up on: the first outcome stays
        preflight = report.preflight
        if report.status is MigrationStatus.FAILED or preflight is None:
            reason = report.errorMessage or "it answered without a pre-flight"
            validation.status = ValidationStatus.FAILED.value
            validation.error_message = (f"Migration host {validation.migration_host!r} could not run the pre-flight: "
                                        f"{reason}")
        else:
            # Every field shown, null included.
            validation.preflight = preflight.model_dump(mode="json")
            blocking = list(preflight.blocking)
            validation.status = (ValidationStatus.FAILED if blocking else ValidationStatus.SUCCESS).value
            validation.error_message = ("The pre-flight found what blocks the migration: " + "; ".join(blocking)
                                        if blocking else None)
        validation.source_password_encrypted = None  # needed no longer
        return validation


def _settle(store: Store, validation: LiveMigrationValidation) -> LiveMigrationValidation:
    """A validation whose host has not answered in time is FAILED, decided when it is read."""
    if not _unanswered_too_long(validation):
        return validation
    with store.write() as session:
        stored = session.get(LiveMigrationValidation, validation.id)
        if stored is not None and _unanswered_too_long(stored):
            stored.status = ValidationStatus.FAILED.value
            stored.error_message = (f"Migration host {stored.migration_host!r} did not run the pre-flight within "
                                    f"{HOST_ANSWER_SECONDS} s: is `livemigrate agent` running there, and can it "
                                    "reach the source API?")
            stored.source_password_encrypted = None
        return stored or validation


def recent_validations(store: Store, project_id: str, limit: int = 10) -> list[LiveMigrationValidation]:
    """The project's latest validations, newest first (the console lists them)."""
    with store.read() as session:
        found = list(session.scalars(select(LiveMigrationValidation)
                                     .where(LiveMigrationValidation.project_id == project_id)
                                     .order_by(LiveMigrationValidation.created_at.desc(),
                                               LiveMigrationValidation.id.desc()).limit(limit)))
    return [_settle(store, validation) for validation in found]


def get_validation(store: Store, project_id: str, validation_id: str) -> LiveMigrationValidation:
    with store.read() as session:
        validation = session.get(LiveMigrationValidation, validation_id) if is_object_id(validation_id) else None
    if validation is None or validation.project_id != project_id:
        raise ApiError(ErrorCode.VALIDATION_NOT_FOUND, f"No validation {validation_id} in group {project_id}.",
                       [validation_id])
    return _settle(store, validation)


def validation_view(validation: LiveMigrationValidation) -> dict[str, Any]:
    """Atlas's validation, and (our extension) the migration host's pre-flight once it answered."""
    return {"_id": validation.id, "groupId": validation.project_id, "sourceGroupId": validation.source_project_id,
            "status": validation.status, "errorMessage": validation.error_message,
            "preflight": validation.preflight}
