"""`livemigrate agent`: a migration host. It heartbeats, asks the source API for its jobs, runs each
with the engine and reports progress — every connection outbound from where it runs. A job is a
migration, or a validation's pre-flight (answered once).

Two threads talk to the API: one waits on the job list (long polling: a new job or a cutover asked for
on the target arrives at once, and an idle host sends one request per wait), the other heartbeats and
reports each job's progress — every `report_seconds`, and at once on news (a new phase, readiness, an
end).

Restarted with the same `--state-dir`, it picks its running jobs up again and the engine resumes
them from their checkpoints.

Its calls meet resets and timeouts (`client/agent_api.py` makes each again a few times). A report that
fails is sent again at the next tick — the latest progress, or the job's outcome: a final report (COMPLETE,
FAILED, a pre-flight's answer, a cancelled job's stop) is sent until the source answers it, even once the
job has left the list (the target recorded it, its answer was lost on the way back), and only then is the
job forgotten. A job this host ended never starts again here, whatever list comes later.

A job cancelled on the target stays in the list, marked `cancelRequested`, until this host says it
has stopped: its runner is stopped (the engine lifts a source write block a cutover set, and gives
its destination up), the job's state directory is removed, and a report names this host in
`stoppedHost` — only then does the target let another migration have the destination.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time

import httpx
from pydantic import ValidationError

from livemigrate import __version__
from livemigrate.agent.preflight_job import PreflightJob
from livemigrate.agent.runner import JobRunner, RunnerSettings
from livemigrate.agent.shared_job import SharedJobRunner
from livemigrate.client.agent_api import AgentApi
from livemigrate.client.errors import ApiCallError
from livemigrate.contracts import Heartbeat, HostJob, ProgressReport, ReportAnswer, describe_invalid
from livemigrate.statuses import MigrationStatus

log = logging.getLogger("livemigrate.agent")

HEARTBEAT_SECONDS = 10.0
JOBS_WAIT_SECONDS = 10.0  # how long one request for the job list may wait for a change
RETRY_SECONDS = 1.0  # after a failed request for the job list, or from a server that cannot wait
ENDED_KEPT = 10_000  # ended jobs remembered (ids, in the order they ended), so that none starts again


class MigrationHostAgent:
    def __init__(self, api: AgentApi, hostname: str, settings: RunnerSettings, report_seconds: float = 1.0) -> None:
        self._api = api
        self.hostname = hostname
        self._settings = settings
        self._report_every = report_seconds
        self._jobs: dict[str, HostJob] | None = None  # the latest list, from the watching thread
        self._jobs_lock = threading.Lock()
        self._runners: dict[str, JobRunner | SharedJobRunner] = {}
        self._preflights: dict[str, PreflightJob] = {}  # validations whose pre-flight runs or waits to be sent
        self._cancelling: dict[str, JobRunner | SharedJobRunner | None] = {}  # cancelled, stopping or stopped
        # Jobs this agent ended: a job list read later may predate the end (the source relays a list up
        # to a moment old; a list asked for again after a reset may be an older one), and such a job must
        # not start again. Kept while the agent runs, not only while listed: a list without the job may
        # come before one that still has it.
        self._ended: dict[str, None] = {}
        self._stopping = threading.Event()
        self._wake = threading.Event()  # a job's new phase or its end is reported at once, not at the next tick

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    def run(self) -> None:
        last_heartbeat = 0.0
        log.info("migration host %s started (agent %s)", self.hostname, __version__)
        watcher = threading.Thread(target=self._watch_jobs, name=f"jobs-{self.hostname}", daemon=True)
        watcher.start()
        try:
            while not self._stopping.is_set():
                try:
                    if time.monotonic() - last_heartbeat >= HEARTBEAT_SECONDS:
                        self._api.heartbeat(self.hostname, Heartbeat(agentVersion=__version__))
                        last_heartbeat = time.monotonic()
                    self._tick()
                except (ApiCallError, httpx.HTTPError) as error:
                    log.warning("migration host %s: %s", self.hostname, error)
                except ValidationError as error:
                    log.error("migration host %s: the source answered what this agent cannot read (%s); is it "
                              "another version?", self.hostname, describe_invalid(error))
                self._wake.wait(self._report_every)
                self._wake.clear()
        finally:
            for runner in self._runners.values():
                runner.stop()
            for runner in self._runners.values():
                runner.join(timeout=30)

    def _watch_jobs(self) -> None:
        """Keep `_jobs` current, on a client of its own (a waiting request holds its connection)."""
        api = self._api.clone()
        held: str | None = None
        try:
            while not self._stopping.is_set():
                try:
                    jobs, version = api.jobs(self.hostname, held, JOBS_WAIT_SECONDS if held else None)
                except (ApiCallError, httpx.HTTPError) as error:
                    log.warning("migration host %s: asking for jobs: %s", self.hostname, error)
                    self._stopping.wait(RETRY_SECONDS)
                    continue
                except ValidationError as error:
                    log.error("migration host %s: the source sent a job list this agent cannot read (%s); is it "
                              "another version?", self.hostname, describe_invalid(error))
                    self._stopping.wait(RETRY_SECONDS)
                    continue
                if jobs is not None:
                    with self._jobs_lock:
                        self._jobs = {job.id: job for job in jobs}
                    self._wake.set()
                held = version
                if version is None:  # a server that cannot wait: ask again in a while
                    self._stopping.wait(RETRY_SECONDS)
        finally:
            api.close()

    def _tick(self) -> None:
        with self._jobs_lock:
            listed = self._jobs
        if listed is not None:
            self._follow(listed)
        self._report()

    def _follow(self, jobs: dict[str, HostJob]) -> None:
        """Start the jobs new to this host, pass cutovers on, stop the jobs the target no longer runs."""
        for job_id, job in jobs.items():
            if job_id in self._ended or job_id in self._preflights or job_id in self._cancelling:
                continue
            if job.cancelRequested:
                runner = self._runners.pop(job_id, None)
                log.info("job %s was cancelled on the target: %s", job_id,
                         "stopping it" if runner is not None else "this host does not run it")
                if runner is not None:
                    runner.stop()
                self._cancelling[job_id] = runner
                continue
            if job.kind == "VALIDATION" and job.sourceUri and job.destinationUri:
                log.info("validation %s: running the pre-flight of %s", job_id, job.sourceClusterName)
                self._preflights[job_id] = PreflightJob(job, self._settings, on_done=self._wake.set).start()
                continue
            unreversible = job.direction == "REVERSE" and not job.reverseFrom
            if job_id not in self._runners and (not (job.sourceUri and job.destinationUri) or unreversible):
                missing = ("the migration it reverses kept no point to start from" if unreversible
                           else "the source deployment has no monitored hosts on the source side"
                           if not job.sourceUri else "the destination cluster is no longer registered")
                log.error("job %s cannot start: %s", job_id, missing)
                failed = ProgressReport(status=MigrationStatus.FAILED, errorMessage=f"cannot start: {missing}")
                if self._deliver(job_id, failed, final=True) is not None:
                    self._end(job_id)
                continue
            if job_id not in self._runners and len(job.migrationHosts) > 1:
                log.info("job %s: taking part in the migration of %s, shared with %s", job_id, job.sourceClusterName,
                         ", ".join(host for host in job.migrationHosts if host != self.hostname))
                self._runners[job_id] = SharedJobRunner(job, self._settings, self._api.clone(), self.hostname,
                                                        on_news=self._wake.set).start()
            elif job_id not in self._runners:
                log.info("job %s: starting the migration of %s", job_id, job.sourceClusterName)
                self._runners[job_id] = JobRunner(job, self._settings, on_news=self._wake.set,
                                                  hostname=self.hostname).start()
            if job.cutoverRequested and job_id in self._runners:
                self._runners[job_id].request_cutover()
        for job_id in [job_id for job_id in self._runners if job_id not in jobs]:
            if self._runners[job_id].final_report() is not None:
                continue  # ended here: its outcome is delivered (`_report`) before the job is forgotten
            log.info("job %s is no longer running on the target side; stopping it", job_id)
            self._runners.pop(job_id).stop()

    def _end(self, job_id: str) -> None:
        self._ended[job_id] = None
        if len(self._ended) > ENDED_KEPT:
            del self._ended[next(iter(self._ended))]

    def _deliver(self, job_id: str, report: ProgressReport, *, final: bool) -> ReportAnswer | None:
        """Send one report; its answer, or None when it must be sent again (no answer, or one to try again
        on). A `final` report (an outcome, sent until answered) that the source refuses outright (4xx: the
        job or the link is gone there) would be refused forever: it counts as answered."""
        try:
            return self._api.report(job_id, report)
        except ApiCallError as error:
            if final and 400 <= error.status < 500:
                log.error("job %s: its outcome (%s) is refused, and not sent again: %s", job_id,
                          report.status.value, error)
                return ReportAnswer(status=report.status)
            log.warning("job %s: the report is sent again: %s", job_id, error)
        except httpx.HTTPError as error:
            log.warning("job %s: the report is sent again: %s: %s", job_id, type(error).__name__, error)
        except ValidationError as error:
            log.error("job %s: the source answered a report with what this agent cannot read (%s); is it another "
                      "version?", job_id, describe_invalid(error))
        return None

    def _forget_state(self, job_id: str) -> None:
        """An ended job's files — its checkpoints, its verification ledger (a row per document per side),
        what is left of a spool — serve nothing once the target holds its outcome; kept, they would fill
        the disk migration after migration. A job stopped because the target no longer lists it keeps
        them: that is also how a list missing a running job for a moment looks."""
        directory = self._settings.state_dir / job_id
        if directory.resolve().parent != self._settings.state_dir.resolve():
            return  # an id that is not one name in the state directory: never removed from elsewhere
        if directory.exists():
            shutil.rmtree(directory, ignore_errors=True)
            log.info("job %s: its state directory %s is removed", job_id, directory)

    def _confirm_cancels(self) -> None:
        """Each cancelled job whose runner has stopped: its state removed, its stop reported."""
        for job_id, runner in list(self._cancelling.items()):
            if runner is not None and runner.running:
                continue
            if isinstance(runner, SharedJobRunner):
                runner.forget_shared_state()
            self._forget_state(job_id)
            self._cancelling[job_id] = None  # stopped and forgotten: only its stop is left to report
            stopped = ProgressReport(status=MigrationStatus.FAILED, stoppedHost=self.hostname)
            if self._deliver(job_id, stopped, final=True) is None:
                continue
            log.info("job %s: cancelled; this host has stopped writing to its destination", job_id)
            del self._cancelling[job_id]
            self._end(job_id)

    def _report(self) -> None:
        self._confirm_cancels()
        for job_id, check in list(self._preflights.items()):
            found = check.answer()
            if found is not None and self._deliver(job_id, found, final=True) is not None:
                del self._preflights[job_id]
                self._end(job_id)
        for job_id, runner in list(self._runners.items()):
            report = runner.report()
            answer = self._deliver(job_id, report, final=report.status is not MigrationStatus.WORKING)
            if answer is None:
                continue
            if answer.cutoverRequested:
                runner.request_cutover()
            # Decided by what was sent, not by asking the runner again: it may have finished since.
            if report.status != MigrationStatus.WORKING:
                log.info("job %s ended %s", job_id, answer.status.value)
                runner.join(timeout=30)
                del self._runners[job_id]
                self._end(job_id)
                if not runner.running:
                    self._forget_state(job_id)
