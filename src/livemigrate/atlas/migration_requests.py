"""A migration request, and the checks the target makes of it (a validation's and a create's alike):
the source as the link's inventory shows it, the migration hosts alive, the destination registered,
reachable, empty unless dropDestinationData, and held by no other migration. Each refusal is a
sentence a person can act on."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from livemigrate.atlas import clusters
from livemigrate.atlas.destination_claims import claim_key, holder_of, in_use
from livemigrate.atlas.links import inventory_of
from livemigrate.contracts import InventoryDeployment, InventoryProject, Sharding
from livemigrate.crypto import SecretBox
from livemigrate.engine.versions import DEPLOYMENT_STREAMS, MINIMUM_SOURCE
from livemigrate.http.errors import ApiError, ErrorCode
from livemigrate.store.database import Store
from livemigrate.store.models import TargetLink

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
    stop_source_balancer: bool = False  # a sharded source's balancer stopped while the migration runs
    reversible: bool = False  # may be reversed after its cutover

    @property
    def migration_host(self) -> str:
        """The first listed: the one that runs a validation's pre-flight."""
        return self.migration_hosts[0]


@dataclass(frozen=True)
class SourceFinding:
    """What the linked inventory says about the request's source."""

    source_org_id: str
    deployment: InventoryDeployment


def version_tuple(version: str | None) -> tuple[int, ...] | None:
    try:
        return tuple(int(part) for part in str(version).split(".")[:2])
    except ValueError:
        return None


def find_source(store: Store, target_org_id: str, request: MigrationRequest) -> SourceFinding:
    """Check the request against what linked source orgs pushed; raise with a reason a person can act on.
    (First what the request says of itself that its schema cannot: its sharding's keys.)"""
    if request.sharding is not None:
        problems = Sharding.model_validate(request.sharding).problems()
        if problems:
            raise _invalid("; ".join(problems) + ".")
    with store.read() as session:
        links = list(session.scalars(select(TargetLink).where(TargetLink.target_org_id == target_org_id)))
    found = pushed_project(links, request.source.group_id)
    if found is None:
        raise _invalid(f"Source project {request.source.group_id} is not available: no source organization linked "
                       f"to organization {target_org_id} has pushed it.")
    link, project = found
    deployment = deployment_named(project, request.source.cluster_name)
    if deployment is None:
        names = [pushed.name for pushed in project.deployments]
        raise _invalid(f"Source cluster {request.source.cluster_name!r} was not found in source project "
                       f"{request.source.group_id}{_choices(request.source.cluster_name, names, 'deployments')}; "
                       "a standalone's cluster is named host:port (`livemigrate source clusters list` "
                       "shows them), and a deployment appears once its hosts are registered on the "
                       "source side.")
    for host in request.migration_hosts:
        if host not in project.migrationHosts:
            raise _invalid(f"Migration host {host!r} is unknown or not alive in source project "
                           f"{request.source.group_id}: start `livemigrate agent` on it with an agent API key of "
                           "that project.")
    if deployment.lastError:
        raise _invalid(f"Source cluster {request.source.cluster_name!r} cannot be reached from the source "
                       f"side: {deployment.lastError}")
    version = version_tuple(deployment.mongoDBVersion)
    if version is None or version < MINIMUM_SOURCE:
        raise _invalid(f"Source cluster {request.source.cluster_name!r} runs MongoDB "
                       f"{deployment.mongoDBVersion or 'of an unknown version'}; live migration needs "
                       f"{'.'.join(map(str, MINIMUM_SOURCE))} or newer: upgrade the source first.")
    if request.change_capture == "DEPLOYMENT" and version < DEPLOYMENT_STREAMS:
        raise _invalid(f"changeCapture DEPLOYMENT needs a deployment-wide change stream, which MongoDB "
                       f"{deployment.mongoDBVersion} does not have (4.0 or newer does): use COLLECTION, or AUTO.")
    return SourceFinding(link.source_org_id, deployment)


def pushed_project(links: Iterable[TargetLink], project_id: str) -> tuple[TargetLink, InventoryProject] | None:
    """The source project as the first link that pushed it shows it, with that link."""
    for link in links:
        for project in inventory_of(link).projects:
            if project.projectId == project_id:
                return link, project
    return None


def deployment_named(project: InventoryProject, name: str) -> InventoryDeployment | None:
    return next((deployment for deployment in project.deployments if deployment.name == name), None)


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


def _choices(given: str, names: list[str], kind: str) -> str:
    """What a person mistyping a name needs: the closest name there is, and all of them."""
    if not names:
        return f" (it has no {kind} yet)"
    close = difflib.get_close_matches(given, names, n=1)
    suggestion = f"did you mean {close[0]!r}? " if close else ""
    return f" ({suggestion}its {kind}: {', '.join(sorted(names))})"
