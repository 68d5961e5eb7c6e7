"""How the console answers: a page from its templates, or a redirect back to a page with a notice.
Shared by the sign-in (`signed_in.py`) and the pages (`routes.py`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from livemigrate.context import SignedIn

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")


def page(request: Request, name: str, active: SignedIn | None, status: int = 200, *,
         page_path: str | None = None, **values: Any) -> Response:
    """`page_path`: where the page lives when a POST answers with it (a secret shown once): the browser
    shows that address, so that a reload, and the live refresh, ask for the page and post nothing again."""
    return templates.TemplateResponse(request, name, {"session": active, "page_path": page_path or request.url.path,
                                                      **values}, status_code=status)


def back(path: str, notice: str) -> Response:
    return RedirectResponse(f"{path}?notice={quote(notice)}", status_code=303)
