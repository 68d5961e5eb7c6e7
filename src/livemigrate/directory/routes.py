"""HTTP routes for orgs, API keys, access lists, org settings and projects — built once per side.

Both Cloud Manager (v1.0) and Atlas (v2) expose these with the same paths under their prefixes,
so one factory serves both; `side` keeps the two sets of orgs apart.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from livemigrate.context import context_of
from livemigrate.directory import api_keys, orgs, projects, views
from livemigrate.http.bodies import openapi_body, parse_body, read_json
from livemigrate.http.errors import ApiError, ErrorCode
from livemigrate.http.pagination import paginated
from livemigrate.http.responses import no_content, respond
from livemigrate.http.roles import OrgRole


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OwnerKeyRequest(Strict):
    desc: StrictStr = Field(min_length=1, max_length=250)


class CreateOrgRequest(Strict):
    name: StrictStr = Field(min_length=1, max_length=64)
    apiKey: OwnerKeyRequest | None = None


class ApiKeyRequest(Strict):
    desc: StrictStr = Field(min_length=1, max_length=250)
    roles: list[OrgRole] = Field(min_length=1)


class ApiKeyPatch(Strict):
    desc: StrictStr | None = Field(default=None, min_length=1, max_length=250)
    roles: list[OrgRole] | None = Field(default=None, min_length=1)


class AccessListItem(Strict):
    ipAddress: StrictStr | None = None
    cidrBlock: StrictStr | None = None


class OrgSettingsPatch(Strict):
    apiAccessListRequired: StrictBool


class CreateProjectRequest(Strict):
    name: StrictStr = Field(min_length=1, max_length=64)
    orgId: StrictStr


READ_ONLY = ("id", "links", "created", "publicKey", "privateKey", "isDeleted")


def directory_router(side: str, prefix: str) -> APIRouter:
    router = APIRouter(prefix=prefix, tags=[f"{side} directory"])
    atlas = side == "target"

    # --- organizations ---------------------------------------------------------------------

    @router.get("/orgs", summary="Organizations the calling key belongs to")
    def list_orgs(request: Request) -> Response:
        context = context_of(request)
        principal = context.authenticator.authenticate(request)
        found = orgs.list_orgs(context.store, side, {principal.org_id})
        return respond(request, paginated(request, found, lambda org: views.org_view(request, prefix, org)))

    @router.post("/orgs", summary="Create an organization (and optionally an ORG_OWNER key for it)",
                 openapi_extra=openapi_body(CreateOrgRequest))
    async def create_org(request: Request) -> Response:
        context = context_of(request)
        await context.authenticator.authenticate_async(request)
        body = await parse_body(request, CreateOrgRequest, read_only=READ_ONLY, allow_atlas_versioned=atlas)

        def create() -> dict[str, Any]:
            principal = context.authenticator.authenticate(request)
            if principal.org_side != side or principal.purpose != "programmatic" or OrgRole.ORG_OWNER.value not in principal.roles:
                raise ApiError(ErrorCode.USER_UNAUTHORIZED,
                               "Creating an organization requires an ORG_OWNER key of an organization of this API.",
                               [OrgRole.ORG_OWNER.value])
            created = orgs.create_org(context.store, side, body.name, body.apiKey.desc if body.apiKey else None)
            view = views.org_view(request, prefix, created.org)
            if created.api_key is not None:
                view["apiKey"] = views.created_api_key_view(request, prefix, created.api_key)
            return view

        return respond(request, await run_in_threadpool(create), 201)

    @router.get("/orgs/{org_id}", summary="One organization")
    def get_org(request: Request, org_id: str) -> Response:
        _, org = context_of(request).authorize_org(request, org_id, side, OrgRole.ORG_READ_ONLY)
        return respond(request, views.org_view(request, prefix, org))

    @router.delete("/orgs/{org_id}", summary="Delete an organization with no projects and no link")
    def delete_org(request: Request, org_id: str) -> Response:
        context = context_of(request)
        context.authorize(request, org_id, side, OrgRole.ORG_OWNER)
        orgs.delete_org(context.store, org_id, side)
        return no_content(request)

    @router.get("/orgs/{org_id}/settings", summary="Organization settings")
    def get_settings(request: Request, org_id: str) -> Response:
        _, org = context_of(request).authorize_org(request, org_id, side, OrgRole.ORG_READ_ONLY)
        return respond(request, views.org_settings_view(org))

    @router.patch("/orgs/{org_id}/settings", summary="Require an API access list for every key of the org",
                  openapi_extra=openapi_body(OrgSettingsPatch))
    async def patch_settings(request: Request, org_id: str) -> Response:
        context = context_of(request)
        await context.authenticator.authenticate_async(request)
        body = await parse_body(request, OrgSettingsPatch, allow_atlas_versioned=atlas)

        def update() -> dict[str, Any]:
            context.authorize(request, org_id, side, OrgRole.ORG_OWNER)
            org = orgs.set_access_list_required(context.store, org_id, side, body.apiAccessListRequired)
            return views.org_settings_view(org)

        return respond(request, await run_in_threadpool(update))

    # --- API keys ----------------------------------------------------------------------------

    @router.get("/orgs/{org_id}/apiKeys", summary="API keys of an organization")
    def list_keys(request: Request, org_id: str) -> Response:
        context = context_of(request)
        context.authorize(request, org_id, side, OrgRole.ORG_MEMBER)
        found = api_keys.list_api_keys(context.store, org_id)
        return respond(request, paginated(request, found, lambda key: views.api_key_view(request, prefix, key)))

    @router.post("/orgs/{org_id}/apiKeys", summary="Create an API key; its private key is shown only here",
                 openapi_extra=openapi_body(ApiKeyRequest))
    async def create_key(request: Request, org_id: str) -> Response:
        context = context_of(request)
        await context.authenticator.authenticate_async(request)
        body = await parse_body(request, ApiKeyRequest, read_only=READ_ONLY, allow_atlas_versioned=atlas)

        def create() -> dict[str, Any]:
            context.authorize(request, org_id, side, OrgRole.ORG_OWNER)
            created = api_keys.new_api_key(context.store, org_id, body.desc, [role.value for role in body.roles])
            return views.created_api_key_view(request, prefix, created)

        return respond(request, await run_in_threadpool(create), 201)

    @router.get("/orgs/{org_id}/apiKeys/{key_id}", summary="One API key")
    def get_key(request: Request, org_id: str, key_id: str) -> Response:
        context = context_of(request)
        context.authorize(request, org_id, side, OrgRole.ORG_MEMBER)
        return respond(request, views.api_key_view(request, prefix, api_keys.find_api_key(context.store, org_id, key_id)))

    @router.patch("/orgs/{org_id}/apiKeys/{key_id}", summary="Change an API key's description or roles",
                  openapi_extra=openapi_body(ApiKeyPatch))
    async def patch_key(request: Request, org_id: str, key_id: str) -> Response:
        context = context_of(request)
        await context.authenticator.authenticate_async(request)
        body = await parse_body(request, ApiKeyPatch, read_only=READ_ONLY, allow_atlas_versioned=atlas)

        def update() -> dict[str, Any]:
            context.authorize(request, org_id, side, OrgRole.ORG_OWNER)
            roles = [role.value for role in body.roles] if body.roles is not None else None
            updated = api_keys.update_api_key(context.store, org_id, key_id, body.desc, roles)
            return views.api_key_view(request, prefix, updated)

        return respond(request, await run_in_threadpool(update))

    @router.delete("/orgs/{org_id}/apiKeys/{key_id}", summary="Delete an API key")
    def delete_key(request: Request, org_id: str, key_id: str) -> Response:
        context = context_of(request)
        context.authorize(request, org_id, side, OrgRole.ORG_OWNER)
        api_keys.delete_api_key(context.store, org_id, key_id)
        return no_content(request)

    @router.get("/orgs/{org_id}/apiKeys/{key_id}/accessList", summary="Access list of an API key")
    def list_access(request: Request, org_id: str, key_id: str) -> Response:
        context = context_of(request)
        context.authorize(request, org_id, side, OrgRole.ORG_MEMBER)
        api_key = api_keys.find_api_key(context.store, org_id, key_id)
        return respond(request, paginated(
            request, api_key.access_list, lambda entry: views.access_list_entry_view(request, prefix, api_key, entry)))

    @router.post("/orgs/{org_id}/apiKeys/{key_id}/accessList",
                 summary="Add IP addresses or CIDR blocks to an API key's access list",
                 openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {
                     "type": "array", "items": AccessListItem.model_json_schema()}}}}})
    async def add_access(request: Request, org_id: str, key_id: str) -> Response:
        context = context_of(request)
        await context.authenticator.authenticate_async(request)
        payload = await read_json(request, allow_atlas_versioned=atlas)
        entries = _access_list_entries(payload)

        def add() -> dict[str, Any]:
            context.authorize(request, org_id, side, OrgRole.ORG_OWNER)
            api_key = api_keys.add_access_list_entries(context.store, org_id, key_id, entries)
            return paginated(
                request, api_key.access_list, lambda entry: views.access_list_entry_view(request, prefix, api_key, entry))

        return respond(request, await run_in_threadpool(add), 201)

    @router.delete("/orgs/{org_id}/apiKeys/{key_id}/accessList/{ip_or_cidr:path}",
                   summary="Remove one entry from an API key's access list")
    def delete_access(request: Request, org_id: str, key_id: str, ip_or_cidr: str) -> Response:
        context = context_of(request)
        context.authorize(request, org_id, side, OrgRole.ORG_OWNER)
        api_keys.delete_access_list_entry(context.store, org_id, key_id, ip_or_cidr)
        return no_content(request)

    # --- projects ----------------------------------------------------------------------------

    @router.get("/groups", summary="Projects of the calling key's organization")
    def list_groups(request: Request) -> Response:
        context = context_of(request)
        principal = context.authenticator.authenticate(request)
        if principal.purpose != "programmatic" or principal.org_side != side:
            raise ApiError(ErrorCode.USER_UNAUTHORIZED, "This API key cannot list projects here.")
        found = projects.list_projects(context.store, principal.org_id)
        return respond(request, paginated(request, found, lambda project: views.project_view(request, prefix, project)))

    @router.post("/groups", summary="Create a project in an organization", openapi_extra=openapi_body(CreateProjectRequest))
    async def create_group(request: Request) -> Response:
        context = context_of(request)
        await context.authenticator.authenticate_async(request)
        body = await parse_body(request, CreateProjectRequest, read_only=READ_ONLY, allow_atlas_versioned=atlas)

        def create() -> dict[str, Any]:
            context.authorize(request, body.orgId, side, OrgRole.ORG_GROUP_CREATOR)
            project = projects.create_project(context.store, body.orgId, body.name)
            context.inventory_changed(body.orgId)
            return views.project_view(request, prefix, project)

        return respond(request, await run_in_threadpool(create), 201)

    @router.get("/groups/{group_id}", summary="One project")
    def get_group(request: Request, group_id: str) -> Response:
        context = context_of(request)
        project = context.authorize_project(request, group_id, side, OrgRole.ORG_READ_ONLY)
        return respond(request, views.project_view(request, prefix, project))

    @router.delete("/groups/{group_id}", summary="Delete a project")
    def delete_group(request: Request, group_id: str) -> Response:
        context = context_of(request)
        project = context.authorize_project(request, group_id, side, OrgRole.ORG_OWNER)
        projects.delete_project(context.store, group_id, side)
        context.inventory_changed(project.org_id)
        return no_content(request)

    return router


def _access_list_entries(payload: Any) -> list[str]:
    items = payload if isinstance(payload, list) else [payload]
    entries: list[str] = []
    for item in items:
        if not isinstance(item, dict):
            raise ApiError(ErrorCode.INVALID_JSON, "Each access list entry must be an object with ipAddress or cidrBlock.")
        unknown = set(item) - {"ipAddress", "cidrBlock"}
        if unknown:
            name = sorted(unknown)[0]
            raise ApiError(ErrorCode.INVALID_ATTRIBUTE, f"Invalid attribute {name} specified.", [name])
        value = item.get("cidrBlock") or item.get("ipAddress")
        if not isinstance(value, str) or not value:
            raise ApiError(ErrorCode.MISSING_ATTRIBUTE, "Each access list entry needs ipAddress or cidrBlock.",
                           ["ipAddress"])
        entries.append(value)
    return entries
