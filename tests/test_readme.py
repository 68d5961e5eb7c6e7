"""The README and docs/ stay true: every error code the APIs or the engine can answer with is in them, and
every command. The README stays short — a newcomer reads it in ten minutes — and links every page of docs/."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer

from livemigrate.cli.main import app
from livemigrate.engine.errors import EngineErrorCode
from livemigrate.http.errors import ErrorCode

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = (ROOT / "README.md").read_text()
# The README and the reference pages it links, read as one text.
DOCUMENTATION = "\n".join([README, *(path.read_text() for path in sorted(DOCS.glob("*.md")))])
README_MAX_LINES = 250


def test_every_api_error_code_is_documented() -> None:
    missing = [code.value for code in ErrorCode if f"`{code.value}`" not in DOCUMENTATION]
    assert missing == []


def test_every_engine_error_code_is_documented() -> None:
    missing = [code.value for code in EngineErrorCode if f"`{code.value}`" not in DOCUMENTATION]
    assert missing == []


def _commands(group: Any, prefix: str) -> list[str]:
    """Every leaf command of the typer app (a group is whatever has sub-commands)."""
    found = []
    for name, command in sorted(group.commands.items()):
        if hasattr(command, "commands"):
            found += _commands(command, f"{prefix} {name}")
        else:
            found.append(f"{prefix} {name}")
    return found


def test_every_command_is_documented() -> None:
    commands = _commands(typer.main.get_group(app), "livemigrate")
    assert len(commands) >= 25 and "livemigrate target live-migrations list" in commands
    assert [command for command in commands if command not in DOCUMENTATION] == []


def test_the_readme_is_short_and_links_every_page_of_docs() -> None:
    """Under README_MAX_LINES lines; every page of docs/ linked from it, and every docs/ link it has leads
    to a file that exists."""
    lines = len(README.splitlines())
    pages = sorted(path.name for path in DOCS.glob("*.md"))
    linked = set(re.findall(r"\]\(docs/([^)#\s]+)(?:#[^)\s]*)?\)", README))
    assert lines < README_MAX_LINES, f"README.md has {lines} lines; the reference belongs in docs/"
    assert [page for page in pages if page not in linked] == []  # a page of docs/ the README does not link
    assert sorted(name for name in linked if not (DOCS / name).is_file()) == []  # a link to nothing
