"""`livemigrate target live-migrations …` (and their validations), Atlas CLI style."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from enum import Enum
from typing import TYPE_CHECKING, Any

import typer
from rich.live import Live

from livemigrate.cli.connection import BASE_URL, PRIVATE_KEY, PUBLIC_KEY, client
from livemigrate.cli.inventory import GROUP
from livemigrate.cli.output import OUTPUT_OPTION, OutputFormat, api_errors, console, emit
from livemigrate.cli.preflight_view import print_preflight
from livemigrate.cli.tables import print_fields, print_table
from livemigrate.cli.watch_view import frame
from livemigrate.statuses import FINISHED, MigrationStatus, ValidationStatus

if TYPE_CHECKING:
    from livemigrate.client.api import ApiClient

live_migrations = typer.Typer(help="Push live migrations into a target project.", no_args_is_help=True)
validation = typer.Typer(help="Validations of migration requests.", no_args_is_help=True)
live_migrations.add_typer(validation, name="validation")


ID = typer.Option(..., "--id", help="The migration's or validation's id.")




def _request(group: str, source_group: str, source_cluster: str, destination_cluster: str, migration_hosts: list[str],
             drop_destination_data: bool, source_username: str | None, source_password: str | None,
             source_ssl: bool, change_capture: ChangeCaptureChoice | None = None,
             reversible: bool = False) -> dict[str, Any]:
    source: dict[str, Any] = {"clusterName": source_cluster, "groupId": source_group, "managedAuthentication": False,
                              "ssl": source_ssl}
    if source_username:
        source.update(username=source_username, password=source_password)
    request = {"source": source, "destination": {"clusterName": destination_cluster, "groupId": group,
                                                 "hostnameSchemaType": "PUBLIC"},
               "migrationHosts": migration_hosts, "dropDestinationData": drop_destination_data}
    if change_capture is not None:
        request["changeCapture"] = change_capture.value
    if reversible:
        request["reversible"] = True
    return request


class ChangeCaptureChoice(str, Enum):
    """A migration's `changeCapture`, as the API names it."""

    AUTO = "AUTO"
    DEPLOYMENT = "DEPLOYMENT"
    COLLECTION = "COLLECTION"


SOURCE_GROUP = typer.Option(..., "--source-group", help="Source project id (from availableProjects).")
SOURCE_CLUSTER = typer.Option(..., "--source-cluster", help="Source deployment name.")
DESTINATION = typer.Option(..., "--destination-cluster", help="Destination cluster name in --group.")
MIGRATION_HOST = typer.Option(..., "--migration-host",
                              help="Hostname of a migration host to run it; repeat for several to share the copy.")
DROP = typer.Option(False, "--drop-destination-data", help="Replace what the destination holds.")
SOURCE_USER = typer.Option(None, "--source-username", show_default=False,
                           help="The user the migration host reads the source as (absent: the source project's "
                                "monitored hosts' credentials).")
SOURCE_PASSWORD = typer.Option(None, "--source-password", envvar="LIVEMIGRATE_SOURCE_PASSWORD", show_default=False,
                               help="That user's password; from the environment keeps it out of `ps` and the "
                                    "shell's history. Sent to the migration host only, never shown again.")
SOURCE_SSL = typer.Option(False, "--source-ssl", help="Connect to the source over TLS.")
CHANGE_CAPTURE = typer.Option(
    None, "--change-capture", case_sensitive=False, show_default=False,
    help="This migration's change capture: DEPLOYMENT (one deployment-wide change stream, MongoDB 4.0+), "
         "COLLECTION (one stream per collection) or AUTO (by the source's version); default: the migration "
         "host's own setting.")
REVERSIBLE = typer.Option(False, "--reversible",
                          help="The migration may be reversed after its cutover (`live-migrations reverse`): every "
                               "write made on the destination since flows back into the source; the validation "
                               "checks what that needs.")


def _request_command(send: Callable[[ApiClient, str, dict[str, Any]], dict[str, Any]],
                     shown: list[str], summary: str) -> Callable[..., None]:
    """A command that sends one migration request (validate and create take the same options)."""

    def command(group: str = GROUP, source_group: str = SOURCE_GROUP, source_cluster: str = SOURCE_CLUSTER,
                destination_cluster: str = DESTINATION, migration_host: list[str] = MIGRATION_HOST,
                drop_destination_data: bool = DROP, source_username: str | None = SOURCE_USER,
                source_password: str | None = SOURCE_PASSWORD, source_ssl: bool = SOURCE_SSL,
                change_capture: ChangeCaptureChoice | None = CHANGE_CAPTURE, reversible: bool = REVERSIBLE,
                output: OutputFormat = OUTPUT_OPTION, base_url: str = BASE_URL,
                public_key: str = PUBLIC_KEY, private_key: str = PRIVATE_KEY) -> None:
        request = _request(group, source_group, source_cluster, destination_cluster, migration_host,
                           drop_destination_data, source_username, source_password, source_ssl, change_capture,
                           reversible)
        with api_errors(), client(base_url, public_key, private_key) as api:
            answer = send(api, group, request)
        emit(output, answer, lambda: print_fields(answer, shown))

    command.__doc__ = summary
    return command


