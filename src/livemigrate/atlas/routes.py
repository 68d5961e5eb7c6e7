"""Target-side (Atlas role) routes under /api/atlas/v2: link-tokens, available projects, link channel."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, StrictStr
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from livemigrate.atlas import link_tokens, links
from livemigrate.atlas.inventory_views import available_project_view
from livemigrate.authorization import LinkKey, org_role
from livemigrate.context import context_of
from livemigrate.contracts import Inventory
from livemigrate.directory.orgs import find_org
from livemigrate.http.access_list import IP_OR_CIDR_PATTERN
from livemigrate.http.auth import Principal
from livemigrate.http.bodies import openapi_body, parse_body
from livemigrate.http.errors import ErrorCode
from livemigrate.http.openapi import BODY, ORG, OrgId, SourceOrgId, errors
from livemigrate.http.responses import no_content, respond
from livemigrate.http.roles import OrgRole
from livemigrate.vocabulary import TARGET, TARGET_PREFIX

PREFIX = TARGET_PREFIX
SIDE = TARGET

router = APIRouter(prefix=PREFIX, tags=["target: live migrations"])

OrgOwner = Annotated[Principal, org_role(SIDE, OrgRole.ORG_OWNER)]


class LinkTokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # The pattern is the document's; the server checks each entry against it itself, to answer
    # INVALID_IP_ADDRESS_OR_CIDR_NOTATION naming the entry.
    accessListIps: list[Annotated[StrictStr, Field(json_schema_extra={"pattern": IP_OR_CIDR_PATTERN})]] = Field(
        default_factory=list, max_length=200)


def target_api_url(request: Request) -> str:
    """The target API's root as a source will reach it, written into link-tokens (the API's and the console's)."""
    configured = context_of(request).settings.public_url
    base = configured.rstrip("/") if configured else str(request.base_url).rstrip("/")
    return f"{base}{PREFIX}"


@router.post("/orgs/{org_id}/liveMigrations/linkTokens", summary="Create a link-token for a source organization",
             openapi_extra=openapi_body(LinkTokenRequest),
             responses=errors(ORG, BODY, ErrorCode.INVALID_IP_ADDRESS_OR_CIDR_NOTATION))
async def create_link_token(request: Request, org_id: OrgId, _owner: OrgOwner) -> Response:
    body = await parse_body(request, LinkTokenRequest, allow_atlas_versioned=True)
    token = await run_in_threadpool(link_tokens.create_link_token, context_of(request).store, org_id,
                                    body.accessListIps, target_api_url(request))
    return respond(request, {"linkToken": token})


@router.delete("/orgs/{org_id}/liveMigrations/linkTokens", status_code=204, responses=errors(ORG),
               summary="Revoke every link-token of the organization, their keys and their links")
def delete_link_tokens(request: Request, org_id: OrgId, _owner: OrgOwner) -> Response:
    link_tokens.revoke_link_tokens(context_of(request).store, org_id)
    return no_content(request)


@router.get("/orgs/{org_id}/liveMigrations/availableProjects", responses=errors(ORG),
            summary="Projects of linked source organizations that can be migrated")
def available_projects(request: Request, org_id: OrgId, _owner: OrgOwner) -> Response:
    return respond(request, [available_project_view(project)
                             for project in links.available_projects(context_of(request).store, org_id)])


@router.put("/orgs/{org_id}/liveMigrations/links/{source_org_id}",
            summary="Link channel: register or refresh a source organization's link and inventory",
            openapi_extra=openapi_body(Inventory), responses=errors(ORG, BODY))
async def push_inventory(request: Request, org_id: OrgId, source_org_id: SourceOrgId, link_key: LinkKey) -> Response:
    context = context_of(request)
    body = await parse_body(request, Inventory, allow_atlas_versioned=True)

    def register() -> dict[str, Any]:
        find_org(context.store, org_id, SIDE)
        synced_at = links.register_link(context.store, link_key, org_id, source_org_id, body.model_dump(mode="json"))
        return {"lastSyncedAt": synced_at.strftime("%Y-%m-%dT%H:%M:%SZ")}

    return respond(request, await run_in_threadpool(register))
