"""What a request handler may reach: the store, settings and the shared machinery of one process.

Built once by `app.create_app()` and kept on `app.state.context`; handlers fetch it with
`context_of(request)` instead of importing globals.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from livemigrate.crypto import SecretBox
from livemigrate.directory.projects import find_project
from livemigrate.http.auth import Authenticator, Principal, check_org_id, require_org_role
from livemigrate.http.errors import ApiError, ErrorCode
from livemigrate.http.roles import OrgRole
from livemigrate.settings import Settings
from livemigrate.store.database import Store
from livemigrate.store.models import Project


@dataclass
class AppContext:
    settings: Settings
    store: Store
    authenticator: Authenticator
    secret_box: SecretBox

    def authorize(self, request: Request, org_id: str, side: str, role: OrgRole) -> Principal:
        """Authenticate, then check the org id's form, the org's existence and the role — in that order."""
        principal = self.authenticator.authenticate(request)
        check_org_id(org_id)
        if self.authenticator.org_side(org_id) != side:
            raise ApiError(ErrorCode.ORG_NOT_FOUND, f"Organization {org_id} not found.", [org_id])
        require_org_role(principal, org_id, role)
        return principal

    def authorize_project(self, request: Request, group_id: str, side: str, role: OrgRole) -> Project:
        """Authenticate, find the project of this side (400/404 as documented), then check `role` on its org."""
        self.authenticator.authenticate(request)
        project = find_project(self.store, group_id, side)
        self.authorize(request, project.org_id, side, role)
        return project


def context_of(request: Request) -> AppContext:
    return request.app.state.context  # type: ignore[no-any-return]
