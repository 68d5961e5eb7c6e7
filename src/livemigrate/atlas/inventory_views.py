"""What linked source organizations offer, as Atlas' `availableProjects` answers it: Atlas' fields with
Atlas' types (MongoDB's Atlas SDK decodes them strictly), and livemigrate's own beside them.

The inventory a source pushes (`contracts.Inventory`) says "unknown" with null; Atlas' model has no
null for a deployment's versions, and counts megabytes of oplog in whole numbers. Here a version the
source could not read is an empty string, a feature compatibility version it could not read is its
MongoDB version's major.minor (what a deployment reports unless an upgrade is half done), and a size
is a whole number, or left out when unknown.
"""

from __future__ import annotations

from typing import Any

from livemigrate.contracts import InventoryDeployment, InventoryProject


def available_project_view(project: InventoryProject) -> dict[str, Any]:
    return {"projectId": project.projectId, "name": project.name,
            "deployments": [deployment_view(deployment) for deployment in project.deployments],
            "migrationHosts": list(project.migrationHosts)}


def deployment_view(deployment: InventoryDeployment) -> dict[str, Any]:
    version = deployment.mongoDBVersion or ""
    view: dict[str, Any] = {
        "clusterId": deployment.clusterId, "name": deployment.name, "mongoDBVersion": version,
        "featureCompatibilityVersion": deployment.featureCompatibilityVersion or ".".join(version.split(".")[:2]),
        "managed": deployment.managed, "sharded": deployment.sharded, "shardsSize": deployment.shardsSize,
        "tlsEnabled": deployment.tlsEnabled,
        # livemigrate's own: why the source side cannot reach it, when it cannot.
        "lastError": deployment.lastError,
    }
    if deployment.dbSizeBytes is not None:
        view["dbSizeBytes"] = deployment.dbSizeBytes
    if deployment.oplogSizeMB is not None:
        view["oplogSizeMB"] = round(deployment.oplogSizeMB)
    if deployment.agentVersion is not None:
        view["agentVersion"] = deployment.agentVersion
    return view
