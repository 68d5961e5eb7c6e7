"""The README stays true: every error code the APIs or the engine can answer with is in it, and every command."""

from __future__ import annotations

from pathlib import Path

from livemigrate.engine.errors import EngineErrorCode
from livemigrate.http.errors import ErrorCode

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_every_api_error_code_is_documented() -> None:
    missing = [code.value for code in ErrorCode if f"`{code.value}`" not in README]
    assert missing == []


def test_every_engine_error_code_is_documented() -> None:
    missing = [code.value for code in EngineErrorCode if f"`{code.value}`" not in README]
    assert missing == []


def test_every_command_is_documented() -> None:
    commands = ["livemigrate serve", "livemigrate admin create-org", "livemigrate target link-token create",
                "livemigrate target link-token delete", "livemigrate source link create",
                "livemigrate source link describe", "livemigrate source link delete", "livemigrate migrate",
                "livemigrate verify", "livemigrate agent", "livemigrate source projects create",
                "livemigrate target projects create", "livemigrate source hosts add", "livemigrate source hosts list",
                "livemigrate source agent-keys create", "livemigrate target clusters add",
                "livemigrate target clusters list", "livemigrate target live-migrations validate",
                "livemigrate target live-migrations validation describe", "livemigrate target live-migrations create",
                "livemigrate target live-migrations describe", "livemigrate target live-migrations cutover",
                "livemigrate target live-migrations watch"]
    assert [command for command in commands if command not in README] == []
