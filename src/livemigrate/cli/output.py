"""Output helpers shared by the commands: human text by default, JSON with `-o json`, one-line errors."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from livemigrate.client.errors import ApiCallError

if TYPE_CHECKING:
    from jsonpath_ng.jsonpath import JSONPath

# Wider than any line a table or a sentence will make: what a console off a terminal is given.
_UNBOUNDED_COLUMNS = 100_000


def make_console(*, stderr: bool = False) -> Console:
    """On a terminal, as wide as the terminal. Anywhere else — a pipe, a file, a log, a script's capture —
    no width at all, so that nothing is folded or cut at 80 columns: a script reads whole ids, whole
    statuses and whole commands. `COLUMNS` still decides where it is set."""
    found = Console(stderr=stderr)
    if found.is_terminal or found.size.width != 80:  # a terminal, or COLUMNS set
        return found
    return Console(stderr=stderr, width=_UNBOUNDED_COLUMNS, soft_wrap=True)


console = make_console()

_JSON_PATH = "json-path="


@dataclass(frozen=True)
class OutputFormat:
    """`-o human` (the default), `-o json`, or, as the Atlas CLI takes it, `-o json-path='$.id'`: the
    values the expression selects, one per line, strings unquoted — what a shell variable wants."""

    kind: str
    path: JSONPath | None = None

    @property
    def is_json(self) -> bool:
        return self.kind == "json"


def parse_output(given: str | OutputFormat) -> OutputFormat:
    if isinstance(given, OutputFormat):
        return given
    if given in ("human", "json"):
        return OutputFormat(given)
    if given.startswith(_JSON_PATH):
        # The extended grammar (filters too), imported only when asked: commands start faster.
        from jsonpath_ng.ext.parser import parse as parse_json_path

        try:
            return OutputFormat("json-path", parse_json_path(given[len(_JSON_PATH):]))
        except Exception as error:  # noqa: BLE001 - the lexer's and the parser's errors share no other base
            raise typer.BadParameter(f"{given[len(_JSON_PATH):]!r} is not a JSONPath expression ({error})") from None
    raise typer.BadParameter(f"{given!r}: use human, json or json-path='$.field'")


OUTPUT_OPTION = typer.Option("human", "--output", "-o", parser=parse_output, metavar="human|json|json-path=EXPR",
                             help="human (default), json, or json-path='$.field' for the selected values alone.")


def emit(output: OutputFormat, value: Any, human: Callable[[], None]) -> None:
    if output.is_json:
        typer.echo(json.dumps(value, indent=2))
    elif output.path is not None:
        for match in output.path.find(value):
            selected = match.value
            typer.echo(selected if isinstance(selected, str) else json.dumps(selected))
    else:
        human()


@contextmanager
def api_errors() -> Iterator[None]:
    """Turn an API error into one clear line (never wrapped) with its errorCode, and exit status 1."""
    import httpx  # here, not at the top: the engine's commands share this module and never call the API

    try:
        yield
    except ApiCallError as error:
        typer.echo(f"Error: {error.error_code} ({error.status}): {error.detail}", err=True)
        raise typer.Exit(1) from None
    except httpx.HTTPError as error:
        typer.echo(f"Error: cannot reach the API: {error}", err=True)
        raise typer.Exit(1) from None
