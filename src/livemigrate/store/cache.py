"""A read-through cache for the few lookups every request makes (API keys, org existence).

An entry is good while no write transaction has run in this process since it was read (the
store's `generation`) and for at most `ttl_seconds`, which bounds how long a change made by
another process (another replica, `livemigrate admin`) can go unseen. Misses are not cached, so
a key or org created elsewhere is found at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

from livemigrate.store.database import Store

KeyT = TypeVar("KeyT")
ValueT = TypeVar("ValueT")

_MAX_ENTRIES = 10_000


class GenerationCache(Generic[KeyT, ValueT]):
    def __init__(self, store: Store, ttl_seconds: float) -> None:
        self._store = store
        self._ttl = ttl_seconds
        self._entries: dict[KeyT, tuple[ValueT, int, float]] = {}

    def get(self, key: KeyT, load: Callable[[KeyT], ValueT | None]) -> ValueT | None:
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is not None and entry[1] == self._store.generation and entry[2] > now:
            return entry[0]
        generation = self._store.generation  # read before loading: a write meanwhile makes the entry stale
        value = load(key)
        if value is None:
            self._entries.pop(key, None)
        else:
            if len(self._entries) >= _MAX_ENTRIES:
                self._entries.clear()
            self._entries[key] = (value, generation, now + self._ttl)
        return value
