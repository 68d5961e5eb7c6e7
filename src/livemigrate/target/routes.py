"""Target-side (Atlas role) routes under /api/atlas/v2: link-tokens, available projects, link channel."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, StrictStr
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from livemigrate.context import context_of
from livemigrate.contracts import Inventory
from livemigrate.directory.orgs import find_org
from livemigrate.http.auth import check_org_id
from livemigrate.http.bodies import openapi_body, parse_body
from livemigrate.http.responses import no_content, respond
from livemigrate.http.roles import OrgRole
from livemigrate.target import link_tokens, links

PREFIX = "/api/atlas/v2"
SIDE = "target"

router = APIRouter(prefix=PREFIX, tags=["target: live migrations"])


class LinkTokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    accessListIps: list[StrictStr] = Field(default_factory=list, max_length=200)


def _target_api_url(request: Request) -> str:
    configured = context_of(request).settings.public_url
    base = configured.rstrip("/") if configured else str(request.base_url).rstrip("/")
    return f"{base}{PREFIX}"


@router.post("/orgs/{org_id}/liveMigrations/linkTokens", summary="Create a link-token for a source organization",
             openapi_extra=openapi_body(LinkTokenRequest))
async def create_link_token(request: Request, org_id: str) -> Response:
    context = context_of(request)
    await context.authenticator.authenticate_async(request)
    body = await parse_body(request, LinkTokenRequest, allow_atlas_versioned=True)

    def create() -> dict[str, str]:
        context.authorize(request, org_id, SIDE, OrgRole.ORG_OWNER)
        token = link_tokens.create_link_token(context.store, org_id, body.accessListIps, _target_api_url(request))
        return {"linkToken": token}

    return respond(request, await run_in_threadpool(create))


@router.delete("/orgs/{org_id}/liveMigrations/linkTokens",
               summary="Revoke every link-token of the organization, their keys and their links")
def delete_link_tokens(request: Request, org_id: str) -> Response:
    context = context_of(request)
    context.authorize(request, org_id, SIDE, OrgRole.ORG_OWNER)
    link_tokens.revoke_link_tokens(context.store, org_id)
    return no_content(request)


@router.get("/orgs/{org_id}/liveMigrations/availableProjects",
            summary="Projects of linked source organizations that can be migrated")
def available_projects(request: Request, org_id: str) -> Response:
    context = context_of(request)
    context.authorize(request, org_id, SIDE, OrgRole.ORG_OWNER)
    return respond(request, links.available_projects(context.store, org_id))


@router.put("/orgs/{org_id}/liveMigrations/links/{source_org_id}",
            summary="Link channel: register or refresh a source organization's link and inventory",
            openapi_extra=openapi_body(Inventory))
async def push_inventory(request: Request, org_id: str, source_org_id: str) -> Response:
    context = context_of(request)
    await context.authenticator.authenticate_async(request)
    body = await parse_body(request, Inventory, allow_atlas_versioned=True)

    def register() -> dict[str, Any]:
        principal = context.authenticator.authenticate(request)
        check_org_id(org_id)
        check_org_id(source_org_id)
        links.require_link_key(principal, org_id)
        find_org(context.store, org_id, SIDE)
        synced_at = links.register_link(context.store, principal, org_id, source_org_id,
                                             body.model_dump(mode="json"))
        return {"lastSyncedAt": synced_at.strftime("%Y-%m-%dT%H:%M:%SZ")}

    return respond(request, await run_in_threadpool(register))
