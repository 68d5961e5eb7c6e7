"""The migration host's side of the job flow: the agent asks the source API for its jobs and reports
progress to it; the source side relays both over the link, outbound, to the target."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from livemigrate.authorization import AgentKey
from livemigrate.client.link_channel import JobList, LinkCallFailed, LinkKeyRefused
from livemigrate.cloud_manager import hosts, job_leases
from livemigrate.context import AppContext, HostJobRelay, context_of
from livemigrate.contracts import HostJob, Lease, LeaseGrant, LeaseRequest, LinkJob, ProgressReport
from livemigrate.http import long_poll
from livemigrate.http.bodies import openapi_body, parse_body
from livemigrate.http.errors import ApiError, ErrorCode
from livemigrate.http.openapi import BODY, GroupId, JobId, errors
from livemigrate.http.responses import respond
from livemigrate.vocabulary import SOURCE_PREFIX

PREFIX = SOURCE_PREFIX

log = logging.getLogger("livemigrate.cloud_manager")

_RELOOK_SECONDS = 1.0

router = APIRouter(prefix=PREFIX, tags=["source: migration hosts"])


def _relay(request: Request) -> HostJobRelay:
    return context_of(request).job_relay


def _unavailable(error: LinkCallFailed) -> ApiError:
    return ApiError(ErrorCode.LINK_TARGET_UNAVAILABLE, f"The target of the link cannot be asked now: {error}")


@router.get("/groups/{group_id}/liveMigrations/agentJobs", summary="Jobs of this migration host (agent API key)",
            responses=errors(ErrorCode.LINK_TARGET_UNAVAILABLE))
async def agent_jobs(request: Request, group_id: GroupId, hostname: str, agent: AgentKey) -> Response:
    """With `If-None-Match` and `Prefer: wait=N` (`http/long_poll.py`), answers when this host's jobs
    change: the wait is passed on to the target over the link, so a migration created or cut over
    there reaches its host at once, and an idle host costs one request per wait."""
    context = context_of(request)
    relay = _relay(request)
    if not await run_in_threadpool(relay.is_linked, agent.org_id):
        return respond(request, {"results": []})

    async def view_of(listed: JobList) -> tuple[dict[str, Any], str]:
        mine = [job for job in listed.results or [] if job.sourceProjectId == group_id and hostname in job.hosts()]
        view = {"results": await run_in_threadpool(
            lambda: [_job_for_host(context, group_id, job).model_dump(mode="json") for job in mine])}
        return view, long_poll.etag_of(view, context.secret_box)

    listed = await _listed(relay, agent.org_id, None, None)
    if listed.results is not None:  # the leases of the project's jobs that ended, run out, go
        running = [job.id for job in listed.results if job.sourceProjectId == group_id]
        await run_in_threadpool(job_leases.forget_finished, context.store, group_id, running)
    view, etag = await view_of(listed)
    wait, held = long_poll.requested_wait(request), long_poll.held_version(request)
    if wait is None or held != etag:
        return long_poll.tagged(respond(request, view), etag, None)
    deadline = long_poll.Deadline(wait)
    while deadline.left > 0.5:
        if listed.etag is None:  # nothing to wait on at the target (refused, or it sends no ETag): look again
            await asyncio.sleep(min(_RELOOK_SECONDS, deadline.left))
            listed = await _listed(relay, agent.org_id, None, None)
        else:
            changed = await _listed(relay, agent.org_id, listed.etag, deadline.left)
            if changed.results is None:
                break  # the target's wait is over
            listed = changed
        view, etag = await view_of(listed)
        if etag != held:
            return long_poll.tagged(respond(request, view), etag, wait)
    return long_poll.not_modified(etag, wait)


async def _listed(relay: HostJobRelay, org_id: str, held: str | None, wait_seconds: float | None) -> JobList:
    try:
        if held is None:
            return await relay.jobs(org_id)
        return await relay.jobs_changed(org_id, held, wait_seconds)
    except LinkKeyRefused as error:
        # The target revoked the link: no job of it may go on writing to its clusters.
        log.warning("org %s: the target refuses the link's key (%s); its migration hosts get no jobs", org_id, error)
        return JobList([], None)
    except LinkCallFailed as error:
        raise _unavailable(error) from None


def _job_for_host(context: AppContext, group_id: str, job: LinkJob) -> HostJob:
    """What the agent needs, the source's connection string built here: the target never sees it."""
    found = [deployment for deployment in hosts.deployments(hosts.list_hosts(context.store, group_id))
             if deployment.name == job.sourceClusterName]
    source_uri = hosts.cluster_uri(found[0], context.secret_box, job.sourceUsername, job.sourcePassword,
                                   job.sourceSsl, job.sourceCaCertificatePath) \
        if found and not job.cancelRequested else None  # a cancelled job needs no connection to stop
    reverse = job.direction == "REVERSE"  # from the destination back into the source
    return HostJob(id=job.id, kind=job.kind, status=job.status, sourceClusterName=job.sourceClusterName,
                   sourceUri=job.destinationUri if reverse else source_uri,
                   destinationUri=source_uri if reverse else job.destinationUri,
                   dropDestinationData=job.dropDestinationData, reversible=job.reversible, direction=job.direction,
                   reverseFrom=job.reverseFrom,
                   cutoverRequested=job.cutoverRequested, changeCapture=job.changeCapture, sharding=job.sharding,
                   stopSourceBalancer=job.stopSourceBalancer, cancelRequested=job.cancelRequested, migrationHosts=job.hosts() if len(job.hosts()) > 1 else [])


