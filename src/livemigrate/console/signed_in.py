"""Who is signed in to the console, and what a page requires of them: signing in and out, and the
guards every console route names in its signature, as the API's routes name theirs
(`authorization.py`):

    async def create_project(request: Request, active: Session, form: CheckedForm, org: OrgOwner)

- `Session`: a signed-in browser (none, or an expired one: a redirect to the sign-in page);
- `CheckedForm`: a form POST whose CSRF token is the session's (403 before anything is read or changed:
  a form action names it before its role guard, which reads the store);
- `console_org_role(role)`, `console_project_role(role)`: the path's organization or project, which
  must be the session's key's (404 otherwise: another org's pages do not exist here, as the APIs
  answer), and `role` held there (403, a page naming the role).

The console's guards are apart from the API's because what they read and how they refuse differ: a
session cookie rather than a digest, and refusals that are pages rather than the API's errors. The key
behind a session is the API's, checked again on each request (`console/sessions.py`).
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Depends, FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from livemigrate.authorization import find_project
from livemigrate.console.rendering import page, templates
from livemigrate.context import SignedIn, context_of
from livemigrate.directory import orgs
from livemigrate.http.errors import ApiError, ErrorCode
from livemigrate.http.roles import OrgRole, satisfies
from livemigrate.store.models import Organization, Project

COOKIE = "livemigrate_console"
SIGN_IN_COOKIE = "livemigrate_console_sign_in"
router = APIRouter(prefix="/console", include_in_schema=False)


class SignInRequired(Exception):
    """No session, an expired one, or one whose key no longer exists: the browser goes to the sign-in
    page — in the last case saying so (`notice`, a key of `notices.SIGN_IN_NOTICES`), with the cookie
    of the session that ended cleared."""

    def __init__(self, notice: str | None = None) -> None:
        super().__init__(notice or "no session")
        self.notice = notice


class ConsoleRefusal(Exception):
    """An answer that is a page saying why: 403 (CSRF, role, access list), 404 (another org's id)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def add_exception_handlers(app: FastAPI) -> None:
    async def to_sign_in(request: Request, error: Exception) -> Response:
        assert isinstance(error, SignInRequired)
        query = {"next": request.url.path, **({"notice": error.notice} if error.notice else {})}
        answer = RedirectResponse(f"/console/sign-in?{urlencode(query)}", status_code=303)
        if error.notice:
            answer.delete_cookie(COOKIE, path="/console")
        return answer

    async def refusal(request: Request, error: Exception) -> Response:
        assert isinstance(error, ConsoleRefusal)
        return templates.TemplateResponse(request, "refused.html", {"message": error.message},
                                          status_code=error.status)

    app.add_exception_handler(SignInRequired, to_sign_in)
    app.add_exception_handler(ConsoleRefusal, refusal)


def caller_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


# --- the guards --------------------------------------------------------------------------------------


def active_session(request: Request) -> SignedIn:
    """A plain function: FastAPI runs it on a worker thread, where reading the store belongs.

    A session whose key was deleted or revoked since the sign-in ends here, and the browser is sent to
    sign in again (a 403 page would leave the person nowhere to go); one used from an address off its
    key's access list is refused (403, saying so): signing in again from there would be refused too."""
    sessions, token = context_of(request).console_sessions, request.cookies.get(COOKIE)
    try:
        active = sessions.resume(token, caller_ip(request))
    except ApiError as error:
        if error.code is ErrorCode.USER_UNAUTHORIZED:  # the key no longer exists, or was revoked
            sessions.sign_out(token or "")
            raise SignInRequired("key-gone") from None
        raise ConsoleRefusal(403, error.detail) from None
    if active is None:
        raise SignInRequired()
    return active


Session = Annotated[SignedIn, Depends(active_session)]


async def posted(request: Request) -> dict[str, str]:
    """A urlencoded form body. (Parsed here, not by Starlette, whose form parser needs python-multipart
    even for a plain urlencoded body.)"""
    return dict(parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True))


async def csrf_checked_form(request: Request, active: Session) -> dict[str, str]:
    form = await posted(request)
    if not hmac.compare_digest(form.get("csrf", ""), active.csrf_token):
        raise ConsoleRefusal(403, "This form's CSRF token is missing or wrong: nothing was changed. Reload the page "
                                  "and try again.")
    return form


