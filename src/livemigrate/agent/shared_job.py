"""A migration that several migration hosts share: this host's part in it.

Every listed host runs one of these. Whoever holds the change capture's lease (`leases.CAPTURE`)
runs the migration itself — the plan, the capture, its share of the copy, then replay, cutover and
verdict — as a single host would (`runner.JobRunner`), but on the checkpoints every host can read
(`engine/mongo/destination_state.py`, on the destination). The others copy ranges they lease
(`engine/copy/shared.py`) and report only their own part. Each keeps trying for the capture's
lease: when its holder dies, the lease runs out (`LIVEMIGRATE_MIGRATION_LEASE_SECONDS`) and
another host takes it over, and resumes the migration from the shared checkpoints — the capture
from its last resume token, the copy's ranges from theirs. The new holder's verification ledger
starts empty: its pass reads both sides whole (the dead host's ledger is lost with its disk).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Literal

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from livemigrate.agent.job_thread import JobThread
from livemigrate.agent.leases import CAPTURE, LeaseKeeper
from livemigrate.agent.runner import JobRunner, RunnerSettings, SharedSetup
from livemigrate.client.agent_api import AgentApi
from livemigrate.contracts import HostJob, HostProgress, ProgressReport
from livemigrate.engine import EngineError
from livemigrate.engine.copy.ranges import load_ranges
from livemigrate.engine.copy.shared import SharedHost
from livemigrate.engine.errors import redact
from livemigrate.engine.mongo.connect import connect
from livemigrate.engine.mongo.destination_state import DestinationCheckpointStore

log = logging.getLogger("livemigrate.agent")

_LOOK_SECONDS = 1.0  # how often a host without the capture tries for it, and looks for a plan to copy
_RETRY_SECONDS = 5.0  # after the source or the destination could not be reached


class SharedJobRunner(JobThread[JobRunner]):
    """The same face as `JobRunner` to the agent: start, stop, join, request_cutover, report."""

    def __init__(self, job: HostJob, settings: RunnerSettings, api: AgentApi, hostname: str,
                 on_news: Callable[[], None] | None = None) -> None:
        if job.sourceUri is None or job.destinationUri is None:
            raise ValueError(f"job {job.id} cannot run without both connection strings")
        super().__init__(job.id, f"shared-{job.id}")
        self._job = job
        self._settings = settings
        self._hostname = hostname
        self._on_news = on_news
        self._leases = LeaseKeeper(api, job.id, hostname)
        self._host = SharedHost(hostname, self._leases, hosts=max(1, len(job.migrationHosts)))
        self._final: ProgressReport | None = None

    def forget_shared_state(self) -> None:
        """Once this job is cancelled and stopped: its checkpoints on the destination go (whichever host
        removes them first; best effort, as a destination may be gone)."""
        try:
            target = connect(self._job.destinationUri or "", "target")
        except EngineError as error:
            log.warning("job %s: its checkpoints on the destination stay (%s)", self.job_id, error)
            return
        try:
            DestinationCheckpointStore(target, self.job_id).drop()
        except PyMongoError as error:
            log.warning("job %s: its checkpoints on the destination stay (%s)", self.job_id, type(error).__name__)
        finally:
            target.close()

    def final_report(self) -> ProgressReport | None:
        """The outcome once the migration ended here (this host held the capture); None before."""
        return self._final

    def report(self) -> ProgressReport:
        """The migration's report while this host holds the capture (with this host's part), else this
        host's part alone."""
        if self._final is not None:
            return self._final
        runner = self._current()  # while this host holds the capture
        if runner is not None:
            return runner.report().model_copy(update={"host": self._part("capture")})
        return ProgressReport(host=self._part("copy"))

    def _part(self, role: Literal["capture", "copy"]) -> HostProgress:
        held = [name for name, holder in self._leases.holders().items()
                if holder == self._hostname and name != CAPTURE]
        return HostProgress(hostname=self._hostname, role=role, copiedDocuments=self._host.copied(),
                            partitions=sorted(held))

    # --- the loop --------------------------------------------------------------------------------

    def _run(self) -> None:
        source_uri, target_uri = self._job.sourceUri or "", self._job.destinationUri or ""
        try:
            while not self._stopping.is_set():
                clients = self._connect(source_uri, target_uri)
                if clients is None:
                    continue
                source, target = clients
                try:
                    if self._take_part(source, target, DestinationCheckpointStore(target, self.job_id)):
                        return
                except PyMongoError as error:
                    log.warning("job %s: %s; trying again in %.0f s", self.job_id,
                                redact(str(error), source_uri, target_uri), _RETRY_SECONDS)
                    self._stopping.wait(_RETRY_SECONDS)
                finally:
                    source.close()
                    target.close()
        finally:
            self._leases.close()
            if self._on_news is not None:
                self._on_news()

    def _connect(self, source_uri: str, target_uri: str) -> tuple[MongoClient[Any], MongoClient[Any]] | None:
        """Both ends, or None after a wait when one cannot be reached (the loop tries again)."""
        try:
            source = connect(source_uri, "source")
            try:
                return source, connect(target_uri, "target")
            except EngineError:
                source.close()
                raise
        except EngineError as error:
            log.warning("job %s: %s; trying again in %.0f s", self.job_id, error, _RETRY_SECONDS)
            self._stopping.wait(_RETRY_SECONDS)
            return None

    def _take_part(self, source: MongoClient[Any], target: MongoClient[Any],
                   checkpoints: DestinationCheckpointStore) -> bool:
        """Copy what can be leased, and take the capture when it is free; True once the migration ended here."""
        host = self._host
        while not self._stopping.is_set():
            if checkpoints.ended() is not None:
                self._stopping.wait(_LOOK_SECONDS)  # over: its job leaves this host's list at once
                continue
            if self._leases.claim(CAPTURE):
                if checkpoints.ended() is not None:  # it ended between the look above and the claim
                    self._leases.release(CAPTURE)
                    continue
                if self._hold_capture(SharedSetup(checkpoints, host)):
                    return True
                continue
            if checkpoints.load("meta") and not self._copy_done(checkpoints):
                self._copy_some(source, target, checkpoints, host)
            else:
                self._stopping.wait(_LOOK_SECONDS)
        return False

    @staticmethod
    def _copy_done(checkpoints: DestinationCheckpointStore) -> bool:
        return all(state.done for state in load_ranges(checkpoints))

    def _copy_some(self, source: MongoClient[Any], target: MongoClient[Any],
                   checkpoints: DestinationCheckpointStore, host: SharedHost) -> None:
        """Copy leased ranges until they are all done, or the capture's lease is free to take."""
        options = self._settings.options(drop_target=self._job.dropDestinationData,
                                         change_capture=self._job.changeCapture)
        part = host.copy_part(checkpoints, options, on_batch=lambda: None)
        round_over = threading.Event()
        watcher = threading.Thread(target=self._watch_capture, args=(round_over,), daemon=True)
        watcher.start()
        try:
            part.run(source, target, round_over)
        finally:
            round_over.set()
            watcher.join()

    def _watch_capture(self, round_over: threading.Event) -> None:
        """Ends a copying round when the job stops or the capture's lease becomes this host's to take."""
        while not round_over.wait(_LOOK_SECONDS):
            holders = self._leases.holders()
            if self._stopping.is_set() or CAPTURE not in holders:
                round_over.set()

    def _hold_capture(self, setup: SharedSetup) -> bool:
        """Run the migration while this host holds the capture; True once it ended (COMPLETE, FAILED)."""
        log.info("job %s: this host holds the change capture and runs the migration", self.job_id)
        runner = JobRunner(self._job, self._settings, on_news=self._on_news, shared=setup, hostname=self._hostname)
        self._hand_over(runner)
        runner.start()
        while not self._stopping.is_set():
            runner.join(_LOOK_SECONDS)
            if not runner.running:
                break
            if not self._leases.holds(CAPTURE):
                log.warning("job %s: the change capture's lease was lost; stopping here so that another host "
                            "can take over", self.job_id)
                runner.stop()
                break
        runner.join()  # stopped (the job, or the lease lost): its leases outlive what it still writes
        final = runner.final_report()
        self._hand_over(None)
        if final is None:
            return False
        if isinstance(setup.checkpoints, DestinationCheckpointStore):
            setup.checkpoints.end(final.status.value)
        self._final = final.model_copy(update={"host": self._part("capture")})
        return True
