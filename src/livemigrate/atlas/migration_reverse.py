"""A way back (our extension of Atlas' API): the reverse of a completed reversible migration.

`POST …/liveMigrations/{id}/reverse` creates a second migration, `direction: REVERSE`, `reverseOf` the
first: its migration host reads the destination's changes from the point the forward cutover kept (its
host reported it with the outcome) and writes them back into the source; its cutover — the cut back — is
asked for and followed like any migration's. It holds the destination cluster as any migration does, so
that no other migration writes there meanwhile, and it never drops anything. A reverse that failed (or
expired) may be asked for again; one running or complete may not.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from livemigrate.atlas.destination_claims import claim_key, holder_of, in_use
from livemigrate.atlas.migrations import load_migration
from livemigrate.http.errors import ApiError, ErrorCode
from livemigrate.ids import new_object_id
from livemigrate.statuses import MigrationStatus
from livemigrate.store.database import Store
from livemigrate.store.models import LiveMigration

FORWARD, REVERSE = "FORWARD", "REVERSE"


def _not_reversible(migration_id: str, reason: str) -> ApiError:
    return ApiError(ErrorCode.LIVE_MIGRATION_NOT_REVERSIBLE, f"Live migration {migration_id} cannot be reversed: "
                                                             f"{reason}.", [migration_id])


def _standing_reverse(session: Session, forward_id: str) -> LiveMigration | None:
    """A reverse of the migration that runs or has completed: one that failed or expired may be asked again,
    from the same point, while the destination's change history still holds it."""
    return session.scalars(select(LiveMigration).where(
        LiveMigration.reverse_of == forward_id,
        LiveMigration.status.not_in([MigrationStatus.FAILED.value, MigrationStatus.EXPIRED.value]))).first()


def reverse_migration(store: Store, project_id: str, migration_id: str) -> LiveMigration:
    """The reverse, NEW, holding the destination; refused with the reason when the migration is no
    completed reversible forward migration, has a reverse already, or its destination is held."""
    key = None
    try:
        with store.write() as session:
            forward = load_migration(session, project_id, migration_id, for_update=True)
            if forward.direction != FORWARD:
                raise _not_reversible(migration_id, "it is itself a reverse")
            if not forward.reversible:
                raise _not_reversible(migration_id, "it was not created reversible (reversible: true)")
            if forward.status != MigrationStatus.COMPLETE.value:
                raise _not_reversible(migration_id, f"it is {forward.status}; only a COMPLETE migration is reversed")
            if not forward.reverse_point:
                raise _not_reversible(migration_id, "its migration host kept no point to start from (the destination "
                                                    "offered no change stream)")
            existing = _standing_reverse(session, forward.id)
            if existing is not None:
                raise _not_reversible(migration_id, f"it is reversed already, by {existing.id} ({existing.status})")
            key = claim_key(project_id, forward.destination_cluster_name)
            holder = holder_of(session, key)
            if holder is not None:
                raise in_use(holder, forward.destination_cluster_name)
            reverse = LiveMigration(
                id=new_object_id(), project_id=project_id, target_org_id=forward.target_org_id,
                source_org_id=forward.source_org_id, source_project_id=forward.source_project_id,
                source_cluster_name=forward.source_cluster_name, source_username=forward.source_username,
                source_password_encrypted=forward.source_password_encrypted, source_ssl=forward.source_ssl,
                source_ca_certificate_path=forward.source_ca_certificate_path,
                destination_cluster_name=forward.destination_cluster_name,
                hostname_schema_type=forward.hostname_schema_type, migration_host=forward.migration_host,
                migration_hosts=None, drop_destination_data=False, change_capture=forward.change_capture,
                direction=REVERSE, reverse_of=forward.id, destination_claim=key, status=MigrationStatus.NEW.value)
            session.add(reverse)
    except IntegrityError:  # another reverse, or another migration's claim, got there between the look and the insert
        with store.read() as session:
            existing = _standing_reverse(session, migration_id)
            if existing is not None:
                raise _not_reversible(migration_id, f"it is reversed already, by {existing.id}") from None
            holder = holder_of(session, key) if key is not None else None
            if holder is None:
                raise
            raise in_use(holder, holder.destination_cluster_name) from None
    return reverse
