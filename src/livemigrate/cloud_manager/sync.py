"""The background sync: re-push every linked org's inventory on an interval and on every change.

A link whose target cannot be reached is retried with exponential backoff (1 s, 2 s, 4 s … capped
at the interval); a link the target refused is retried at the normal interval, so a token that
comes back into force is noticed. Pushes of different orgs run concurrently.
"""

from __future__ import annotations

import asyncio
import logging
import time

from starlette.concurrency import run_in_threadpool

from livemigrate.background import cancel
from livemigrate.client.link_channel import PushOutcome, PushResult
from livemigrate.cloud_manager.link import LinkService
from livemigrate.store.leases import Lease

log = logging.getLogger("livemigrate.cloud_manager.sync")

_MAX_CONCURRENT_PUSHES = 8


class LinkSyncer:
    """Interval pushes run at the replica holding `lease` (it is tried again every half interval, so a
    dead holder's pushes resume elsewhere within two intervals); the pushes a change asks for run
    where the change was made, holder or not."""

    def __init__(self, links: LinkService, interval_seconds: float, lease: Lease) -> None:
        self._links = links
        self._interval = interval_seconds
        self._lease = lease
        self._next_push: dict[str, float] = {}
        self._failures: dict[str, int] = {}
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._run(), name="link-sync")

    async def stop(self) -> None:
        await cancel(self._task)

    def inventory_changed(self, org_id: str) -> None:
        """Ask for a push of `org_id` soon; callable from any thread."""
        if self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._mark_dirty, org_id)

    def pushed(self, org_id: str, result: PushResult) -> None:
        """A push made outside this loop — connecting pushes once — counts as this loop's: the next one
        is an interval (or a retry's backoff) away. Called on the event loop."""
        self._schedule(org_id, result, time.monotonic())

    def _mark_dirty(self, org_id: str) -> None:
        self._dirty.add(org_id)
        self._wake.set()

    async def _run(self) -> None:
        limiter = asyncio.Semaphore(_MAX_CONCURRENT_PUSHES)
        while True:
            try:
                due = await self._due_org_ids()
                await asyncio.gather(*(self._push(org_id, limiter) for org_id in due))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("link sync round failed")
            await self._sleep_until_next()

    async def _due_org_ids(self) -> list[str]:
        linked = await run_in_threadpool(self._links.linked_org_ids)
        holding = await run_in_threadpool(self._lease.try_hold)
        now = time.monotonic()
        for org_id in set(self._next_push) - set(linked):
            self._next_push.pop(org_id, None)
            self._failures.pop(org_id, None)
        dirty, self._dirty = self._dirty, set()
        return [org_id for org_id in linked
                if org_id in dirty or (holding and self._next_push.setdefault(org_id, now) <= now)]

    async def _push(self, org_id: str, limiter: asyncio.Semaphore) -> None:
        async with limiter:
            result = await self._links.refresh(org_id)
        if result is not None:
            self._schedule(org_id, result, time.monotonic())

    def _schedule(self, org_id: str, result: PushResult, now: float) -> None:
        if result.outcome is PushOutcome.UNREACHABLE:
            failures = self._failures[org_id] = self._failures.get(org_id, 0) + 1
            self._next_push[org_id] = now + min(self._interval, 2.0 ** (failures - 1))
        else:
            self._failures.pop(org_id, None)
            self._next_push[org_id] = now + self._interval

    async def _sleep_until_next(self) -> None:
        now = time.monotonic()
        if self._lease.held:
            wait = min([self._interval, *(moment - now for moment in self._next_push.values())])
        else:
            wait = self._interval / 2  # only to try the lease again; a change wakes the loop at once
        self._wake.clear()
        if self._dirty:
            return
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=max(wait, 0.05))
        except TimeoutError:
            pass
