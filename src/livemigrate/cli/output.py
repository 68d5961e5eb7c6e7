"""Output helpers shared by the commands: human text by default, JSON with `-o json`, one-line errors."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import Enum
from typing import Any

import httpx
import typer
from rich.console import Console

from livemigrate.client.errors import ApiCallError

console = Console()


class OutputFormat(str, Enum):
    human = "human"
    json = "json"


OUTPUT_OPTION = typer.Option(OutputFormat.human, "--output", "-o", help="human (default) or json.")


def emit(output: OutputFormat, value: Any, human: Callable[[], None]) -> None:
    if output is OutputFormat.json:
        typer.echo(json.dumps(value, indent=2))
    else:
        human()


@contextmanager
def api_errors() -> Iterator[None]:
    """Turn an API error into one clear line (never wrapped) with its errorCode, and exit status 1."""
    try:
        yield
    except ApiCallError as error:
        typer.echo(f"Error: {error.error_code} ({error.status}): {error.detail}", err=True)
        raise typer.Exit(1) from None
    except httpx.HTTPError as error:
        typer.echo(f"Error: cannot reach the API: {error}", err=True)
        raise typer.Exit(1) from None
