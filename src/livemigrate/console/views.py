"""What the console's pages show of migrations, validations, link-tokens and refusals, in a person's
words rather than the API's: a source named by its project and deployment ("shop / db1:27017"), a
destination by its project and cluster, times in UTC, and no field names of the API.

The APIs' views (`atlas/migration_views.py`) answer scripts, which want ids; a person wants names. The
source project's name comes from what the link last pushed (the target side knows the source no other
way); a source project the link no longer shows keeps its id.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from livemigrate.atlas import links, migration_views, migrations, validations
from livemigrate.atlas.migration_requests import version_tuple
from livemigrate.console.rendering import shown_time
from livemigrate.contracts import InventoryProject
from livemigrate.directory import projects
from livemigrate.engine.versions import WRITE_BLOCKING
from livemigrate.http.errors import ApiError, ErrorCode
from livemigrate.statuses import FINISHED, MigrationStatus
from livemigrate.store.database import Store
from livemigrate.store.models import LinkToken, LiveMigration, Organization, Project, TargetLink, utcnow


@dataclass(frozen=True)
class SourceNames:
    """What the target's linked inventories say of source projects: their names and deployments."""

    by_id: dict[str, InventoryProject]

    @classmethod
    def of(cls, store: Store, target_org_id: str) -> SourceNames:
        return cls({project.projectId: project for project in links.available_projects(store, target_org_id)})

    def source(self, project_id: str, cluster_name: str | None) -> str:
        found = self.by_id.get(project_id)
        return _named(found.name if found else project_id, cluster_name)

    def version(self, project_id: str, cluster_name: str) -> str | None:
        found = self.by_id.get(project_id)
        deployment = next((item for item in found.deployments if item.name == cluster_name), None) if found else None
        return deployment.mongoDBVersion if deployment else None


def _named(project: str, cluster: str | None) -> str:
    """"shop / db1:27017"; the project alone when the cluster is not recorded (a validation refused at once)."""
    return f"{project} / {cluster}" if cluster else project


def ended_at(migration: LiveMigration) -> datetime:
    """When the migration's clock stops: its last change once finished, now while it runs."""
    return migration.updated_at if migration.status in FINISHED else utcnow()


def copy_rate(migration: LiveMigration) -> float:
    """Documents copied a second, as its migration host last reported (0 before the copy starts)."""
    return float((migration.progress or {}).get("docsPerSecond") or 0)


def migration_row(migration: LiveMigration, project: Project, names: SourceNames) -> dict[str, Any]:
    """One line of a list of migrations, with the figures the API answers and the names a person reads."""
    return {**migration_views.migration_view(migration),
            "href": f"/console/groups/{project.id}/migrations/{migration.id}",
            "sourceName": names.source(migration.source_project_id, migration.source_cluster_name),
            "destinationName": _named(project.name, migration.destination_cluster_name),
            "startedAt": shown_time(migration.created_at), "copyRate": copy_rate(migration)}


def project_migrations(store: Store, project: Project, names: SourceNames, window: timedelta,
                       hosts_gone: timedelta) -> list[dict[str, Any]]:
    return [migration_row(migration, project, names)
            for migration in migrations.list_migrations(store, project.id, window, hosts_gone)]


def org_migrations(store: Store, org: Organization, names: SourceNames, window: timedelta,
                   hosts_gone: timedelta) -> list[dict[str, Any]]:
    """Every migration of the org, across its projects, newest first: one list for whoever has many."""
    found = [(migration, project) for project in projects.list_projects(store, org.id)
             for migration in migrations.list_migrations(store, project.id, window, hosts_gone)]
    found.sort(key=lambda pair: (pair[0].created_at, pair[0].id), reverse=True)
    return [migration_row(migration, project, names) for migration, project in found]


def validation_rows(store: Store, project: Project, names: SourceNames) -> list[dict[str, Any]]:
    """The project's recent validations, each naming its source and its destination."""
    return [{**validations.validation_view(validation),
             "sourceName": names.source(validation.source_project_id, validation.source_cluster_name),
             "destinationName": _named(project.name, validation.destination_cluster_name)}
            for validation in validations.recent_validations(store, project.id)]


def link_token_rows(store: Store, org_id: str) -> list[dict[str, Any]]:
    """The org's link-tokens still in force, oldest first: when each was made, from where it may be used,
    and the link made with it — which source organization, and its last push (the token's last use: a
    push is the only call its key makes). The token's text itself is shown once, when it is made."""
    with store.read() as session:
        tokens = list(session.scalars(select(LinkToken).where(LinkToken.org_id == org_id,
                                                              LinkToken.revoked_at.is_(None))
                                      .order_by(LinkToken.created_at, LinkToken.id)))
        used = {link.link_token_id: link for link in session.scalars(
            select(TargetLink).where(TargetLink.target_org_id == org_id))}
        return [{"id": token.id, "createdAt": shown_time(token.created_at),
                 "accessList": ", ".join(token.access_list_ips) or "any address",
                 "sourceOrgId": used[token.id].source_org_id if token.id in used else None,
                 "lastUsedAt": shown_time(used[token.id].last_synced_at) if token.id in used else None}
                for token in tokens]


def cutover_under_way(migration: LiveMigration, names: SourceNames) -> list[str]:
    """While a cutover runs, what it does about the application's writes, in sentences; nothing before it
    is asked for, nor once the migration has ended (COMPLETE or FAILED say the rest)."""
    if migration.cutover_requested_at is None or migration.status != MigrationStatus.WORKING.value:
        return []
    said = [f"Cutover under way since {shown_time(migration.cutover_requested_at)}: the migration host applies the "
            "last changes of the source, then compares both sides. The application may write to the destination "
            "once this page says COMPLETE."]
    version = names.version(migration.source_project_id, migration.source_cluster_name)
    release = version_tuple(version)
    if release is not None and release >= WRITE_BLOCKING:
        said.append(f"The source runs MongoDB {version}: the migration host blocks its users' writes until the "
                    "cutover ends, and lifts the block should the cutover fail.")
    else:
        said.append(f"The source runs {'MongoDB ' + version if version else 'a MongoDB version not reported'}, "
                    "which cannot block writes: make sure the application no longer writes to it.")
    progress = migration.progress or {}
    if progress.get("sourceWritesBlocked"):
        said.append("Writes to the source are blocked now.")
    late = int(progress.get("writesAfterCutoverBegan") or 0)
    if late:
        said.append(f"{late} write(s) reached the source after the cutover began: they are copied to the "
                    "destination too.")
    return said


def refused_while_running(error: ApiError, source_projects: Iterable[Project]) -> str:
    """A link change the source side refused because a migration runs, said of the link (not of the
    organization, as the API's message is), naming the projects; any other refusal as the API says it."""
    named = {project.id: project.name for project in source_projects}
    running = ", ".join(named.get(str(project_id), str(project_id)) for project_id in error.parameters)
    if error.code is ErrorCode.CANNOT_DELETE_ORG_LINK_WITH_RUNNING_LIVE_EXPORT:
        return (f"The link cannot be removed while a migration of {running} is running: cut it over or cancel it "
                "on the target organization first, then disconnect.")
    if error.code is ErrorCode.CANNOT_RELINK_ORG_WITH_RUNNING_LIVE_EXPORT:
        return (f"The link cannot move to another target organization while a migration of {running} is running: "
                "cut it over or cancel it there first, then connect with the new link-token.")
    return error.detail
