"""Checkpoints: what a restarted migration needs to go on without loss, duplicates or a restart from zero.

The engine keeps small BSON documents under string keys — the plan of every namespace, the copy
progress of every `_id` range, the resume token of every change stream — and saves each batch of
them atomically. `CheckpointStore` is the interface; `SqliteCheckpointStore` keeps them in a
SQLite file (the default, in `--state-dir`), `MemoryCheckpointStore` for runs that need none.

A full disk under the state directory (`writing_state`) is met by every SQLite file there — these
checkpoints, the verification ledger and the spool — the same way: the write that failed is rolled
back, so that nothing half-written stays, and the run ends with `STATE_DISK_FULL`, one sentence
that names the directory and roughly what the migration needs there. Run again once space is freed:
it resumes from what was saved before.
"""

from __future__ import annotations

import errno
import shutil
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import bson

from livemigrate.engine.errors import EngineError, EngineErrorCode

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
        self.path = state_dir / self.FILE_NAME
        with writing_state(state_dir, "opening the checkpoints"):
            state_dir.mkdir(parents=True, exist_ok=True)
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
        with self._lock, writing_state(self.path.parent, "saving a checkpoint"):
            self._connection.execute("BEGIN IMMEDIATE")
            try:
                self._connection.executemany("INSERT OR REPLACE INTO checkpoints (key, value) VALUES (?, ?)", encoded)
                self._connection.execute("COMMIT")
            except BaseException:
                roll_back(self._connection)
                raise

    def clear(self) -> None:
        with self._lock, writing_state(self.path.parent, "clearing the checkpoints"):
            self._connection.execute("DELETE FROM checkpoints")

    def close(self) -> None:
        self._connection.close()


# --- a full disk under the state directory ------------------------------------------------------------

_SQLITE_IOERR, _SQLITE_FULL = 10, 13  # SQLite's primary result codes (an extended code's low byte)
# A write that fails with an I/O error while the disk has less than this left is taken for a full disk:
# SQLite says SQLITE_FULL only when a write() meets ENOSPC, and an I/O error when growing its shared
# memory file (or truncating, or allocating) does.
_NEARLY_FULL_BYTES = 1024**2
# What the state directory needs, roughly: the verification ledger keeps a row per document on each
# side (65 bytes for a namespace of 11 characters, measured: 100 leaves room for longer names), and each
# file's write-ahead log grows up to its checkpoint interval (the ledger's 10,000 pages of 4 KiB,
# `ledger_tables.open_ledger`; 1,000 for the checkpoints' and the spool's).
LEDGER_BYTES_A_DOCUMENT = 100
WRITE_AHEAD_BYTES = 48 * 1024**2


class StateDiskFull(EngineError, sqlite3.OperationalError):
    """`STATE_DISK_FULL`, and a SQLite error still: the threads beside a replay that skip a round on a
    SQLite error (the verification pass, the ledger's refresh) go on treating it so, while the run's own
    next write ends the migration with it."""

    def __init__(self, message: str) -> None:
        super().__init__(EngineErrorCode.STATE_DISK_FULL, message)

    def __reduce__(self) -> tuple[type[EngineError], tuple[str]]:  # type: ignore[override]
        return (StateDiskFull, (self.message,))


def roll_back(connection: sqlite3.Connection) -> None:
    """Roll back the transaction a failed write leaves, if it leaves one: SQLite rolls back by itself
    after a full disk (measured), and a ROLLBACK then would fail and hide the cause."""
    if connection.in_transaction:
        connection.execute("ROLLBACK")


def is_disk_full(error: BaseException, directory: Path) -> bool:
    """Whether `error`, met writing a file of `directory`, says its disk is full."""
    if isinstance(error, OSError):
        return error.errno == errno.ENOSPC
    if not isinstance(error, sqlite3.Error):
        return False
    code = getattr(error, "sqlite_errorcode", None)
    if code is None:
        return "database or disk is full" in str(error)
    if code & 0xFF == _SQLITE_FULL:
        return True
    return code & 0xFF == _SQLITE_IOERR and _free_bytes(directory) < _NEARLY_FULL_BYTES


@contextmanager
def writing_state(directory: Path | None, doing: str, *, also_needed: str = "") -> Iterator[None]:
    """Writes to a SQLite file of the state `directory` (None: in memory, where a full database is out of
    memory, not disk): a full disk met inside is raised as `StateDiskFull`, saying what was being done
    (`doing`: "saving a checkpoint") and what the caller's file needs besides the ledger and the logs
    (`also_needed`: ", more for …")."""
    try:
        yield
    except StateDiskFull:
        raise
    except (sqlite3.Error, OSError) as error:
        if directory is None or not is_disk_full(error, directory):
            raise
        raise disk_full(directory, doing, also_needed) from error


def disk_full(directory: Path, doing: str, also_needed: str = "") -> StateDiskFull:
    """The sentence: the directory, its disk full, what failed, roughly what the migration needs there
    more, and that a run on freed space resumes."""
    documents = planned_documents(directory)
    ledger = next(directory.glob("verification-*.sqlite"), None) if directory.is_dir() else None
    recorded = ledger.stat().st_size if ledger is not None else 0
    needed = max(0, 2 * LEDGER_BYTES_A_DOCUMENT * (documents or 0) - recorded) + WRITE_AHEAD_BYTES
    counted = f" for {documents:,} documents" if documents else ""
    return StateDiskFull(
        f"the disk of the state directory {directory} is full ({human_size(_free_bytes(directory))} free), so "
        f"{doing} failed (nothing half-written is kept); free about {human_size(needed)} there (the verification "
        f"ledger's {LEDGER_BYTES_A_DOCUMENT} bytes a document on each side{counted}, and "
        f"{human_size(WRITE_AHEAD_BYTES)} of write-ahead logs){also_needed}, and run the migration again with the "
        "same state directory: it resumes from its checkpoints")


def planned_documents(directory: Path) -> int | None:
    """The documents the checkpoints in `directory` plan to copy, if a plan is saved there (read
    without writing: the disk may be full)."""
    path = directory / SqliteCheckpointStore.FILE_NAME
    if not path.exists():
        return None
    try:
        connection = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=1)
        try:
            rows = connection.execute("SELECT value FROM checkpoints WHERE substr(key, 1, 6) = 'total:'").fetchall()
        finally:
            connection.close()
    except sqlite3.Error:
        return None
    return sum(int(bson.decode(row[0]).get("total") or 0) for row in rows) if rows else None


def _free_bytes(directory: Path) -> int:
    """Free space on the disk of `directory`, or of its nearest parent that exists (one not made yet)."""
    for place in (directory, *directory.parents):
        try:
            return shutil.disk_usage(place).free
        except OSError:
            continue
    return 0


def human_size(size_bytes: int) -> str:
    """Bytes as a person reads them: 512 B, 3.2 MiB, 41.0 GiB."""
    if size_bytes < 1024:
        return f"{size_bytes:,} B"
    value = size_bytes / 1024
    for unit in ("KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            break
        value /= 1024
    return f"{value:,.1f} {unit}"
