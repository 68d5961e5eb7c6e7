"""Source-side routes for what a project holds: monitored hosts, clusters, agent keys, migration hosts."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from livemigrate.context import context_of
from livemigrate.directory.views import iso, self_links
from livemigrate.http.auth import require_agent_key
from livemigrate.http.bodies import openapi_body, parse_body
from livemigrate.http.pagination import paginated
from livemigrate.http.responses import no_content, respond
from livemigrate.http.roles import OrgRole
from livemigrate.source import agents, hosts
from livemigrate.source.inventory import deployment_view
from livemigrate.source.probe import HostAddress
from livemigrate.store.models import MigrationHost, SourceHost

PREFIX = "/api/public/v1.0"
SIDE = "source"

router = APIRouter(prefix=PREFIX, tags=["source: inventory"])


class HostRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hostname: StrictStr = Field(min_length=1, max_length=255)
    port: StrictInt = Field(default=27017, ge=1, le=65535)
    username: StrictStr | None = None
    password: StrictStr | None = None
    authMechanismName: Literal["NONE", "SCRAM-SHA-1", "SCRAM-SHA-256", "DEFAULT"] = "NONE"
    sslEnabled: StrictBool = False


class AgentKeyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    desc: StrictStr = Field(min_length=1, max_length=250)


class HeartbeatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    agentVersion: StrictStr = Field(default="", max_length=64)


def host_view(request: Request, host: SourceHost) -> dict[str, Any]:
    return {
        "id": host.id, "groupId": host.project_id, "hostname": host.hostname, "port": host.port,
        "username": host.username, "authMechanismName": host.auth_mechanism, "sslEnabled": host.ssl_enabled,
        "clusterName": host.cluster_name, "replicaSetName": host.replica_set_name, "version": host.version,
        "lastPing": iso(host.last_ping_at), "lastError": host.last_error, "created": iso(host.created_at),
        "links": self_links(request, PREFIX, f"/groups/{host.project_id}/hosts/{host.id}"),
    }


def migration_host_view(host: MigrationHost, alive_seconds: float) -> dict[str, Any]:
    return {"hostname": host.hostname, "agentVersion": host.agent_version, "firstSeen": iso(host.first_seen_at),
            "lastHeartbeat": iso(host.last_heartbeat_at), "alive": agents.is_alive(host, alive_seconds)}


@router.post("/groups/{group_id}/hosts", summary="Monitor a MongoDB host of the project (credentials never returned)",
             openapi_extra=openapi_body(HostRequest))
async def add_host(request: Request, group_id: str) -> Response:
    context = context_of(request)
    await context.authenticator.authenticate_async(request)
    body = await parse_body(request, HostRequest)

    def add() -> dict[str, Any]:
        project = context.authorize_project(request, group_id, SIDE, OrgRole.ORG_OWNER)
        address = HostAddress(body.hostname, body.port, body.username, body.password, body.authMechanismName,
                              body.sslEnabled)
        host = hosts.add_host(context.store, context.secret_box, project, address)
        context.inventory_changed(project.org_id)
        return host_view(request, host)

    return respond(request, await run_in_threadpool(add), 201)


@router.get("/groups/{group_id}/hosts", summary="Monitored hosts of the project")
def list_hosts(request: Request, group_id: str) -> Response:
    context = context_of(request)
    project = context.authorize_project(request, group_id, SIDE, OrgRole.ORG_READ_ONLY)
    return respond(request, paginated(request, hosts.list_hosts(context.store, project.id),
                                      lambda host: host_view(request, host)))


@router.delete("/groups/{group_id}/hosts/{host_id}", summary="Stop monitoring a host")
def delete_host(request: Request, group_id: str, host_id: str) -> Response:
    context = context_of(request)
    project = context.authorize_project(request, group_id, SIDE, OrgRole.ORG_OWNER)
    hosts.delete_host(context.store, project.id, host_id)
    context.inventory_changed(project.org_id)
    return no_content(request)


@router.get("/groups/{group_id}/clusters", summary="Deployments of the project, as its hosts report them")
def list_clusters(request: Request, group_id: str) -> Response:
    context = context_of(request)
    project = context.authorize_project(request, group_id, SIDE, OrgRole.ORG_READ_ONLY)

    def view(deployment: hosts.Deployment) -> dict[str, Any]:
        return {**deployment_view(deployment).model_dump(mode="json"), "id": deployment.cluster_id,
                "clusterName": deployment.name,
                "groupId": project.id, "replicaSetName": deployment.primary.replica_set_name,
                "typeName": "SHARDED_REPLICA_SET" if deployment.primary.sharded else
                            "REPLICA_SET" if deployment.primary.replica_set_name else "STANDALONE",
                "hosts": [f"{host.hostname}:{host.port}" for host in deployment.hosts],
                "links": self_links(request, PREFIX, f"/groups/{project.id}/clusters/{deployment.cluster_id}")}

    return respond(request, paginated(request, hosts.deployments(hosts.list_hosts(context.store, project.id)), view))


@router.post("/groups/{group_id}/agentapikeys", summary="Create an agent API key (shown once)",
             openapi_extra=openapi_body(AgentKeyRequest))
async def create_agent_key(request: Request, group_id: str) -> Response:
    context = context_of(request)
    await context.authenticator.authenticate_async(request)
    body = await parse_body(request, AgentKeyRequest)

    def create() -> dict[str, Any]:
        project = context.authorize_project(request, group_id, SIDE, OrgRole.ORG_OWNER)
        created = agents.create_agent_key(context.store, project, body.desc)
        return {"_id": created.api_key.id, "desc": created.api_key.description, "key": created.key,
                "createdTime": iso(created.api_key.created_at)}

    return respond(request, await run_in_threadpool(create), 201)


@router.get("/groups/{group_id}/agentapikeys", summary="Agent API keys of the project (without their secrets)")
def list_agent_keys(request: Request, group_id: str) -> Response:
    context = context_of(request)
    project = context.authorize_project(request, group_id, SIDE, OrgRole.ORG_READ_ONLY)
    keys = agents.list_agent_keys(context.store, project.id)
    return respond(request, paginated(request, keys, lambda key: {
        "_id": key.id, "desc": key.description, "createdTime": iso(key.created_at),
        "maskedKey": f"{key.public_key}.********"}))


@router.put("/groups/{group_id}/liveMigrations/migrationHosts/{hostname}",
            summary="Heartbeat of a migration host (agent API key)", openapi_extra=openapi_body(HeartbeatRequest))
async def heartbeat(request: Request, group_id: str, hostname: str) -> Response:
    context = context_of(request)
    principal = await context.authenticator.authenticate_async(request)
    body = await parse_body(request, HeartbeatRequest)

    def beat() -> dict[str, Any]:
        require_agent_key(principal, group_id)
        host, is_new = agents.heartbeat(context.store, group_id, hostname, body.agentVersion)
        if is_new:
            context.inventory_changed(principal.org_id)
        return migration_host_view(host, context.settings.migration_host_alive_seconds)

    return respond(request, await run_in_threadpool(beat))


@router.get("/groups/{group_id}/liveMigrations/migrationHosts", summary="Migration hosts of the project")
def list_migration_hosts(request: Request, group_id: str) -> Response:
    context = context_of(request)
    project = context.authorize_project(request, group_id, SIDE, OrgRole.ORG_READ_ONLY)
    alive_seconds = context.settings.migration_host_alive_seconds
    return respond(request, paginated(request, agents.list_migration_hosts(context.store, project.id),
                                      lambda host: migration_host_view(host, alive_seconds)))