live_migrations.command("validate")(_request_command(
    lambda api, group, request: api.validate_migration(group, request), ["_id", "status", "sourceGroupId",
                                                                          "errorMessage"],
    "Start a validation of a migration request (PENDING); see it with `validation describe`."))
live_migrations.command("create")(_request_command(
    lambda api, group, request: api.create_migration(group, request), ["_id", "status", "migrationHosts"],
    "Create the migration; its migration host picks it up at once."))


@validation.command("describe")
def validation_describe(group: str = GROUP, validation_id: str = ID, output: OutputFormat = OUTPUT_OPTION,
                        wait: bool = typer.Option(False, "--wait", help="Wait while it is PENDING."),
                        base_url: str = BASE_URL, public_key: str = PUBLIC_KEY, private_key: str = PRIVATE_KEY) -> None:
    """A validation: PENDING, SUCCESS, or FAILED with the reason (and exit status 1, for scripts)."""
    with api_errors(), client(base_url, public_key, private_key) as api:
        found = api.validation(group, validation_id)
        while wait and found.get("status") == ValidationStatus.PENDING:
            time.sleep(0.5)
            found = api.validation(group, validation_id)
    def human() -> None:
        print_fields(found, ["_id", "status", "sourceGroupId", "errorMessage"])
        if found.get("preflight"):
            print_preflight(found["preflight"])

    emit(output, found, human)
    if found.get("status") == ValidationStatus.FAILED:
        raise typer.Exit(1)


@live_migrations.command("list")
def migrations_list(group: str = GROUP, output: OutputFormat = OUTPUT_OPTION, base_url: str = BASE_URL,
                    public_key: str = PUBLIC_KEY, private_key: str = PRIVATE_KEY) -> None:
    """The project's migrations, newest first: the ID that `describe`, `watch` and `cutover` take."""
    with api_errors(), client(base_url, public_key, private_key) as api:
        found = api.list_migrations(group)
    rows = [{**migration, "sourceCluster": migration["source"]["clusterName"],
             "destinationCluster": migration["destination"]["clusterName"],
             "copy": f"{migration['copiedDocuments']}/{migration['totalDocuments']}"} for migration in found]
    emit(output, found, lambda: print_table(rows, [("ID", "_id"), ("STATUS", "status"), ("PHASE", "phase"),
                                              ("SOURCE", "sourceCluster"), ("DESTINATION", "destinationCluster"),
                                              ("COPIED", "copy"), ("LAG", "lagSeconds"),
                                              ("CAN CUTOVER", "canCutover")]))


@live_migrations.command("describe")
def migrations_describe(group: str = GROUP, migration_id: str = ID, output: OutputFormat = OUTPUT_OPTION,
                        base_url: str = BASE_URL, public_key: str = PUBLIC_KEY, private_key: str = PRIVATE_KEY) -> None:
    """The migration's status, phase, lag and readiness for cutover; exits 1 if it ended FAILED or EXPIRED."""
    with api_errors(), client(base_url, public_key, private_key) as api:
        found = api.migration(group, migration_id)
    emit(output, found, lambda: print_fields(found, ["_id", "direction", "status", "phase", "lagSeconds", "readyForCutover",
                                                "canCutover", "canWrite", "elapsedSeconds", "copyEtaSeconds",
                                                "copiedDocuments", "totalDocuments", "eventsApplied",
                                                "migrationHosts", "warnings", "errorMessage"]))
    if found.get("status") in (MigrationStatus.FAILED, MigrationStatus.EXPIRED):
        raise typer.Exit(1)


@live_migrations.command("cutover")
def migrations_cutover(group: str = GROUP, migration_id: str = ID,
                       force: bool = typer.Option(False, "--force", help="Do not ask for confirmation."),
                       base_url: str = BASE_URL, public_key: str = PUBLIC_KEY, private_key: str = PRIVATE_KEY) -> None:
    """Cut over: stop writes to the source first; the migration drains, verifies and completes."""
    if not force and not typer.confirm("Writes to the source are stopped, and you want to cut over now?"):
        raise typer.Exit(1)
    with api_errors(), client(base_url, public_key, private_key) as api:
        detail = api.cutover(group, migration_id)
    console.print(f"Cutover of {migration_id} requested; `live-migrations watch` follows it to COMPLETE.")
    if detail:
        typer.echo(detail)  # never wrapped: it may say to stop the application's writes now


