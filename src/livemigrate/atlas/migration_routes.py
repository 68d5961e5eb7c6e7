"""Target-side (Atlas role) routes for clusters and push live migrations, and the link channel's job calls."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, model_validator
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response

from livemigrate.atlas import (
    clusters,
    migration_jobs,
    migration_progress,
    migration_requests,
    migration_reverse,
    migration_views,
    migrations,
    validations,
)
from livemigrate.authorization import LinkKey, project_role
from livemigrate.context import AppContext, context_of
from livemigrate.contracts import ChangeCapture, ProgressReport, ReportAnswer, Sharding
from livemigrate.directory.views import iso, self_links
from livemigrate.http import long_poll
from livemigrate.http.bodies import openapi_body, parse_body
from livemigrate.http.errors import ErrorCode
from livemigrate.http.openapi import BODY, ORG, PROJECT, GroupId, MigrationId, OrgId, SourceOrgId, ValidationId, errors
from livemigrate.http.pagination import paginated
from livemigrate.http.responses import respond
from livemigrate.http.roles import OrgRole
from livemigrate.statuses import MigrationStatus, ValidationStatus
from livemigrate.store.models import LiveMigrationValidation, Project, TargetCluster
from livemigrate.vocabulary import TARGET, TARGET_PREFIX

PREFIX = TARGET_PREFIX
SIDE = TARGET
_LOOK_SECONDS = 0.05  # how often a waiting job list looks for a write of this process
_RELIST_SECONDS = 1.0  # how often it lists again regardless (writes of other processes, expiry)

router = APIRouter(prefix=PREFIX, tags=["target: live migrations"])

ProjectReader = Annotated[Project, project_role(SIDE, OrgRole.ORG_READ_ONLY)]
ProjectMember = Annotated[Project, project_role(SIDE, OrgRole.ORG_MEMBER)]
ProjectOwner = Annotated[Project, project_role(SIDE, OrgRole.ORG_OWNER)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClusterRequest(Strict):
    name: StrictStr = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_]*$")
    connectionString: StrictStr = Field(min_length=10, max_length=4096,
                                        description="A MongoDB URI (mongodb:// or mongodb+srv://) the MongoDB driver "
                                                    "parses; any other string is refused, 400 INVALID_CONNECTION_STRING.")


class SourceRequest(Strict):
    clusterName: StrictStr
    groupId: StrictStr
    managedAuthentication: StrictBool = False
    ssl: StrictBool = False
    caCertificatePath: StrictStr | None = None
    username: StrictStr | None = None
    password: StrictStr | None = None


class DestinationRequest(Strict):
    clusterName: StrictStr
    groupId: StrictStr
    hostnameSchemaType: Literal["PUBLIC", "PRIVATE_LINK", "VPC_PEERING"] = "PUBLIC"


def _drop_flags_disagree() -> dict[str, Any]:
    """What `one_drop_flag` refuses, for the document: both drop flags given, one true and the other false."""
    return {"anyOf": [{"required": ["dropDestinationData", "dropEnabled"],
                       "properties": {"dropDestinationData": {"const": flag}, "dropEnabled": {"const": not flag}}}
                      for flag in (True, False)]}


class LiveMigrationRequest(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"not": _drop_flags_disagree()})

    source: SourceRequest
    destination: DestinationRequest
    # Several hosts share the copy and take over from each other (our extension: MongoDB takes one).
    migrationHosts: list[StrictStr] = Field(min_length=1, max_length=migration_requests.MAX_MIGRATION_HOSTS)
    dropDestinationData: StrictBool | None = None
    dropEnabled: StrictBool | None = None  # the older name of dropDestinationData
    # Atlas' `sharding`: honoured on a sharded destination, refused (by the validation, or the migration's
    # start) for one that is not.
    sharding: Sharding | None = None
    # An extension: the change capture its hosts run (absent: each host's own setting).
    changeCapture: ChangeCapture | None = None
    # An extension: a sharded source's balancer, running, blocks the migration; true has the migration stop
    # it while it runs, and start it again when it stops or ends.
    stopSourceBalancer: StrictBool = False
    # An extension: the migration may be reversed after its cutover (POST …/liveMigrations/{id}/reverse); its
    # validation checks what a reverse needs.
    reversible: StrictBool = False

    @model_validator(mode="after")
    def one_drop_flag(self) -> LiveMigrationRequest:
        if self.dropDestinationData is not None and self.dropEnabled is not None \
                and self.dropDestinationData != self.dropEnabled:
            raise ValueError("dropDestinationData and its alias dropEnabled disagree")
        return self

    def to_request(self) -> migration_requests.MigrationRequest:
        source = self.source
        return migration_requests.MigrationRequest(
            source=migration_requests.SourceSpec(source.clusterName, source.groupId, source.managedAuthentication, source.ssl,
                                         source.caCertificatePath, source.username, source.password),
            destination_cluster_name=self.destination.clusterName, destination_group_id=self.destination.groupId,
            hostname_schema_type=self.destination.hostnameSchemaType,
            migration_hosts=tuple(dict.fromkeys(self.migrationHosts)),  # a host named twice is one host
            drop_destination_data=bool(self.dropDestinationData if self.dropDestinationData is not None
                                       else self.dropEnabled),
            sharding=self.sharding.model_dump() if self.sharding is not None else None,
            change_capture=self.changeCapture, stop_source_balancer=self.stopSourceBalancer,
            reversible=self.reversible)


def window(context: AppContext) -> timedelta:
    return timedelta(hours=context.settings.cutover_window_hours)


def hosts_gone(context: AppContext) -> timedelta:
    return timedelta(seconds=context.settings.migration_hosts_gone_seconds)


def cluster_view(request: Request, cluster: TargetCluster) -> dict[str, Any]:
    return {"id": cluster.id, "name": cluster.name, "groupId": cluster.project_id, "created": iso(cluster.created_at),
            "links": self_links(request, PREFIX, f"/groups/{cluster.project_id}/clusters/{cluster.name}")}


@router.post("/groups/{group_id}/clusters", summary="Register an existing deployment by connection string",
             status_code=201, openapi_extra=openapi_body(ClusterRequest),
             responses=errors(PROJECT, BODY, ErrorCode.INVALID_CONNECTION_STRING, ErrorCode.DUPLICATE_CLUSTER_NAME))
async def register_cluster(request: Request, group_id: GroupId, project: ProjectOwner) -> Response:
    context = context_of(request)
    body = await parse_body(request, ClusterRequest, allow_atlas_versioned=True)
    cluster = await run_in_threadpool(clusters.register_cluster, context.store, context.secret_box, project.id,
                                      body.name, body.connectionString)
    return respond(request, cluster_view(request, cluster), 201)


@router.get("/groups/{group_id}/clusters", summary="Clusters registered in the group (never their connection strings)",
            responses=errors(PROJECT))
def list_clusters(request: Request, group_id: GroupId, project: ProjectReader) -> Response:
    return respond(request, paginated(request, clusters.list_clusters(context_of(request).store, project.id),
                                      lambda cluster: cluster_view(request, cluster)))


@router.post("/groups/{group_id}/liveMigrations/validate", summary="Validate a migration request (PENDING at once)",
             openapi_extra=openapi_body(LiveMigrationRequest),
             responses=errors(PROJECT, BODY, ErrorCode.LIVE_MIGRATION_DESTINATION_IN_USE))
async def validate(request: Request, group_id: GroupId, project: ProjectOwner) -> Response:
    body = await parse_body(request, LiveMigrationRequest, allow_atlas_versioned=True)
    validation = await validate_in_background(request, project, body.to_request())
    return respond(request, validations.validation_view(validation))


async def validate_in_background(request: Request, project: Project,
                                 migration_request: migration_requests.MigrationRequest) -> LiveMigrationValidation:
    """The validation, PENDING; its checks run after the answer (the API's and the console's alike). A
    destination another migration writes is refused at once (409), as a create is."""
    context = context_of(request)
    await run_in_threadpool(migration_requests.check_destination_free, context.store, project.id, migration_request)
    validation = await run_in_threadpool(validations.start_validation, context.store, project.id, migration_request)
    task = asyncio.create_task(run_in_threadpool(validations.run_validation, context.store, context.secret_box,
                                                 project.org_id, project.id, validation.id, migration_request))
    context.keep_until_done(task)
    return validation


@router.get("/groups/{group_id}/liveMigrations/validate/{validation_id}", summary="One validation",
            responses=errors(PROJECT, ErrorCode.VALIDATION_NOT_FOUND))
def get_validation(request: Request, group_id: GroupId, validation_id: ValidationId, project: ProjectOwner) -> Response:
    found = validations.get_validation(context_of(request).store, project.id, validation_id)
    return respond(request, validations.validation_view(found))


@router.post("/groups/{group_id}/liveMigrations", summary="Create a push live migration", status_code=201,
             description="After the body's form, what it names is checked against what the target knows: the source "
                         "project and cluster as a linked source organization pushed them, migration hosts alive "
                         "there, the destination cluster registered in this group, reachable and empty (unless "
                         "dropDestinationData). A request the schema allows may so be refused, 400 "
                         "LIVE_MIGRATION_INVALID_REQUEST, saying what to change.",
             openapi_extra=openapi_body(LiveMigrationRequest),
             responses=errors(PROJECT, BODY, ErrorCode.LIVE_MIGRATION_INVALID_REQUEST,
                              ErrorCode.LIVE_MIGRATION_DESTINATION_IN_USE))
async def create(request: Request, group_id: GroupId, project: ProjectOwner) -> Response:
    context = context_of(request)
    body = await parse_body(request, LiveMigrationRequest, allow_atlas_versioned=True)
    migration = await run_in_threadpool(migrations.create_migration, context.store, context.secret_box,
                                        project.org_id, project.id, body.to_request())
    return respond(request, migration_views.migration_view(migration), 201)


@router.get("/groups/{group_id}/liveMigrations", summary="The project's live migrations, newest first",
            description="An extension of this implementation (Atlas lists none): each item as `GET "
                        "…/liveMigrations/{migrationId}` shows it, in Atlas's paginated shape.",
            responses=errors(PROJECT))
def list_migrations(request: Request, group_id: GroupId, project: ProjectMember) -> Response:
    context = context_of(request)
    found = migrations.list_migrations(context.store, project.id, window(context), hosts_gone(context))
    return respond(request, paginated(request, found, migration_views.migration_view))


@router.api_route("/groups/{group_id}/liveMigrations/validate", methods=["GET", "DELETE"], include_in_schema=False)
def validate_other_methods() -> Response:
    """`…/liveMigrations/validate` is a path of its own, served for POST only: GET and DELETE there answer
    405 naming POST, rather than reaching `…/liveMigrations/{migration_id}` below with the id `validate`
    (the document's pattern for a migration's id says `validate` is none)."""
    raise StarletteHTTPException(405, headers={"Allow": "POST"})


@router.get("/groups/{group_id}/liveMigrations/{migration_id}", summary="One live migration",
            responses=errors(PROJECT, ErrorCode.LIVE_MIGRATION_NOT_FOUND))
def get_migration(request: Request, group_id: GroupId, migration_id: MigrationId, project: ProjectMember) -> Response:
    context = context_of(request)
    return respond(request, migration_views.migration_view(
        migrations.get_migration(context.store, project.id, migration_id, window(context), hosts_gone(context))))


@router.delete("/groups/{group_id}/liveMigrations/{migration_id}", summary="Cancel a live migration",
               status_code=202,
               description="An extension of this implementation (Atlas cancels its other jobs with `DELETE`): the "
                           "migration ends `FAILED` at once, with `cancelledAt` and `cancelledBy`; its migration hosts "
                           "stop writing, lift a source write block a cutover set, remove the job's state and say so "
                           "(`hostsStoppedAt`), and only then may another migration have its destination.",
               responses=errors(PROJECT, ErrorCode.LIVE_MIGRATION_NOT_FOUND, ErrorCode.LIVE_MIGRATION_ALREADY_FINISHED))
def cancel(request: Request, group_id: GroupId, migration_id: MigrationId, project: ProjectOwner) -> Response:
    context = context_of(request)
    caller = context.authenticator.authenticate(request)  # the guard's, kept for the request
    found = migrations.cancel_migration(context.store, project.id, migration_id, window(context),
                                        by=f"API key {caller.public_key}")
    return respond(request, migration_views.migration_view(found), 202)


@router.put("/groups/{group_id}/liveMigrations/{migration_id}/cutover", summary="Cut over: drain, verify, complete",
            status_code=202, responses=errors(PROJECT, ErrorCode.LIVE_MIGRATION_NOT_FOUND,
                                              ErrorCode.LIVE_MIGRATION_NOT_READY_FOR_CUTOVER,
                                              ErrorCode.LIVE_MIGRATION_ALREADY_FINISHED))
def cutover(request: Request, group_id: GroupId, migration_id: MigrationId, project: ProjectOwner) -> Response:
    context = context_of(request)
    detail = migrations.request_cutover(context.store, project.id, migration_id, window(context))
    return respond(request, {"detail": detail}, 202)


@router.post("/groups/{group_id}/liveMigrations/{migration_id}/reverse", summary="Reverse a completed migration",
             status_code=201,
             description="An extension of this implementation: a migration created with `reversible: true` and "
                         "COMPLETE is reversed by a second migration (`direction: REVERSE`, `reverseOf` its id) that "
                         "replays every write made on the destination since the cutover — those made before this "
                         "request too — back into the source. Its cutover (the cut back, `PUT …/cutover` on the "
                         "reverse) drains with the destination's writes blocked, verifies both sides, and lets the "
                         "source take writes again.",
             responses=errors(PROJECT, ErrorCode.LIVE_MIGRATION_NOT_FOUND, ErrorCode.LIVE_MIGRATION_NOT_REVERSIBLE,
                              ErrorCode.LIVE_MIGRATION_DESTINATION_IN_USE))
def reverse(request: Request, group_id: GroupId, migration_id: MigrationId, project: ProjectOwner) -> Response:
    context = context_of(request)
    return respond(request, migration_views.migration_view(
        migration_reverse.reverse_migration(context.store, project.id, migration_id)), 201)


@router.get("/orgs/{org_id}/liveMigrations/links/{source_org_id}/jobs",
            summary="Link channel: the running migrations, and the pre-flights owed, of a linked source org", responses=errors(ORG))
async def jobs(request: Request, org_id: OrgId, source_org_id: SourceOrgId, _link_key: LinkKey) -> Response:
    """With `If-None-Match` and `Prefer: wait=N`, answers when the list changes (long polling, see
    `http/long_poll.py`). A change made by this process is seen within `_LOOK_SECONDS`; one made by
    another process sharing the store, within `_RELIST_SECONDS`."""
    context = context_of(request)

    def listing() -> tuple[dict[str, Any], str]:
        listed = [*migration_jobs.jobs_for(context.store, context.secret_box, org_id, source_org_id, window(context)),
                  *validations.validation_jobs(context.store, context.secret_box, org_id, source_org_id)]
        body = {"results": [job.model_dump(mode="json") for job in listed]}
        return body, long_poll.etag_of(body, context.secret_box)

    body, etag = await run_in_threadpool(listing)
    wait, held = long_poll.requested_wait(request), long_poll.held_version(request)
    if wait is None or held != etag:
        return long_poll.tagged(respond(request, body), etag, None)
    deadline, seen, listed_at = long_poll.Deadline(wait), context.store.generation, time.monotonic()
    while deadline.left > 0:
        await asyncio.sleep(min(_LOOK_SECONDS, deadline.left))
        if context.store.generation == seen and time.monotonic() - listed_at < _RELIST_SECONDS:
            continue
        seen, listed_at = context.store.generation, time.monotonic()
        body, etag = await run_in_threadpool(listing)
        if etag != held:
            return long_poll.tagged(respond(request, body), etag, wait)
    return long_poll.not_modified(etag, wait)


@router.patch("/orgs/{org_id}/liveMigrations/links/{source_org_id}/jobs/{job_id}",
              summary="Link channel: progress of a migration, relayed from its migration host",
              openapi_extra=openapi_body(ProgressReport),
              responses=errors(ORG, BODY, ErrorCode.LIVE_MIGRATION_NOT_FOUND))
async def report(request: Request, org_id: OrgId, source_org_id: SourceOrgId, job_id: str,
                 _link_key: LinkKey) -> Response:
    context = context_of(request)
    body = await parse_body(request, ProgressReport, allow_atlas_versioned=True)

    def record() -> ReportAnswer:
        validation = validations.record_preflight(context.store, org_id, source_org_id, job_id, body)
        if validation is not None:
            return ReportAnswer(status=ValidationStatus(validation.status))
        migration = migration_progress.record_progress(context.store, org_id, source_org_id, job_id, body,
                                                       window(context))
        return ReportAnswer(status=MigrationStatus(migration.status),
                            cutoverRequested=migration.cutover_requested_at is not None)

    return respond(request, (await run_in_threadpool(record)).model_dump(mode="json"))
