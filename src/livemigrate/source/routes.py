"""Source-side (Cloud Manager role) routes of the liveExport migration link, under /api/public/v1.0."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, StrictStr
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from livemigrate.context import context_of
from livemigrate.http.bodies import openapi_body, parse_body
from livemigrate.http.responses import no_content, respond
from livemigrate.http.roles import OrgRole
from livemigrate.source.link import LinkService, link_view

PREFIX = "/api/public/v1.0"
SIDE = "source"

router = APIRouter(prefix=PREFIX, tags=["source: live export"])


class ConnectRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    linkToken: StrictStr


def link_service(request: Request) -> LinkService:
    return request.app.state.link_service  # type: ignore[no-any-return]


@router.post("/orgs/{org_id}/liveExport/migrationLink", summary="Connect this organization to a target with a link-token",
             openapi_extra=openapi_body(ConnectRequest))
async def connect(request: Request, org_id: str) -> Response:
    context = context_of(request)
    await context.authenticator.authenticate_async(request)
    await run_in_threadpool(context.authorize, request, org_id, SIDE, OrgRole.ORG_OWNER)
    body = await parse_body(request, ConnectRequest)
    # Connecting pushes the inventory once, and the background sync counts that push as its own.
    status = await link_service(request).connect(org_id, body.linkToken)
    return respond(request, {"status": status})


@router.get("/orgs/{org_id}/liveExport/migrationLink/status", summary="Whether the organization is synchronized with its target")
def status(request: Request, org_id: str) -> Response:
    # A plain function, so that FastAPI runs it on a worker thread: authorizing reads the store.
    context_of(request).authorize(request, org_id, SIDE, OrgRole.ORG_OWNER)
    return respond(request, {"status": link_service(request).status(org_id)})


@router.get("/orgs/{org_id}/liveExport/migrationLink",
            summary="The link in detail: target, last push and its error (livemigrate extension)")
def describe(request: Request, org_id: str) -> Response:
    context_of(request).authorize(request, org_id, SIDE, OrgRole.ORG_OWNER)
    return respond(request, link_view(link_service(request).get_link(org_id)))


@router.delete("/orgs/{org_id}/liveExport/migrationLink", summary="Remove the organization's link")
async def delete(request: Request, org_id: str) -> Response:
    context = context_of(request)
    await run_in_threadpool(context.authorize, request, org_id, SIDE, OrgRole.ORG_OWNER)
    await link_service(request).delete(org_id)
    return no_content(request)
