"""The web console under `/console`: pages rendered on the server from the same services the APIs call,
for the org of the API key that signed in, with the roles the APIs require for each action. This module
holds the organizations' and projects' pages and actions; a migration's are in `migration_pages.py`.

Each route declares what it requires in its signature, with the guards of `signed_in.py`: the role of
each page and each form action reads at its route (`OrgOwner`, `ProjectReader`…), and every form POST
names `CheckedForm` first, so that a missing or wrong CSRF token is refused (403) before anything is
read or changed. Pages do not exist for another org's ids (404), as the APIs answer. Secrets made here
(a link-token, an agent key) are shown once, in the answer to the POST that made them, and never again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from livemigrate.atlas import clusters, link_tokens, migrations
from livemigrate.atlas.migration_routes import (
    ClusterRequest,
    LiveMigrationRequest,
    hosts_gone,
    validate_in_background,
    window,
)
from livemigrate.atlas.routes import LinkTokenRequest, target_api_url
from livemigrate.cloud_manager import agents, hosts
from livemigrate.cloud_manager.inventory_routes import HostRequest
from livemigrate.cloud_manager.link import link_view
from livemigrate.cloud_manager.probe import HostAddress
from livemigrate.console import headers, migration_pages, signed_in
from livemigrate.console.rendering import back, page
from livemigrate.console.signed_in import CheckedForm, OrgOwner, OrgReader, ProjectOwner, ProjectReader, Session
from livemigrate.console.views import (
    SourceNames,
    link_token_rows,
    org_migrations,
    project_migrations,
    refused_while_running,
    validation_rows,
)
from livemigrate.context import SignedIn, context_of
from livemigrate.directory import projects
from livemigrate.http.errors import ApiError, ErrorCode
from livemigrate.store.models import Organization, Project
from livemigrate.vocabulary import SOURCE

router = APIRouter(prefix="/console", include_in_schema=False)


def install(app: FastAPI) -> None:
    app.mount("/console/static", StaticFiles(directory=Path(__file__).parent / "static"), name="console-static")
    app.include_router(signed_in.router)
    app.include_router(router)
    app.include_router(migration_pages.router)
    signed_in.add_exception_handlers(app)
    headers.install(app)


def _parsed(model: type[BaseModel], values: dict[str, Any]) -> Any:
    """The form as the API would parse the same body: the same checks, the same limits."""
    try:
        return model.model_validate(values)
    except ValidationError as error:
        first = error.errors()[0]
        raise ApiError(ErrorCode.INVALID_ATTRIBUTE, f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from None


@router.get("/")
def home(active: Session) -> Response:
    return RedirectResponse(f"/console/orgs/{active.principal.org_id}", status_code=303)


# --- organizations ---------------------------------------------------------------------------------


def _org_page(request: Request, active: SignedIn, org: Organization, status: int = 200,
              **values: Any) -> Response:
    context = context_of(request)
    store = context.store
    org_projects = projects.list_projects(store, org.id)
    if org.side == SOURCE:
        try:
            link: dict[str, object] | None = link_view(context.link_service.get_link(org.id))
        except ApiError:
            link = None
        return page(request, "source_org.html", active, status, page_path=f"/console/orgs/{org.id}", org=org,
                    projects=org_projects, link=link, **values)
    names = SourceNames.of(store, org.id)
    return page(request, "target_org.html", active, status, page_path=f"/console/orgs/{org.id}", org=org,
                projects=org_projects, available=list(names.by_id.values()),
                link_tokens=link_token_rows(store, org.id),
                migrations=org_migrations(store, org, names, window(context), hosts_gone(context)), **values)


@router.get("/orgs/{org_id}")
def org_page(request: Request, active: Session, org: OrgReader) -> Response:
    return _org_page(request, active, org)


@router.post("/orgs/{org_id}/projects")
async def create_project(request: Request, active: Session, form: CheckedForm, org: OrgOwner) -> Response:
    try:
        project = await run_in_threadpool(projects.create_project, context_of(request).store, org.id,
                                          form.get("name", "").strip())
    except ApiError as error:
        return await run_in_threadpool(_org_page, request, active, org, error.status, error=error.detail)
    return RedirectResponse(f"/console/groups/{project.id}", status_code=303)


@router.post("/orgs/{org_id}/link")
async def connect_link(request: Request, active: Session, form: CheckedForm, org: OrgOwner) -> Response:
    try:
        status = await context_of(request).link_service.connect(org.id, form.get("linkToken", "").strip())
    except ApiError as error:
        return await run_in_threadpool(_org_page, request, active, org, error.status,
                                       error=await run_in_threadpool(_refusal, request, org, error))
    return back(f"/console/orgs/{org.id}", active, f"Linked: {status}.")


@router.post("/orgs/{org_id}/link/delete")
async def disconnect_link(request: Request, active: Session, _form: CheckedForm, org: OrgOwner) -> Response:
    try:
        await context_of(request).link_service.delete(org.id)
    except ApiError as error:
        return await run_in_threadpool(_org_page, request, active, org, error.status,
                                       error=await run_in_threadpool(_refusal, request, org, error))
    return back(f"/console/orgs/{org.id}", active, "Disconnected.")


def _refusal(request: Request, org: Organization, error: ApiError) -> str:
    """A refused link change in the console's words: of the link, naming the projects whose migration runs."""
    return refused_while_running(error, projects.list_projects(context_of(request).store, org.id))


