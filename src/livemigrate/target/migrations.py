"""Push live migrations on the target side: the checks of a request, creation, the job queue the link
serves, progress, cutover and expiry (validations are `validations.py`'s).

A migration's life: NEW (created) → WORKING (its migration host reported) → readyForCutover (the
copy is done and the lag is small) → cutover requested → COMPLETE; FAILED on any error the host
reports, or when cancelled; EXPIRED when ready for longer than the cutover window without a
cutover. Expiry is decided whenever a migration is read, so no clock of its own is needed. While it
may write its destination, a migration holds it (`destination_claims.py`).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from livemigrate.contracts import ChangeCapture, JobKind, LinkJob, ListedStatus
from livemigrate.crypto import SecretBox
from livemigrate.directory.views import iso
from livemigrate.engine.events import Phase  # the phases a migration host reports, as contracts.py names them
from livemigrate.engine.versions import DEPLOYMENT_STREAMS, MINIMUM_SOURCE, WRITE_BLOCKING
from livemigrate.http.errors import ApiError, ErrorCode
from livemigrate.ids import is_object_id, new_object_id
from livemigrate.statuses import FINISHED, RUNNING, MigrationStatus
from livemigrate.store.database import Store
from livemigrate.store.models import LiveMigration, LiveMigrationValidation, TargetLink, hosts_of, utcnow
from livemigrate.target import clusters
from livemigrate.target.destination_claims import alive_hosts, claim_key, holder_of, in_use

MAX_MIGRATION_HOSTS = 16


@dataclass(frozen=True)
class SourceSpec:
    cluster_name: str
    group_id: str
    managed_authentication: bool
    ssl: bool
    ca_certificate_path: str | None
    username: str | None
    password: str | None


@dataclass(frozen=True)
class MigrationRequest:
    source: SourceSpec
    destination_cluster_name: str
    destination_group_id: str
    hostname_schema_type: str
    migration_hosts: tuple[str, ...]
    drop_destination_data: bool
    sharding: dict[str, Any] | None
    change_capture: str | None = None  # AUTO, DEPLOYMENT or COLLECTION; None: the migration host's setting

    @property
    def migration_host(self) -> str:
        """The first listed: the one that runs a validation's pre-flight."""
        return self.migration_hosts[0]


@dataclass(frozen=True)
class SourceFinding:
    """What the linked inventory says about the request's source."""

    source_org_id: str
    deployment: dict[str, Any]


def _version_tuple(version: str | None) -> tuple[int, ...] | None:
    try:
        return tuple(int(part) for part in str(version).split(".")[:2])
    except ValueError:
        return None


def find_source(store: Store, target_org_id: str, request: MigrationRequest) -> SourceFinding:
    """Check the request against what linked source orgs pushed; raise with a reason a person can act on."""
    with store.read() as session:
        links = list(session.scalars(select(TargetLink).where(TargetLink.target_org_id == target_org_id)))
    found = _pushed_project(links, request.source.group_id)
    if found is None:
        raise _invalid(f"Source project {request.source.group_id} is not available: no source organization linked "
                       f"to organization {target_org_id} has pushed it.")
    link, project = found
    deployment = _deployment(project, request.source.cluster_name)
    if deployment is None:
        names = [str(d.get("name")) for d in project.get("deployments", [])]
        raise _invalid(f"Source cluster {request.source.cluster_name!r} was not found in source project "
                       f"{request.source.group_id}{_choices(request.source.cluster_name, names, 'deployments')}; "
                       "a standalone's cluster is named host:port (`livemigrate source clusters list` "
                       "shows them), and a deployment appears once its hosts are registered on the "
                       "source side.")
    alive = project.get("migrationHosts", [])
    for host in request.migration_hosts:
        if host not in alive:
            raise _invalid(f"Migration host {host!r} is unknown or not alive in source project "
                           f"{request.source.group_id}: start `livemigrate agent` on it with an agent API key of "
                           "that project.")
    if deployment.get("lastError"):
        raise _invalid(f"Source cluster {request.source.cluster_name!r} cannot be reached from the source "
                       f"side: {deployment['lastError']}")
    version = _version_tuple(deployment.get("mongoDBVersion"))
    if version is None or version < MINIMUM_SOURCE:
        raise _invalid(f"Source cluster {request.source.cluster_name!r} runs MongoDB "
                       f"{deployment.get('mongoDBVersion') or 'of an unknown version'}; live migration needs "
                       f"{'.'.join(map(str, MINIMUM_SOURCE))} or newer: upgrade the source first.")
    if request.change_capture == "DEPLOYMENT" and version < DEPLOYMENT_STREAMS:
        raise _invalid(f"changeCapture DEPLOYMENT needs a deployment-wide change stream, which MongoDB "
                       f"{deployment.get('mongoDBVersion')} does not have (4.0 or newer does): use COLLECTION, or AUTO.")
    return SourceFinding(link.source_org_id, deployment)


