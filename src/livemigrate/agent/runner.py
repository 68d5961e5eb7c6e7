"""One job on a migration host: the engine in a thread, retried when an end cannot be reached, and its
latest progress turned into the report the target expects.

Retries: an unreachable source or target (or a driver error mid-run) is retried `retries` times,
waiting `retry_seconds`, then twice that, and so on; each retry resumes from the job's checkpoints.
After the last one the job ends FAILED with the engine's sentence, which names the end at fault.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from pymongo.errors import PyMongoError

from livemigrate.agent.job_thread import JobThread
from livemigrate.contracts import (
    ChangeCapture,
    HostJob,
    NamespaceReport,
    ProgressReport,
    Retries,
    Sharding,
    ShardReport,
)
from livemigrate.engine import CaptureScope, EngineError, Migration, MigrationEvent, MigrationOptions
from livemigrate.engine.capture.spool import Spool
from livemigrate.engine.checkpoints import CheckpointStore, SqliteCheckpointStore
from livemigrate.engine.copy.shared import SharedHost
from livemigrate.engine.errors import EngineErrorCode, redact
from livemigrate.engine.events import Phase
from livemigrate.engine.ledger import VerificationLedger
from livemigrate.engine.options import ReversePoint, ShardingRequest
from livemigrate.settings import Settings
from livemigrate.statuses import MigrationStatus

log = logging.getLogger("livemigrate.agent")

# A job that ends with one of these is run again (from its checkpoints) within the host's retries: a server
# away past the fault limit, a worker lost, a disk full on either side that someone may free meanwhile.
RETRYABLE = frozenset({EngineErrorCode.SOURCE_UNREACHABLE, EngineErrorCode.TARGET_UNREACHABLE,
                       EngineErrorCode.COPY_WORKER_LOST, EngineErrorCode.STATE_DISK_FULL,
                       EngineErrorCode.TARGET_OUT_OF_SPACE})
# A migration's `changeCapture`, in the engine's words.
CAPTURE_SCOPES = {"AUTO": CaptureScope.AUTO, "DEPLOYMENT": CaptureScope.CLUSTER, "COLLECTION": CaptureScope.COLLECTION}


@dataclass(frozen=True)
class RunnerSettings:
    state_dir: Path
    capture: CaptureScope
    retries: int
    retry_seconds: float
    ready_lag_seconds: float
    count_check_seconds: float = 10.0
    verify_sample: int = 100
    exact_counts: bool = False
    spool_limit_bytes: int = MigrationOptions.spool_limit_bytes
    processes: int | None = None  # the copy's worker processes (`copy/processes.py`); None: the default
    fault_limit_seconds: float = MigrationOptions.fault_limit_seconds
    socket_timeout_seconds: float = MigrationOptions.socket_timeout_seconds
    in_process: bool = False  # the migration host `serve` runs, whose capture is `serve --agent-capture`

    @classmethod
    def from_settings(cls, settings: Settings, state_dir: Path, capture: str | None = None,
                      processes: int | None = None, *, in_process: bool = False) -> RunnerSettings:
        """What a migration host's jobs run with; `capture` and `processes` (command-line options) override
        the settings."""
        return cls(state_dir=state_dir, capture=CaptureScope(capture or settings.agent_capture),
                   processes=processes or settings.agent_processes,
                   retries=settings.agent_retries, retry_seconds=settings.agent_retry_seconds,
                   ready_lag_seconds=settings.agent_ready_lag_seconds,
                   count_check_seconds=settings.agent_count_check_seconds,
                   verify_sample=settings.agent_verify_sample, exact_counts=settings.agent_exact_counts,
                   spool_limit_bytes=settings.agent_spool_limit_mb * 1024**2,
                   fault_limit_seconds=settings.agent_fault_limit_seconds,
                   socket_timeout_seconds=settings.agent_socket_timeout_seconds, in_process=in_process)

    def options(self, drop_target: bool, change_capture: ChangeCapture | None = None, sharding: Sharding | None = None,
                stop_balancer: bool = False, reversible: bool = False,
                reverse_from: ReversePoint | None = None) -> MigrationOptions:
        """A job's options: the capture its migration asks for (`changeCapture`), else this host's; the
        sharding it asks for, whether it may stop a sharded source's balancer, whether it may be reversed
        (and, for a reverse, where it starts)."""
        capture = self.capture if change_capture is None else CAPTURE_SCOPES[change_capture]
        return MigrationOptions(drop_target=drop_target, capture=capture, processes=self.processes,
                                reversible=reversible, reverse_from=reverse_from,
                                sharding=ShardingRequest.from_json(sharding.model_dump()) if sharding else None,
                                stop_balancer=stop_balancer,
                                count_check_seconds=self.count_check_seconds, verify_sample=self.verify_sample,
                                exact_counts=self.exact_counts, spool_limit_bytes=self.spool_limit_bytes,
                                fault_limit_seconds=self.fault_limit_seconds,
                                socket_timeout_seconds=self.socket_timeout_seconds,
                                capture_remedies=self.capture_remedies())

    def capture_remedies(self) -> dict[str, str]:
        """How a person gives a job the other change capture: a migration asks for its own when created
        (so the stuck one is cancelled and created again, nothing restarted), or the host's default."""

        def remedy(api_value: str, cli_value: str) -> str:
            default = (f"`livemigrate serve --agent-capture {cli_value}` (the migration host `serve` runs)"
                       if self.in_process else f"`livemigrate agent --capture {cli_value}` (or "
                       f"LIVEMIGRATE_AGENT_CAPTURE={cli_value}) on the migration host")
            return ("cancel this migration (`livemigrate target live-migrations cancel`, DELETE "
                    f"…/liveMigrations/{{id}}, or the console) and create it again with changeCapture {api_value}; "
                    f"or make it this host's default: {default}")

        return {"collection": remedy("COLLECTION", "collection"),
                "cluster": remedy("DEPLOYMENT", "cluster") + " (a deployment-wide change stream needs MongoDB 4.0+)"}