@router.post("/orgs/{org_id}/link-tokens")
async def create_link_token(request: Request, active: Session, form: CheckedForm, org: OrgOwner) -> Response:
    context = context_of(request)
    try:
        body = _parsed(LinkTokenRequest, {"accessListIps": form.get("accessListIps", "").replace(",", " ").split()})
        token = await run_in_threadpool(link_tokens.create_link_token, context.store, org.id, body.accessListIps,
                                        target_api_url(request))
    except ApiError as error:
        return await run_in_threadpool(_org_page, request, active, org, error.status, error=error.detail)
    return await run_in_threadpool(_org_page, request, active, org, 201, link_token=token)


@router.post("/orgs/{org_id}/link-tokens/revoke")
async def revoke_link_tokens(request: Request, active: Session, _form: CheckedForm, org: OrgOwner) -> Response:
    revoked = await run_in_threadpool(link_tokens.revoke_link_tokens, context_of(request).store, org.id)
    return back(f"/console/orgs/{org.id}", active, f"Revoked {revoked} link-token(s) and their links.")


# --- projects ----------------------------------------------------------------------------------------


def _project_page(request: Request, active: SignedIn, project: Project, status: int = 200,
                  **values: Any) -> Response:
    context = context_of(request)
    store, settings = context.store, context.settings
    common = {"project": project, "page_path": f"/console/groups/{project.id}", **values}
    if active.principal.org_side == SOURCE:
        return page(request, "source_project.html", active, status, hosts=hosts.list_hosts(store, project.id),
                    migration_hosts=[(host, agents.is_alive(host, settings.migration_host_alive_seconds))
                                     for host in agents.list_migration_hosts(store, project.id)],
                    agent_keys=agents.list_agent_keys(store, project.id), **common)
    names = SourceNames.of(store, project.org_id)
    return page(request, "target_project.html", active, status,
                clusters=clusters.list_clusters(store, project.id), validations=validation_rows(store, project, names),
                migrations=project_migrations(store, project, names, window(context), hosts_gone(context)),
                available=list(names.by_id.values()), **common)


@router.get("/groups/{group_id}")
def project_page(request: Request, active: Session, project: ProjectReader) -> Response:
    return _project_page(request, active, project)


