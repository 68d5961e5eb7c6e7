"""A migration's page and its actions — cutover, cancel, and reverse (a completed reversible migration) —
over the services `…/cutover`, `DELETE …/liveMigrations/{id}` and `…/reverse` call, with the roles they
require.

The page names the migration as a person does — its source project and deployment, its destination
project and cluster — and says when it started and how fast it copies. What a cutover does about the
application's writes is said inside the page's live part for as long as the cutover runs, so that it goes
away by itself once the migration ends, rather than as a notice that outlives it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from livemigrate.atlas import migration_reverse, migration_views, migrations
from livemigrate.atlas.migration_routes import hosts_gone, window
from livemigrate.console.lag_chart import lag_chart
from livemigrate.console.rendering import back, page
from livemigrate.console.signed_in import CheckedForm, ConsoleRefusal, ProjectOwner, ProjectReader, Session
from livemigrate.console.views import SourceNames, cutover_under_way, ended_at, migration_row
from livemigrate.context import SignedIn, context_of
from livemigrate.http.errors import ApiError, ErrorCode
from livemigrate.store.models import Project

router = APIRouter(prefix="/console", include_in_schema=False)


def _migration_page(request: Request, active: SignedIn, project: Project, migration_id: str,
                    status: int = 200, **values: Any) -> Response:
    """The migration as it is now; also the answer to a refused action on it (`error`), at its own address."""
    context = context_of(request)
    try:
        migration = migrations.get_migration(context.store, project.id, migration_id, window(context),
                                             hosts_gone(context))
    except ApiError:
        raise ConsoleRefusal(404, f"No live migration {migration_id} in this project.") from None
    names = SourceNames.of(context.store, project.org_id)
    return page(request, "migration.html", active, status,
                page_path=f"/console/groups/{project.id}/migrations/{migration.id}", project=project,
                migration=migration_row(migration, project, names),
                chart=lag_chart(migration_views.lag_samples(migration), migration.created_at, ended_at(migration)),
                cutover=cutover_under_way(migration, names), **values)


@router.get("/groups/{group_id}/migrations/{migration_id}")
def migration_page(request: Request, migration_id: str, active: Session, project: ProjectReader) -> Response:
    return _migration_page(request, active, project, migration_id)


@router.post("/groups/{group_id}/migrations/{migration_id}/cutover")
async def cutover(request: Request, migration_id: str, active: Session, _form: CheckedForm,
                  project: ProjectOwner) -> Response:
    """Accepted, the page itself says what the cutover does while it runs (no notice that would stay once
    the migration is COMPLETE); refused, a notice says why."""
    migration_path = f"/console/groups/{project.id}/migrations/{migration_id}"
    try:
        await run_in_threadpool(migrations.request_cutover, context_of(request).store, project.id, migration_id,
                                window(context_of(request)))
    except ApiError as error:
        if error.code is ErrorCode.LIVE_MIGRATION_NOT_FOUND:
            raise ConsoleRefusal(404, error.detail) from None
        return back(migration_path, active, f"Cutover refused: {error.detail}")
    return back(migration_path, active)


@router.post("/groups/{group_id}/migrations/{migration_id}/cancel")
async def cancel(request: Request, migration_id: str, active: Session, _form: CheckedForm,
                 project: ProjectOwner) -> Response:
    """Cancelled in the name of the session's API key, as `DELETE …/liveMigrations/{id}` words it, so that
    the migration says the same "Cancelled by API key …" whichever way it was cancelled."""
    try:
        await run_in_threadpool(migrations.cancel_migration, context_of(request).store, project.id, migration_id,
                                window(context_of(request)), f"API key {active.principal.public_key}")
    except ApiError as error:
        if error.code is ErrorCode.LIVE_MIGRATION_NOT_FOUND:
            raise ConsoleRefusal(404, error.detail) from None
        return await run_in_threadpool(_migration_page, request, active, project, migration_id, error.status,
                                       error=error.detail)
    return back(f"/console/groups/{project.id}/migrations/{migration_id}", active,
                "Cancelled: its migration hosts stop writing to the destination at their next batch.")


@router.post("/groups/{group_id}/migrations/{migration_id}/reverse")
async def reverse(request: Request, migration_id: str, active: Session, _form: CheckedForm,
                  project: ProjectOwner) -> Response:
    """The reverse created, the browser goes to its page: it is the migration to follow now, and to cut back."""
    try:
        created = await run_in_threadpool(migration_reverse.reverse_migration, context_of(request).store, project.id,
                                          migration_id)
    except ApiError as error:
        if error.code is ErrorCode.LIVE_MIGRATION_NOT_FOUND:
            raise ConsoleRefusal(404, error.detail) from None
        return await run_in_threadpool(_migration_page, request, active, project, migration_id, error.status,
                                       error=error.detail)
    return back(f"/console/groups/{project.id}/migrations/{created.id}", active,
                "Reversing: every write made on the destination since the cutover flows back into the source. Cut "
                "back here once it is ready.")