@router.patch("/groups/{group_id}/liveMigrations/agentJobs/{job_id}",
              summary="Progress of a job from its migration host (agent API key), relayed to the target",
              openapi_extra=openapi_body(ProgressReport),
              responses=errors(BODY, ErrorCode.LIVE_MIGRATION_NOT_FOUND, ErrorCode.ORG_LINK_NOT_FOUND,
                               ErrorCode.LINK_TARGET_UNAVAILABLE))
async def agent_report(request: Request, group_id: GroupId, job_id: JobId, agent: AgentKey) -> Response:
    body = await parse_body(request, ProgressReport)  # refused here, before it travels, if malformed
    try:
        answer = await _relay(request).report_progress(agent.org_id, job_id, body)
    except LinkCallFailed as error:
        raise _unavailable(error) from None
    return respond(request, answer.model_dump(mode="json"))


@router.post("/groups/{group_id}/liveMigrations/agentJobs/{job_id}/leases",
             summary="Take, renew and release parts of a shared migration (agent API key)",
             openapi_extra=openapi_body(LeaseRequest),
             responses=errors(BODY, ErrorCode.LIVE_MIGRATION_NOT_FOUND, ErrorCode.LINK_TARGET_UNAVAILABLE))
async def agent_leases(request: Request, group_id: GroupId, job_id: JobId, agent: AgentKey) -> Response:
    """A host of the job asks for everything it wants to hold (`cloud_manager/job_leases.py`); the answer is
    every live lease of the job, with its holder: the caller's are those it holds now."""
    body = await parse_body(request, LeaseRequest)
    context = context_of(request)
    listed = await _listed(_relay(request), agent.org_id, None, None)
    job = next((job for job in listed.results or [] if job.id == job_id and job.sourceProjectId == group_id), None)
    if job is None or body.hostname not in job.hosts():
        raise ApiError(ErrorCode.LIVE_MIGRATION_NOT_FOUND,
                       f"No running live migration {job_id} of group {group_id} lists migration host "
                       f"{body.hostname!r}.", [job_id])
    ttl = context.settings.migration_lease_seconds
    leases = await run_in_threadpool(job_leases.hold, context.store, group_id, job_id, body.hostname, body.hold, ttl)
    grant = LeaseGrant(leaseSeconds=ttl, leases=[Lease(name=lease.name, holder=lease.holder,
                                                       expiresAt=lease.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ"))
                                       for lease in leases])
    return respond(request, grant.model_dump(mode="json"))
