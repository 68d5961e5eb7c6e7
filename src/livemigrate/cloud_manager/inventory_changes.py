"""Which organizations' inventories a committed write changed: each is announced once per commit.

A linked target must see a project, a monitored host or a migration host soon after it is added,
removed or found different. Rather than ask every service that writes one of them to remember to
say so (a convention that was easy to forget), this watches the store's own sessions: after each
flush it notes the orgs whose inventory rows changed, and after the commit it announces them — a
rolled-back write announces nothing. Only what the inventory shows counts: a host probe that finds
the same answers, or a migration host's routine heartbeat, changes nothing a target sees.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import event, inspect, select
from sqlalchemy.orm import Session

from livemigrate.store.database import Store
from livemigrate.store.models import MigrationHost, Project, SourceHost

_PENDING = "livemigrate.inventory_changed"

# The attributes a target sees (`inventory.build_inventory`); a change to any other is not announced.
_SHOWN: dict[type[Any], tuple[str, ...]] = {
    Project: ("name",),
    SourceHost: ("hostname", "port", "ssl_enabled", "cluster_name", "replica_set_name", "version",
                 "feature_compatibility_version", "sharded", "data_size_bytes", "oplog_size_mb", "last_error"),
    MigrationHost: ("hostname",),
}


def announce_inventory_changes(store: Store, announce: Callable[[str], None]) -> Callable[[], None]:
    """Call `announce(org_id)` after each commit that changed that org's inventory, on the committing
    thread, until the function returned is called."""

    def after_flush(session: Session, _flush_context: Any) -> None:
        changed = [row for row in (*session.new, *session.deleted) if type(row) in _SHOWN]
        changed += [row for row in session.dirty if type(row) in _SHOWN and _shown_attribute_changed(row)]
        if changed:
            session.info.setdefault(_PENDING, set()).update(_org_ids(session, changed))

    def after_commit(session: Session) -> None:
        for org_id in sorted(session.info.pop(_PENDING, ())):
            announce(org_id)

    def after_rollback(session: Session) -> None:
        session.info.pop(_PENDING, None)

    listeners: list[tuple[str, Callable[..., None]]] = [
        ("after_flush", after_flush), ("after_commit", after_commit), ("after_rollback", after_rollback)]
    for name, listener in listeners:
        event.listen(store.sessions, name, listener)

    def stop() -> None:
        for name, listener in listeners:
            event.remove(store.sessions, name, listener)

    return stop


def _shown_attribute_changed(row: Any) -> bool:
    state = inspect(row)
    return any(state.attrs[name].history.has_changes() for name in _SHOWN[type(row)])


def _org_ids(session: Session, rows: Iterable[Any]) -> set[str]:
    org_ids = {row.org_id for row in rows if isinstance(row, Project)}
    project_ids = {row.project_id for row in rows if not isinstance(row, Project)}
    if project_ids:
        # Still inside the transaction: a project deleted in this very flush is gone from the table,
        # but then it is among the rows itself, with its org.
        with session.no_autoflush:
            org_ids.update(session.execute(select(Project.org_id).where(Project.id.in_(project_ids))).scalars())
    return org_ids