def _pushed_project(links: Iterable[TargetLink], project_id: str) -> tuple[TargetLink, dict[str, Any]] | None:
    """The source project as the first link that pushed it shows it, with that link."""
    for link in links:
        for project in link.inventory.get("projects", []):
            if project.get("projectId") == project_id:
                return link, project
    return None


def _deployment(project: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((deployment for deployment in project.get("deployments", []) if deployment.get("name") == name), None)


def check_destination(store: Store, secret_box: SecretBox, project_id: str, request: MigrationRequest, *,
                      probe: bool) -> str:
    """The destination's connection string, once it is known (and, with `probe`, reachable and empty enough)."""
    if request.destination_group_id != project_id:
        raise _invalid(f"destination.groupId {request.destination_group_id} must be the group of this call, "
                       f"{project_id}.")
    cluster = clusters.find_cluster(store, project_id, request.destination_cluster_name)
    if cluster is None:
        names = [registered.name for registered in clusters.list_clusters(store, project_id)]
        known = _choices(request.destination_cluster_name, names, "clusters")
        raise _invalid(f"Destination cluster {request.destination_cluster_name!r} is not registered in group "
                       f"{project_id}{known}: register it with `livemigrate target clusters add` "
                       f"(POST /groups/{project_id}/clusters).")
    uri = secret_box.open(cluster.uri_encrypted)
    if probe:
        try:
            occupied = clusters.occupied_namespaces(uri)
        except clusters.DestinationUnreachable as error:
            raise _invalid(f"Destination cluster {request.destination_cluster_name!r} is unreachable: "
                           f"{error}") from None
        if occupied and not request.drop_destination_data:
            shown = ", ".join(occupied[:10]) + (f" and {len(occupied) - 10} more" if len(occupied) > 10 else "")
            raise _invalid(f"Destination cluster {request.destination_cluster_name!r} is not empty ({shown}); set "
                           "dropDestinationData to replace its data.")
    return uri


def _invalid(reason: str) -> ApiError:
    return ApiError(ErrorCode.LIVE_MIGRATION_INVALID_REQUEST, reason)


def check_destination_free(store: Store, project_id: str, request: MigrationRequest) -> None:
    """409 LIVE_MIGRATION_DESTINATION_IN_USE while another migration may write the destination."""
    with store.write() as session:  # a claim whose migration writes no more is given up on the way
        holder = holder_of(session, claim_key(project_id, request.destination_cluster_name))
        if holder is not None:
            raise in_use(holder, request.destination_cluster_name)


# --- migrations ---------------------------------------------------------------------------------------


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
        change_capture=request.change_capture, destination_claim=key, status=MigrationStatus.NEW.value,
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


def _choices(given: str, names: list[str], kind: str) -> str:
    """What a person mistyping a name needs: the closest name there is, and all of them."""
    if not names:
        return f" (it has no {kind} yet)"
    close = difflib.get_close_matches(given, names, n=1)
    suggestion = f"did you mean {close[0]!r}? " if close else ""
    return f" ({suggestion}its {kind}: {', '.join(sorted(names))})"


def _due_to_expire(migration: LiveMigration, window: timedelta) -> bool:
    return (migration.status == MigrationStatus.WORKING and migration.ready_since is not None
            and migration.cutover_requested_at is None and utcnow() - migration.ready_since > window)


def _finish(migration: LiveMigration, status: MigrationStatus, reason: str | None) -> None:
    """A migration ended by the target's decision (expired, its hosts gone): its host stops at its next
    job list, and its destination is free for another (`destination_claims.py` says why that is safe)."""
    migration.status = status.value
    migration.ready_for_cutover = False
    migration.error_message = reason
    migration.destination_claim = None


def _expire_if_due(migration: LiveMigration, window: timedelta) -> bool:
    if _due_to_expire(migration, window):
        _finish(migration, MigrationStatus.EXPIRED,
                f"Ready for cutover since {migration.ready_since:%Y-%m-%dT%H:%M:%SZ} but no cutover came within "
                f"{window.total_seconds() / 3600:g} hours.")
        return True
    return False


def _load(session: Session, project_id: str, migration_id: str, *, for_update: bool = False) -> LiveMigration:
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
        migration = _load(session, project_id, migration_id)
        _expire_if_due(migration, window)
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
            _expire_if_due(migration, window)
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
        migration = _load(session, project_id, migration_id, for_update=True)
        _expire_if_due(migration, window)
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




def request_cutover(store: Store, project_id: str, migration_id: str, window: timedelta) -> str:
    """The cutover asked for; the answer says what becomes of the application's writes to the source."""
    with store.write() as session:
        migration = _load(session, project_id, migration_id)
        _expire_if_due(migration, window)
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
    found = _pushed_project(links, migration.source_project_id)
    deployment = _deployment(found[1], migration.source_cluster_name) if found else None
    version = deployment.get("mongoDBVersion") if deployment else None
    return str(version) if version else None


def writes_at_cutover(source_version: str | None) -> str:
    """What a cutover does about writes to a source of that version, in a sentence for its requester."""
    version = _version_tuple(source_version)
    if version is not None and version >= WRITE_BLOCKING:
        return (f"The source runs MongoDB {source_version}: when the drain begins, its user writes are blocked "
                "(setUserWriteBlockMode), and allowed again if the cutover fails. Should it refuse, a write that "
                "still reaches it is counted in writesAfterCutoverBegan.")
    shown = f"MongoDB {source_version}" if source_version else "a MongoDB version the source side has not reported"
    return (f"The source runs {shown}, which cannot block user writes: stop the application's writes to the source "
            "now. A write that still reaches it after the drain began is applied and counted in "
            "writesAfterCutoverBegan.")


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
    due = [migration.id for migration in running if _due_to_expire(migration, window)]
    if due:
        with store.write() as session:
            for migration in session.scalars(select(LiveMigration).where(LiveMigration.id.in_(due))):
                _expire_if_due(migration, window)
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
        cancelRequested=cancelled,
    )