@live_migrations.command("reverse")
def migrations_reverse(group: str = GROUP, migration_id: str = ID,
                       force: bool = typer.Option(False, "--force", help="Do not ask for confirmation."),
                       output: OutputFormat = OUTPUT_OPTION, base_url: str = BASE_URL, public_key: str = PUBLIC_KEY,
                       private_key: str = PRIVATE_KEY) -> None:
    """Reverse a completed reversible migration: a new migration replays every write made on the destination
    since its cutover back into the source; its own cutover (the cut back) makes the source current again."""
    if not force and not typer.confirm(f"Reverse live migration {migration_id}? The destination's writes will flow "
                                       "back into the source until you cut back."):
        raise typer.Exit(1)
    with api_errors(), client(base_url, public_key, private_key) as api:
        found = api.reverse(group, migration_id)

    def human() -> None:
        print_fields(found, ["_id", "status", "direction", "reverseOf", "migrationHosts"])
        console.print(f"`live-migrations watch --id {found['_id']}` follows it; `live-migrations cutover --id "
                      f"{found['_id']}` cuts back once it is ready.")

    emit(output, found, human)


@live_migrations.command("cancel")
def migrations_cancel(group: str = GROUP, migration_id: str = ID,
                      force: bool = typer.Option(False, "--force", help="Do not ask for confirmation."),
                      wait: float = typer.Option(60.0, "--wait", min=0, metavar="SECONDS",
                                                 help="How long to wait for its migration hosts to stop (0: not)."),
                      output: OutputFormat = OUTPUT_OPTION, base_url: str = BASE_URL, public_key: str = PUBLIC_KEY,
                      private_key: str = PRIVATE_KEY) -> None:
    """Cancel a migration that has not finished: it ends FAILED, its migration hosts stop writing and remove
    its state, and its destination is free for another migration. What the destination holds stays."""
    if not force and not typer.confirm(f"Cancel live migration {migration_id}? It cannot be resumed."):
        raise typer.Exit(1)
    with api_errors(), client(base_url, public_key, private_key) as api:
        found = api.cancel(group, migration_id)
        deadline = time.monotonic() + wait
        while found.get("hostsStoppedAt") is None and time.monotonic() < deadline:
            time.sleep(0.5)
            found = api.migration(group, migration_id)

    def human() -> None:
        print_fields(found, ["_id", "status", "cancelledAt", "cancelledBy", "hostsStoppedAt", "errorMessage"])
        if found.get("hostsStoppedAt"):
            console.print("Its migration hosts have stopped writing; the destination keeps what was copied and "
                          "replicated so far. A new migration may use it (with --drop-destination-data).")
        else:
            console.print("Its migration hosts have not said yet that they stopped; `live-migrations describe` "
                          "shows hostsStoppedAt once they have. Until then the destination stays this migration's.")

    emit(output, found, human)


def _shape_of(warning: str) -> str:
    """A warning without its figures and its parenthesized details (which namespaces, their counts)."""
    shape = re.sub(r"\d+", "#", warning)
    while (bare := re.sub(r"\([^()]*\)", "", shape)) != shape:
        shape = bare
    return shape


@live_migrations.command("watch")
def migrations_watch(group: str = GROUP, migration_id: str = ID,
                     interval: float = typer.Option(1.0, "--interval", min=0.2, help="Seconds between two looks."),
                     until_ready: bool = typer.Option(False, "--until-ready",
                                                      help="Return (exit 0) once the migration can be cut over."),
                     base_url: str = BASE_URL, public_key: str = PUBLIC_KEY, private_key: str = PRIVATE_KEY) -> None:
    """A live view until the migration ends: status, lag, changes, a bar per namespace, verification, and
    the cutover command once it is ready. Exits 0 when COMPLETE (or ready, with --until-ready), else 1."""
    cutover_command = f"livemigrate target live-migrations cutover --group {group} --id {migration_id}"
    shown_warnings: set[str] = set()
    with api_errors(), client(base_url, public_key, private_key) as api:
        found = api.migration(group, migration_id)
        with Live(frame(found, cutover_command), console=console, refresh_per_second=4) as live:
            while True:
                for warning in found.get("warnings", []):
                    # Printed once, and again only when it says something else than which namespaces,
                    # their counts and how long: a warning that follows a divergence as it moves is one.
                    shape = _shape_of(warning)
                    if shape not in shown_warnings:
                        shown_warnings.add(shape)
                        live.console.print(f"WARNING: {warning}", markup=False, highlight=False)
                live.update(frame(found, cutover_command))
                if found["status"] in FINISHED or until_ready and found.get("canCutover"):
                    break
                time.sleep(interval)
                found = api.migration(group, migration_id)
    if not console.is_terminal:
        console.line()  # a pipe gets the last frame alone, and then the next output on a line of its own
    if found["status"] == MigrationStatus.COMPLETE or until_ready and found.get("canCutover"):
        return
    raise typer.Exit(1)
