"""Which live migration holds a destination cluster: one at a time, whatever `dropDestinationData` says.

Two migrations writing one destination leave it equal to neither source, and the first may still
accept a cutover and call itself COMPLETE on the second's data. So a migration claims its
destination when it is created, in a column the database keeps unique (`destination_claim`): two
creates that race cannot both hold it, on one replica or several, and the loser is answered 409
`LIVE_MIGRATION_DESTINATION_IN_USE`, naming the holder. Validations are refused the same way.

A claim lasts as long as the migration may write the destination: while it runs; after it ends on
its host's own report, no longer. A migration the target ends on its hosts' behalf (expired, its
hosts gone, its link revoked) gives its claim up at once — its host stops at its next job list,
and the engine's own claim on the destination (`engine/mongo/claim.py`) covers those seconds.
A cancelled migration keeps its claim until its hosts confirm they stopped writing, or until none of
them is alive to do so. Whether a holder still writes is decided when another migration asks for
its destination, as expiry is decided on read: no clock of its own.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from livemigrate.atlas.links import inventory_of
from livemigrate.directory.views import iso
from livemigrate.http.errors import ApiError, ErrorCode
from livemigrate.statuses import RUNNING
from livemigrate.store.models import LiveMigration, TargetLink, hosts_of


def claim_key(project_id: str, cluster_name: str) -> str:
    """What a migration claims: its destination cluster, by project and name."""
    return f"{project_id}/{cluster_name}"


def holder_of(session: Session, key: str) -> LiveMigration | None:
    """The migration that may write the destination `key` now, if any. A claim whose migration writes
    no more is given up here, in the caller's transaction."""
    holder = session.scalars(select(LiveMigration).where(LiveMigration.destination_claim == key)).first()
    if holder is None:
        return None
    if writes_no_more(session, holder):
        holder.destination_claim = None
        session.flush()
        return None
    return holder


def writes_no_more(session: Session, migration: LiveMigration) -> bool:
    """True once no host of `migration` may still write its destination."""
    if migration.status in {status.value for status in RUNNING}:
        return False
    if migration.cancelled_at is None or migration.hosts_stopped_at is not None:
        return True
    alive = alive_hosts(session, migration)
    return alive is not None and not set(hosts_of(migration)) & alive


def alive_hosts(session: Session, migration: LiveMigration) -> set[str] | None:
    """The migration hosts alive in the migration's source project, as its link's inventory last said;
    None when that link pushed nothing of the project."""
    links = session.scalars(select(TargetLink).where(TargetLink.target_org_id == migration.target_org_id,
                                                     TargetLink.source_org_id == migration.source_org_id))
    for link in links:
        for project in inventory_of(link).projects:
            if project.projectId == migration.source_project_id:
                return set(project.migrationHosts)
    return None


def in_use(holder: LiveMigration, cluster_name: str) -> ApiError:
    """The answer to a request for a destination that `holder` holds."""
    if holder.cancelled_at is not None:
        state = (f"cancelled at {iso(holder.cancelled_at)}; its migration hosts "
                 f"({', '.join(hosts_of(holder))}) have not yet said they stopped writing")
        remedy = "try again once they have (`GET …/liveMigrations/{id}` shows hostsStoppedAt)"
    else:
        state = holder.status
        remedy = (f"wait until it ends, or cancel it (DELETE /api/atlas/v2/groups/{holder.project_id}/liveMigrations/"
                  f"{holder.id}, or `livemigrate target live-migrations cancel`)")
    return ApiError(ErrorCode.LIVE_MIGRATION_DESTINATION_IN_USE,
                    f"Destination cluster {cluster_name!r} is being written by live migration {holder.id} ({state}): "
                    f"{remedy}. One migration writes a destination at a time, whatever dropDestinationData says.",
                    [holder.id])
