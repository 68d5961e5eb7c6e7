"""JSON shapes of orgs, keys, access-list entries and projects, with their `links`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from starlette.requests import Request

from livemigrate.directory.api_keys import CreatedApiKey
from livemigrate.store.models import AccessListEntry, ApiKey, Organization, Project


def iso(moment: datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def url_for(request: Request, prefix: str, path: str) -> str:
    return f"{str(request.base_url).rstrip('/')}{prefix}{path}"


def self_links(request: Request, prefix: str, path: str) -> list[dict[str, str]]:
    return [{"rel": "self", "href": url_for(request, prefix, path)}]


def org_view(request: Request, prefix: str, org: Organization) -> dict[str, Any]:
    return {"id": org.id, "name": org.name, "isDeleted": False, "links": self_links(request, prefix, f"/orgs/{org.id}")}


def org_settings_view(org: Organization) -> dict[str, Any]:
    return {"apiAccessListRequired": org.api_access_list_required}


def api_key_view(request: Request, prefix: str, api_key: ApiKey) -> dict[str, Any]:
    return {
        "id": api_key.id,
        "desc": api_key.description,
        "publicKey": api_key.public_key,
        "roles": [{"orgId": api_key.org_id, "roleName": role} for role in api_key.roles],
        "links": self_links(request, prefix, f"/orgs/{api_key.org_id}/apiKeys/{api_key.id}"),
    }


def created_api_key_view(request: Request, prefix: str, created: CreatedApiKey) -> dict[str, Any]:
    return {**api_key_view(request, prefix, created.api_key), "privateKey": created.private_key}


def access_list_entry_view(request: Request, prefix: str, api_key: ApiKey, entry: AccessListEntry) -> dict[str, Any]:
    path = f"/orgs/{api_key.org_id}/apiKeys/{api_key.id}/accessList/{entry.cidr_block.replace('/', '%2F')}"
    return {
        "cidrBlock": entry.cidr_block,
        "ipAddress": entry.ip_address,
        "created": iso(entry.created_at),
        "links": self_links(request, prefix, path),
    }


def project_view(request: Request, prefix: str, project: Project) -> dict[str, Any]:
    return {
        "id": project.id,
        "name": project.name,
        "orgId": project.org_id,
        "created": iso(project.created_at),
        "links": self_links(request, prefix, f"/groups/{project.id}"),
    }
