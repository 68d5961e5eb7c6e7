"""The README stays true: every error code the APIs or the engine can answer with is in it, and every command."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from livemigrate.cli.main import app
from livemigrate.engine.errors import EngineErrorCode
from livemigrate.http.errors import ErrorCode

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_every_api_error_code_is_documented() -> None:
    missing = [code.value for code in ErrorCode if f"`{code.value}`" not in README]
    assert missing == []


def test_every_engine_error_code_is_documented() -> None:
    missing = [code.value for code in EngineErrorCode if f"`{code.value}`" not in README]
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
    assert [command for command in commands if command not in README] == []
