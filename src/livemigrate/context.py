"""What a request handler may reach: the store, settings and the shared machinery of one process.

Built once by `app.create_app()` and kept on `app.state.context`; handlers fetch it with
`context_of(request)`, the one way to reach what the process shares: no route reads `app.state`.

This module sits below the directory and both roles (the guards of `authorization.py` read it). So the
services a role or the console owns are named here by what their routes call of them, as protocols:
importing `cloud_manager/` from here would let `atlas/`, which imports this module, reach the other
role (tests/test_layers.py), and importing `console/` would be an arrow pointing back up.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

from starlette.requests import Request

from livemigrate.client.link_channel import JobList
from livemigrate.contracts import ProgressReport, ReportAnswer
from livemigrate.crypto import SecretBox
from livemigrate.http.auth import Authenticator, Principal
from livemigrate.settings import Settings
from livemigrate.store.database import Store
from livemigrate.store.models import SourceLink


class SourceLinkService(Protocol):
    """A source org's link to its target, as the source's routes and the console use it
    (`cloud_manager.link.LinkService`)."""

    def get_link(self, org_id: str) -> SourceLink: ...

    def status(self, org_id: str) -> str: ...

    async def connect(self, org_id: str, token_text: str) -> str: ...

    async def delete(self, org_id: str) -> None: ...


class HostJobRelay(Protocol):
    """The migration hosts' jobs and reports, relayed to the target over the link
    (`cloud_manager.job_relay.JobRelay`)."""

    def is_linked(self, org_id: str) -> bool: ...

    async def jobs(self, org_id: str) -> JobList: ...

    async def jobs_changed(self, org_id: str, held: str | None, wait_seconds: float | None) -> JobList: ...

    async def report_progress(self, org_id: str, job_id: str, report: ProgressReport) -> ReportAnswer: ...


class SignedIn(Protocol):
    """A browser's console session: the API key that signed it in, and the CSRF token of its forms."""

    @property
    def principal(self) -> Principal: ...

    @property
    def csrf_token(self) -> str: ...


class ConsoleSessionBook(Protocol):
    """The console's sessions (`console.sessions.ConsoleSessions`)."""

    @property
    def lifetime(self) -> timedelta: ...

    def sign_in(self, public_key: str, private_key: str, caller_ip: str | None) -> str: ...

    def resume(self, token: str | None, caller_ip: str | None) -> SignedIn | None: ...

    def sign_out(self, token: str) -> None: ...


@dataclass
class AppContext:
    settings: Settings
    store: Store
    authenticator: Authenticator
    secret_box: SecretBox
    link_service: SourceLinkService
    job_relay: HostJobRelay
    console_sessions: ConsoleSessionBook
    background_tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    """Validations running after their answer: referenced here until done, or the loop could drop them."""

    def keep_until_done(self, task: asyncio.Task[Any]) -> None:
        self.background_tasks.add(task)
        task.add_done_callback(self.background_tasks.discard)


def context_of(request: Request) -> AppContext:
    return request.app.state.context  # type: ignore[no-any-return]
