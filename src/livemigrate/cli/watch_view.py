"""What `live-migrations watch` draws from one progress document: a header, a row per namespace (and
one per source shard under it, on a sharded source), a row per host when several share the migration,
and the next step. Kept apart from the loop that fetches, so that a frame is a plain function of the
document (the loop redraws it in place; a pipe gets the last frame only)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from rich.console import Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from livemigrate.statuses import MigrationStatus

_COPYING = "INITIAL_SYNC"
_STATE_STYLES = {"VERIFIED": "green", "DIFFERENT": "bold red", "READ": "cyan", "READING": "yellow"}


def _duration(seconds: float | None) -> str:
    return "-" if seconds is None else str(timedelta(seconds=round(seconds)))


def header(found: dict[str, Any]) -> Text:
    """Status (and the phase, when it says more), elapsed, lag, changes applied, and the ETA while copying."""
    status, phase = str(found.get("status")), found.get("phase")
    line = Text(status, style="bold green" if status == MigrationStatus.COMPLETE else "bold")
    if found.get("direction") == "REVERSE":  # the way back: from the destination into the source
        line = Text("reverse ", style="bold magenta") + line
    if phase and phase != status:
        line.append(f" · {phase}")
    lag = found.get("lagSeconds")
    parts = [f"elapsed {_duration(found.get('elapsedSeconds'))}",
             f"lag {'-' if lag is None else f'{lag:.1f} s'}",
             f"changes applied {found.get('eventsApplied', 0):,}",
             f"copied {found.get('copiedDocuments', 0):,}/{found.get('totalDocuments', 0):,}"]
    retries = found.get("retries") or {}
    if any(retries.values()):
        parts.append("retries " + ", ".join(f"{side} {count:,}" for side, count in retries.items() if count))
    if phase == _COPYING and found.get("copyEtaSeconds") is not None:
        parts.append(f"ETA {_duration(found['copyEtaSeconds'])}")
    hosts = found.get("migrationHosts") or []
    if hosts:
        parts.append(f"host{'s' if len(hosts) > 1 else ''} {', '.join(hosts)}")
    line.append("   " + "   ".join(parts))
    return line


def _bar(copied: int, total: int) -> ProgressBar:
    return ProgressBar(total=max(total, copied, 1), completed=copied if total or copied else 1, width=24)


def namespaces_table(found: dict[str, Any]) -> Table:
    """A bar per namespace that fills during the copy; then the changes replayed and the verification. On a
    sharded source, a bar per shard under each namespace (its copy there, of the shard's count)."""
    table = Table(box=None, pad_edge=False, show_edge=False)
    for title, justify in (("NAMESPACE", "left"), ("COPY", "left"), ("COPIED", "right"), ("CHANGES", "right"),
                           ("VERIFICATION", "left")):
        table.add_column(title, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for namespace in found.get("namespaces", []):
        total, copied = int(namespace["total"]), int(namespace["copied"])
        state = namespace.get("verification") or "PENDING"
        table.add_row(namespace["namespace"], _bar(copied, total), f"{copied:,}/{total:,}",
                      f"{namespace.get('changesApplied') or 0:,}", Text(state, style=_STATE_STYLES.get(state, "")))
        for shard in namespace.get("shards") or []:
            on_shard, of_shard = int(shard["copied"]), int(shard["total"])
            table.add_row(Text(f"  on {shard['shard']}", style="dim"), _bar(on_shard, of_shard),
                          f"{on_shard:,}/{of_shard:,}", "", "")
    return table


def hosts_table(found: dict[str, Any]) -> Table | None:
    """Each host's part when several share the migration: its role, what it copied, the ranges it holds."""
    parts = found.get("hosts") or []
    if len(parts) < 2:
        return None
    table = Table(box=None, pad_edge=False, show_edge=False)
    for title, justify in (("HOST", "left"), ("ROLE", "left"), ("COPIED", "right"), ("RANGES HELD", "right"),
                           ("REPORTED", "left")):
        table.add_column(title, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for part in parts:
        table.add_row(str(part["hostname"]), str(part["role"]), f"{int(part['copiedDocuments']):,}",
                      f"{len(part.get('partitions') or []):,}", str(part.get("reportedAt", "-")))
    return table


def next_step(found: dict[str, Any], cutover_command: str) -> Text | None:
    """The line that tells a person what to do now, or what happened, when there is one."""
    status = found.get("status")
    if status == MigrationStatus.COMPLETE:
        verified = sum(1 for namespace in found.get("namespaces", []) if namespace.get("verification") == "VERIFIED")
        return Text(f"Complete: {verified} namespace(s) verified equal on both sides; the application may write to "
                    "the destination now.", style="green")
    if found.get("errorMessage"):
        return Text(f"{status}: {found['errorMessage']}", style="bold red")
    if found.get("canCutover"):
        # The command on a line of its own, never wrapped: it is there to be copied whole.
        return Text.assemble(("Ready — stop the application's writes to the source, then run:\n", "bold green"),
                             "  " + cutover_command, no_wrap=True, overflow="ignore")
    return None


def frame(found: dict[str, Any], cutover_command: str) -> RenderableType:
    parts: list[RenderableType] = [header(found), namespaces_table(found)]
    hosts = hosts_table(found)
    if hosts is not None:
        parts.append(hosts)
    step = next_step(found, cutover_command)
    if step is not None:
        parts.append(step)
    return Group(*parts)
