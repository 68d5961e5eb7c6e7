"""What the command line prints of API records: a table of rows, or one record's fields — each value
whole (a narrow terminal folds an identifier, never cuts one)."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from livemigrate.cli.output import console


def print_table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> None:
    table = Table()
    for title, _ in columns:
        table.add_column(title, overflow="fold")  # a narrow terminal folds an identifier; it never cuts one
    for row in rows:
        table.add_row(*("-" if row.get(key) is None else str(row.get(key)) for _, key in columns))
    console.print(table)


def print_fields(record: dict[str, Any], keys: list[str]) -> None:
    for key in keys:
        typer.echo(f"{key:<22} {record.get(key) if record.get(key) is not None else '-'}")  # never wrapped
