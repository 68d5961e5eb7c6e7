"""The agent's calls to the source API, authenticated with the project's agent API key."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from livemigrate.client.errors import ApiCallError

SOURCE_PREFIX = "/api/public/v1.0"


class AgentApi:
    def __init__(self, base_url: str, group_id: str, agent_key: str, timeout_seconds: float = 30.0) -> None:
        public, _, private = agent_key.partition(".")
        if not public or not private:
            raise ValueError("an agent API key looks like <public>.<private>")
        self._group = f"{SOURCE_PREFIX}/groups/{group_id}"
        self._http = httpx.Client(base_url=base_url.rstrip("/"), auth=httpx.DigestAuth(public, private),
                                  timeout=timeout_seconds, headers={"User-Agent": "livemigrate-agent/1"})

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, f"{self._group}{path}", **kwargs)
        if response.status_code >= 400:
            raise ApiCallError.from_response(response)
        return response.json() if response.content else None

    def heartbeat(self, hostname: str, agent_version: str) -> dict[str, Any]:
        return dict(self._call("PUT", f"/liveMigrations/migrationHosts/{quote(hostname, safe='')}",
                               json={"agentVersion": agent_version}))

    def jobs(self, hostname: str) -> list[dict[str, Any]]:
        return list(self._call("GET", "/liveMigrations/agentJobs", params={"hostname": hostname})["results"])

    def report(self, job_id: str, report: dict[str, Any]) -> dict[str, Any]:
        return dict(self._call("PATCH", f"/liveMigrations/agentJobs/{job_id}", json=report))