@router.post("/groups/{group_id}/hosts")
async def add_host(request: Request, active: Session, form: CheckedForm, project: ProjectOwner) -> Response:
    context = context_of(request)
    try:
        body = _parsed(HostRequest, {"hostname": form.get("hostname", "").strip(),
                                     "port": _port(form.get("port") or "27017"),
                                     "username": form.get("username") or None,
                                     "password": form.get("password") or None,
                                     "authMechanismName": form.get("authMechanismName") or "NONE",
                                     "sslEnabled": form.get("sslEnabled") == "on"})
        host = await run_in_threadpool(hosts.add_host, context.store, context.secret_box, project,
                                       HostAddress(body.hostname, body.port, body.username, body.password,
                                                   body.authMechanismName, body.sslEnabled))
    except ApiError as error:
        return await run_in_threadpool(_project_page, request, active, project, error.status, error=error.detail)
    probe = (f"probe failed: {host.last_error}" if host.last_error
             else f"MongoDB {host.version}, deployment {host.cluster_name}")
    return back(f"/console/groups/{project.id}", active, f"Host {host.hostname}:{host.port} added — {probe}.")


def _port(given: str) -> int | str:
    """A number when it is one; otherwise as typed, for the API's own check to refuse with its message."""
    return int(given) if given.isdigit() else given


@router.post("/groups/{group_id}/agent-keys")
async def create_agent_key(request: Request, active: Session, form: CheckedForm, project: ProjectOwner) -> Response:
    created = await run_in_threadpool(agents.create_agent_key, context_of(request).store, project,
                                      form.get("desc", "").strip() or "migration host")
    return await run_in_threadpool(_project_page, request, active, project, 201, agent_key=created.key)


@router.post("/groups/{group_id}/clusters")
async def add_cluster(request: Request, active: Session, form: CheckedForm, project: ProjectOwner) -> Response:
    context = context_of(request)
    try:
        body = _parsed(ClusterRequest, {"name": form.get("name", "").strip(),
                                        "connectionString": form.get("connectionString", "").strip()})
        await run_in_threadpool(clusters.register_cluster, context.store, context.secret_box, project.id, body.name,
                                body.connectionString)
    except ApiError as error:
        return await run_in_threadpool(_project_page, request, active, project, error.status, error=error.detail)
    return back(f"/console/groups/{project.id}", active, f"Destination cluster {body.name} registered.")


def _migration_request(form: dict[str, str], project: Project) -> Any:
    """The create form, as the API's request body would say it (the same checks)."""
    source_group, _, source_cluster = form.get("source", "").partition("/")
    return _parsed(LiveMigrationRequest, {
        "source": {"clusterName": source_cluster, "groupId": source_group, "managedAuthentication": False,
                   "ssl": form.get("sourceSsl") == "on", "username": form.get("sourceUsername") or None,
                   "password": form.get("sourcePassword") or None},
        "destination": {"clusterName": form.get("destinationCluster", ""), "groupId": project.id,
                        "hostnameSchemaType": "PUBLIC"},
        "migrationHosts": [form.get("migrationHost", "")],
        "dropDestinationData": form.get("dropDestinationData") == "on",
        "changeCapture": form.get("changeCapture") or None}).to_request()  # empty: the migration host's setting


@router.post("/groups/{group_id}/migrations")
async def create_migration(request: Request, active: Session, form: CheckedForm, project: ProjectOwner) -> Response:
    context = context_of(request)
    try:
        migration = await run_in_threadpool(migrations.create_migration, context.store, context.secret_box,
                                            project.org_id, project.id, _migration_request(form, project))
    except ApiError as error:
        return await run_in_threadpool(_project_page, request, active, project, error.status, error=error.detail)
    return RedirectResponse(f"/console/groups/{project.id}/migrations/{migration.id}", status_code=303)


@router.post("/groups/{group_id}/validations")
async def validate_migration(request: Request, active: Session, form: CheckedForm, project: ProjectOwner) -> Response:
    """The same form, validated instead of created: PENDING at once, its outcome on the page when known."""
    try:
        migration_request = _migration_request(form, project)
    except ApiError as error:
        return await run_in_threadpool(_project_page, request, active, project, error.status, error=error.detail)
    validation = await validate_in_background(request, project, migration_request)
    return back(f"/console/groups/{project.id}", active, f"Validation {validation.id} started: its outcome appears below.")
