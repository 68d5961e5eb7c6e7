"""A validation job on a migration host: the engine's pre-flight of the source, in a thread, answered once.

The pre-flight writes only to its scratch database on the destination, dropped before and after
(`engine/preflight.py`), so a validation never changes what a later migration will find.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from pymongo.errors import PyMongoError

from livemigrate.agent.runner import RunnerSettings
from livemigrate.contracts import HostJob, PreflightReport, ProgressReport
from livemigrate.engine.errors import EngineError, redact
from livemigrate.engine.mongo.connect import connect
from livemigrate.statuses import MigrationStatus

log = logging.getLogger("livemigrate.agent")


class PreflightJob:
    def __init__(self, job: HostJob, settings: RunnerSettings, on_done: Callable[[], None]) -> None:
        if job.sourceUri is None or job.destinationUri is None:
            raise ValueError(f"validation {job.id} cannot run without both connection strings")
        self.job_id = job.id
        self._source_uri, self._target_uri = job.sourceUri, job.destinationUri
        self._options = settings.options(drop_target=job.dropDestinationData, sharding=job.sharding,
                                         stop_balancer=job.stopSourceBalancer, reversible=job.reversible)
        self._answer: ProgressReport | None = None
        self._on_done = on_done  # the answer is sent at once, not at the next report tick
        self._thread = threading.Thread(target=self._run, name=f"preflight-{job.id}", daemon=True)

    def start(self) -> PreflightJob:
        self._thread.start()
        return self

    def answer(self) -> ProgressReport | None:
        """The report to send, once the pre-flight has ended; None while it runs."""
        return self._answer

    def _run(self) -> None:
        from livemigrate.engine.preflight import preflight  # the engine's heavier imports, only when asked

        try:
            with connect(self._source_uri, "source") as source, connect(self._target_uri, "target") as target:
                found = preflight(source, target, self._options, replace_data="set dropDestinationData",
                                  stop_balancer="set stopSourceBalancer")
            self._answer = ProgressReport(preflight=PreflightReport.model_validate(found.to_document()))
            log.info("validation %s: pre-flight done, %d namespace(s), %d blocking", self.job_id,
                     len(found.namespaces), len(found.blocking))
        except (EngineError, PyMongoError) as error:
            message = redact(str(error), self._source_uri, self._target_uri)
            log.warning("validation %s: pre-flight failed: %s", self.job_id, message)
            self._answer = ProgressReport(status=MigrationStatus.FAILED, errorMessage=message)
        finally:
            self._on_done()
