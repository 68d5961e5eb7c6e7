"""Source-side (Cloud Manager role) routes of the liveExport migration link, under /api/public/v1.0."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, StrictStr
from starlette.requests import Request
from starlette.responses import Response

from livemigrate.authorization import org_role
from livemigrate.cloud_manager.link import link_view
from livemigrate.context import SourceLinkService, context_of
from livemigrate.http.auth import Principal
from livemigrate.http.bodies import openapi_body, parse_body
from livemigrate.http.errors import ErrorCode
from livemigrate.http.openapi import BODY, ORG, OrgId, errors
from livemigrate.http.responses import no_content, respond
from livemigrate.http.roles import OrgRole
from livemigrate.vocabulary import SOURCE, SOURCE_PREFIX

PREFIX = SOURCE_PREFIX
SIDE = SOURCE

router = APIRouter(prefix=PREFIX, tags=["source: live export"])

OrgOwner = Annotated[Principal, org_role(SIDE, OrgRole.ORG_OWNER)]
LINK_NOT_FOUND = (*ORG, ErrorCode.ORG_LINK_NOT_FOUND)


class ConnectRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    linkToken: StrictStr = Field(description="A link-token a target issued (POST …/liveMigrations/linkTokens on the "
                                             "target); any other string is refused, 400 INVALID_LINK_TOKEN.")


def link_service(request: Request) -> SourceLinkService:
    return context_of(request).link_service


@router.post("/orgs/{org_id}/liveExport/migrationLink", summary="Connect this organization to a target with a link-token",
             openapi_extra=openapi_body(ConnectRequest),
             responses=errors(ORG, BODY, ErrorCode.INVALID_LINK_TOKEN,
                              ErrorCode.CANNOT_RELINK_ORG_WITH_RUNNING_LIVE_EXPORT))
async def connect(request: Request, org_id: OrgId, _owner: OrgOwner) -> Response:
    body = await parse_body(request, ConnectRequest)
    # Connecting pushes the inventory once, and the background sync counts that push as its own.
    status = await link_service(request).connect(org_id, body.linkToken)
    return respond(request, {"status": status})


@router.get("/orgs/{org_id}/liveExport/migrationLink/status", summary="Whether the organization is synchronized with its target",
            responses=errors(LINK_NOT_FOUND))
def status(request: Request, org_id: OrgId, _owner: OrgOwner) -> Response:
    return respond(request, {"status": link_service(request).status(org_id)})


@router.get("/orgs/{org_id}/liveExport/migrationLink",
            summary="The link in detail: target, last push and its error (livemigrate extension)",
            responses=errors(LINK_NOT_FOUND))
def describe(request: Request, org_id: OrgId, _owner: OrgOwner) -> Response:
    return respond(request, link_view(link_service(request).get_link(org_id)))


@router.delete("/orgs/{org_id}/liveExport/migrationLink", summary="Remove the organization's link", status_code=204,
               responses=errors(LINK_NOT_FOUND, ErrorCode.CANNOT_DELETE_ORG_LINK_WITH_RUNNING_LIVE_EXPORT))
async def delete(request: Request, org_id: OrgId, _owner: OrgOwner) -> Response:
    await link_service(request).delete(org_id)
    return no_content(request)
