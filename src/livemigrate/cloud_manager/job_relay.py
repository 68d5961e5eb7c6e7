"""The job relay: what the migration hosts of a linked org ask of the target, passed on over the link.

A host long-polls its jobs and reports progress to the source API; the source side makes the call
to the target, outbound, with the link's key — the target never calls a source. The last list each
org received is kept: it answers hosts polling in a burst or while a wait on it runs, and it decides
whether a migration runs when the target cannot be asked (an unlink is refused rather than risked).

Hosts waiting for a change share one wait on the target: an org's hosts all hold the same version of
its list, so a replica asks the target once per org and version however many hosts wait on it. One
wait per host made the target re-read the list for every host at every write (a heartbeat is one),
which saturated the replicas under many idle hosts (`bench/migration_hosts.py`).
"""

from __future__ import annotations

import asyncio
import functools
import time
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool

from livemigrate.client.link_channel import JobList, LinkCallFailed, LinkKeyRefused
from livemigrate.cloud_manager.link_channels import LinkChannels, LinkCredentials, link_not_found
from livemigrate.contracts import ProgressReport, ReportAnswer

_REJOIN_SECONDS = 0.5  # less than this left of a host's wait after a shared one ends: answer, do not rejoin


@dataclass(frozen=True, slots=True)
class _Kept:
    """An org's last list: when the call that fetched it was made, and when its answer came."""

    asked_at: float
    received_at: float
    jobs: JobList


class JobRelay:
    def __init__(self, channels: LinkChannels) -> None:
        self._channels = channels
        self._jobs: dict[str, _Kept] = {}  # the last list of each org
        self._waits: dict[tuple[str, str], asyncio.Task[JobList]] = {}  # (org, version held) -> the shared wait

    def is_linked(self, org_id: str) -> bool:
        return self._channels.recent_credentials_of(org_id) is not None

    async def jobs(self, org_id: str, max_age_seconds: float = 0.2) -> JobList:
        """The org's running migrations as the target lists them: fetched at most every `max_age_seconds`,
        and not at all while a shared wait on the last list's version still runs — the target has not
        said it changed, and says so within its wait's look. Every long poll of a host starts here, so
        without that, 200 idle hosts cost the target an immediate listing for every other poll."""
        cached = self._jobs.get(org_id)
        if cached is not None and (time.monotonic() - cached.received_at <= max_age_seconds
                                   or self._waited_on(org_id, cached.jobs.etag)):
            return cached.jobs
        return await self.jobs_changed(org_id, None, None)

    def _waited_on(self, org_id: str, version: str | None) -> bool:
        wait = self._waits.get((org_id, version)) if version is not None else None
        return wait is not None and not wait.done()

    async def jobs_changed(self, org_id: str, held: str | None, wait_seconds: float | None) -> JobList:
        """The list once it differs from version `held`, waiting up to `wait_seconds` on the target
        (long polling); `results` None when it did not change in that time."""
        if held is None or not wait_seconds:
            return await self._ask(org_id, held, wait_seconds)
        deadline = time.monotonic() + wait_seconds
        while True:
            left = deadline - time.monotonic()
            wait = self._waits.get((org_id, held))
            if wait is None:
                wait = self._waits[(org_id, held)] = asyncio.create_task(self._ask(org_id, held, left))
                wait.add_done_callback(functools.partial(self._forget, (org_id, held)))
            try:  # shielded: one host giving up (or its connection closing) ends no other host's wait
                found = await asyncio.wait_for(asyncio.shield(wait), timeout=left)
            except TimeoutError:
                return JobList(None, held)
            if found.results is not None or deadline - time.monotonic() < _REJOIN_SECONDS:
                return found
            # A wait started for an earlier host ended before this one's: wait on, in the next shared wait.

    def _forget(self, key: tuple[str, str], done: asyncio.Task[JobList]) -> None:
        if self._waits.get(key) is done:
            del self._waits[key]
        if not done.cancelled():
            done.exception()  # retrieved: a failure is every waiter's to raise, not the loop's to log

    async def _ask(self, org_id: str, held: str | None, wait_seconds: float | None) -> JobList:
        credentials = await self._credentials(org_id)
        channel = await self._channels.channel(org_id, credentials)
        asked_at = time.monotonic()
        found = await channel.list_jobs(credentials.target_org_id, org_id, held, wait_seconds)
        self._keep(org_id, asked_at, found)
        kept = self._jobs.get(org_id)
        return kept.jobs if held is None and kept is not None else found  # the newest list, not an older answer

    def _keep(self, org_id: str, asked_at: float, found: JobList) -> None:
        """Keep a list unless the one kept was asked for later: answers come back out of order (a call made
        again after a reset, a slow one), and an older list kept would hand a host a job that has ended
        since — started again."""
        kept = self._jobs.get(org_id)
        if found.results is not None and (kept is None or asked_at >= kept.asked_at):
            self._jobs[org_id] = _Kept(asked_at, time.monotonic(), found)

    async def report_progress(self, org_id: str, job_id: str, report: ProgressReport) -> ReportAnswer:
        credentials = await self._credentials(org_id)
        channel = await self._channels.channel(org_id, credentials)
        return await channel.report_progress(credentials.target_org_id, org_id, job_id, report)

    async def running_projects(self, org_id: str, credentials: LinkCredentials) -> list[str]:
        """The source projects with a running migration; when the target cannot say, the last list it gave."""
        try:
            channel = await self._channels.channel(org_id, credentials)
            asked_at = time.monotonic()
            listed = await channel.list_jobs(credentials.target_org_id, org_id)
            self._keep(org_id, asked_at, listed)
            running = listed.results or []
        except LinkKeyRefused:
            running = []  # the target revoked the link: nothing of it runs any more
        except LinkCallFailed:
            kept = self._jobs.get(org_id)
            running = (kept.jobs.results or []) if kept else []
        return sorted({job.sourceProjectId for job in running if job.kind == "MIGRATION"})  # a pre-flight holds nothing

    async def _credentials(self, org_id: str) -> LinkCredentials:
        credentials = await run_in_threadpool(self._channels.recent_credentials_of, org_id)
        if credentials is None:
            raise link_not_found(org_id)
        return credentials
