"""Who may call a route of either API: every guard, and every check a guard makes, in one module.

    def delete_org(request: Request, org_id: OrgId, _owner: Annotated[Principal, org_role(SIDE, OrgRole.ORG_OWNER)])

A route says who may call it in its signature, and only there: a guard is a FastAPI dependency,
`Annotated[what it gives, guard(...)]` (or one of the aliases below: `Caller`, `LinkKey`, `AgentKey`),
and no handler checks a side, a role or an id's form itself. The guards:

- `org_role(side, role)`: `role` on the path's organization, of this side;
- `project_role(side, role)`: `role` on the organization of the path's project (gives the project);
- `own_org_role(side, role)`: `role` on the caller's own organization, for a route naming none;
- `body_org_role(side, role, model)`: `role` on the organization the body names (gives the body);
- `LinkKey`: the link key of the path's (target) organization; `AgentKey`: an agent key of the path's
  (source) project; `Caller`: any authenticated key.

Why a module of its own rather than `guards.py`, which held only the declarations: the checks lived in
four modules (the role check in `http/auth.py`, the org and project checks in `context.py`, the link
key's in `atlas/links.py`), so that reading a guard meant reading them all, and `guards.py` reached the
Atlas role for one of them. Here is the whole of it, and nothing else: it imports `context`, `http`
and `store` only, so that both roles (and the directory) import it without reaching anything above.
The console's pages have their own guards (`console/signed_in.py`): a session, not a digest, and
refusals that are pages.

Each guard runs once per request in one order: credentials (401, with a challenge; authenticated once
per request, `Authenticator.authenticate`), the ids' form (400), their existence (404), the role
(401), and only then the body (400) — so a caller without the right learns nothing from what its body
would have been told. Guards are plain callables, so FastAPI runs them on a worker thread: they read
the store, which must never happen on the event loop. Through `Security`, each guarded operation
declares the digest scheme in `/openapi.json`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPDigest
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from livemigrate.context import context_of
from livemigrate.http.auth import Principal
from livemigrate.http.bodies import parse_body
from livemigrate.http.errors import ApiError, ErrorCode
from livemigrate.http.openapi import GroupId, OrgId, SourceOrgId
from livemigrate.http.roles import OrgRole, satisfies
from livemigrate.ids import is_object_id
from livemigrate.store.database import Store
from livemigrate.store.models import Organization, Project
from livemigrate.vocabulary import PROGRAMMATIC_PURPOSE, SOURCE, TARGET

_digest = HTTPDigest(
    auto_error=False, scheme_name="digest",
    description="HTTP Digest (RFC 7616, MD5 or SHA-256, qop=auth) with an API key: the public key is the user "
                "name and the private key the password.")


# Declared by every guard, so that /openapi.json names the scheme; FastAPI's own reading of the header
# is not used (the authenticator reads it). Each guard authenticates itself rather than depending on
# `Caller`: a sync dependency is a trip to a worker thread, and one per request is enough.
DigestScheme = Annotated[HTTPAuthorizationCredentials | None, Security(_digest)]


# --- the checks ------------------------------------------------------------------------------------


def authenticated(request: Request) -> Principal:
    """The request's key (401 with a challenge if none is good), authenticated once per request."""
    return context_of(request).authenticator.authenticate(request)


def check_org_id(org_id: str) -> None:
    if not is_object_id(org_id):
        raise ApiError(ErrorCode.INVALID_ORG_ID, f"An invalid organization ID {org_id} was specified.", [org_id])


def check_group_id(group_id: str) -> None:
    if not is_object_id(group_id):
        raise ApiError(ErrorCode.INVALID_GROUP_ID, f"An invalid group ID {group_id} was specified.", [group_id])


def get_project(session: Session, group_id: str, side: str) -> Project:
    """The project of this side (400 for an id of the wrong form, 404 for one of no project here)."""
    check_group_id(group_id)
    row = session.execute(
        select(Project, Organization.side).join(Organization).where(Project.id == group_id)
    ).first()
    if row is None or row[1] != side:
        raise ApiError(ErrorCode.GROUP_NOT_FOUND, f"No group with ID {group_id} exists.", [group_id])
    return row[0]


def find_project(store: Store, group_id: str, side: str) -> Project:
    with store.read() as session:
        return get_project(session, group_id, side)


def require_org_role(principal: Principal, org_id: str, role: OrgRole) -> None:
    """Role failures answer 401, as Cloud Manager documents, naming the role required."""
    _require_programmatic(principal)
    if principal.org_id != org_id or not satisfies(principal.roles, role):
        raise ApiError(
            ErrorCode.USER_UNAUTHORIZED,
            f"The API key is not authorized for this resource: the {role.value} role on organization {org_id} is required.",
            [role.value],
        )


_SIDE_NAMES = {SOURCE: "a Cloud Manager (source)", TARGET: "an Atlas (target)"}


def require_same_side(principal: Principal, org_id: str, side: str) -> None:
    """A key of the other side's org is refused saying so: told only that a role is required, its user
    looked for a missing role rather than for the other organization's key."""
    if principal.purpose == PROGRAMMATIC_PURPOSE and principal.org_side != side:
        raise ApiError(
            ErrorCode.USER_UNAUTHORIZED,
            f"This API key belongs to {_SIDE_NAMES[principal.org_side]} organization ({principal.org_id}), and "
            f"organization {org_id} is {_SIDE_NAMES[side]} organization: use an API key of organization {org_id}.",
        )


