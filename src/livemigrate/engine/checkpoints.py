"""Checkpoints: what a restarted migration needs to go on without loss, duplicates or a restart from zero.

The engine keeps small BSON documents under string keys — the plan of every namespace, the copy
progress of every `_id` range, the resume token of every change stream — and saves each batch of
them atomically. `CheckpointStore` is the interface; `SqliteCheckpointStore` keeps them in a
SQLite file (the default, in `--state-dir`), `MemoryCheckpointStore` for runs that need none.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import bson

Document = Mapping[str, Any]

# How long a write waits for another process's transaction on the same SQLite file (the copy's
# worker processes share the checkpoint and ledger files with their coordinator) before it fails.
BUSY_SECONDS = 30.0


class CheckpointStore(Protocol):
    def load(self, prefix: str) -> dict[str, Document]:
        """Every saved document whose key starts with `prefix`."""

    def save(self, documents: Mapping[str, Document]) -> None:
        """Save these documents together: all or none."""

    def clear(self) -> None:
        """Forget everything (a fresh sync)."""


class MemoryCheckpointStore:
    def __init__(self) -> None:
        self._documents: dict[str, Document] = {}
        self._lock = threading.Lock()

    def load(self, prefix: str) -> dict[str, Document]:
        with self._lock:
            return {key: value for key, value in self._documents.items() if key.startswith(prefix)}

    def save(self, documents: Mapping[str, Document]) -> None:
        with self._lock:
            self._documents.update(documents)

    def clear(self) -> None:
        with self._lock:
            self._documents.clear()


class SqliteCheckpointStore:
    """One SQLite file; each save is one transaction, durable before it returns (synchronous=FULL)."""

    FILE_NAME = "checkpoints.sqlite"

    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self.path = state_dir / self.FILE_NAME
        self._connection = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None,
                                           timeout=BUSY_SECONDS)
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.execute("PRAGMA synchronous=FULL")
        self._connection.execute("CREATE TABLE IF NOT EXISTS checkpoints (key TEXT PRIMARY KEY, value BLOB NOT NULL)")
        self._lock = threading.Lock()

    def load(self, prefix: str) -> dict[str, Document]:
        with self._lock:
            rows = self._connection.execute(
                "SELECT key, value FROM checkpoints WHERE substr(key, 1, ?) = ?", (len(prefix), prefix)
            ).fetchall()
        return {key: bson.decode(value) for key, value in rows}

    def save(self, documents: Mapping[str, Document]) -> None:
        encoded = [(key, bson.encode(value)) for key, value in documents.items()]
        with self._lock:
            self._connection.execute("BEGIN IMMEDIATE")
            try:
                self._connection.executemany("INSERT OR REPLACE INTO checkpoints (key, value) VALUES (?, ?)", encoded)
                self._connection.execute("COMMIT")
            except BaseException:
                self._connection.execute("ROLLBACK")
                raise

    def clear(self) -> None:
        with self._lock:
            self._connection.execute("DELETE FROM checkpoints")

    def close(self) -> None:
        self._connection.close()
