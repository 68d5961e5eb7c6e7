"""Leases: one holder at a time for work that must run once across all replicas (the background loops).

A lease is a row: its holder and until when. Holding it again before then renews it; anyone may take
it once it has run out — so when its holder dies, another replica takes over at its next try after
the expiry. Taking it is one conditional UPDATE (or the INSERT of the row), atomic on SQLite and on
PostgreSQL alike: two replicas can never both be told they hold it.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from datetime import timedelta

from sqlalchemy import insert, or_, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from livemigrate.store.database import Store
from livemigrate.store.models import Lease as LeaseRow
from livemigrate.store.models import utcnow

log = logging.getLogger("livemigrate.store.leases")


def replica_name() -> str:
    """This process, as lease holders are named: readable in the table, unique even on one host."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Lease:
    def __init__(self, store: Store, name: str, holder: str, ttl_seconds: float) -> None:
        self._store = store
        self._name = name
        self._holder = holder
        self._ttl = timedelta(seconds=ttl_seconds)
        self._renew_every = ttl_seconds / 3
        self._renew_at = 0.0
        self.held = False

    def try_hold(self) -> bool:
        """Take or renew the lease; False while another holder's has not run out. A lease held is
        renewed only once a third of its time has passed: loops may ask every round, at no cost."""
        if self.held and time.monotonic() < self._renew_at:
            return True
        now = utcnow()
        taken = (update(LeaseRow)
                 .where(LeaseRow.name == self._name,
                        or_(LeaseRow.holder == self._holder, LeaseRow.expires_at < now))
                 .values(holder=self._holder, expires_at=now + self._ttl))
        try:
            # Not a store write: no cache holds leases, and replicas need not hear of every renewal.
            with self._store.engine.begin() as connection:
                held = connection.execute(taken).rowcount == 1
                if not held and connection.execute(
                        select(LeaseRow.name).where(LeaseRow.name == self._name)).first() is None:
                    connection.execute(insert(LeaseRow).values(
                        name=self._name, holder=self._holder, expires_at=now + self._ttl))
                    held = True
        except IntegrityError:
            held = False  # another replica inserted the row first: it holds the lease
        if held:
            self._renew_at = time.monotonic() + self._renew_every
        if held != self.held:
            log.info("lease %s %s by %s", self._name, "taken" if held else "lost", self._holder)
        self.held = held
        return held

    def release(self) -> None:
        """Give the lease up at once (a clean shutdown), so another replica need not wait for it to run out."""
        if not self.held:
            return
        with self._store.engine.begin() as connection:
            connection.execute(update(LeaseRow).where(LeaseRow.name == self._name, LeaseRow.holder == self._holder)
                               .values(expires_at=utcnow() - timedelta(seconds=1)))
        self.held = False


def release_quietly(lease: Lease) -> None:
    """Release at shutdown; a store that cannot be reached then only means the lease runs out by itself."""
    try:
        lease.release()
    except DBAPIError as error:
        log.warning("lease left to run out: %s", type(error).__name__)
