"""The running migrations of a linked source org as the link lists them to its migration hosts (and
a cancelled one until its hosts have stopped): the only place a destination connection string or a
source password leaves the store."""

from __future__ import annotations

from datetime import timedelta
from typing import cast

from sqlalchemy import select

from livemigrate.atlas import clusters
from livemigrate.atlas.migrations import due_to_expire, expire_if_due
from livemigrate.contracts import ChangeCapture, Direction, JobKind, LinkJob, ListedStatus, Sharding
from livemigrate.crypto import SecretBox
from livemigrate.statuses import RUNNING, MigrationStatus
from livemigrate.store.database import Store
from livemigrate.store.models import LiveMigration, LiveMigrationValidation, hosts_of


def jobs_for(store: Store, secret_box: SecretBox, target_org_id: str, source_org_id: str,
             window: timedelta) -> list[LinkJob]:
    """The running migrations of one linked source org, with what its migration hosts need to run them.
    This is the only place a destination connection string or a source password leaves the store.

    A read, unless a migration is due to expire: migration hosts wait on this list (long polling),
    and a write here would wake every one of them for nothing."""
    with store.read() as session:
        running = list(session.scalars(select(LiveMigration).where(
            LiveMigration.target_org_id == target_org_id, LiveMigration.source_org_id == source_org_id,
            LiveMigration.status.in_([status.value for status in RUNNING])
            | (LiveMigration.cancelled_at.is_not(None) & LiveMigration.hosts_stopped_at.is_(None)
               & LiveMigration.destination_claim.is_not(None))).order_by(LiveMigration.id)))
    due = [migration.id for migration in running if due_to_expire(migration, window)]
    if due:
        with store.write() as session:
            for migration in session.scalars(select(LiveMigration).where(LiveMigration.id.in_(due))):
                expire_if_due(migration, window)
    return [link_job(store, secret_box, migration, status=cast(ListedStatus, MigrationStatus(migration.status)),
                     cutover_requested=migration.cutover_requested_at is not None)
            for migration in running if migration.id not in due]


def link_job(store: Store, secret_box: SecretBox, record: LiveMigration | LiveMigrationValidation, *,
             status: ListedStatus, kind: JobKind = "MIGRATION", cutover_requested: bool = False) -> LinkJob:
    """A migration, or a validation's pre-flight, as the link lists it to the source: the two records
    keep the request's source and destination under the same names. A cancelled migration is listed
    until its hosts have stopped, without its secrets: they need none to stop."""
    cancelled = isinstance(record, LiveMigration) and record.cancelled_at is not None
    cluster = None if cancelled else clusters.find_cluster(store, record.project_id, str(record.destination_cluster_name))
    return LinkJob(
        id=record.id, kind=kind, status=status, sourceProjectId=record.source_project_id,
        sourceClusterName=str(record.source_cluster_name), migrationHost=str(record.migration_host),
        migrationHosts=hosts_of(record) if isinstance(record, LiveMigration) else [str(record.migration_host)],
        sourceUsername=record.source_username,
        sourcePassword=secret_box.open(record.source_password_encrypted)
        if record.source_password_encrypted and not cancelled else None,
        sourceSsl=record.source_ssl, sourceCaCertificatePath=record.source_ca_certificate_path,
        destinationUri=secret_box.open(cluster.uri_encrypted) if cluster else None,
        dropDestinationData=record.drop_destination_data, cutoverRequested=cutover_requested,
        changeCapture=cast(ChangeCapture | None, record.change_capture) if isinstance(record, LiveMigration) else None,
        sharding=Sharding.model_validate(record.sharding) if record.sharding else None,
        stopSourceBalancer=record.stop_source_balancer, reversible=record.reversible,
        direction=cast(Direction, record.direction) if isinstance(record, LiveMigration) else "FORWARD",
        reverseFrom=reverse_from(store, record) if isinstance(record, LiveMigration) and not cancelled else None,
        cancelRequested=cancelled,
    )


def reverse_from(store: Store, migration: LiveMigration) -> str | None:
    """A reverse's starting point: the one its forward migration's host reported at cutover."""
    if migration.direction != "REVERSE" or migration.reverse_of is None:
        return None
    with store.read() as session:
        forward = session.get(LiveMigration, migration.reverse_of)
    return forward.reverse_point if forward is not None else None
