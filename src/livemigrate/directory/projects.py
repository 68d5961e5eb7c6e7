"""Projects ("groups") of an organization. Finding one by its id is the project guard's
(`authorization.get_project`), which the routes ask before anything here."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from livemigrate.authorization import get_project
from livemigrate.http.errors import ApiError, ErrorCode
from livemigrate.ids import new_object_id
from livemigrate.store.database import Store
from livemigrate.store.models import Project


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
