"""`livemigrate migrate` and `livemigrate verify`: the engine on its own, URI to URI."""

from __future__ import annotations

import json
import logging
import signal
from pathlib import Path
from types import FrameType
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table

from livemigrate.cli.capture import CAPTURE_HELP, Capture
from livemigrate.cli.output import make_console
from livemigrate.engine.options import SHARE_OUT_DOCUMENTS

EXIT_MISMATCH = 1
EXIT_ENGINE_ERROR = 2
EXIT_STOPPED = 130

err_console = make_console(stderr=True)


def _options(include: list[str], exclude: list[str], capture: Capture, spool_limit_mb: int, **given: Any) -> Any:
    """The engine's options from the command line's: the namespaces, capture and spool limit translated,
    the others (`given`) as they are named in `MigrationOptions`."""
    from livemigrate.engine import CaptureScope, MigrationOptions
    from livemigrate.engine.options import NamespaceFilter

    return MigrationOptions(namespaces=NamespaceFilter(tuple(include), tuple(exclude)),
                            capture=CaptureScope(capture.value), spool_limit_bytes=spool_limit_mb * 1024**2, **given)


def _sharding_request(path: Path | None) -> Any:
    """`--sharding FILE` read, or one line saying what is wrong with it and exit status 2."""
    if path is None:
        return None
    from livemigrate.engine.options import ShardingRequest

    try:
        return ShardingRequest.from_json(json.loads(path.read_text()))
    except (OSError, ValueError) as error:  # json.JSONDecodeError is a ValueError
        typer.echo(f"Error: --sharding {path}: {error}", err=True)
        raise typer.Exit(EXIT_ENGINE_ERROR) from None


class ProgressView:
    """Per-namespace bars, docs/s, lag and whether both sides' counts agree, redrawn from the engine's
    events (any thread). Warnings reach the output through the engine's log, once per change."""

    def __init__(self, console: Console) -> None:
        # Redrawn 10 times a second on a terminal; elsewhere (a log file, a pipe) only what is printed
        # at the end shows, and a redraw thread would cost the run CPU for nothing.
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[note]}"), console=console, transient=False,
                                 auto_refresh=console.is_terminal)
        self.status = self.progress.add_task("starting", total=None, note="")
        self.tasks: dict[str, TaskID] = {}

    def __call__(self, event: Any) -> None:
        from livemigrate.engine.events import Phase

        lag = "-" if event.lag_seconds is None else f"{event.lag_seconds:.1f}s"
        ready = ""
        if event.phase is Phase.REPLICATING:
            ready = "  counts agree" if event.counts_agree else "  counts differ"
        self.progress.update(self.status, description=f"[bold]{event.phase.value}[/bold]",
                             note=f"{event.docs_per_second:,.0f} docs/s  lag {lag}  applied {event.applied_events}"
                                  + ready + _retries(event.retries) + (f"  {event.message}" if event.message else ""))

        for namespace in event.namespaces:
            task = self.tasks.get(namespace.namespace)
            if task is None:
                task = self.tasks[namespace.namespace] = self.progress.add_task(
                    namespace.namespace, total=max(namespace.total, 1), note="")
            # On a sharded source, each shard's part of the copy (`engine/copy/chunks.py`) beside the bar.
            shards = "  ".join(f"{shard.shard} {shard.copied:,}/{shard.total:,}" for shard in namespace.shards)
            self.progress.update(task, completed=namespace.copied, total=max(namespace.total, namespace.copied, 1),
                                 note="done" if namespace.done else shards)


def _retries(retries: dict[str, int]) -> str:
    """Round trips tried again after a fault that passed, by side, when there were any."""
    told = ", ".join(f"{side} {count:,}" for side, count in retries.items() if count)
    return f"  retries: {told}" if told else ""


