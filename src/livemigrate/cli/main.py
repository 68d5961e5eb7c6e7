"""The `livemigrate` command: one typer app, one sub-app per area."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import typer

from livemigrate.cli import agent as agent_command
from livemigrate.cli import engine as engine_commands
from livemigrate.cli import inventory as inventory_commands
from livemigrate.cli import migrations as migration_commands
from livemigrate.cli.capture import CAPTURE_HELP, Capture
from livemigrate.cli.link import source_link, target_link_token
from livemigrate.cli.output import OUTPUT_OPTION, OutputFormat, console, emit

if TYPE_CHECKING:
    from livemigrate.settings import Settings

# Server-side modules (SQLAlchemy, FastAPI) are imported inside the commands that need them, so
# that the API commands start quickly.

app = typer.Typer(help="livemigrate: push live migration of MongoDB deployments.", no_args_is_help=True,
                  rich_markup_mode="markdown",
                  pretty_exceptions_enable=False)
source_app = typer.Typer(help="Source side (Cloud Manager role).", no_args_is_help=True)
target_app = typer.Typer(help="Target side (Atlas role).", no_args_is_help=True)
admin_app = typer.Typer(help="Operator commands that act on the store directly.", no_args_is_help=True)
app.add_typer(source_app, name="source")
app.add_typer(target_app, name="target")
app.add_typer(admin_app, name="admin")
source_app.add_typer(source_link, name="link")
source_app.add_typer(inventory_commands.source_projects, name="projects")
target_app.add_typer(inventory_commands.target_projects, name="projects")
source_app.add_typer(inventory_commands.source_hosts, name="hosts")
source_app.add_typer(inventory_commands.source_agent_keys, name="agent-keys")
source_app.add_typer(inventory_commands.source_clusters, name="clusters")
source_app.add_typer(inventory_commands.source_migration_hosts, name="migration-hosts")
target_app.add_typer(inventory_commands.target_available_projects, name="available-projects")
target_app.add_typer(inventory_commands.target_clusters, name="clusters")
target_app.add_typer(migration_commands.live_migrations, name="live-migrations")
app.command("migrate")(engine_commands.migrate)
app.command("agent")(agent_command.agent)
app.command("verify")(engine_commands.verify)
app.command("reverse")(engine_commands.reverse)
target_app.add_typer(target_link_token, name="link-token")

DB_OPTION = typer.Option(None, "--db", help="Store URL (default: env LIVEMIGRATE_DATABASE_URL or the embedded SQLite file).")


def _settings(db: str | None) -> Settings:
    from livemigrate.settings import Settings  # pydantic-settings: a tenth of a second every other command spares

    return Settings(database_url=db) if db else Settings()


class LogFormatOption(str, Enum):
    TEXT = "text"
    JSON = "json"


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8080, "--port"),
    db: str | None = DB_OPTION,
    access_log: bool = typer.Option(False, "--access-log/--no-access-log", help="Log every request."),
    agent: bool = typer.Option(True, "--agent/--no-agent",
                               help="Run an in-process migration host for every source project (default)."),
    agent_hostname: str | None = typer.Option(
        None, "--agent-hostname", show_default=False,
        help="Hostname the in-process migration host reports (default: the machine's, as `hostname -f` prints it, "
             "or `hostname` where that says localhost)."),
    agent_capture: Capture | None = typer.Option(
        None, "--agent-capture",
        help="The in-process migration host's change capture: " + CAPTURE_HELP),
    log_format: LogFormatOption | None = typer.Option(
        None, "--log-format", help="text (default), or json: one object per line, with the request's ids."),
) -> None:
    """Run both APIs with the embedded store and an in-process migration host; on first start, create and
    print a source and a target org."""
    import uvicorn
    from sqlalchemy.exc import DBAPIError

    from livemigrate.app import create_app
    from livemigrate.cli.bootstrap import bootstrap_if_empty
    from livemigrate.store.database import Store

    settings = _settings(db)
    from livemigrate import logs

    chosen_log_format = log_format.value if log_format else settings.log_format
    logs.configure(settings.log_level, chosen_log_format)
    store = Store(settings.database_url)
    try:
        store.migrate()
    except DBAPIError as error:
        typer.echo(f"Error: the store at {store.safe_url} cannot be reached: "
                   f"{str(error.orig).strip().splitlines()[0]}", err=True)
        raise typer.Exit(2) from None
    bootstrap_if_empty(store, f"http://{host}:{port}", json_log=chosen_log_format == "json")
    embedded = None
    if agent:
        from livemigrate.agent.embedded import EmbeddedAgents, default_state_dir
        from livemigrate.agent.runner import RunnerSettings

        embedded = EmbeddedAgents(store, f"http://{host}:{port}",
                                  RunnerSettings.from_settings(settings, default_state_dir(),
                                                               agent_capture.value if agent_capture else None,
                                                               in_process=True),
                                  agent_hostname)
    config = uvicorn.Config(create_app(settings, store, on_started=embedded.start if embedded else None,
                                       on_stopping=embedded.stop if embedded else None),
                            host=host, port=port, log_level=settings.log_level.lower(), access_log=access_log,
                            log_config=None, timeout_graceful_shutdown=2)
    _run_server(config)


def _run_server(config: Any) -> None:
    """uvicorn's server, which first ends the long polls when asked to stop (Ctrl-C, SIGTERM): migration
    hosts hold job-list requests open for seconds, and uvicorn would otherwise wait for them, then cancel
    them — each cancelled request logged with a traceback. Their hosts simply ask again, elsewhere."""
    import uvicorn

    from livemigrate.http.long_poll import stop_waiting

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            stop_waiting()
            super().handle_exit(sig, frame)

    Server(config).run()


@admin_app.command("create-key")
def admin_create_key(
    org: str = typer.Option(..., "--org", help="The organization's id, as `serve` lists them at start."),
    db: str | None = DB_OPTION,
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Create an ORG_OWNER API key for an existing org directly in the store (lost keys); print it once."""
    from livemigrate.directory.api_keys import create_api_key
    from livemigrate.http.roles import OrgRole
    from livemigrate.store.database import Store
    from livemigrate.store.models import Organization

    store = Store(_settings(db).database_url)
    store.migrate()
    with store.write() as session:
        found = session.get(Organization, org)
        if found is None:
            typer.echo(f"Error: no organization {org} in this store; `livemigrate serve` lists them at start.", err=True)
            raise typer.Exit(2)
        created = create_api_key(session, org, "Organization owner (admin create-key)", [OrgRole.ORG_OWNER.value])
        side = found.side
    record = {"orgId": org, "publicKey": created.api_key.public_key, "privateKey": created.private_key}
    if output.kind != "human":
        emit(output, record, lambda: None)
    else:
        console.print(f"Created an ORG_OWNER key of {side} organization {org} (the private key is shown only now)",
                      highlight=False)
        for label, value in record.items():
            typer.echo(f"  {label:<11} {value}")


@admin_app.command("create-org")
def admin_create_org(
    side: str = typer.Option(..., "--side", help="source or target."),
    name: str = typer.Option(..., "--name"),
    db: str | None = DB_OPTION,
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Create an org and an ORG_OWNER key directly in the store; print {orgId, publicKey, privateKey}."""
    from livemigrate.directory.orgs import create_org
    from livemigrate.store.database import Store

    if side not in ("source", "target"):
        console.print(f"Error: --side must be source or target, not {side!r}.")
        raise typer.Exit(2)
    store = Store(_settings(db).database_url)
    store.migrate()
    created = create_org(store, side, name, "Organization owner (admin create-org)")
    assert created.api_key is not None
    record = {"orgId": created.org.id, "publicKey": created.api_key.api_key.public_key,
              "privateKey": created.api_key.private_key}
    if output.kind != "human":
        emit(output, record, lambda: None)
    else:
        console.print(f"Created {side} organization {name!r}", highlight=False)
        for label, value in record.items():
            typer.echo(f"  {label:<11} {value}")


def main() -> None:  # pragma: no cover - console entry point convenience
    app()


if __name__ == "__main__":  # pragma: no cover
    app(prog_name=Path(sys.argv[0]).name)
