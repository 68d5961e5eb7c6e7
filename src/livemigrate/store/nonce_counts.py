"""Digest nonce counts in the store, shared by every replica on it: a count used at one is refused at all.

One INSERT per authenticated request, in a transaction of its own (not a store write: no cache of
anyone's holds nonce counts). A conflict on (nonce, count) is a replay. Rows live until their nonce
expires; each replica deletes the expired ones once a minute.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from livemigrate.store.database import Store
from livemigrate.store.models import DigestNonceCount, utcnow

_PRUNE_SECONDS = 60.0


class StoreNonceCounts:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._insert = sqlite_insert if store.is_sqlite else postgresql_insert
        self._next_prune = 0.0
        self._prune_lock = threading.Lock()

    def first_use(self, nonce: str, nonce_count: int, expires_at: float) -> bool:
        statement = (self._insert(DigestNonceCount)
                     .values(nonce=nonce, nonce_count=nonce_count,
                             expires_at=datetime.fromtimestamp(expires_at, UTC))
                     .on_conflict_do_nothing()
                     .returning(DigestNonceCount.nonce_count))  # a row back only when it was inserted
        with self._store.engine.begin() as connection:
            first = connection.execute(statement).first() is not None
        self._prune_now_and_then()
        return first

    def _prune_now_and_then(self) -> None:
        now = time.monotonic()
        if now < self._next_prune or not self._prune_lock.acquire(blocking=False):
            return
        try:
            self._next_prune = now + _PRUNE_SECONDS
            with self._store.engine.begin() as connection:
                connection.execute(delete(DigestNonceCount).where(DigestNonceCount.expires_at < utcnow()))
        finally:
            self._prune_lock.release()
