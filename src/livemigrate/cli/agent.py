"""`livemigrate agent`: run a migration host."""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from types import FrameType

import typer

from livemigrate.agent.hostnames import this_host
from livemigrate.cli.capture import CAPTURE_HELP, Capture
from livemigrate.engine.options import SHARE_OUT_DOCUMENTS


def agent(
    base_url: str = typer.Option(..., "--base-url", envvar="LIVEMIGRATE_BASE_URL", help="Source API root URL."),
    group: str = typer.Option(..., "--group", help="Source project (group) id the agent key belongs to."),
    agent_key: str = typer.Option(..., "--agent-key", envvar="LIVEMIGRATE_AGENT_KEY",
                                  help="Agent API key of the project (env LIVEMIGRATE_AGENT_KEY)."),
    hostname: str = typer.Option(this_host(), "--hostname",
                                 help="The name this migration host reports (default: the machine's, as "
                                      "`hostname -f` prints it, or `hostname` where that says localhost)."),
    state_dir: Path = typer.Option(Path(".livemigrate/agent"), "--state-dir", help="Where job checkpoints are kept."),
    capture: Capture | None = typer.Option(None, "--capture", envvar="LIVEMIGRATE_AGENT_CAPTURE",
                                           help="Change capture of the migrations it runs: " + CAPTURE_HELP),
    processes: int | None = typer.Option(
        None, "--processes", min=1, show_default=False,
        help="Worker processes for each migration's copy (default: one per core, for a copy of "
             f"{SHARE_OUT_DOCUMENTS:,} documents or more; 1: copy in the agent's own process)."),
) -> None:
    """Heartbeat as a migration host of the project, run the migrations assigned to it, report progress."""
    from livemigrate.agent.host import MigrationHostAgent
    from livemigrate.agent.runner import RunnerSettings
    from livemigrate.client.agent_api import AgentApi
    from livemigrate.logs import quiet_libraries
    from livemigrate.settings import Settings

    settings = Settings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet_libraries()
    try:
        api = AgentApi(base_url, group, agent_key)
    except ValueError as error:
        typer.echo(f"Error: {error}", err=True)
        raise typer.Exit(2) from None
    host = MigrationHostAgent(api, hostname, RunnerSettings.from_settings(
        settings, state_dir, capture.value if capture else None, processes))

    def on_signal(signum: int, frame: FrameType | None) -> None:
        host.stop()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        host.run()
    finally:
        api.close()
