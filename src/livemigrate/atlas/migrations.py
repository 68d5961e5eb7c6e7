"""Push live migrations on the target side, their life: creation, expiry, hosts gone, cancel, cutover.

A migration's life: NEW (created) → WORKING (its migration host reported) → readyForCutover (the
copy is done and the lag is small) → cutover requested → COMPLETE; FAILED on any error the host
reports, or when cancelled; EXPIRED when ready for longer than the cutover window without a
cutover. Expiry is decided whenever a migration is read, so no clock of its own is needed. While it
may write its destination, a migration holds it (`destination_claims.py`). The request's checks are
`migration_requests.py`'s, the link's job list `migration_jobs.py`'s, what hosts report
`migration_progress.py`'s, and how a migration is shown `migration_views.py`'s."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from livemigrate.atlas.destination_claims import alive_hosts, claim_key, holder_of, in_use
from livemigrate.atlas.migration_requests import (
    MigrationRequest,
    check_destination,
    check_destination_free,
    deployment_named,
    find_source,
    pushed_project,
    version_tuple,
)
from livemigrate.crypto import SecretBox
from livemigrate.directory.views import iso
from livemigrate.engine.versions import WRITE_BLOCKING
from livemigrate.http.errors import ApiError, ErrorCode
from livemigrate.ids import is_object_id, new_object_id
from livemigrate.statuses import FINISHED, RUNNING, MigrationStatus
from livemigrate.store.database import Store
from livemigrate.store.models import LiveMigration, TargetLink, hosts_of, utcnow


def create_migration(store: Store, secret_box: SecretBox, target_org_id: str, project_id: str,
                     request: MigrationRequest) -> LiveMigration:
    """The checks a validation makes of the target's side (the source as pushed, the hosts alive, the
    destination reachable, empty unless dropDestinationData, and held by no other migration), with
    the same sentences; then the migration, NEW, holding its destination."""
    finding = find_source(store, target_org_id, request)
    check_destination_free(store, project_id, request)
    check_destination(store, secret_box, project_id, request, probe=True)
    key = claim_key(project_id, request.destination_cluster_name)
    migration = LiveMigration(
        id=new_object_id(), project_id=project_id, target_org_id=target_org_id, source_org_id=finding.source_org_id,
        source_project_id=request.source.group_id, source_cluster_name=request.source.cluster_name,
        source_username=request.source.username,
        source_password_encrypted=secret_box.seal(request.source.password) if request.source.password else None,
        source_ssl=request.source.ssl, source_ca_certificate_path=request.source.ca_certificate_path,
        destination_cluster_name=request.destination_cluster_name,
        hostname_schema_type=request.hostname_schema_type, migration_host=request.migration_host,
        migration_hosts=list(request.migration_hosts) if len(request.migration_hosts) > 1 else None,
        drop_destination_data=request.drop_destination_data, sharding=request.sharding,
        change_capture=request.change_capture, stop_source_balancer=request.stop_source_balancer, reversible=request.reversible, destination_claim=key, status=MigrationStatus.NEW.value,
    )
    try:
        with store.write() as session:
            holder = holder_of(session, key)  # one created since the check above
            if holder is not None:
                raise in_use(holder, request.destination_cluster_name)
            session.add(migration)
    except IntegrityError:  # a create on another replica claimed it between that look and this insert
        with store.write() as session:
            holder = holder_of(session, key)
            if holder is None:
                raise
            raise in_use(holder, request.destination_cluster_name) from None
    return migration


def due_to_expire(migration: LiveMigration, window: timedelta) -> bool:
    return (migration.status == MigrationStatus.WORKING and migration.ready_since is not None
            and migration.cutover_requested_at is None and utcnow() - migration.ready_since > window)


def _finish(migration: LiveMigration, status: MigrationStatus, reason: str | None) -> None:
    """A migration ended by the target's decision (expired, its hosts gone): its host stops at its next
    job list, and its destination is free for another (`destination_claims.py` says why that is safe)."""
    migration.status = status.value
    migration.ready_for_cutover = False
    migration.error_message = reason
    migration.destination_claim = None


def expire_if_due(migration: LiveMigration, window: timedelta) -> bool:
    if due_to_expire(migration, window):
        _finish(migration, MigrationStatus.EXPIRED,
                f"Ready for cutover since {migration.ready_since:%Y-%m-%dT%H:%M:%SZ} but no cutover came within "
                f"{window.total_seconds() / 3600:g} hours.")
        return True
    return False


def load_migration(session: Session, project_id: str, migration_id: str, *, for_update: bool = False) -> LiveMigration:
    """`for_update`: the row locked until the transaction ends (PostgreSQL), so that two writers of one
    migration — a cancel and its host's last report, say — take turns rather than overwrite each other."""
    migration = session.get(LiveMigration, migration_id, with_for_update=for_update) \
        if is_object_id(migration_id) else None
    if migration is None or migration.project_id != project_id:
        raise ApiError(ErrorCode.LIVE_MIGRATION_NOT_FOUND, f"No live migration {migration_id} in group {project_id}.",
                       [migration_id])
    return migration


def get_migration(store: Store, project_id: str, migration_id: str, window: timedelta,
                  hosts_gone: timedelta | None = None) -> LiveMigration:
    """The migration as it stands: expired if due, and (with `hosts_gone`) failed when none of its
    migration hosts has been alive for that long."""
    with store.write() as session:
        migration = load_migration(session, project_id, migration_id)
        expire_if_due(migration, window)
        if hosts_gone is not None:
            _fail_if_hosts_gone(session, migration, hosts_gone)
        return migration


