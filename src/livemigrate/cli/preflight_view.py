"""A pre-flight as a person reads it: one row per namespace with what will happen to it, then the
estimate, the source's change history and the warnings. `migrate --dry-run` prints the engine's own
report, `validation describe` the one a migration host sent: both are the same document."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from livemigrate.cli.output import make_console


def print_preflight(found: dict[str, Any]) -> None:
    table = Table(title="pre-flight")
    for column in ("namespace", "kind", "documents", "size", "indexes", "what will happen"):
        table.add_column(column, overflow="fold")
    namespaces = found.get("namespaces") or []
    for check in namespaces:
        size = "-" if check.get("sizeBytes") is None else _size(check["sizeBytes"])
        notes = "; ".join(check.get("notes") or []) or "copied as is"
        table.add_row(check["namespace"], check["kind"], f"{check['documents']:,}", size, str(check["indexes"]),
                      f"BLOCKS: {check['blocking']}" if check.get("blocking") else notes)
    make_console().print(table)
    if found.get("copyEstimateSeconds") is not None:
        estimate = found["copyEstimateSeconds"]
        typer.echo(f"copy estimate: {f'{estimate:,.0f} s' if estimate >= 1 else 'under 1 s'} for "
                   f"{sum(check['documents'] for check in namespaces):,} documents (measured: "
                   f"{found['readDocsPerSecond']:,.0f} reads/s, {found['writeDocsPerSecond']:,.0f} writes/s)")
    history = found.get("historySeconds")
    typer.echo("source change history: " + ("unknown" if history is None else f"{history:,.0f} s"))
    _print_sharding(found.get("sharding"))
    for warning in found.get("warnings") or []:
        typer.echo(f"warning: {warning}")
    if found.get("blocking"):
        typer.echo("blocked: " + "; ".join(found["blocking"]))


def _print_sharding(sharding: dict[str, Any] | None) -> None:
    """Each side's shape when either is a sharded cluster: its shards, sharded collections and balancer;
    and what the migration shards on the destination."""
    if not sharding or not (sharding["source"]["sharded"] or sharding["destination"]["sharded"]):
        return
    for side in ("source", "destination"):
        shape = sharding[side]
        if not shape["sharded"]:
            typer.echo(f"{side}: a replica set")
            continue
        balancer = shape.get("balancer") or {}
        state = ("stopped" if balancer.get("mode") == "off" else f"running ({balancer.get('mode')})") + \
            (", a round in progress" if balancer.get("inBalancerRound") else "")
        typer.echo(f"{side}: a sharded cluster of {len(shape['shards'])} shard(s) ({', '.join(shape['shards'])}); "
                   f"balancer {state}")
        for entry in shape["shardedCollections"]:
            typer.echo(f"  {entry['namespace']} sharded on {_key(entry['key'])}{' (unique)' if entry['unique'] else ''}")
    for entry in sharding["toShard"]:
        origin = "the source's key" if entry["carriedFromSource"] else "as asked"
        typer.echo(f"to shard on the destination: {entry['namespace']} on {_key(entry['key'])} ({origin})")


def _key(key: dict[str, Any]) -> str:
    return "{" + ", ".join(f'{name}: "{kind}"' if isinstance(kind, str) else f"{name}: {kind}"
                           for name, kind in key.items()) + "}"


def _size(size_bytes: int) -> str:
    value = float(size_bytes)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024:
            return f"{value:,.0f} B" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    return f"{value:,.1f} GiB"
