"""Projects ("groups") of an organization."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from livemigrate.http.errors import ApiError, ErrorCode
from livemigrate.ids import is_object_id, new_object_id
from livemigrate.store.database import Store
from livemigrate.store.models import Organization, Project


def check_group_id(group_id: str) -> None:
    if not is_object_id(group_id):
        raise ApiError(ErrorCode.INVALID_GROUP_ID, f"An invalid group ID {group_id} was specified.", [group_id])


def get_project(session: Session, group_id: str, side: str) -> Project:
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


def list_projects(store: Store, org_id: str) -> list[Project]:
    with store.read() as session:
        return list(session.scalars(select(Project).where(Project.org_id == org_id).order_by(Project.id)))


def create_project(store: Store, org_id: str, name: str) -> Project:
    try:
        with store.write() as session:
            project = Project(id=new_object_id(), org_id=org_id, name=name)
            session.add(project)
            session.flush()
    except IntegrityError:
        raise ApiError(
            ErrorCode.DUPLICATE_GROUP_NAME, f"A project named {name!r} already exists in organization {org_id}.", [name]
        ) from None
    return project


def delete_project(store: Store, group_id: str, side: str) -> Project:
    with store.write() as session:
        project = get_project(session, group_id, side)
        session.delete(project)
        return project
