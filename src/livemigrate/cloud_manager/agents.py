"""Agent API keys and the migration hosts that heartbeat with them.

An agent key belongs to one project; a machine running `livemigrate agent` with it becomes a
migration host of that project at its first heartbeat, and stays alive while it keeps
heartbeating (at most `LIVEMIGRATE_MIGRATION_HOST_ALIVE_SECONDS`, 120 by default, apart).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from livemigrate.directory.api_keys import create_api_key
from livemigrate.ids import new_object_id
from livemigrate.store.database import Store
from livemigrate.store.models import ApiKey, MigrationHost, Project, utcnow
from livemigrate.vocabulary import AGENT_PURPOSE

KEY_SEPARATOR = "."


@dataclass(frozen=True)
class CreatedAgentKey:
    api_key: ApiKey
    key: str  # "<public>.<private>": what `livemigrate agent --agent-key` takes; shown once


def create_agent_key(store: Store, project: Project, description: str) -> CreatedAgentKey:
    with store.write() as session:
        created = create_api_key(session, project.org_id, description, [], AGENT_PURPOSE)
        created.api_key.project_id = project.id
    return CreatedAgentKey(created.api_key, f"{created.api_key.public_key}{KEY_SEPARATOR}{created.private_key}")


def list_agent_keys(store: Store, project_id: str) -> list[ApiKey]:
    with store.read() as session:
        return list(session.scalars(select(ApiKey).where(ApiKey.project_id == project_id,
                                                         ApiKey.purpose == AGENT_PURPOSE).order_by(ApiKey.id)))


def heartbeat(store: Store, project_id: str, hostname: str, agent_version: str) -> MigrationHost:
    """Record a heartbeat; the first of a hostname adds a migration host to the project's inventory.
    A known host's heartbeat is a quiet write: nothing cached or waited on reads when it last beat
    (the inventory's liveness is the background loop's to notice)."""
    now = utcnow()
    with store.write(quiet=True) as session:
        known = session.scalar(select(MigrationHost).where(MigrationHost.project_id == project_id,
                                                           MigrationHost.hostname == hostname))
        if known is not None:
            known.agent_version = agent_version
            known.last_heartbeat_at = now
            return known
    with store.write() as session:
        host = session.scalar(select(MigrationHost).where(MigrationHost.project_id == project_id,
                                                          MigrationHost.hostname == hostname))
        if host is None:
            host = MigrationHost(id=new_object_id(), project_id=project_id, hostname=hostname, first_seen_at=now)
            session.add(host)
        host.agent_version = agent_version
        host.last_heartbeat_at = now
    return host


def is_alive(host: MigrationHost, alive_seconds: float, now: datetime | None = None) -> bool:
    return (now or utcnow()) - host.last_heartbeat_at <= timedelta(seconds=alive_seconds)


def list_migration_hosts(store: Store, project_id: str) -> list[MigrationHost]:
    with store.read() as session:
        return list(session.scalars(select(MigrationHost).where(MigrationHost.project_id == project_id)
                                    .order_by(MigrationHost.hostname)))
