"""Writes of other replicas, heard through PostgreSQL's LISTEN/NOTIFY.

Every write transaction on PostgreSQL ends with a NOTIFY naming the process that wrote, delivered at
commit (never for a rolled-back one). Each replica listens on a connection of its own, and a write of
another replica advances its store's `generation` as its own writes do: caches of hot reads drop
what they hold, and long polls waiting for a change look again — within milliseconds, not at their
next periodic look. A lost connection is retried with backoff; once back, the generation advances
once, since writes may have been missed meanwhile.

The listener is also the first to know that the database went away: it then drops the store's pooled
connections (`Store.forget_connections`), which would all be dead once the database is back, so that
requests after the outage open new ones instead of failing on them.
"""

from __future__ import annotations

import logging
import threading

import psycopg
from sqlalchemy.engine import make_url

from livemigrate.store.database import WRITES_CHANNEL, Store

log = logging.getLogger("livemigrate.store.notifications")

_MAX_BACKOFF_SECONDS = 5.0


class WriteListener:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._conninfo = make_url(store.url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="store-write-listener", daemon=True)

    def start(self) -> WriteListener:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        backoff = 0.5
        while not self._stopping.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5) as connection:
                    connection.execute(f"LISTEN {WRITES_CHANNEL}")
                    self._store.note_write()  # anything missed while not listening
                    if backoff > 0.5:  # back after an outage: connections opened as it began are dead too
                        self._store.forget_connections()
                    backoff = 0.5
                    while not self._stopping.is_set():
                        for notice in connection.notifies(timeout=1.0):
                            if notice.payload != self._store.origin:
                                self._store.note_write()
            except psycopg.Error as error:
                log.warning("not hearing other replicas' writes (%s); retrying in %.1f s", error, backoff)
                self._store.forget_connections()
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF_SECONDS)
