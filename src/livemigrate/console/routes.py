"""The web console under `/console`: pages rendered on the server from the same services the APIs call,
for the org of the API key that signed in, with the roles the APIs require for each action.

Every state-changing action is a form POST carrying the session's CSRF token; a missing or wrong token
is refused (403) before anything is read or changed. Pages do not exist for another org's ids (404),
as the APIs answer. Secrets made here (a link-token, an agent key) are shown once, in the answer to
the POST that made them, and never again.
"""

from __future__ import annotations

import hmac
import secrets
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qsl, quote

from fastapi import APIRouter, Depends, FastAPI
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from livemigrate.atlas import clusters, link_tokens, links, migration_views, migrations, validations
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
from livemigrate.cloud_manager.link import LinkService, link_view
from livemigrate.cloud_manager.probe import HostAddress
from livemigrate.console.lag_chart import lag_chart
from livemigrate.console.sessions import ActiveSession, ConsoleSessions
from livemigrate.context import context_of
from livemigrate.directory import orgs, projects
from livemigrate.http.errors import ApiError, ErrorCode
from livemigrate.http.roles import OrgRole, satisfies
from livemigrate.store.models import Organization, Project
from livemigrate.vocabulary import SOURCE

COOKIE = "livemigrate_console"
SIGN_IN_COOKIE = "livemigrate_console_sign_in"
router = APIRouter(prefix="/console", include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")


class SignInRequired(Exception):
    """No session, or an expired one: the browser goes to the sign-in page."""


class ConsoleRefusal(Exception):
    """An answer that is a page saying why: 403 (CSRF, role, access list), 404 (another org's id)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def install(app: FastAPI, sessions: ConsoleSessions) -> None:
    app.state.console_sessions = sessions
    app.mount("/console/static", StaticFiles(directory=Path(__file__).parent / "static"), name="console-static")
    app.include_router(router)

    async def to_sign_in(request: Request, _: Exception) -> Response:
        return RedirectResponse(f"/console/sign-in?next={quote(request.url.path)}", status_code=303)

    async def refusal(request: Request, error: Exception) -> Response:
        assert isinstance(error, ConsoleRefusal)
        return templates.TemplateResponse(request, "refused.html", {"message": error.message},
                                          status_code=error.status)

    app.add_exception_handler(SignInRequired, to_sign_in)
    app.add_exception_handler(ConsoleRefusal, refusal)


# --- who is asking ---------------------------------------------------------------------------------


def _sessions(request: Request) -> ConsoleSessions:
    return request.app.state.console_sessions  # type: ignore[no-any-return]


def _caller_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def _active_session(request: Request) -> ActiveSession:
    """A plain function: FastAPI runs it on a worker thread, where reading the store belongs."""
    try:
        active = _sessions(request).resume(request.cookies.get(COOKIE), _caller_ip(request))
    except ApiError as error:  # the key was deleted or revoked, or this address is off its access list
        raise ConsoleRefusal(403, error.detail) from None
    if active is None:
        raise SignInRequired()
    return active


Session = Annotated[ActiveSession, Depends(_active_session)]


def _own_org(request: Request, active: ActiveSession, org_id: str) -> Organization:
    if org_id != active.principal.org_id:
        raise ConsoleRefusal(404, f"No organization {org_id} here.")
    return orgs.find_org(context_of(request).store, org_id, active.principal.org_side)


def _own_project(request: Request, active: ActiveSession, group_id: str) -> Project:
    try:
        project = projects.find_project(context_of(request).store, group_id, active.principal.org_side)
    except ApiError:
        project = None
    if project is None or project.org_id != active.principal.org_id:
        raise ConsoleRefusal(404, f"No project {group_id} here.")
    return project


def _require(active: ActiveSession, role: OrgRole) -> None:
    if not satisfies(active.principal.roles, role):
        raise ConsoleRefusal(403, f"This needs the {role.value} role; the key you signed in with has "
                                  f"{', '.join(sorted(active.principal.roles)) or 'none'}.")


async def _posted(request: Request) -> dict[str, str]:
    """A urlencoded form body. (Parsed here, not by Starlette, whose form parser needs python-multipart
    even for a plain urlencoded body.)"""
    return dict(parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True))


async def _form(request: Request, active: ActiveSession) -> dict[str, str]:
    """The POSTed form, once its CSRF token matched the session's."""
    form = await _posted(request)
    if not hmac.compare_digest(form.get("csrf", ""), active.csrf_token):
        raise ConsoleRefusal(403, "This form's CSRF token is missing or wrong: nothing was changed. Reload the page "
                                  "and try again.")
    return form


async def _org_action(request: Request, active: ActiveSession, org_id: str) -> tuple[dict[str, str], Organization]:
    """An owner's action on the org: its form (CSRF checked first), the org, and the role checked."""
    form = await _form(request, active)
    org = await run_in_threadpool(_own_org, request, active, org_id)
    _require(active, OrgRole.ORG_OWNER)
    return form, org


async def _project_action(request: Request, active: ActiveSession, group_id: str) -> tuple[dict[str, str], Project]:
    """An owner's action in a project: its form (CSRF checked first), the project, and the role checked."""
    form = await _form(request, active)
    project = await run_in_threadpool(_own_project, request, active, group_id)
    _require(active, OrgRole.ORG_OWNER)
    return form, project


def _parsed(model: type[BaseModel], values: dict[str, Any]) -> Any:
    """The form as the API would parse the same body: the same checks, the same limits."""
    try:
        return model.model_validate(values)
    except ValidationError as error:
        first = error.errors()[0]
        raise ApiError(ErrorCode.INVALID_ATTRIBUTE, f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from None


def _page(request: Request, name: str, active: ActiveSession | None, status: int = 200, *,
          page_path: str | None = None, **values: Any) -> Response:
    """`page_path`: where the page lives when a POST answers with it (a secret shown once): the browser
    shows that address, so that a reload, and the live refresh, ask for the page and post nothing again."""
    return templates.TemplateResponse(request, name, {"session": active, "page_path": page_path or request.url.path,
                                                      **values}, status_code=status)


def _back(path: str, notice: str) -> Response:
    return RedirectResponse(f"{path}?notice={quote(notice)}", status_code=303)


# --- signing in and out ----------------------------------------------------------------------------


def _sign_in_page(request: Request, status: int = 200, *, next_path: str = "/console/", error: str | None = None
                  ) -> Response:
    """The form, with a fresh sign-in token in it and in a cookie: a page of another site cannot read the
    cookie (nor send it, SameSite=Strict), so it cannot sign a browser in with a key of its own choosing."""
    token = secrets.token_urlsafe(24)
    answer = _page(request, "sign_in.html", None, status, next=next_path, sign_in_token=token, error=error)
    answer.set_cookie(SIGN_IN_COOKIE, token, max_age=3600, path="/console/sign-in", httponly=True,
                      samesite="strict", secure=request.url.scheme == "https")
    return answer


@router.get("/sign-in")
def sign_in_page(request: Request, next: str = "/console/") -> Response:  # noqa: A002 - the query's name
    return _sign_in_page(request, next_path=next if next.startswith("/console/") else "/console/")


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    form = await _posted(request)
    sessions = _sessions(request)
    target = form.get("next", "/console/")
    expected = request.cookies.get(SIGN_IN_COOKIE, "")
    if not expected or not hmac.compare_digest(form.get("signInToken", ""), expected):
        return _sign_in_page(request, 403, error="This sign-in form has expired or did not come from this console: "
                                                 "sign in again.")
    try:
        token = await run_in_threadpool(sessions.sign_in, form.get("publicKey", "").strip(),
                                        form.get("privateKey", "").strip(), _caller_ip(request))
    except ApiError as error:
        message = ("That API key pair was not accepted." if error.code is ErrorCode.USER_UNAUTHORIZED
                   else error.detail)
        return _sign_in_page(request, 401 if error.code is ErrorCode.USER_UNAUTHORIZED else 403, error=message)
    answer = RedirectResponse(target if target.startswith("/console/") else "/console/", status_code=303)
    answer.set_cookie(COOKIE, token, max_age=int(sessions.lifetime.total_seconds()), path="/console",
                      httponly=True, samesite="strict", secure=request.url.scheme == "https")
    answer.delete_cookie(SIGN_IN_COOKIE, path="/console/sign-in")
    return answer


@router.post("/sign-out")
async def sign_out(request: Request, active: Session) -> Response:
    await _form(request, active)
    await run_in_threadpool(_sessions(request).sign_out, request.cookies.get(COOKIE, ""))
    answer = RedirectResponse("/console/sign-in", status_code=303)
    answer.delete_cookie(COOKIE, path="/console")
    return answer


@router.get("/")
def home(active: Session) -> Response:
    return RedirectResponse(f"/console/orgs/{active.principal.org_id}", status_code=303)


# --- organizations ---------------------------------------------------------------------------------


def _link_service(request: Request) -> LinkService:
    return request.app.state.link_service  # type: ignore[no-any-return]


def _org_page(request: Request, active: ActiveSession, org: Organization, status: int = 200,
              **values: Any) -> Response:
    store = context_of(request).store
    org_projects = projects.list_projects(store, org.id)
    if org.side == SOURCE:
        try:
            link: dict[str, object] | None = link_view(_link_service(request).get_link(org.id))
        except ApiError:
            link = None
        return _page(request, "source_org.html", active, status, page_path=f"/console/orgs/{org.id}", org=org,
                     projects=org_projects, link=link,
                     notice=request.query_params.get("notice"), **values)
    return _page(request, "target_org.html", active, status, page_path=f"/console/orgs/{org.id}", org=org,
                 projects=org_projects,
                 available=links.available_projects(store, org.id), notice=request.query_params.get("notice"),
                 **values)


@router.get("/orgs/{org_id}")
def org_page(request: Request, org_id: str, active: Session) -> Response:
    return _org_page(request, active, _own_org(request, active, org_id))


@router.post("/orgs/{org_id}/projects")
async def create_project(request: Request, org_id: str, active: Session) -> Response:
    form, org = await _org_action(request, active, org_id)
    try:
        project = await run_in_threadpool(projects.create_project, context_of(request).store, org.id,
                                          form.get("name", "").strip())
    except ApiError as error:
        return await run_in_threadpool(_org_page, request, active, org, error.status, error=error.detail)
    return RedirectResponse(f"/console/groups/{project.id}", status_code=303)


@router.post("/orgs/{org_id}/link")
async def connect_link(request: Request, org_id: str, active: Session) -> Response:
    form, org = await _org_action(request, active, org_id)
    try:
        status = await _link_service(request).connect(org.id, form.get("linkToken", "").strip())
    except ApiError as error:
        return await run_in_threadpool(_org_page, request, active, org, error.status, error=error.detail)
    return _back(f"/console/orgs/{org.id}", f"Linked: {status}.")


@router.post("/orgs/{org_id}/link/delete")
async def disconnect_link(request: Request, org_id: str, active: Session) -> Response:
    _, org = await _org_action(request, active, org_id)
    try:
        await _link_service(request).delete(org.id)
    except ApiError as error:
        explained = error.detail
        if error.code is ErrorCode.CANNOT_DELETE_ORG_LINK_WITH_RUNNING_LIVE_EXPORT:
            explained += (" A migration of this organization is still running: cut it over (or let it end) on the "
                          "target first, then disconnect.")
        return await run_in_threadpool(_org_page, request, active, org, error.status, error=explained)
    return _back(f"/console/orgs/{org.id}", "Disconnected.")


@router.post("/orgs/{org_id}/link-tokens")
async def create_link_token(request: Request, org_id: str, active: Session) -> Response:
    form, org = await _org_action(request, active, org_id)
    context = context_of(request)
    try:
        body = _parsed(LinkTokenRequest, {"accessListIps": form.get("accessListIps", "").replace(",", " ").split()})
        token = await run_in_threadpool(link_tokens.create_link_token, context.store, org.id, body.accessListIps,
                                        target_api_url(request))
    except ApiError as error:
        return await run_in_threadpool(_org_page, request, active, org, error.status, error=error.detail)
    return await run_in_threadpool(_org_page, request, active, org, 201, link_token=token)


@router.post("/orgs/{org_id}/link-tokens/revoke")
async def revoke_link_tokens(request: Request, org_id: str, active: Session) -> Response:
    _, org = await _org_action(request, active, org_id)
    revoked = await run_in_threadpool(link_tokens.revoke_link_tokens, context_of(request).store, org.id)
    return _back(f"/console/orgs/{org.id}", f"Revoked {revoked} link-token(s) and their links.")


# --- projects ----------------------------------------------------------------------------------------


def _project_page(request: Request, active: ActiveSession, project: Project, status: int = 200,
                  **values: Any) -> Response:
    context = context_of(request)
    store, settings = context.store, context.settings
    common = {"project": project, "notice": request.query_params.get("notice"),
              "page_path": f"/console/groups/{project.id}", **values}
    if active.principal.org_side == SOURCE:
        return _page(request, "source_project.html", active, status, hosts=hosts.list_hosts(store, project.id),
                     migration_hosts=[(host, agents.is_alive(host, settings.migration_host_alive_seconds))
                                      for host in agents.list_migration_hosts(store, project.id)],
                     agent_keys=agents.list_agent_keys(store, project.id), **common)
    return _page(request, "target_project.html", active, status,
                 clusters=clusters.list_clusters(store, project.id),
                 validations=[validations.validation_view(validation)
                              for validation in validations.recent_validations(store, project.id)],
                 migrations=[migration_views.migration_view(migration) for migration in
                             migrations.list_migrations(store, project.id, window(context_of(request)),
                                                        hosts_gone(context_of(request)))],
                 available=links.available_projects(store, project.org_id), **common)


@router.get("/groups/{group_id}")
def project_page(request: Request, group_id: str, active: Session) -> Response:
    return _project_page(request, active, _own_project(request, active, group_id))


@router.post("/groups/{group_id}/hosts")
async def add_host(request: Request, group_id: str, active: Session) -> Response:
    form, project = await _project_action(request, active, group_id)
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
    return _back(f"/console/groups/{project.id}", f"Host {host.hostname}:{host.port} added — {probe}.")


def _port(given: str) -> int | str:
    """A number when it is one; otherwise as typed, for the API's own check to refuse with its message."""
    return int(given) if given.isdigit() else given


@router.post("/groups/{group_id}/agent-keys")
async def create_agent_key(request: Request, group_id: str, active: Session) -> Response:
    form, project = await _project_action(request, active, group_id)
    created = await run_in_threadpool(agents.create_agent_key, context_of(request).store, project,
                                      form.get("desc", "").strip() or "migration host")
    return await run_in_threadpool(_project_page, request, active, project, 201, agent_key=created.key)


@router.post("/groups/{group_id}/clusters")
async def add_cluster(request: Request, group_id: str, active: Session) -> Response:
    form, project = await _project_action(request, active, group_id)
    context = context_of(request)
    try:
        body = _parsed(ClusterRequest, {"name": form.get("name", "").strip(),
                                        "connectionString": form.get("connectionString", "").strip()})
        await run_in_threadpool(clusters.register_cluster, context.store, context.secret_box, project.id, body.name,
                                body.connectionString)
    except ApiError as error:
        return await run_in_threadpool(_project_page, request, active, project, error.status, error=error.detail)
    return _back(f"/console/groups/{project.id}", f"Destination cluster {body.name} registered.")


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
async def create_migration(request: Request, group_id: str, active: Session) -> Response:
    form, project = await _project_action(request, active, group_id)
    context = context_of(request)
    try:
        migration = await run_in_threadpool(migrations.create_migration, context.store, context.secret_box,
                                            project.org_id, project.id, _migration_request(form, project))
    except ApiError as error:
        return await run_in_threadpool(_project_page, request, active, project, error.status, error=error.detail)
    return RedirectResponse(f"/console/groups/{project.id}/migrations/{migration.id}", status_code=303)


@router.post("/groups/{group_id}/validations")
async def validate_migration(request: Request, group_id: str, active: Session) -> Response:
    """The same form, validated instead of created: PENDING at once, its outcome on the page when known."""
    form, project = await _project_action(request, active, group_id)
    try:
        migration_request = _migration_request(form, project)
    except ApiError as error:
        return await run_in_threadpool(_project_page, request, active, project, error.status, error=error.detail)
    validation = await validate_in_background(request, project, migration_request)
    return _back(f"/console/groups/{project.id}", f"Validation {validation.id} started: its outcome appears below.")


# --- a migration -------------------------------------------------------------------------------------


def _migration_page(request: Request, active: ActiveSession, project: Project, migration_id: str,
                    status: int = 200, **values: Any) -> Response:
    """The migration as it is now; also the answer to a refused action on it (`error`), at its own address."""
    try:
        migration = migrations.get_migration(context_of(request).store, project.id, migration_id,
                                             window(context_of(request)), hosts_gone(context_of(request)))
    except ApiError:
        raise ConsoleRefusal(404, f"No live migration {migration_id} in this project.") from None
    return _page(request, "migration.html", active, status,
                 page_path=f"/console/groups/{project.id}/migrations/{migration.id}", project=project,
                 migration=migration_views.migration_view(migration), chart=lag_chart(migration_views.lag_samples(migration)),
                 notice=request.query_params.get("notice"), **values)


@router.get("/groups/{group_id}/migrations/{migration_id}")
def migration_page(request: Request, group_id: str, migration_id: str, active: Session) -> Response:
    return _migration_page(request, active, _own_project(request, active, group_id), migration_id)


@router.post("/groups/{group_id}/migrations/{migration_id}/cutover")
async def cutover(request: Request, group_id: str, migration_id: str, active: Session) -> Response:
    _, project = await _project_action(request, active, group_id)
    page = f"/console/groups/{project.id}/migrations/{migration_id}"
    try:
        detail = await run_in_threadpool(migrations.request_cutover, context_of(request).store, project.id,
                                         migration_id, window(context_of(request)))
    except ApiError as error:
        if error.code is ErrorCode.LIVE_MIGRATION_NOT_FOUND:
            raise ConsoleRefusal(404, error.detail) from None
        return _back(page, f"Cutover refused: {error.detail}")
    return _back(page, f"Cutover requested: the migration drains, verifies and completes. {detail}")


@router.post("/groups/{group_id}/migrations/{migration_id}/cancel")
async def cancel(request: Request, group_id: str, migration_id: str, active: Session) -> Response:
    """Cancelled in the name of the session's API key, as `DELETE …/liveMigrations/{id}` words it, so that
    the migration says the same "Cancelled by API key …" whichever way it was cancelled."""
    _, project = await _project_action(request, active, group_id)
    try:
        await run_in_threadpool(migrations.cancel_migration, context_of(request).store, project.id, migration_id,
                                window(context_of(request)), f"API key {active.principal.public_key}")
    except ApiError as error:
        if error.code is ErrorCode.LIVE_MIGRATION_NOT_FOUND:
            raise ConsoleRefusal(404, error.detail) from None
        return await run_in_threadpool(_migration_page, request, active, project, migration_id, error.status,
                                       error=error.detail)
    return _back(f"/console/groups/{project.id}/migrations/{migration_id}",
                 "Cancelled: its migration hosts stop writing to the destination at their next batch.")
