"""A typed client for the two APIs, over httpx with digest authentication.

`base_url` is the server root (e.g. http://127.0.0.1:8080); the source and target prefixes are
added here, so one configured client reaches both sides of the embedded default.
"""

from __future__ import annotations

from typing import Any

import httpx

from livemigrate.client.errors import ApiCallError
from livemigrate.vocabulary import SOURCE, SOURCE_PREFIX, TARGET_PREFIX


class ApiClient:
    def __init__(self, base_url: str, public_key: str, private_key: str, timeout_seconds: float = 30.0) -> None:
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            auth=httpx.DigestAuth(public_key, private_key),
            timeout=timeout_seconds,
            headers={"Accept": "application/json", "User-Agent": "livemigrate-cli/1"},
        )

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, json: Any = None) -> Any:
        response = self._http.request(method, path, json=json)
        if response.status_code >= 400:
            raise ApiCallError.from_response(response)
        return response.json() if response.content else None

    # --- target side -------------------------------------------------------------------------------

    def create_link_token(self, target_org_id: str, access_list_ips: list[str]) -> str:
        body = self._call("POST", f"{TARGET_PREFIX}/orgs/{target_org_id}/liveMigrations/linkTokens",
                          {"accessListIps": access_list_ips})
        return str(body["linkToken"])

    def revoke_link_tokens(self, target_org_id: str) -> None:
        self._call("DELETE", f"{TARGET_PREFIX}/orgs/{target_org_id}/liveMigrations/linkTokens")

    def available_projects(self, target_org_id: str) -> list[dict[str, Any]]:
        return list(self._call("GET", f"{TARGET_PREFIX}/orgs/{target_org_id}/liveMigrations/availableProjects"))

    # --- source side -------------------------------------------------------------------------------

    def connect_link(self, source_org_id: str, link_token: str) -> str:
        body = self._call("POST", f"{SOURCE_PREFIX}/orgs/{source_org_id}/liveExport/migrationLink",
                          {"linkToken": link_token})
        return str(body["status"])

    def link_status(self, source_org_id: str) -> str:
        return str(self._call("GET", f"{SOURCE_PREFIX}/orgs/{source_org_id}/liveExport/migrationLink/status")["status"])

    def describe_link(self, source_org_id: str) -> dict[str, Any]:
        return dict(self._call("GET", f"{SOURCE_PREFIX}/orgs/{source_org_id}/liveExport/migrationLink"))

    def delete_link(self, source_org_id: str) -> None:
        self._call("DELETE", f"{SOURCE_PREFIX}/orgs/{source_org_id}/liveExport/migrationLink")

    def add_host(self, group_id: str, host: dict[str, Any]) -> dict[str, Any]:
        return dict(self._call("POST", f"{SOURCE_PREFIX}/groups/{group_id}/hosts", host))

    def list_hosts(self, group_id: str) -> list[dict[str, Any]]:
        return list(self._call("GET", f"{SOURCE_PREFIX}/groups/{group_id}/hosts?itemsPerPage=500")["results"])

    def create_agent_key(self, group_id: str, description: str) -> dict[str, Any]:
        return dict(self._call("POST", f"{SOURCE_PREFIX}/groups/{group_id}/agentapikeys", {"desc": description}))

    def add_target_cluster(self, group_id: str, name: str, connection_string: str) -> dict[str, Any]:
        return dict(self._call("POST", f"{TARGET_PREFIX}/groups/{group_id}/clusters",
                               {"name": name, "connectionString": connection_string}))

    def list_target_clusters(self, group_id: str) -> list[dict[str, Any]]:
        return list(self._call("GET", f"{TARGET_PREFIX}/groups/{group_id}/clusters?itemsPerPage=500")["results"])

    def list_migrations(self, group_id: str) -> list[dict[str, Any]]:
        return list(self._call("GET", f"{TARGET_PREFIX}/groups/{group_id}/liveMigrations?itemsPerPage=500")["results"])

    def validate_migration(self, group_id: str, request: dict[str, Any]) -> dict[str, Any]:
        return dict(self._call("POST", f"{TARGET_PREFIX}/groups/{group_id}/liveMigrations/validate", request))

    def validation(self, group_id: str, validation_id: str) -> dict[str, Any]:
        return dict(self._call("GET", f"{TARGET_PREFIX}/groups/{group_id}/liveMigrations/validate/{validation_id}"))

    def create_migration(self, group_id: str, request: dict[str, Any]) -> dict[str, Any]:
        return dict(self._call("POST", f"{TARGET_PREFIX}/groups/{group_id}/liveMigrations", request))

    def migration(self, group_id: str, migration_id: str) -> dict[str, Any]:
        return dict(self._call("GET", f"{TARGET_PREFIX}/groups/{group_id}/liveMigrations/{migration_id}"))

    def cutover(self, group_id: str, migration_id: str) -> str | None:
        """The answer says what becomes of the application's writes to the source; None if it says nothing."""
        answer = self._call("PUT", f"{TARGET_PREFIX}/groups/{group_id}/liveMigrations/{migration_id}/cutover")
        return str(answer["detail"]) if isinstance(answer, dict) and answer.get("detail") else None

    def reverse(self, group_id: str, migration_id: str) -> dict[str, Any]:
        """The reverse of a completed reversible migration: a new migration, NEW, `direction` REVERSE."""
        return dict(self._call("POST", f"{TARGET_PREFIX}/groups/{group_id}/liveMigrations/{migration_id}/reverse"))

    def cancel(self, group_id: str, migration_id: str) -> dict[str, Any]:
        """The migration, cancelled (FAILED at once; `hostsStoppedAt` once its hosts have stopped)."""
        return dict(self._call("DELETE", f"{TARGET_PREFIX}/groups/{group_id}/liveMigrations/{migration_id}"))

    def list_projects(self, side: str) -> list[dict[str, Any]]:
        """The projects of every org the key belongs to."""
        prefix = SOURCE_PREFIX if side == SOURCE else TARGET_PREFIX
        return list(self._call("GET", f"{prefix}/groups?itemsPerPage=500")["results"])

    def list_source_clusters(self, group_id: str) -> list[dict[str, Any]]:
        return list(self._call("GET", f"{SOURCE_PREFIX}/groups/{group_id}/clusters?itemsPerPage=500")["results"])

    def list_migration_hosts(self, group_id: str) -> list[dict[str, Any]]:
        return list(self._call("GET", f"{SOURCE_PREFIX}/groups/{group_id}/liveMigrations/migrationHosts"
                                      "?itemsPerPage=500")["results"])

    def create_project(self, side: str, org_id: str, name: str) -> dict[str, Any]:
        prefix = SOURCE_PREFIX if side == SOURCE else TARGET_PREFIX
        return dict(self._call("POST", f"{prefix}/groups", {"name": name, "orgId": org_id}))