def _require_programmatic(principal: Principal) -> None:
    if principal.purpose != PROGRAMMATIC_PURPOSE:
        reach = "the link channel" if principal.is_link_key else "its project's migration-host calls"
        raise ApiError(ErrorCode.USER_UNAUTHORIZED, f"This {principal.purpose} API key may only be used on {reach}.")


def require_link_key(principal: Principal, target_org_id: str) -> None:
    """Only a link key of this very target org may use the link channel."""
    if not principal.is_link_key or principal.org_id != target_org_id:
        raise ApiError(
            ErrorCode.USER_UNAUTHORIZED,
            f"Only the API key of a link-token issued by organization {target_org_id} may use the link channel.",
        )


def require_agent_key(principal: Principal, project_id: str) -> None:
    """Only an agent API key of this very project may speak for its migration hosts."""
    if not principal.is_agent_key or principal.project_id != project_id:
        raise ApiError(ErrorCode.USER_UNAUTHORIZED,
                       f"Only an agent API key of group {project_id} may call this resource.", [project_id])


def authorize_org(request: Request, org_id: str, side: str, role: OrgRole) -> Principal:
    """Authenticate, then check the org id's form, the org's existence on this side and the role — in that order."""
    principal = authenticated(request)
    check_org_id(org_id)
    if context_of(request).authenticator.org_side(org_id) != side:
        raise ApiError(ErrorCode.ORG_NOT_FOUND, f"Organization {org_id} not found.", [org_id])
    require_same_side(principal, org_id, side)
    require_org_role(principal, org_id, role)
    return principal


# --- the guards ------------------------------------------------------------------------------------
# The guards that take a side and a role are small frozen dataclasses rather than closures, so that what
# a route requires can be read back from the route itself (tests/test_layers.py reads every route's).


@dataclass(frozen=True)
class OrgRoleGuard:
    side: str
    role: OrgRole

    def __call__(self, request: Request, org_id: OrgId, _scheme: DigestScheme) -> Principal:
        return authorize_org(request, org_id, self.side, self.role)


def org_role(side: str, role: OrgRole) -> Any:
    """A programmatic key of `side` with `role` on the path's organization."""
    return Depends(OrgRoleGuard(side, role))


@dataclass(frozen=True)
class ProjectRoleGuard:
    side: str
    role: OrgRole

    def __call__(self, request: Request, group_id: GroupId, _scheme: DigestScheme) -> Project:
        authenticated(request)
        project = find_project(context_of(request).store, group_id, self.side)
        authorize_org(request, project.org_id, self.side, self.role)
        return project


def project_role(side: str, role: OrgRole) -> Any:
    """A programmatic key of `side` with `role` on the organization of the path's project; gives the project."""
    return Depends(ProjectRoleGuard(side, role))


@dataclass(frozen=True)
class OwnOrgRoleGuard:
    side: str
    role: OrgRole

    def __call__(self, request: Request, _scheme: DigestScheme) -> Principal:
        principal = authenticated(request)
        if principal.purpose != PROGRAMMATIC_PURPOSE or principal.org_side != self.side \
                or not satisfies(principal.roles, self.role):
            raise ApiError(ErrorCode.USER_UNAUTHORIZED,
                           f"This needs a programmatic API key of an organization of this API, with the "
                           f"{self.role.value} role.", [self.role.value])
        return principal


def own_org_role(side: str, role: OrgRole) -> Any:
    """A programmatic key of an organization of `side`, with `role` there: for the routes whose path names
    no organization (creating one, listing the caller's projects)."""
    return Depends(OwnOrgRoleGuard(side, role))


@dataclass(frozen=True)
class BodyOrgRoleGuard:
    side: str
    role: OrgRole
    model: type[BaseModel]
    org_field: str
    read_only: tuple[str, ...]
    allow_atlas_versioned: bool

    async def __call__(self, request: Request, _scheme: DigestScheme) -> BaseModel:
        await run_in_threadpool(authenticated, request)
        body = await parse_body(request, self.model, read_only=self.read_only,
                                allow_atlas_versioned=self.allow_atlas_versioned)
        await run_in_threadpool(authorize_org, request, str(getattr(body, self.org_field)), self.side, self.role)
        return body


def body_org_role(side: str, role: OrgRole, model: type[BaseModel], *, org_field: str = "orgId",
                  read_only: Iterable[str] = (), allow_atlas_versioned: bool = False) -> Any:
    """A programmatic key of `side` with `role` on the organization the body names (`org_field`); gives the
    body, parsed as `model`. The one guard that reads the body: the organization is only known from it, so
    a malformed body answers 400 before the role is checked."""
    return Depends(BodyOrgRoleGuard(side, role, model, org_field, tuple(read_only), allow_atlas_versioned))


def _caller(request: Request, _scheme: DigestScheme) -> Principal:
    return authenticated(request)


Caller = Annotated[Principal, Depends(_caller)]
"""Any authenticated key."""


def _link_key(request: Request, org_id: OrgId, source_org_id: SourceOrgId, _scheme: DigestScheme) -> Principal:
    caller = authenticated(request)
    check_org_id(org_id)
    check_org_id(source_org_id)
    require_link_key(caller, org_id)
    return caller


LinkKey = Annotated[Principal, Depends(_link_key)]
"""The link key of a link-token issued by the path's (target) organization, on one of its links (the path's
source organization): the link channel."""


def _agent_key(request: Request, group_id: GroupId, _scheme: DigestScheme) -> Principal:
    caller = authenticated(request)
    require_agent_key(caller, group_id)
    return caller


AgentKey = Annotated[Principal, Depends(_agent_key)]
"""An agent key of the path's (source) project: its migration hosts."""
