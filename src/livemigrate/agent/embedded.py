"""The in-process migration host of `livemigrate serve`, so that the embedded default migrates with
nothing else running.

It is a real agent talking HTTP to the server it runs in: for every source project it keeps one
agent API key (re-created at each start, the previous one deleted, since its private part was
never stored) and one `MigrationHostAgent` thread.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from pathlib import Path

from sqlalchemy import delete, select

from livemigrate.agent.host import MigrationHostAgent
from livemigrate.agent.hostnames import this_host
from livemigrate.agent.runner import RunnerSettings
from livemigrate.client.agent_api import AgentApi
from livemigrate.cloud_manager.agents import create_agent_key
from livemigrate.store.database import Store
from livemigrate.store.models import ApiKey, Organization, Project
from livemigrate.vocabulary import AGENT_PURPOSE, SOURCE

log = logging.getLogger("livemigrate.agent.embedded")

EMBEDDED_KEY_DESCRIPTION = "embedded migration host (livemigrate serve)"
SCAN_SECONDS = 5.0


class EmbeddedAgents:
    def __init__(self, store: Store, base_url: str, settings: RunnerSettings, hostname: str | None = None) -> None:
        self._store = store
        self._base_url = base_url
        self._settings = settings
        self.hostname = hostname or this_host()
        self._agents: dict[str, tuple[MigrationHostAgent, threading.Thread, AgentApi]] = {}
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="embedded-agents", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=10)
        for agent, thread, api in self._agents.values():
            agent.stop()
            thread.join(timeout=30)
            api.close()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                for project in self._source_projects():
                    if project.id not in self._agents:
                        self._start_for(project)
            except Exception:
                log.exception("embedded agents: scanning projects failed")
            self._stopping.wait(SCAN_SECONDS)

    def _source_projects(self) -> list[Project]:
        with self._store.read() as session:
            return list(session.scalars(select(Project).join(Organization).where(Organization.side == SOURCE)))

    def _start_for(self, project: Project) -> None:
        with self._store.write() as session:
            session.execute(delete(ApiKey).where(ApiKey.project_id == project.id, ApiKey.purpose == AGENT_PURPOSE,
                                                 ApiKey.description == EMBEDDED_KEY_DESCRIPTION))
        key = create_agent_key(self._store, project, EMBEDDED_KEY_DESCRIPTION).key
        api = AgentApi(self._base_url, project.id, key)
        settings = dataclasses.replace(self._settings, state_dir=self._settings.state_dir / project.id)
        agent = MigrationHostAgent(api, self.hostname, settings)
        thread = threading.Thread(target=agent.run, name=f"agent-{project.id}", daemon=True)
        thread.start()
        self._agents[project.id] = (agent, thread, api)
        log.info("embedded migration host %s serves project %s", self.hostname, project.id)


def default_state_dir() -> Path:
    return Path(".livemigrate") / "agent"
