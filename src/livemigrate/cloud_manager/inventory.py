"""What a source org shows a linked target: its projects, their deployments and live migration hosts."""

from __future__ import annotations

from livemigrate import __version__
from livemigrate.cloud_manager.agents import is_alive, list_migration_hosts
from livemigrate.cloud_manager.hosts import Deployment, deployments, list_hosts
from livemigrate.contracts import Inventory, InventoryDeployment, InventoryProject
from livemigrate.directory.projects import list_projects
from livemigrate.store.database import Store


def deployment_view(deployment: Deployment) -> InventoryDeployment:
    """A deployment as a linked target sees it, with its last error when it cannot be reached."""
    primary = deployment.primary
    return InventoryDeployment(
        clusterId=deployment.cluster_id,
        name=deployment.name,
        mongoDBVersion=primary.version,
        featureCompatibilityVersion=primary.feature_compatibility_version,
        managed=False,
        sharded=primary.sharded,
        shardsSize=0 if not primary.sharded else 1,
        tlsEnabled=primary.ssl_enabled,
        dbSizeBytes=primary.data_size_bytes,
        oplogSizeMB=primary.oplog_size_mb,
        agentVersion=__version__,
        lastError=None if any(host.last_error is None for host in deployment.hosts) else primary.last_error,
    )


def build_inventory(store: Store, org_id: str, alive_seconds: float) -> Inventory:
    return Inventory(projects=[
        InventoryProject(
            projectId=project.id, name=project.name,
            deployments=[deployment_view(deployment) for deployment in deployments(list_hosts(store, project.id))],
            migrationHosts=[host.hostname for host in list_migration_hosts(store, project.id)
                            if is_alive(host, alive_seconds)])
        for project in list_projects(store, org_id)])