def record_progress(store: Store, target_org_id: str, source_org_id: str, migration_id: str,
                    report: dict[str, Any], window: timedelta) -> LiveMigration:
    """Progress relayed from a migration host; a finished migration is not changed any more."""
    with store.write() as session:
        migration = session.get(LiveMigration, migration_id, with_for_update=True) \
            if is_object_id(migration_id) else None
        if migration is None or migration.target_org_id != target_org_id or migration.source_org_id != source_org_id:
            raise ApiError(ErrorCode.LIVE_MIGRATION_NOT_FOUND, f"No live migration {migration_id} for this link.",
                           [migration_id])
        if migration.cancelled_at is not None:
            if report.get("stoppedHost"):
                _note_host_stopped(session, migration, str(report["stoppedHost"]))
            return migration  # cancelled: what its hosts report while they stop changes nothing else
        if _expire_if_due(migration, window) or migration.status in FINISHED:
            return migration
        host = report.get("host")
        if host is not None:
            _record_host(migration, host)
            if host.get("role") == "copy":
                return migration  # a host's own part of a shared copy: the migration is its capture's to report
        status = MigrationStatus(report.get("status", MigrationStatus.WORKING))
        if status is MigrationStatus.COMPLETE and migration.cutover_requested_at is None:
            status = MigrationStatus.WORKING  # only a cutover completes a migration
        migration.status = status.value
        migration.phase = report.get("phase", migration.phase)
        migration.lag_time_seconds = report.get("lagTimeSeconds", migration.lag_time_seconds)
        ready = bool(report.get("readyForCutover", False)) and status is MigrationStatus.WORKING
        if ready and migration.ready_since is None:
            migration.ready_since = utcnow()
        migration.ready_for_cutover = ready or (status is MigrationStatus.WORKING
                                                and migration.cutover_requested_at is not None
                                                and migration.ready_for_cutover)
        migration.copied_documents = int(report.get("copiedDocuments", migration.copied_documents))
        migration.total_documents = int(report.get("totalDocuments", migration.total_documents))
        if {"namespaces", "warnings", "eventsApplied", "docsPerSecond"} & set(report):
            previous = migration.progress or {}
            migration.progress = {**{key: report.get(key, previous.get(key)) for key in _CUTOVER_FIELDS},
                                  "hosts": previous.get("hosts", {}),
                                  "namespaces": report.get("namespaces", previous.get("namespaces", [])),
                                  "warnings": report.get("warnings", previous.get("warnings", [])),
                                  "eventsApplied": report.get("eventsApplied", previous.get("eventsApplied", 0)),
                                  "docsPerSecond": report.get("docsPerSecond", previous.get("docsPerSecond", 0)),
                                  "lagSamples": _with_lag_sample(previous.get("lagSamples", []),
                                                                 migration.lag_time_seconds)}
        if status is MigrationStatus.FAILED:
            migration.error_message = str(report.get("errorMessage") or "the migration host reported a failure")
            migration.ready_for_cutover = False
        elif status is MigrationStatus.COMPLETE:
            migration.ready_for_cutover = False
            migration.lag_time_seconds = 0.0
        if status in FINISHED:
            migration.destination_claim = None  # its host reported its end: it writes no more
            if migration.progress:
                migration.progress = {**migration.progress, "warnings": []}
        return migration