@dataclass(frozen=True)
class SharedSetup:
    """A shared migration's checkpoints (`engine/mongo/destination_state.py`) and this host's part in it."""

    checkpoints: CheckpointStore
    host: SharedHost


class JobRunner(JobThread[Migration]):
    def __init__(self, job: HostJob, settings: RunnerSettings, on_news: Callable[[], None] | None = None,
                 shared: SharedSetup | None = None, hostname: str | None = None) -> None:
        """`shared`: this host holds the change capture of a migration several hosts share
        (`shared_job.py`): the checkpoints are the shared ones, the ledger and the spool this host's.
        `hostname`: this migration host's, as another migration refused its destination is told."""
        super().__init__(job.id, f"job-{job.id}")
        self._holder = f"live migration {job.id} on migration host {hostname or socket.gethostname()}"
        self._shared = shared
        self._on_news = on_news  # called on a new phase and at the end: worth reporting at once
        if job.sourceUri is None or job.destinationUri is None:
            raise ValueError(f"job {job.id} cannot run without both connection strings")
        self._source_uri = job.sourceUri
        self._target_uri = job.destinationUri
        self._settings = settings
        reverse_from = ReversePoint.from_json(job.reverseFrom) if job.direction == "REVERSE" and job.reverseFrom else None
        if job.direction == "REVERSE" and reverse_from is None:
            raise ValueError(f"job {job.id} reverses a migration whose host kept no point to start from")
        self._options = settings.options(drop_target=job.dropDestinationData, change_capture=job.changeCapture,
                                         sharding=job.sharding, stop_balancer=job.stopSourceBalancer,
                                         reversible=job.reversible and job.direction == "FORWARD",
                                         reverse_from=reverse_from)
        if shared is not None:  # the copy is planned for every host it lists (`engine/copy/initial_copy.py`)
            self._options = replace(self._options, copy_hosts=shared.host.hosts)
        self._latest: MigrationEvent | None = None
        self._final: ProgressReport | None = None

    def final_report(self) -> ProgressReport | None:
        """The outcome once the job ended COMPLETE or FAILED; None while it runs or after a stop."""
        return self._final

    def report(self) -> ProgressReport:
        """What to tell the target now: the final outcome once there is one, else the latest progress."""
        if self._final is not None:
            return self._final
        with self._lock:
            event = self._latest
        if event is None:
            return ProgressReport(phase=Phase.CONNECTING)
        return ProgressReport(
            phase=event.phase, lagTimeSeconds=event.lag_seconds, readyForCutover=self._ready(event),
            copiedDocuments=event.copied, totalDocuments=event.total, eventsApplied=event.applied_events,
            docsPerSecond=round(event.docs_per_second, 1),
            namespaces=_namespace_reports(event), sourceWritesBlocked=event.source_writes_blocked,
            writesAfterCutoverBegan=event.writes_after_drain or None,
            retries=Retries(**event.retries) if event.retries else None,
            warnings=[event.warning] if event.warning else [],
        )

    def _ready(self, event: MigrationEvent) -> bool:
        """Copied, caught up within the threshold, both sides' counts in agreement (evidence the change
        stream cannot fake), and the destination read once for verification: a cutover now takes the
        drain and a second look at what changes from here on, nothing more."""
        lag = event.lag_seconds
        return (event.phase is Phase.REPLICATING and lag is not None and lag <= self._settings.ready_lag_seconds
                and not event.verification_pending and event.counts_agree and event.warning is None)

    def _on_event(self, event: MigrationEvent) -> None:
        with self._lock:
            previous, self._latest = self._latest, event
        news = (previous is None or previous.phase is not event.phase or self._ready(previous) != self._ready(event)
                or previous.warning is None and event.warning is not None)
        if news and self._on_news is not None:
            self._on_news()

    def _run(self) -> None:
        checkpoints: CheckpointStore = (self._shared.checkpoints if self._shared is not None
                                        else SqliteCheckpointStore(self._settings.state_dir / self.job_id))
        ledger = VerificationLedger(self._settings.state_dir / self.job_id / VerificationLedger.FILE_NAME)
        failures = 0
        try:
            while not self._stopping.is_set():
                migration = Migration(self._source_uri, self._target_uri, self._options, checkpoints, self._on_event,
                                      ledger, spool_path=self._settings.state_dir / self.job_id / Spool.FILE_NAME,
                                      shared=self._shared.host if self._shared is not None else None,
                                      holder=self._holder)
                self._hand_over(migration)
                try:
                    result = migration.run()
                except (EngineError, PyMongoError) as error:
                    retryable = not isinstance(error, EngineError) or error.code in RETRYABLE
                    message = redact(str(error), self._source_uri, self._target_uri)
                    failures += 1
                    if not retryable or failures > self._settings.retries:
                        attempts = f" after {failures} attempts" if retryable else ""
                        log.error("job %s failed%s: %s", self.job_id, attempts, message)
                        self._final = ProgressReport(status=MigrationStatus.FAILED, errorMessage=f"{message}{attempts}")
                        return
                    wait = self._settings.retry_seconds * 2 ** (failures - 1)
                    log.warning("job %s: %s; retry %d of %d in %.1f s", self.job_id, message, failures,
                                self._settings.retries, wait)
                    self._stopping.wait(wait)
                    continue
                with self._lock:
                    latest = self._latest
                # The namespaces as the verdict left them (VERIFIED or DIFFERENT), for the progress document.
                verdicts = _namespace_reports(latest) if latest is not None else None
                if result.phase is Phase.COMPLETE:
                    self._final = ProgressReport(status=MigrationStatus.COMPLETE, phase=Phase.COMPLETE, lagTimeSeconds=0,
                                                 namespaces=verdicts, reversePoint=result.reverse_point.to_json()
                                                 if result.reverse_point is not None else None)
                elif result.phase is Phase.FAILED:
                    found = result.report.describe_differences() if result.report is not None else "unknown"
                    self._final = ProgressReport(status=MigrationStatus.FAILED, namespaces=verdicts,
                                                 errorMessage="verification after cutover found "
                                                 f"differences between source and destination: {found}")
                return
        finally:
            if isinstance(checkpoints, SqliteCheckpointStore):
                checkpoints.close()
            ledger.close()
            if self._on_news is not None:
                self._on_news()


def _namespace_reports(event: MigrationEvent) -> list[NamespaceReport]:
    return [NamespaceReport(namespace=p.namespace, copied=p.copied, total=p.total, done=p.done,
                            changesApplied=p.changes_applied, verification=p.verification,
                            shards=[ShardReport(shard=s.shard, copied=s.copied, total=s.total, done=s.done)
                                    for s in p.shards] or None) for p in event.namespaces]
