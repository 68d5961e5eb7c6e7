"""The agent's calls to the source API, authenticated with the project's agent API key.

Every call is made again when the connection fails under it — refused, reset, cut mid-answer, or no
answer within the timeout — up to `ATTEMPTS` times, waiting a little longer each time: each is safe to
repeat. A heartbeat and a lease request say what holds now; a job list is a read; a progress report
says where the job stands, and the target records the same report twice as once (a final one changes
nothing once the migration is finished). An answer, even an error, is never repeated here: the caller
decides.

Timeouts: a connection must open within `CONNECT_SECONDS`; an answer must come within `timeout_seconds`,
which must exceed what the source may spend relaying a report to the target (the link's timeout,
`LIVEMIGRATE_LINK_PUSH_TIMEOUT_SECONDS`, for each of at most two attempts): the source then answers
before the host gives up, and a report the host sends next never overtakes one still on its way.
"""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import quote

import httpx

from livemigrate.client.errors import ApiCallError
from livemigrate.client.waiting import wait_options
from livemigrate.contracts import Heartbeat, HostJob, LeaseGrant, LeaseRequest, ProgressReport, ReportAnswer
from livemigrate.vocabulary import SOURCE_PREFIX

log = logging.getLogger("livemigrate.agent")

ATTEMPTS = 3
FIRST_BACKOFF_SECONDS = 0.25  # then twice that, and so on
CONNECT_SECONDS = 5.0


class AgentApi:
    """One HTTP client: use it from one thread at a time (`clone()` gives another thread its own)."""

    def __init__(self, base_url: str, group_id: str, agent_key: str, timeout_seconds: float = 30.0) -> None:
        public, _, private = agent_key.partition(".")
        if not public or not private:
            raise ValueError("an agent API key looks like <public>.<private>")
        self._arguments = (base_url, group_id, agent_key, timeout_seconds)
        self._group = f"{SOURCE_PREFIX}/groups/{group_id}"
        self._http = httpx.Client(base_url=base_url.rstrip("/"), auth=httpx.DigestAuth(public, private),
                                  timeout=httpx.Timeout(timeout_seconds, connect=min(CONNECT_SECONDS, timeout_seconds)),
                                  headers={"User-Agent": "livemigrate-agent/1"})

    def clone(self) -> AgentApi:
        return AgentApi(*self._arguments)

    def close(self) -> None:
        self._http.close()

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The answer to one call, made again after a transport failure (see the module); the last
        failure is raised."""
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return self._http.request(method, f"{self._group}{path}", **kwargs)
            except httpx.TransportError as error:
                if attempt == ATTEMPTS:
                    raise
                wait = FIRST_BACKOFF_SECONDS * 2 ** (attempt - 1)
                log.info("%s %s: %s: %s; again in %.2f s", method, path.split("?")[0], type(error).__name__,
                         error or "no answer", wait)
                time.sleep(wait)
        raise AssertionError("unreachable")

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._answer(self._send(method, path, **kwargs))

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
        response = self._send("GET", "/liveMigrations/agentJobs", params={"hostname": hostname},
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