def migrate(
    source_uri: str = typer.Argument(..., envvar="LIVEMIGRATE_SOURCE_URI", show_default=False,
                                     help="mongodb:// URI of the source deployment (env LIVEMIGRATE_SOURCE_URI)."),
    target_uri: str = typer.Argument(..., envvar="LIVEMIGRATE_TARGET_URI", show_default=False,
                                     help="mongodb:// URI of the target deployment (env LIVEMIGRATE_TARGET_URI)."),
    include: list[str] = typer.Option([], "--include", help="Namespace to migrate: db, db.coll or a wildcard; repeat."),
    exclude: list[str] = typer.Option([], "--exclude", help="Namespace to leave out; repeat."),
    drop_target: bool = typer.Option(False, "--drop-target", help="Drop the target's copies of the namespaces first."),
    state_dir: Path = typer.Option(Path(".livemigrate/migrate"), "--state-dir", help="Where checkpoints are kept."),
    workers: int = typer.Option(4, "--workers", min=1, help="Parallel copy workers."),
    processes: int | None = typer.Option(
        None, "--processes", min=1, show_default=False,
        help="Worker processes for the copy, each copying one range at a time (default: one per core, for a "
             f"copy of {SHARE_OUT_DOCUMENTS:,} documents or more; 1: copy in this process's --workers threads)."),
    batch_size: int = typer.Option(1000, "--batch-size", min=1),
    split_threshold: int = typer.Option(100_000, "--split-threshold", min=1,
                                        help="Collections with more documents are copied as parallel _id ranges."),
    capture: Capture = typer.Option(Capture.auto, "--capture", help="Change capture: " + CAPTURE_HELP),
    until_caught_up: bool = typer.Option(
        False, "--until-caught-up",
        help="Exit 0 once ready for cutover: copied, lag zero, both sides' counts agree, both sides read for "
             "verification."),
    count_check_seconds: float = typer.Option(
        10.0, "--count-check-seconds", min=0.1,
        help="While replicating, compare both sides' counts this often: a change stream that delivers nothing "
             "shows as a difference."),
    verify_sample: int = typer.Option(
        100, "--verify-sample", min=0, help="Documents read on both sides and compared at cutover, besides counts."),
    exact_counts: bool = typer.Option(
        False, "--exact-counts", help="Count every document (a scan) instead of asking for each collection's count."),
    spool_limit: int = typer.Option(
        10 * 1024, "--spool-limit", min=1, metavar="MB",
        help="Disk the changes read during the copy may take (in --state-dir) before they are applied."),
    fault_limit: float = typer.Option(
        300.0, "--fault-limit", min=0.1, metavar="SECONDS",
        help="How long a fault on either side (unreachable, no reply, an election) may last before the migration "
             "ends (run again to resume); shorter ones are ridden out."),
    socket_timeout: float = typer.Option(
        120.0, "--socket-timeout", min=0.1, metavar="SECONDS",
        help="A reply not come after this long counts as a fault (index builds wait as long as they take)."),
    sharding: Path | None = typer.Option(
        None, "--sharding", metavar="FILE", exists=True, dir_okay=False, show_default=False,
        help="Collections to shard on a sharded destination before the copy, as JSON in Atlas' shape: "
             '{"createSupportingIndexes": true, "shardingEntries": [{"database": "shop", "collection": "orders", '
             '"shardCollection": {"key": [{"customerId": 1}]}}]}. A sharded source\'s keys are carried over '
             "without it."),
    stop_balancer: bool = typer.Option(
        False, "--stop-balancer",
        help="A sharded source's balancer, running, blocks the migration: stop it while the migration runs, and "
             "start it again when it stops or ends."),
    reversible: bool = typer.Option(
        False, "--reversible",
        help="Keep, at cutover, where the destination's changes start, so that `livemigrate reverse` can replay "
             "every write made there since back into the source; the dry run also checks what a reverse needs."),
    dry_run: bool = typer.Option(
        False, "--dry-run",
        help="Report what would be migrated — per namespace, what will not be migrated as is, an estimate of the "
             "copy's time — and exit: 0, or 1 when something blocks the migration."),
) -> None:
    """Copy SOURCE into TARGET and keep replicating changes: until Ctrl-C (a checkpoint is kept),
    until caught up, or until SIGUSR1 asks for cutover (drain, verify, exit)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    options = _options(include, exclude, capture, spool_limit, drop_target=drop_target, workers=workers,
                       batch_size=batch_size, split_threshold=split_threshold, count_check_seconds=count_check_seconds,
                       verify_sample=verify_sample, exact_counts=exact_counts, processes=processes,
                       fault_limit_seconds=fault_limit, socket_timeout_seconds=socket_timeout,
                       sharding=_sharding_request(sharding), stop_balancer=stop_balancer, reversible=reversible)
    if dry_run:
        _dry_run(source_uri, target_uri, options)
        return
    _run(source_uri, target_uri, options, state_dir, until_caught_up=until_caught_up)


def reverse(
    source_uri: str = typer.Argument(..., envvar="LIVEMIGRATE_SOURCE_URI", show_default=False,
                                     help="The forward migration's SOURCE: written back into (env LIVEMIGRATE_SOURCE_URI)."),
    target_uri: str = typer.Argument(..., envvar="LIVEMIGRATE_TARGET_URI", show_default=False,
                                     help="The forward migration's TARGET: read from (env LIVEMIGRATE_TARGET_URI)."),
    state_dir: Path = typer.Option(Path(".livemigrate/migrate"), "--state-dir",
                                   help="The forward migration's (its run with --reversible, complete); the reverse "
                                        "keeps its own checkpoints in its `reverse` subdirectory."),
    until_caught_up: bool = typer.Option(False, "--until-caught-up", help="Exit 0 once ready for the cut back."),
    fault_limit: float = typer.Option(300.0, "--fault-limit", min=0.1, metavar="SECONDS",
                                      help="How long a fault on either side may last before the reverse ends."),
) -> None:
    """Replay every write made on TARGET since the forward cutover back into SOURCE, until SIGUSR1 asks for
    the cut back (drain with TARGET's writes blocked, verify, SOURCE takes writes again), Ctrl-C or caught up."""
    from livemigrate.engine.checkpoints import SqliteCheckpointStore
    from livemigrate.engine.coordinator.reverse import saved_point

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        forward = SqliteCheckpointStore(state_dir)
        try:
            point = saved_point(forward)
        finally:
            forward.close()
    except ValueError as error:
        typer.echo(f"Error: {state_dir}: {error}", err=True)
        raise typer.Exit(EXIT_ENGINE_ERROR) from None
    if point is None:
        typer.echo(f"Error: {state_dir} holds no completed migration run with --reversible: run it with --reversible "
                   "and cut it over first", err=True)
        raise typer.Exit(EXIT_ENGINE_ERROR)
    options = _options([], [], Capture(point.capture), 10 * 1024, reverse_from=point, fault_limit_seconds=fault_limit)
    _run(target_uri, source_uri, options, state_dir / "reverse", until_caught_up=until_caught_up)


def _run(source_uri: str, target_uri: str, options: Any, state_dir: Path, *, until_caught_up: bool) -> None:
    """A migration (or a reverse) in this process, until it ends; its exit status."""
    from pymongo.errors import PyMongoError

    from livemigrate.engine import EngineError, Migration
    from livemigrate.engine.capture.spool import Spool
    from livemigrate.engine.checkpoints import SqliteCheckpointStore
    from livemigrate.engine.errors import EngineErrorCode, redact
    from livemigrate.engine.events import Phase
    from livemigrate.engine.ledger import VerificationLedger
    try:  # a new state directory on a full disk: said in one line, as any engine error
        checkpoints = SqliteCheckpointStore(state_dir)
        ledger = VerificationLedger(state_dir / VerificationLedger.FILE_NAME)
    except EngineError as error:
        typer.echo(f"Error: {error}", err=True)
        raise typer.Exit(EXIT_ENGINE_ERROR) from None
    view = ProgressView(err_console)
    try:
        migration = Migration(source_uri, target_uri, options, checkpoints, view, ledger,
                              spool_path=state_dir / Spool.FILE_NAME)
    except ValueError as error:
        typer.echo(f"Error: {error}", err=True)
        raise typer.Exit(EXIT_ENGINE_ERROR) from None

    def on_interrupt(signum: int, frame: FrameType | None) -> None:
        err_console.print("stopping at the next checkpoint… (Ctrl-C again to abort at once)")
        signal.signal(signal.SIGINT, signal.default_int_handler)
        migration.stop()

    signal.signal(signal.SIGINT, on_interrupt)
    signal.signal(signal.SIGTERM, on_interrupt)
    signal.signal(signal.SIGUSR1, lambda signum, frame: migration.request_cutover())
    try:
        with view.progress:
            result = migration.run(until_caught_up=until_caught_up)
    except EngineError as error:
        typer.echo(f"Error: {error}", err=True)
        # Another migration writes the destination: refused before anything is written, as a blocked dry run.
        refused = error.code is EngineErrorCode.DESTINATION_IN_USE
        raise typer.Exit(EXIT_MISMATCH if refused else EXIT_ENGINE_ERROR) from None
    except PyMongoError as error:  # one the engine does not ride out: said in one line, checkpoints kept
        typer.echo(f"Error: {type(error).__name__}: {redact(str(error), source_uri, target_uri)[:500]}", err=True)
        raise typer.Exit(EXIT_ENGINE_ERROR) from None
    finally:
        checkpoints.close()
        ledger.close()
    if result.report is not None:
        _print_report(result.report)
    if result.reverse_point is not None:
        typer.echo(f"reversible: `livemigrate reverse SOURCE TARGET --state-dir {state_dir}` replays every write made "
                   "on the target since this cutover back into the source")
    if result.phase is Phase.STOPPED:
        raise typer.Exit(EXIT_STOPPED)
    if result.phase is Phase.FAILED:
        raise typer.Exit(EXIT_MISMATCH)


def _connect_both(source_uri: str, target_uri: str) -> tuple[Any, Any]:
    """Both ends' clients, or one line saying which end failed and exit status 2."""
    from livemigrate.engine import EngineError
    from livemigrate.engine.mongo.connect import connect

    try:
        source = connect(source_uri, "source")
    except EngineError as error:
        typer.echo(f"Error: {error}", err=True)
        raise typer.Exit(EXIT_ENGINE_ERROR) from None
    try:
        return source, connect(target_uri, "target")
    except EngineError as error:
        source.close()
        typer.echo(f"Error: {error}", err=True)
        raise typer.Exit(EXIT_ENGINE_ERROR) from None


def _dry_run(source_uri: str, target_uri: str, options: Any) -> None:
    """`migrate --dry-run`: the pre-flight report as a table; exit 1 when something blocks the migration."""
    from livemigrate.cli.preflight_view import print_preflight
    from livemigrate.engine.preflight import preflight

    source, target = _connect_both(source_uri, target_uri)
    with source, target:
        report = preflight(source, target, options)
    print_preflight(report.to_document())
    if report.blocking:
        raise typer.Exit(EXIT_MISMATCH)


def verify(
    source_uri: str = typer.Argument(..., envvar="LIVEMIGRATE_SOURCE_URI", show_default=False,
                                     help="The source's URI (env LIVEMIGRATE_SOURCE_URI: a password stays out of `ps`)."),
    target_uri: str = typer.Argument(..., envvar="LIVEMIGRATE_TARGET_URI", show_default=False,
                                     help="The target's URI (env LIVEMIGRATE_TARGET_URI)."),
    include: list[str] = typer.Option([], "--include", help="Namespace to compare; repeat."),
    exclude: list[str] = typer.Option([], "--exclude", help="Namespace to leave out; repeat."),
    output: str = typer.Option("human", "--output", "-o", help="human or json."),
) -> None:
    """Compare SOURCE and TARGET per namespace (count and content hash); exit 1 on any mismatch."""
    from livemigrate.engine.discover import discover
    from livemigrate.engine.options import NamespaceFilter
    from livemigrate.engine.verify.passes import verify as compare

    source, target = _connect_both(source_uri, target_uri)
    with source, target:
        namespaces = [spec.namespace for spec in discover(source, NamespaceFilter(tuple(include), tuple(exclude))).copied]
        report = compare(source, target, namespaces)
    if output == "json":
        typer.echo(json.dumps(report.to_document(), indent=2))
    else:
        _print_report(report)
    if not report.equal:
        raise typer.Exit(EXIT_MISMATCH)


def _print_report(report: Any) -> None:
    table = Table(title="verification")
    for column in ("namespace", "source docs", "target docs", "hash", "mismatched _ids"):
        table.add_column(column)
    for comparison in report.namespaces:
        table.add_row(comparison.namespace, str(comparison.source_count), str(comparison.target_count),
                      "equal" if comparison.source_hash == comparison.target_hash else "DIFFERENT",
                      ", ".join(str(value) for value in comparison.mismatched_ids)
                      + (f" (+{comparison.mismatch_count - len(comparison.mismatched_ids)} more)"
                         if comparison.mismatch_count > len(comparison.mismatched_ids) else ""))
    make_console().print(table)
    typer.echo("EQUAL" if report.equal else "DIFFERENT")
