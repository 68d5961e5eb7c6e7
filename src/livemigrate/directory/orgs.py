"""Organizations and their settings."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from livemigrate.directory.api_keys import CreatedApiKey, create_api_key
from livemigrate.http.errors import ApiError, ErrorCode
from livemigrate.http.roles import OrgRole
from livemigrate.ids import new_object_id
from livemigrate.store.database import Store
from livemigrate.store.models import Organization, Project, SourceLink
from livemigrate.vocabulary import SIDES


@dataclass(frozen=True, slots=True)
class CreatedOrg:
    org: Organization
    api_key: CreatedApiKey | None


def get_org(session: Session, org_id: str, side: str) -> Organization:
    """The org of this side, or 404 ORG_NOT_FOUND (an org of the other side is not found here either)."""
    org = session.get(Organization, org_id)
    if org is None or org.side != side:
        raise ApiError(ErrorCode.ORG_NOT_FOUND, f"Organization {org_id} not found.", [org_id])
    return org


def find_org(store: Store, org_id: str, side: str) -> Organization:
    with store.read() as session:
        return get_org(session, org_id, side)


def create_org(store: Store, side: str, name: str, owner_key_description: str | None) -> CreatedOrg:
    """Create an org; with a key description, also an ORG_OWNER key for it, in the same transaction."""
    if side not in SIDES:
        raise ValueError(f"side must be one of {SIDES}")
    with store.write() as session:
        org = Organization(id=new_object_id(), side=side, name=name)
        session.add(org)
        session.flush()
        api_key = None
        if owner_key_description is not None:
            api_key = create_api_key(session, org.id, owner_key_description, [OrgRole.ORG_OWNER.value])
    return CreatedOrg(org, api_key)


def list_orgs(store: Store, side: str, org_ids: set[str]) -> list[Organization]:
    with store.read() as session:
        return list(
            session.scalars(
                select(Organization).where(Organization.side == side, Organization.id.in_(org_ids)).order_by(Organization.id)
            )
        )


def delete_org(store: Store, org_id: str, side: str) -> None:
    with store.write() as session:
        org = get_org(session, org_id, side)
        projects = session.scalar(select(func.count()).select_from(Project).where(Project.org_id == org_id)) or 0
        linked = session.get(SourceLink, org_id) is not None
        if projects or linked:
            raise ApiError(
                ErrorCode.CANNOT_DELETE_ORG_WITH_LINK_OR_PROJECTS,
                f"Organization {org_id} still has {projects} project(s){' and a migration link' if linked else ''}; "
                "delete them first.",
                [org_id],
            )
        session.delete(org)


def set_access_list_required(store: Store, org_id: str, side: str, required: bool) -> Organization:
    with store.write() as session:
        org = get_org(session, org_id, side)
        org.api_access_list_required = required
        return org