def list_migrations(store: Store, project_id: str, window: timedelta,
                    hosts_gone: timedelta | None = None) -> list[LiveMigration]:
    """The project's migrations, newest first, each as `get_migration` would show it."""
    with store.write() as session:
        found = list(session.scalars(select(LiveMigration).where(LiveMigration.project_id == project_id)
                                     .order_by(LiveMigration.created_at.desc(), LiveMigration.id.desc())))
        for migration in found:
            expire_if_due(migration, window)
            if hosts_gone is not None:
                _fail_if_hosts_gone(session, migration, hosts_gone)
        return found


def _fail_if_hosts_gone(session: Session, migration: LiveMigration, after: timedelta) -> None:
    """A running migration none of whose hosts the source side has seen alive: said in its warnings
    (`hostsGoneSince`), and FAILED once that has lasted `after` — it would otherwise wait forever,
    and never reach COMPLETE. Decided on read, like expiry: from the link's last inventory, which
    counts a host alive while it heartbeats (`LIVEMIGRATE_MIGRATION_HOST_ALIVE_SECONDS`)."""
    if migration.status not in {status.value for status in RUNNING}:
        return
    alive = alive_hosts(session, migration)
    if alive is None:
        return  # nothing pushed to judge by
    progress = dict(migration.progress or {})
    if set(hosts_of(migration)) & alive:
        if progress.pop("hostsGoneSince", None) is not None:
            migration.progress = progress
        return
    now = utcnow()
    since = progress.get("hostsGoneSince")
    if since is None:
        migration.progress = {**progress, "hostsGoneSince": iso(now)}
        return
    gone_for = now - datetime.fromisoformat(str(since))
    if gone_for > after:
        _finish(migration, MigrationStatus.FAILED,
                f"None of its migration hosts ({', '.join(hosts_of(migration))}) has been alive since {since}: start "
                "`livemigrate agent` on one of them again, then create the migration anew.")


def hosts_gone_warning(migration: LiveMigration) -> list[str]:
    """The warning a running migration shows while none of its hosts is alive."""
    since = (migration.progress or {}).get("hostsGoneSince")
    if since is None or migration.status not in {status.value for status in RUNNING}:
        return []
    return [f"None of its migration hosts ({', '.join(hosts_of(migration))}) is alive since {since}."]


def cancel_migration(store: Store, project_id: str, migration_id: str, window: timedelta, by: str) -> LiveMigration:
    """A migration that has not finished, cancelled: FAILED at once, saying who cancelled it and when.
    Its hosts are told by their job list (`cancelRequested`): they stop writing, lift a source write
    block a cutover set, remove the job's state and say so (`hostsStoppedAt`); only then is its
    destination free for another migration (`destination_claims.py`)."""
    with store.write() as session:
        migration = load_migration(session, project_id, migration_id, for_update=True)
        expire_if_due(migration, window)
        if migration.status in FINISHED:
            raise ApiError(ErrorCode.LIVE_MIGRATION_ALREADY_FINISHED,
                           f"Live migration {migration_id} is {migration.status}: there is nothing to cancel.",
                           [migration.status])
        now = utcnow()
        migration.status = MigrationStatus.FAILED.value
        migration.ready_for_cutover = False
        migration.cancelled_at, migration.cancelled_by = now, by
        migration.error_message = f"Cancelled by {by} at {iso(now)}."
        if migration.progress:
            migration.progress = {**migration.progress, "warnings": []}
        return migration


def request_cutover(store: Store, project_id: str, migration_id: str, window: timedelta) -> str:
    """The cutover asked for; the answer says what becomes of the application's writes to the source."""
    with store.write() as session:
        migration = load_migration(session, project_id, migration_id)
        expire_if_due(migration, window)
        if migration.status in FINISHED:
            raise ApiError(ErrorCode.LIVE_MIGRATION_ALREADY_FINISHED,
                           f"Live migration {migration_id} is {migration.status}.", [migration.status])
        if not migration.ready_for_cutover:
            raise ApiError(ErrorCode.LIVE_MIGRATION_NOT_READY_FOR_CUTOVER,
                           f"Live migration {migration_id} is not ready for cutover yet.", [migration_id])
        migration.cutover_requested_at = migration.cutover_requested_at or utcnow()
        version = _source_version(session, migration)
    return writes_at_cutover(version)


def _source_version(session: Session, migration: LiveMigration) -> str | None:
    """The source deployment's MongoDB version, as the link's inventory last said."""
    links = session.scalars(select(TargetLink).where(TargetLink.target_org_id == migration.target_org_id,
                                                     TargetLink.source_org_id == migration.source_org_id))
    found = pushed_project(links, migration.source_project_id)
    deployment = deployment_named(found[1], migration.source_cluster_name) if found else None
    return deployment.mongoDBVersion if deployment else None


def writes_at_cutover(source_version: str | None) -> str:
    """What a cutover does about writes to a source of that version, in a sentence for its requester."""
    version = version_tuple(source_version)
    if version is not None and version >= WRITE_BLOCKING:
        return (f"The source runs MongoDB {source_version}: when the drain begins, its user writes are blocked "
                "(setUserWriteBlockMode), and allowed again if the cutover fails. Should it refuse, a write that "
                "still reaches it is counted in writesAfterCutoverBegan.")
    shown = f"MongoDB {source_version}" if source_version else "a MongoDB version the source side has not reported"
    return (f"The source runs {shown}, which cannot block user writes: stop the application's writes to the source "
            "now. A write that still reaches it after the drain began is applied and counted in "
            "writesAfterCutoverBegan.")
