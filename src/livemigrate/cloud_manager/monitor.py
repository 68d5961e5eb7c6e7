"""The host monitor: probe every registered host on an interval.

What a probe finds different reaches linked targets by itself: `inventory_changes.py` announces
every committed change to what an inventory shows.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.concurrency import run_in_threadpool

from livemigrate.background import cancel
from livemigrate.cloud_manager.hosts import refresh_hosts
from livemigrate.crypto import SecretBox
from livemigrate.store.database import Store
from livemigrate.store.leases import Lease

log = logging.getLogger("livemigrate.cloud_manager.monitor")


class HostMonitor:
    def __init__(self, store: Store, secret_box: SecretBox, interval_seconds: float, lease: Lease) -> None:
        self._store = store
        self._secret_box = secret_box
        self._interval = interval_seconds
        self._lease = lease  # one replica probes; the others try to take over every half interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="host-monitor")

    async def stop(self) -> None:
        await cancel(self._task)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval if self._lease.held else self._interval / 2)
            try:
                if await run_in_threadpool(self._lease.try_hold):
                    await run_in_threadpool(refresh_hosts, self._store, self._secret_box)
            except Exception:
                log.exception("host monitoring round failed")
