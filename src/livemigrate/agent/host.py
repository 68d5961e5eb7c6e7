"""`livemigrate agent`: a migration host. It heartbeats, asks the source API for its jobs, runs each
with the engine and reports progress — every connection outbound from where it runs.

Restarted with the same `--state-dir`, it picks its running jobs up again and the engine resumes
them from their checkpoints.
"""

from __future__ import annotations

import logging
import threading
import time

import httpx

from livemigrate import __version__
from livemigrate.agent.runner import JobRunner, RunnerSettings
from livemigrate.client.agent_api import AgentApi
from livemigrate.client.errors import ApiCallError

log = logging.getLogger("livemigrate.agent")

HEARTBEAT_SECONDS = 10.0


class MigrationHostAgent:
    def __init__(self, api: AgentApi, hostname: str, settings: RunnerSettings, poll_seconds: float = 0.25) -> None:
        self._api = api
        self.hostname = hostname
        self._settings = settings
        self._poll = poll_seconds
        self._runners: dict[str, JobRunner] = {}
        # Jobs this agent ended: the job list it reads next may predate the end (the source relays a
        # list up to a moment old), and such a job must not start again.
        self._ended: set[str] = set()
        self._stopping = threading.Event()
        self._wake = threading.Event()  # a job's new phase or its end is reported at once, not at the next tick

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    def run(self) -> None:
        last_heartbeat = 0.0
        log.info("migration host %s started (agent %s)", self.hostname, __version__)
        try:
            while not self._stopping.is_set():
                try:
                    if time.monotonic() - last_heartbeat >= HEARTBEAT_SECONDS:
                        self._api.heartbeat(self.hostname, __version__)
                        last_heartbeat = time.monotonic()
                    self._tick()
                except (ApiCallError, httpx.HTTPError) as error:
                    log.warning("migration host %s: %s", self.hostname, error)
                self._wake.wait(self._poll)
                self._wake.clear()
        finally:
            for runner in self._runners.values():
                runner.stop()
            for runner in self._runners.values():
                runner.join(timeout=30)

    def _tick(self) -> None:
        jobs = {str(job["id"]): job for job in self._api.jobs(self.hostname)}
        self._ended &= jobs.keys()
        for job_id, job in jobs.items():
            if job_id in self._ended:
                continue
            if job_id not in self._runners and not (job.get("sourceUri") and job.get("destinationUri")):
                missing = ("the source deployment has no monitored hosts on the source side"
                           if not job.get("sourceUri") else "the destination cluster is no longer registered")
                log.error("job %s cannot start: %s", job_id, missing)
                self._api.report(job_id, {"status": "FAILED", "errorMessage": f"cannot start: {missing}"})
                self._ended.add(job_id)
                continue
            if job_id not in self._runners:
                log.info("job %s: starting the migration of %s", job_id, job.get("sourceClusterName"))
                self._runners[job_id] = JobRunner(job, self._settings, on_news=self._wake.set).start()
            if job.get("cutoverRequested") and job_id in self._runners:
                self._runners[job_id].request_cutover()
        for job_id in [job_id for job_id in self._runners if job_id not in jobs]:
            log.info("job %s is no longer running on the target side; stopping it", job_id)
            self._runners.pop(job_id).stop()
        for job_id, runner in list(self._runners.items()):
            report = runner.report()
            answer = self._api.report(job_id, report)
            if answer.get("cutoverRequested"):
                runner.request_cutover()
            # Decided by what was sent, not by asking the runner again: it may have finished since.
            if report["status"] != "WORKING":
                log.info("job %s ended %s", job_id, answer.get("status"))
                runner.join(timeout=30)
                del self._runners[job_id]
                self._ended.add(job_id)