CheckedForm = Annotated[dict[str, str], Depends(csrf_checked_form)]
"""The POSTed form, once its CSRF token matched the session's."""


def _check_role(active: SignedIn, role: OrgRole) -> None:
    """The last check of both guards below, after the org or project is known to be the session's own."""
    if not satisfies(active.principal.roles, role):
        raise ConsoleRefusal(403, f"This needs the {role.value} role; the key you signed in with has "
                                  f"{', '.join(sorted(active.principal.roles)) or 'none'}.")


# Frozen dataclasses rather than closures, so that the role a route requires can be read back from the
# route (tests/test_console.py reads every console route's).


@dataclass(frozen=True)
class ConsoleOrgRole:
    role: OrgRole

    def __call__(self, request: Request, org_id: str, active: Session) -> Organization:
        if org_id != active.principal.org_id:
            raise ConsoleRefusal(404, f"No organization {org_id} here.")
        org = orgs.find_org(context_of(request).store, org_id, active.principal.org_side)
        _check_role(active, self.role)
        return org


def console_org_role(role: OrgRole) -> Any:
    """The path's organization, the session's key's own, with `role` held there."""
    return Depends(ConsoleOrgRole(role))


@dataclass(frozen=True)
class ConsoleProjectRole:
    role: OrgRole

    def __call__(self, request: Request, group_id: str, active: Session) -> Project:
        try:
            project: Project | None = find_project(context_of(request).store, group_id, active.principal.org_side)
        except ApiError:  # an id of the wrong form, or of no project of this side
            project = None
        if project is None or project.org_id != active.principal.org_id:
            raise ConsoleRefusal(404, f"No project {group_id} here.")
        _check_role(active, self.role)
        return project


def console_project_role(role: OrgRole) -> Any:
    """The path's project, of the session's key's organization, with `role` held there."""
    return Depends(ConsoleProjectRole(role))


# The guards the pages and actions name: a page needs ORG_READ_ONLY (any role), an action ORG_OWNER.
OrgReader = Annotated[Organization, console_org_role(OrgRole.ORG_READ_ONLY)]
OrgOwner = Annotated[Organization, console_org_role(OrgRole.ORG_OWNER)]
ProjectReader = Annotated[Project, console_project_role(OrgRole.ORG_READ_ONLY)]
ProjectOwner = Annotated[Project, console_project_role(OrgRole.ORG_OWNER)]


# --- signing in and out ----------------------------------------------------------------------------


def _sign_in_page(request: Request, status: int = 200, *, next_path: str = "/console/", error: str | None = None
                  ) -> Response:
    """The form, with a fresh sign-in token in it and in a cookie: a page of another site cannot read the
    cookie (nor send it, SameSite=Strict), so it cannot sign a browser in with a key of its own choosing."""
    token = secrets.token_urlsafe(24)
    answer = page(request, "sign_in.html", None, status, next=next_path, sign_in_token=token, error=error)
    answer.set_cookie(SIGN_IN_COOKIE, token, max_age=3600, path="/console/sign-in", httponly=True,
                      samesite="strict", secure=request.url.scheme == "https")
    return answer


@router.get("/sign-in")
def sign_in_page(request: Request, next: str = "/console/") -> Response:  # noqa: A002 - the query's name
    return _sign_in_page(request, next_path=next if next.startswith("/console/") else "/console/")


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    """With the sign-in page, the console's only route without a guard: it makes the session the others
    require. Its form carries a sign-in token of its own instead of a session's CSRF token."""
    form = await posted(request)
    sessions = context_of(request).console_sessions
    target = form.get("next", "/console/")
    expected = request.cookies.get(SIGN_IN_COOKIE, "")
    if not expected or not hmac.compare_digest(form.get("signInToken", ""), expected):
        return _sign_in_page(request, 403, error="This sign-in form has expired or did not come from this console: "
                                                 "sign in again.")
    try:
        token = await run_in_threadpool(sessions.sign_in, form.get("publicKey", "").strip(),
                                        form.get("privateKey", "").strip(), caller_ip(request))
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
async def sign_out(request: Request, _active: Session, _form: CheckedForm) -> Response:
    await run_in_threadpool(context_of(request).console_sessions.sign_out, request.cookies.get(COOKIE, ""))
    answer = RedirectResponse("/console/sign-in", status_code=303)
    answer.delete_cookie(COOKIE, path="/console")
    return answer
