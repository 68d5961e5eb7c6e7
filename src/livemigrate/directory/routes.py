"""HTTP routes for orgs, API keys, access lists, org settings and projects — built once per side.

Both Cloud Manager (v1.0) and Atlas (v2) expose these with the same paths under their prefixes,
so one factory serves both; `side` keeps the two sets of orgs apart.

Without `from __future__ import annotations`, unlike the rest of the package: each route names its
guard in an `Annotated` alias local to the factory (its side is the factory's), and FastAPI reads a
route's annotations in the module's namespace, where a string naming a local alias would not resolve.
Evaluated when the route is defined, the alias is an object and needs no resolving.
"""

from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from livemigrate.authorization import Caller, body_org_role, org_role, own_org_role, project_role
from livemigrate.context import context_of
from livemigrate.directory import api_keys, orgs, projects, views
from livemigrate.http.access_list import IP_OR_CIDR_PATTERN
from livemigrate.http.auth import Principal
from livemigrate.http.bodies import JSON_MEDIA_TYPE, openapi_body, parse_body, read_json
from livemigrate.http.errors import ApiError, ErrorCode
from livemigrate.http.openapi import BODY, ORG, PROJECT, GroupId, IpOrCidr, KeyId, OrgId, errors
from livemigrate.http.pagination import paginated
from livemigrate.http.responses import no_content, respond
from livemigrate.http.roles import OrgRole
from livemigrate.ids import OBJECT_ID_PATTERN
from livemigrate.store.models import Project
from livemigrate.vocabulary import TARGET


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


ACCESS_LIST_FIELDS = ("ipAddress", "cidrBlock")
_ACCESS_LIST_ENTRY: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "minProperties": 1, "maxProperties": 1,
    "description": "One of ipAddress or cidrBlock; each takes an IP address or a CIDR block.",
    "properties": {field: {"type": "string", "pattern": IP_OR_CIDR_PATTERN} for field in ACCESS_LIST_FIELDS}}
ACCESS_LIST_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {JSON_MEDIA_TYPE: {"schema": {
    "anyOf": [{"type": "array", "items": _ACCESS_LIST_ENTRY}, _ACCESS_LIST_ENTRY]}}}}}
"""The access list body as `_access_list_entries` reads it: an array of entries (or one entry alone)."""


class OrgSettingsPatch(Strict):
    apiAccessListRequired: StrictBool


class CreateProjectRequest(Strict):
    name: StrictStr = Field(min_length=1, max_length=64)
    orgId: StrictStr = Field(json_schema_extra={"pattern": OBJECT_ID_PATTERN.pattern})


READ_ONLY = ("id", "links", "created", "publicKey", "privateKey", "isDeleted")


