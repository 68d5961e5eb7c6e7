"""The agent's calls to the source API, authenticated with the project's agent API key."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from livemigrate.client.errors import ApiCallError
from livemigrate.client.waiting import wait_options
from livemigrate.contracts import Heartbeat, HostJob, LeaseGrant, LeaseRequest, ProgressReport, ReportAnswer
from livemigrate.vocabulary import SOURCE_PREFIX


class AgentApi:
    """One HTTP client: use it from one thread at a time (`clone()` gives another thread its own)."""

    def __init__(self, base_url: str, group_id: str, agent_key: str, timeout_seconds: float = 30.0) -> None:
        public, _, private = agent_key.partition(".")
        if not public or not private:
            raise ValueError("an agent API key looks like <public>.<private>")
        self._arguments = (base_url, group_id, agent_key, timeout_seconds)
        self._group = f"{SOURCE_PREFIX}/groups/{group_id}"
        self._http = httpx.Client(base_url=base_url.rstrip("/"), auth=httpx.DigestAuth(public, private),
                                  timeout=timeout_seconds, headers={"User-Agent": "livemigrate-agent/1"})

    def clone(self) -> AgentApi:
        return AgentApi(*self._arguments)

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._answer(self._http.request(method, f"{self._group}{path}", **kwargs))

    @staticmethod
    def _answer(response: httpx.Response) -> Any:
        if response.status_code >= 400:
            raise ApiCallError.from_response(response)
        return response.json() if response.content else None

    def heartbeat(self, hostname: str, beat: Heartbeat) -> None:
        self._call("PUT", f"/liveMigrations/migrationHosts/{quote(hostname, safe='')}", json=beat.model_dump())

    def jobs(self, hostname: str, held: str | None = None,
             wait_seconds: float | None = None) -> tuple[list[HostJob] | None, str | None]:
        """This host's jobs and their version; with the version `held` and `wait_seconds`, once they
        differ from it — or (None, version) when the wait is over with no change (long polling).
        Raises pydantic's ValidationError for a list this agent cannot read."""
        response = self._http.get(f"{self._group}/liveMigrations/agentJobs", params={"hostname": hostname},
                                  **wait_options(held, wait_seconds))
        etag = response.headers.get("etag")
        if response.status_code == 304:
            return None, etag
        return [HostJob.model_validate(item) for item in self._answer(response)["results"]], etag

    def report(self, job_id: str, report: ProgressReport) -> ReportAnswer:
        """A job's progress, relayed to the target; its answer. Raises pydantic's ValidationError for an
        answer this agent cannot read."""
        return ReportAnswer.model_validate(self._call("PATCH", f"/liveMigrations/agentJobs/{job_id}",
                                                      json=report.to_json()))

    def hold_leases(self, job_id: str, asked: LeaseRequest) -> LeaseGrant:
        """Ask for the parts of a shared job this host wants to hold now; every live lease of the job,
        with its holder, comes back (`cloud_manager/job_leases.py`)."""
        return LeaseGrant.model_validate(self._call(
            "POST", f"/liveMigrations/agentJobs/{quote(job_id, safe='')}/leases", json=asked.model_dump()))
