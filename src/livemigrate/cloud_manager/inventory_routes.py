"""Source-side routes for what a project holds: monitored hosts, clusters, agent keys, migration hosts."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from livemigrate.authorization import AgentKey, project_role
from livemigrate.cloud_manager import agents, hosts
from livemigrate.cloud_manager.inventory import deployment_view
from livemigrate.cloud_manager.probe import HostAddress
from livemigrate.context import context_of
from livemigrate.directory.views import iso, self_links
from livemigrate.http.bodies import JsonInt, openapi_body, parse_body
from livemigrate.http.errors import ErrorCode
from livemigrate.http.openapi import BODY, PROJECT, GroupId, HostId, errors
from livemigrate.http.pagination import paginated
from livemigrate.http.responses import no_content, respond
from livemigrate.http.roles import OrgRole
from livemigrate.store.models import MigrationHost, Project, SourceHost
from livemigrate.vocabulary import SOURCE, SOURCE_PREFIX

PREFIX = SOURCE_PREFIX
SIDE = SOURCE

router = APIRouter(prefix=PREFIX, tags=["source: inventory"])

ProjectReader = Annotated[Project, project_role(SIDE, OrgRole.ORG_READ_ONLY)]
ProjectOwner = Annotated[Project, project_role(SIDE, OrgRole.ORG_OWNER)]


class HostRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hostname: StrictStr = Field(min_length=1, max_length=255)
    port: JsonInt = Field(default=27017, ge=1, le=65535)
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
             status_code=201, openapi_extra=openapi_body(HostRequest),
             responses=errors(PROJECT, BODY, ErrorCode.DUPLICATE_HOST))
async def add_host(request: Request, group_id: GroupId, project: ProjectOwner) -> Response:
    context = context_of(request)
    body = await parse_body(request, HostRequest)
    address = HostAddress(body.hostname, body.port, body.username, body.password, body.authMechanismName,
                          body.sslEnabled)
    host = await run_in_threadpool(hosts.add_host, context.store, context.secret_box, project, address)
    return respond(request, host_view(request, host), 201)


@router.get("/groups/{group_id}/hosts", summary="Monitored hosts of the project", responses=errors(PROJECT))
def list_hosts(request: Request, group_id: GroupId, project: ProjectReader) -> Response:
    return respond(request, paginated(request, hosts.list_hosts(context_of(request).store, project.id),
                                      lambda host: host_view(request, host)))


@router.delete("/groups/{group_id}/hosts/{host_id}", summary="Stop monitoring a host", status_code=204,
               responses=errors(PROJECT, ErrorCode.INVALID_HOST_ID, ErrorCode.HOST_NOT_FOUND))
def delete_host(request: Request, group_id: GroupId, host_id: HostId, project: ProjectOwner) -> Response:
    hosts.delete_host(context_of(request).store, project.id, host_id)
    return no_content(request)


@router.get("/groups/{group_id}/clusters", summary="Deployments of the project, as its hosts report them",
            responses=errors(PROJECT))
def list_clusters(request: Request, group_id: GroupId, project: ProjectReader) -> Response:
    def view(deployment: hosts.Deployment) -> dict[str, Any]:
        return {**deployment_view(deployment).model_dump(mode="json"), "id": deployment.cluster_id,
                "clusterName": deployment.name,
                "groupId": project.id, "replicaSetName": deployment.primary.replica_set_name,
                "typeName": "SHARDED_REPLICA_SET" if deployment.primary.sharded else
                            "REPLICA_SET" if deployment.primary.replica_set_name else "STANDALONE",
                "hosts": [f"{host.hostname}:{host.port}" for host in deployment.hosts],
                "links": self_links(request, PREFIX, f"/groups/{project.id}/clusters/{deployment.cluster_id}")}

    found = hosts.deployments(hosts.list_hosts(context_of(request).store, project.id))
    return respond(request, paginated(request, found, view))


@router.post("/groups/{group_id}/agentapikeys", summary="Create an agent API key (shown once)", status_code=201,
             openapi_extra=openapi_body(AgentKeyRequest), responses=errors(PROJECT, BODY))
async def create_agent_key(request: Request, group_id: GroupId, project: ProjectOwner) -> Response:
    body = await parse_body(request, AgentKeyRequest)
    created = await run_in_threadpool(agents.create_agent_key, context_of(request).store, project, body.desc)
    return respond(request, {"_id": created.api_key.id, "desc": created.api_key.description, "key": created.key,
                             "createdTime": iso(created.api_key.created_at)}, 201)


@router.get("/groups/{group_id}/agentapikeys", summary="Agent API keys of the project (without their secrets)",
            responses=errors(PROJECT))
def list_agent_keys(request: Request, group_id: GroupId, project: ProjectReader) -> Response:
    keys = agents.list_agent_keys(context_of(request).store, project.id)
    return respond(request, paginated(request, keys, lambda key: {
        "_id": key.id, "desc": key.description, "createdTime": iso(key.created_at),
        "maskedKey": f"{key.public_key}.********"}))


@router.put("/groups/{group_id}/liveMigrations/migrationHosts/{hostname}",
            summary="Heartbeat of a migration host (agent API key)", openapi_extra=openapi_body(HeartbeatRequest),
            responses=errors(BODY))
async def heartbeat(request: Request, group_id: GroupId, hostname: str, _agent: AgentKey) -> Response:
    context = context_of(request)
    body = await parse_body(request, HeartbeatRequest)
    host = await run_in_threadpool(agents.heartbeat, context.store, group_id, hostname, body.agentVersion)
    return respond(request, migration_host_view(host, context.settings.migration_host_alive_seconds))


@router.get("/groups/{group_id}/liveMigrations/migrationHosts", summary="Migration hosts of the project",
            responses=errors(PROJECT))
def list_migration_hosts(request: Request, group_id: GroupId, project: ProjectReader) -> Response:
    context = context_of(request)
    alive_seconds = context.settings.migration_host_alive_seconds
    return respond(request, paginated(request, agents.list_migration_hosts(context.store, project.id),
                                      lambda host: migration_host_view(host, alive_seconds)))