def directory_router(side: str, prefix: str) -> APIRouter:
    router = APIRouter(prefix=prefix, tags=[f"{side} directory"])
    atlas = side == TARGET
    OrgReader = Annotated[Principal, org_role(side, OrgRole.ORG_READ_ONLY)]
    OrgMember = Annotated[Principal, org_role(side, OrgRole.ORG_MEMBER)]
    OrgOwner = Annotated[Principal, org_role(side, OrgRole.ORG_OWNER)]
    ProjectReader = Annotated[Project, project_role(side, OrgRole.ORG_READ_ONLY)]
    ProjectOwner = Annotated[Project, project_role(side, OrgRole.ORG_OWNER)]
    OwnOrgReader = Annotated[Principal, own_org_role(side, OrgRole.ORG_READ_ONLY)]  # any programmatic key
    OwnOrgOwner = Annotated[Principal, own_org_role(side, OrgRole.ORG_OWNER)]
    # The organization is named in the body: the guard reads it (400 for a bad body before the role's 401).
    ProjectCreation = Annotated[CreateProjectRequest, body_org_role(
        side, OrgRole.ORG_GROUP_CREATOR, CreateProjectRequest, read_only=READ_ONLY, allow_atlas_versioned=atlas)]
    KEY = (*ORG, ErrorCode.INVALID_API_KEY_ID, ErrorCode.API_KEY_NOT_FOUND)

    # --- organizations ---------------------------------------------------------------------

    @router.get("/orgs", summary="Organizations the calling key belongs to", responses=errors())
    def list_orgs(request: Request, caller: Caller) -> Response:
        found = orgs.list_orgs(context_of(request).store, side, {caller.org_id})
        return respond(request, paginated(request, found, lambda org: views.org_view(request, prefix, org)))

    @router.post("/orgs", summary="Create an organization (and optionally an ORG_OWNER key for it)", status_code=201,
                 openapi_extra=openapi_body(CreateOrgRequest), responses=errors(BODY, ErrorCode.ATTRIBUTE_READ_ONLY))
    async def create_org(request: Request, _owner: OwnOrgOwner) -> Response:
        body = await parse_body(request, CreateOrgRequest, read_only=READ_ONLY, allow_atlas_versioned=atlas)

        def create() -> dict[str, Any]:
            created = orgs.create_org(context_of(request).store, side, body.name,
                                      body.apiKey.desc if body.apiKey else None)
            view = views.org_view(request, prefix, created.org)
            if created.api_key is not None:
                view["apiKey"] = views.created_api_key_view(request, prefix, created.api_key)
            return view

        return respond(request, await run_in_threadpool(create), 201)

    @router.get("/orgs/{org_id}", summary="One organization", responses=errors(ORG))
    def get_org(request: Request, org_id: OrgId, _reader: OrgReader) -> Response:
        return respond(request, views.org_view(request, prefix, orgs.find_org(context_of(request).store, org_id, side)))

    @router.delete("/orgs/{org_id}", summary="Delete an organization with no projects and no link", status_code=204,
                   responses=errors(ORG, ErrorCode.CANNOT_DELETE_ORG_WITH_LINK_OR_PROJECTS))
    def delete_org(request: Request, org_id: OrgId, _owner: OrgOwner) -> Response:
        orgs.delete_org(context_of(request).store, org_id, side)
        return no_content(request)

    @router.get("/orgs/{org_id}/settings", summary="Organization settings", responses=errors(ORG))
    def get_settings(request: Request, org_id: OrgId, _reader: OrgReader) -> Response:
        return respond(request, views.org_settings_view(orgs.find_org(context_of(request).store, org_id, side)))

    @router.patch("/orgs/{org_id}/settings", summary="Require an API access list for every key of the org",
                  openapi_extra=openapi_body(OrgSettingsPatch), responses=errors(ORG, BODY))
    async def patch_settings(request: Request, org_id: OrgId, _owner: OrgOwner) -> Response:
        body = await parse_body(request, OrgSettingsPatch, allow_atlas_versioned=atlas)
        org = await run_in_threadpool(orgs.set_access_list_required, context_of(request).store, org_id, side,
                                      body.apiAccessListRequired)
        return respond(request, views.org_settings_view(org))

    # --- API keys ----------------------------------------------------------------------------

    @router.get("/orgs/{org_id}/apiKeys", summary="API keys of an organization", responses=errors(ORG))
    def list_keys(request: Request, org_id: OrgId, _member: OrgMember) -> Response:
        found = api_keys.list_api_keys(context_of(request).store, org_id)
        return respond(request, paginated(request, found, lambda key: views.api_key_view(request, prefix, key)))

    @router.post("/orgs/{org_id}/apiKeys", summary="Create an API key; its private key is shown only here",
                 status_code=201, openapi_extra=openapi_body(ApiKeyRequest),
                 responses=errors(ORG, BODY, ErrorCode.ATTRIBUTE_READ_ONLY))
    async def create_key(request: Request, org_id: OrgId, _owner: OrgOwner) -> Response:
        body = await parse_body(request, ApiKeyRequest, read_only=READ_ONLY, allow_atlas_versioned=atlas)
        created = await run_in_threadpool(api_keys.new_api_key, context_of(request).store, org_id, body.desc,
                                          [role.value for role in body.roles])
        return respond(request, views.created_api_key_view(request, prefix, created), 201)

    @router.get("/orgs/{org_id}/apiKeys/{key_id}", summary="One API key", responses=errors(KEY))
    def get_key(request: Request, org_id: OrgId, key_id: KeyId, _member: OrgMember) -> Response:
        found = api_keys.find_api_key(context_of(request).store, org_id, key_id)
        return respond(request, views.api_key_view(request, prefix, found))

    @router.patch("/orgs/{org_id}/apiKeys/{key_id}", summary="Change an API key's description or roles",
                  openapi_extra=openapi_body(ApiKeyPatch), responses=errors(KEY, BODY, ErrorCode.ATTRIBUTE_READ_ONLY))
    async def patch_key(request: Request, org_id: OrgId, key_id: KeyId, _owner: OrgOwner) -> Response:
        body = await parse_body(request, ApiKeyPatch, read_only=READ_ONLY, allow_atlas_versioned=atlas)
        roles = [role.value for role in body.roles] if body.roles is not None else None
        updated = await run_in_threadpool(api_keys.update_api_key, context_of(request).store, org_id, key_id,
                                          body.desc, roles)
        return respond(request, views.api_key_view(request, prefix, updated))

    @router.delete("/orgs/{org_id}/apiKeys/{key_id}", summary="Delete an API key", status_code=204,
                   responses=errors(KEY))
    def delete_key(request: Request, org_id: OrgId, key_id: KeyId, _owner: OrgOwner) -> Response:
        api_keys.delete_api_key(context_of(request).store, org_id, key_id)
        return no_content(request)

    @router.get("/orgs/{org_id}/apiKeys/{key_id}/accessList", summary="Access list of an API key",
                responses=errors(KEY))
    def list_access(request: Request, org_id: OrgId, key_id: KeyId, _member: OrgMember) -> Response:
        api_key = api_keys.find_api_key(context_of(request).store, org_id, key_id)
        return respond(request, paginated(
            request, api_key.access_list, lambda entry: views.access_list_entry_view(request, prefix, api_key, entry)))

    @router.post("/orgs/{org_id}/apiKeys/{key_id}/accessList",
                 summary="Add IP addresses or CIDR blocks to an API key's access list", status_code=201,
                 openapi_extra=ACCESS_LIST_BODY,
                 responses=errors(KEY, BODY, ErrorCode.INVALID_IP_ADDRESS_OR_CIDR_NOTATION))
    async def add_access(request: Request, org_id: OrgId, key_id: KeyId, _owner: OrgOwner) -> Response:
        payload = await read_json(request, allow_atlas_versioned=atlas)
        entries = _access_list_entries(payload)

        def add() -> dict[str, Any]:
            api_key = api_keys.add_access_list_entries(context_of(request).store, org_id, key_id, entries)
            return paginated(
                request, api_key.access_list, lambda entry: views.access_list_entry_view(request, prefix, api_key, entry))

        return respond(request, await run_in_threadpool(add), 201)

    @router.delete("/orgs/{org_id}/apiKeys/{key_id}/accessList/{ip_or_cidr:path}",
                   summary="Remove one entry from an API key's access list", status_code=204,
                   responses=errors(KEY, ErrorCode.INVALID_IP_ADDRESS_OR_CIDR_NOTATION,
                                    ErrorCode.ACCESS_LIST_ENTRY_NOT_FOUND))
    def delete_access(request: Request, org_id: OrgId, key_id: KeyId, ip_or_cidr: IpOrCidr,
                      _owner: OrgOwner) -> Response:
        api_keys.delete_access_list_entry(context_of(request).store, org_id, key_id, ip_or_cidr)
        return no_content(request)

    # --- projects ----------------------------------------------------------------------------

    @router.get("/groups", summary="Projects of the calling key's organization", responses=errors())
    def list_groups(request: Request, caller: OwnOrgReader) -> Response:
        found = projects.list_projects(context_of(request).store, caller.org_id)
        return respond(request, paginated(request, found, lambda project: views.project_view(request, prefix, project)))

    @router.post("/groups", summary="Create a project in an organization", status_code=201,
                 openapi_extra=openapi_body(CreateProjectRequest),
                 responses=errors(ORG, BODY, ErrorCode.ATTRIBUTE_READ_ONLY, ErrorCode.DUPLICATE_GROUP_NAME))
    async def create_group(request: Request, body: ProjectCreation) -> Response:
        context = context_of(request)

        def create() -> dict[str, Any]:
            return views.project_view(request, prefix, projects.create_project(context.store, body.orgId, body.name))

        return respond(request, await run_in_threadpool(create), 201)

    @router.get("/groups/{group_id}", summary="One project", responses=errors(PROJECT))
    def get_group(request: Request, group_id: GroupId, project: ProjectReader) -> Response:
        return respond(request, views.project_view(request, prefix, project))

    @router.delete("/groups/{group_id}", summary="Delete a project", status_code=204, responses=errors(PROJECT))
    def delete_group(request: Request, group_id: GroupId, _project: ProjectOwner) -> Response:
        projects.delete_project(context_of(request).store, group_id, side)
        return no_content(request)

    return router