def _record_host(migration: LiveMigration, host: dict[str, Any]) -> None:
    """One host's part of a shared migration, as it last reported it."""
    previous = migration.progress or {}
    hosts = dict(previous.get("hosts", {}))
    if host.get("role") == "capture":  # one holder at a time: whoever held it before holds it no more
        hosts = {name: {**part, "role": "copy"} if part.get("role") == "capture" else part
                 for name, part in hosts.items()}
    hosts[str(host["hostname"])] = {**host, "reportedAt": iso(utcnow())}
    migration.progress = {**previous, "hosts": hosts}


def hosts_progress(migration: LiveMigration) -> list[dict[str, Any]]:
    """Each host's part, for a migration that several share (or one host's, as its capture reports it)."""
    return [dict(part) for _, part in sorted((migration.progress or {}).get("hosts", {}).items())]


# What the cutover reports of the source: kept as last reported, shown as they are.
_CUTOVER_FIELDS = ("sourceWritesBlocked", "writesAfterCutoverBegan")
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


def lag_samples(migration: LiveMigration) -> list[list[float]]:
    return list((migration.progress or {}).get("lagSamples", []))


def events_applied(migration: LiveMigration) -> int:
    """Changes the migration host has replayed on the destination, as last reported."""
    return int((migration.progress or {}).get("eventsApplied", 0))


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
        "lagTimeSeconds": migration.lag_time_seconds,
        "readyForCutover": migration.ready_for_cutover,
        "migrationHosts": hosts_of(migration),
        "phase": migration.phase,
        "copiedDocuments": migration.copied_documents,
        "totalDocuments": migration.total_documents,
        "eventsApplied": events_applied(migration),
        **_progress_summary(migration),
        "namespaces": migration.progress.get("namespaces", []) if migration.progress else [],
        # An extension: each host's part when several share the migration (`agent/shared_job.py`).
        "hosts": hosts_progress(migration),
        **{key: (migration.progress or {}).get(key) for key in _CUTOVER_FIELDS},
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
    }
