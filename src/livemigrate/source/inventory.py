"""What a source org shows a linked target: its projects, their deployments and migration hosts."""

from __future__ import annotations

from typing import Any

from livemigrate.directory.projects import list_projects
from livemigrate.store.database import Store


def build_inventory(store: Store, org_id: str) -> dict[str, Any]:
    return {
        "projects": [
            {"projectId": project.id, "name": project.name, "deployments": [], "migrationHosts": []}
            for project in list_projects(store, org_id)
        ]
    }
