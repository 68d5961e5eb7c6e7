"""Who may call a route, declared in its signature as a FastAPI dependency.

    def delete_org(request: Request, org_id: OrgId, _: Annotated[Principal, org_role(side, OrgRole.ORG_OWNER)])

Every guard is a plain function, so FastAPI runs it on a worker thread: checking a key, an org or a
project reads the store, which must never happen on the event loop. Guards run before a route reads
its body, so the order of the answers is the same everywhere: credentials (401, with a challenge),
the id's form (400), its existence (404), the role (401), and only then the body (400). A caller
without the right learns nothing from what its body would have been told. Through `Security`, each
guarded operation declares the digest scheme in `/openapi.json`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPDigest
from starlette.requests import Request

from livemigrate.atlas.links import require_link_key
from livemigrate.context import context_of
from livemigrate.http.auth import Principal, check_org_id, require_agent_key
from livemigrate.http.openapi import GroupId, OrgId
from livemigrate.http.roles import OrgRole
from livemigrate.store.models import Project

_digest = HTTPDigest(
    auto_error=False, scheme_name="digest",
    description="HTTP Digest (RFC 7616, MD5 or SHA-256, qop=auth) with an API key: the public key is the user "
                "name and the private key the password.")


# Declared by every guard, so that /openapi.json names the scheme; FastAPI's own reading of the header
# is not used (the authenticator reads it). Each guard authenticates itself rather than depending on
# `Caller`: a sync dependency is a trip to a worker thread, and one per request is enough.
DigestScheme = Annotated[HTTPAuthorizationCredentials | None, Security(_digest)]


def _authenticated(request: Request) -> Principal:
    return context_of(request).authenticator.authenticate(request)


def _caller(request: Request, _scheme: DigestScheme) -> Principal:
    return _authenticated(request)


Caller = Annotated[Principal, Depends(_caller)]
"""Any authenticated key; the route checks what it may do (the body names the org, say)."""


def org_role(side: str, role: OrgRole) -> Any:
    """A programmatic key of `side` with `role` on the path's organization."""

    def guard(request: Request, org_id: OrgId, _scheme: DigestScheme) -> Principal:
        return context_of(request).authorize(request, org_id, side, role)

    return Depends(guard)


def project_role(side: str, role: OrgRole) -> Any:
    """A programmatic key of `side` with `role` on the organization of the path's project; gives the project."""

    def guard(request: Request, group_id: GroupId, _scheme: DigestScheme) -> Project:
        return context_of(request).authorize_project(request, group_id, side, role)

    return Depends(guard)


def _link_key(request: Request, org_id: OrgId, _scheme: DigestScheme) -> Principal:
    caller = _authenticated(request)
    check_org_id(org_id)
    require_link_key(caller, org_id)
    return caller


LinkKey = Annotated[Principal, Depends(_link_key)]
"""The link key of a link-token issued by the path's (target) organization: the link channel."""


def _agent_key(request: Request, group_id: GroupId, _scheme: DigestScheme) -> Principal:
    caller = _authenticated(request)
    require_agent_key(caller, group_id)
    return caller


AgentKey = Annotated[Principal, Depends(_agent_key)]
"""An agent key of the path's (source) project: its migration hosts."""
