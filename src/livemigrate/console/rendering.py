"""How the console answers: a page from its templates, or a redirect back to a page with a notice.
Shared by the sign-in (`signed_in.py`) and the pages (`routes.py`, `migration_pages.py`)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from livemigrate.console.notices import address_with_notice, shown_notice
from livemigrate.context import SignedIn
from livemigrate.http.roles import OrgRole, satisfies

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")


def shown_time(moment: datetime | None) -> str:
    """A moment as every console page shows it: UTC, to the second, saying so."""
    if moment is None:
        return "-"
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


templates.env.filters["when"] = shown_time

READ_ONLY_TITLE = "Your key is read-only: this needs an ORG_OWNER key"


def page(request: Request, name: str, active: SignedIn | None, status: int = 200, *,
         page_path: str | None = None, **values: Any) -> Response:
    """`page_path`: where the page lives when a POST answers with it (a secret shown once): the browser
    shows that address, so that a reload, and the live refresh, ask for the page and post nothing again.

    Every page knows whether its key may act (`read_only`): a read-only key's buttons are shown disabled,
    saying why (`owner_only`, spliced into each owner's button), rather than leading to a 403 page."""
    read_only = active is not None and not satisfies(active.principal.roles, OrgRole.ORG_OWNER)
    context = {"session": active, "page_path": page_path or request.url.path, "notice": shown_notice(request, active),
               "read_only": read_only,
               "owner_only": Markup(f' disabled title="{READ_ONLY_TITLE}"') if read_only else "", **values}
    return templates.TemplateResponse(request, name, context, status_code=status)


def back(path: str, active: SignedIn, notice: str | None = None) -> Response:
    """The answer to a form action: its page again, with the server's own sentence about what happened."""
    return RedirectResponse(address_with_notice(path, notice, active) if notice else path, status_code=303)
