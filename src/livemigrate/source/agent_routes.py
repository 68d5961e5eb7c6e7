"""The migration host's side of the job flow: the agent asks the source API for its jobs and reports
progress to it; the source side relays both over the link, outbound, to the target."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from livemigrate.client.link_channel import LinkCallFailed, LinkKeyRefused
from livemigrate.context import context_of
from livemigrate.http.auth import require_agent_key
from livemigrate.http.bodies import parse_body
from livemigrate.http.errors import ApiError, ErrorCode
from livemigrate.http.responses import respond
from livemigrate.source import hosts
from livemigrate.source.link import LinkService

PREFIX = "/api/public/v1.0"

log = logging.getLogger("livemigrate.source")

router = APIRouter(prefix=PREFIX, tags=["source: migration hosts"])


class AgentReport(BaseModel):
    """Relayed as it is; the target validates it."""

    model_config = ConfigDict(extra="allow")


def _links(request: Request) -> LinkService:
    return request.app.state.link_service  # type: ignore[no-any-return]


def _unavailable(error: LinkCallFailed) -> ApiError:
    return ApiError(ErrorCode.LINK_TARGET_UNAVAILABLE, f"The target of the link cannot be asked now: {error}")


@router.get("/groups/{group_id}/liveMigrations/agentJobs", summary="Jobs of this migration host (agent API key)")
async def agent_jobs(request: Request, group_id: str, hostname: str) -> Response:
    context = context_of(request)
    principal = await context.authenticator.authenticate_async(request)
    require_agent_key(principal, group_id)
    if not await run_in_threadpool(_links(request).is_linked, principal.org_id):
        return respond(request, {"results": []})
    try:
        running = await _links(request).jobs(principal.org_id)
    except LinkKeyRefused as error:
        # The target revoked the link: no job of it may go on writing to its clusters.
        log.warning("org %s: the target refuses the link's key (%s); its migration hosts get no jobs",
                    principal.org_id, error)
        running = []
    except LinkCallFailed as error:
        raise _unavailable(error) from None
    mine = [job for job in running if job["sourceProjectId"] == group_id and job["migrationHost"] == hostname]

    def with_source_uri(job: dict[str, Any]) -> dict[str, Any]:
        found = [deployment for deployment in hosts.deployments(hosts.list_hosts(context.store, group_id))
                 if deployment.name == job["sourceClusterName"]]
        source_uri = hosts.cluster_uri(found[0], context.secret_box, job.get("sourceUsername"),
                                       job.get("sourcePassword"), bool(job.get("sourceSsl"))) if found else None
        return {"id": job["id"], "status": job["status"], "sourceClusterName": job["sourceClusterName"],
                "sourceUri": source_uri, "destinationUri": job["destinationUri"],
                "dropDestinationData": job["dropDestinationData"], "cutoverRequested": job["cutoverRequested"]}

    return respond(request, {"results": await run_in_threadpool(lambda: [with_source_uri(job) for job in mine])})


@router.patch("/groups/{group_id}/liveMigrations/agentJobs/{job_id}",
              summary="Progress of a job from its migration host (agent API key), relayed to the target")
async def agent_report(request: Request, group_id: str, job_id: str) -> Response:
    context = context_of(request)
    principal = await context.authenticator.authenticate_async(request)
    require_agent_key(principal, group_id)
    body = await parse_body(request, AgentReport)
    try:
        answer = await _links(request).report_progress(principal.org_id, job_id, body.model_dump())
    except LinkCallFailed as error:
        raise _unavailable(error) from None
    return respond(request, answer)
