"""The verification ledger's SQLite tables and the statements its rows take (`ledger.py` says what
they mean): one row per document per side, written many to a statement.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from itertools import chain
from pathlib import Path

from bson.raw_bson import RawBSONDocument

from livemigrate.engine.checkpoints import BUSY_SECONDS
from livemigrate.engine.digests import digest_of

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS identity (migration TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS digests (side INTEGER NOT NULL, namespace TEXT NOT NULL, key BLOB NOT NULL, "
    "digest BLOB NOT NULL, PRIMARY KEY (side, namespace, key)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS dirty (namespace TEXT NOT NULL, key BLOB NOT NULL, seq INTEGER NOT NULL DEFAULT 0, "
    "PRIMARY KEY (namespace, key)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS passes (side INTEGER NOT NULL, namespace TEXT NOT NULL, "
    "PRIMARY KEY (side, namespace))",
    "CREATE TABLE IF NOT EXISTS unusable (reason TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS sample (namespace TEXT NOT NULL, key BLOB NOT NULL, "
    "PRIMARY KEY (namespace, key)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS hashes (side INTEGER NOT NULL, namespace TEXT NOT NULL, total TEXT NOT NULL, "
    "rows INTEGER, "
    "PRIMARY KEY (side, namespace))",
    "CREATE TABLE IF NOT EXISTS copying (namespace TEXT PRIMARY KEY)",
    "CREATE TABLE IF NOT EXISTS running (side INTEGER NOT NULL, namespace TEXT NOT NULL, total TEXT NOT NULL, "
    "PRIMARY KEY (side, namespace))",
)
TABLES = ("identity", "digests", "dirty", "passes", "unusable", "sample", "hashes", "copying", "running")
ZERO = "0" * 64


# Rows a statement inserts at once: `INSERT … VALUES (…), (…), …` costs SQLite about half of what
# `executemany` of one row per statement does (`make bench`'s engine CPU measures it), since one
# statement is prepared, bound and stepped per chunk instead of per row. 100 rows of 4 values stay
# under the 999 parameters older SQLite builds allow a statement.
_ROWS_A_STATEMENT = 100
DigestRow = tuple[int, str, bytes, bytes]


def insert_digests(connection: sqlite3.Connection, verb: str, rows: Sequence[DigestRow]) -> None:
    """`verb` (INSERT, INSERT OR REPLACE) `rows` into `digests`, a chunk of rows a statement. The
    statement for a full chunk is always the same text, so the driver's statement cache keeps it."""
    for start in range(0, len(rows), _ROWS_A_STATEMENT):
        chunk = rows[start:start + _ROWS_A_STATEMENT]
        connection.execute(f"{verb} INTO digests (side, namespace, key, digest) VALUES "
                           + ", ".join(["(?, ?, ?, ?)"] * len(chunk)),
                           list(chain.from_iterable(chunk)))


def rows_of(side: int, namespace: str, documents: Iterable[RawBSONDocument]) -> list[DigestRow]:
    """The ledger rows of `documents`: the copy and the pass make one per document they read."""
    return [(side, namespace, key, digest) for key, digest in map(digest_of, documents)]


def key_batches(keys: Sequence[bytes], size: int = 500) -> Iterator[tuple[list[bytes], str]]:
    """`keys` a batch at a time, each with its `?, ?, …` for an `IN (…)`: SQLite caps a statement's
    parameters."""
    for start in range(0, len(keys), size):
        part = list(keys[start:start + size])
        yield part, ", ".join("?" * len(part))


# The keys of one namespace (`:ns`) whose digests differ between the sides, or that one side lacks.
MISMATCHED = (
    "SELECT s.key FROM digests s LEFT JOIN digests t ON t.side = 1 AND t.namespace = s.namespace "
    "AND t.key = s.key WHERE s.side = 0 AND s.namespace = :ns AND (t.digest IS NULL OR t.digest != s.digest) "
    "UNION ALL "
    "SELECT t.key FROM digests t LEFT JOIN digests s ON s.side = 0 AND s.namespace = t.namespace "
    "AND s.key = t.key WHERE t.side = 1 AND t.namespace = :ns AND s.key IS NULL")



def open_ledger(path: Path | None) -> sqlite3.Connection:
    """The ledger's database at `path` (None: in memory), its tables made, and those of a ledger written
    by an earlier version brought up to date."""
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(":memory:" if path is None else path, check_same_thread=False,
                                 isolation_level=None, timeout=BUSY_SECONDS)
    connection.execute("PRAGMA journal_mode=WAL")
    # Survives a killed process, not a power cut: what a lost row costs is a document read again
    # at cutover (a digest missing shows as a difference, which is read again on both sides), not
    # an fsync per copied batch.
    connection.execute("PRAGMA synchronous=NORMAL")
    # The copy and the pass write a row per document: a cache that holds a large namespace's index
    # pages, and checkpoints of the write-ahead log ten times rarer than the default, halve the
    # cost of a row.
    connection.execute("PRAGMA cache_size=-65536")
    connection.execute("PRAGMA wal_autocheckpoint=10000")
    for statement in SCHEMA:
        connection.execute(statement)
    # A ledger written before marks were numbered, or rows counted: counted anew where needed.
    if "seq" not in [row[1] for row in connection.execute("PRAGMA table_info(dirty)")]:
        connection.execute("ALTER TABLE dirty ADD COLUMN seq INTEGER NOT NULL DEFAULT 0")
    if "rows" not in [row[1] for row in connection.execute("PRAGMA table_info(hashes)")]:
        connection.execute("ALTER TABLE hashes ADD COLUMN rows INTEGER")
    return connection