def _access_list_entries(payload: Any) -> list[str]:
    """The values of an access list body, refused as `ACCESS_LIST_BODY` says (the values' notation is
    the service's to check): an object per entry, naming exactly one of ipAddress and cidrBlock, as a string."""
    items = payload if isinstance(payload, list) else [payload]
    entries: list[str] = []
    for item in items:
        if not isinstance(item, dict):
            raise ApiError(ErrorCode.INVALID_JSON, "Each access list entry must be an object with ipAddress or cidrBlock.")
        unknown = set(item) - set(ACCESS_LIST_FIELDS)
        if unknown:
            name = sorted(unknown)[0]
            raise ApiError(ErrorCode.INVALID_ATTRIBUTE, f"Invalid attribute {name} specified.", [name])
        if not item:
            raise ApiError(ErrorCode.MISSING_ATTRIBUTE, "Each access list entry needs ipAddress or cidrBlock.",
                           ["ipAddress"])
        if len(item) > 1:
            raise ApiError(ErrorCode.INVALID_ATTRIBUTE,
                           "Invalid attribute cidrBlock specified: an access list entry takes ipAddress or cidrBlock, "
                           "not both.", ["cidrBlock"])
        name, value = next(iter(item.items()))
        if not isinstance(value, str):
            raise ApiError(ErrorCode.INVALID_ATTRIBUTE, f"Invalid attribute {name} specified: a string is expected.",
                           [name])
        entries.append(value)
    return entries
