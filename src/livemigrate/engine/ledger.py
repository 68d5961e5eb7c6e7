"""The verification ledger: what a migration already knows about both sides, so that cutover reads
again only the documents that changed.

The copy records the source's side from the bytes it copies; once it is done, one pass reads the
destination (and any source side the copy did not record) into it while changes replicate. Every
source change replayed — each made since the copy began, the spooled ones too — marks its document
dirty, and from before that pass on so does every document the destination's change streams report
written (by us, or by anyone). While changes replicate, the dirty documents are read again on both
sides every few seconds and their marks cleared (`verify/refresh.py`); at cutover, after the drain,
only the documents dirty since are read again, and the two sides' digests are compared. A document
that is not dirty has changed on neither side since its side was last recorded: every source change
is replicated, and every destination write is reported, so either would have marked it.

Each mark carries a number that grows with every mark made: clearing the marks read again takes
only those numbered up to where that reading began, so a change marked meanwhile keeps its mark.

Why SQLite and not a dict: one row per document per side. A file in the state directory keeps the
agent's memory flat on large deployments and survives a restart, so a resumed job keeps its ledger.
Marks are written before the resume tokens that pass their changes are saved, so a kill never loses
one; a ledger that disagrees with the data is never trusted alone (the documents it disagrees on are
read again on both sides before a difference found through it counts: `verify/verdict.py`).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from enum import IntEnum
from pathlib import Path
from typing import Any

from bson.raw_bson import RawBSONDocument

from livemigrate.engine.changes import DOCUMENT_OPERATIONS, namespace_of
from livemigrate.engine.checkpoints import roll_back, writing_state
from livemigrate.engine.digests import digest_sum, document_key, hash_hex, namespace_hash
from livemigrate.engine.ledger_tables import MISMATCHED, TABLES, ZERO, insert_digests, key_batches, open_ledger, rows_of

# Changes the ledger cannot follow document by document: cutover then verifies every document.
_LEDGER_BREAKING_OPERATIONS = frozenset({"drop", "rename", "dropDatabase", "invalidate"})


class Side(IntEnum):
    SOURCE = 0
    TARGET = 1


class VerificationLedger:
    """`path` None keeps the ledger in memory (runs with no state directory)."""

    # Named for its digest: a ledger of another width (an earlier version's) is not this one, and a
    # resumed job that finds only that begins a new one (the pass reads both sides).
    FILE_NAME = "verification-b2b128.sqlite"

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._directory = path.parent if path is not None else None  # where a full disk is told of
        with writing_state(self._directory, "opening the verification ledger"):
            self._connection = open_ledger(path)
        self._marks = int(self._connection.execute("SELECT coalesce(max(seq), 0) FROM dirty").fetchone()[0])
        self._lock = threading.Lock()

    # --- whose ledger it is ----------------------------------------------------------------------

    def begin(self, migration_id: str) -> None:
        """A fresh migration: forget everything recorded for another one."""
        with self._transaction() as connection:
            for table in TABLES:
                connection.execute(f"DELETE FROM {table}")
            connection.execute("INSERT INTO identity (migration) VALUES (?)", (migration_id,))

    def belongs_to(self, migration_id: str | None) -> bool:
        with self._lock:
            row = self._connection.execute("SELECT migration FROM identity").fetchone()
        return migration_id is not None and row is not None and row[0] == migration_id

    def forget_side(self, side: Side) -> None:
        """Drop one side's digests and passes: what it holds is unknown again (the destination's writes
        since the last run were not watched), while the other side's record stays sound."""
        with self._transaction() as connection:
            for table in ("digests", "passes", "hashes", "running"):
                connection.execute(f"DELETE FROM {table} WHERE side = ?", (int(side),))

    def mark_unusable(self, reason: str) -> None:
        """A change the ledger cannot follow (a collection dropped, renamed, recreated): verify in full."""
        with self._transaction() as connection:
            connection.execute("INSERT INTO unusable (reason) VALUES (?)", (reason,))

    def unusable_reason(self) -> str | None:
        with self._lock:
            row = self._connection.execute("SELECT reason FROM unusable LIMIT 1").fetchone()
        return None if row is None else str(row[0])

    # --- recording -------------------------------------------------------------------------------

    def record(self, side: Side, namespace: str, documents: Iterable[RawBSONDocument]) -> None:
        """One batch of a pass (or of the copy) into one side. While every row of the pass is new, its
        digests are summed as they come (`running`), so that the end of the pass need not read them all
        back; a row recorded twice (a copy resumed over its last batch) ends that, and the end of the
        pass sums the rows instead."""
        rows = rows_of(int(side), namespace, documents)
        with self._transaction() as connection:
            connection.execute("SAVEPOINT batch")
            try:
                insert_digests(connection, "INSERT", rows)
            except sqlite3.IntegrityError:
                connection.execute("ROLLBACK TO batch")
                insert_digests(connection, "INSERT OR REPLACE", rows)
                connection.execute("DELETE FROM running WHERE side = ? AND namespace = ?", (int(side), namespace))
            else:
                running = connection.execute("SELECT total FROM running WHERE side = ? AND namespace = ?",
                                             (int(side), namespace)).fetchone()
                if running is not None:
                    connection.execute("UPDATE running SET total = ? WHERE side = ? AND namespace = ?",
                                       (hash_hex(int(running[0], 16) + digest_sum(row[3] for row in rows)),
                                        int(side), namespace))
            connection.execute("RELEASE batch")

    def replace(self, side: Side, namespace: str, keys: Sequence[bytes], documents: Iterable[RawBSONDocument]) -> None:
        """What one side holds now for these keys: the documents found, and no row for the keys not found.
        The namespace's hash and its count of rows, once its pass is done, follow: the digests replaced
        are taken away and the new ones added, so that a cutover's comparison costs what changed, not
        what exists."""
        rows = rows_of(int(side), namespace, documents)
        # Every row this replaces: the keys asked for, and those of the documents found (a server may
        # return an `_id` in another encoding than it was asked with, say an Int64 as an int32).
        touched = list(dict.fromkeys([*keys, *(row[2] for row in rows)]))
        with self._transaction() as connection:
            stored = connection.execute("SELECT total, rows FROM hashes WHERE side = ? AND namespace = ?",
                                        (int(side), namespace)).fetchone()
            if stored is not None:
                old = [bytes(row[0]) for part, marks in key_batches(touched) for row in connection.execute(
                    f"SELECT digest FROM digests WHERE side = ? AND namespace = ? AND key IN ({marks})",
                    (int(side), namespace, *part))]
                total = int(stored[0], 16) - digest_sum(old) + digest_sum(row[3] for row in rows)
                counted = None if stored[1] is None else int(stored[1]) - len(old) + len(rows)
                connection.execute("UPDATE hashes SET total = ?, rows = ? WHERE side = ? AND namespace = ?",
                                   (hash_hex(total), counted, int(side), namespace))
            connection.executemany("DELETE FROM digests WHERE side = ? AND namespace = ? AND key = ?",
                                   [(int(side), namespace, key) for key in touched])
            insert_digests(connection, "INSERT OR REPLACE", rows)

    # The copy records the source: each document's digest is taken from the bytes it copies, so the
    # verification pass need not read the source again. Sound because the change capture starts
    # before the copy: every change to a document after the copy read it is replayed, and every
    # replayed change marks its document dirty. Only a copy recorded from its first document counts
    # (`expect_copy` at the start of a migration); a copy resumed with a ledger begun since leaves
    # the source to the pass.

    def expect_copy(self, namespaces: Sequence[str]) -> None:
        """A fresh migration's copy will record these namespaces' source side from its first document."""
        with self._transaction() as connection:
            for namespace in namespaces:
                connection.execute("DELETE FROM digests WHERE side = ? AND namespace = ?", (int(Side.SOURCE), namespace))
                connection.execute("INSERT OR REPLACE INTO copying (namespace) VALUES (?)", (namespace,))
                connection.execute("INSERT OR REPLACE INTO running (side, namespace, total) VALUES (?, ?, ?)",
                                   (int(Side.SOURCE), namespace, ZERO))

    def copy_finished(self) -> None:
        """The copy is done: each namespace it recorded whole counts as the source's pass."""
        with self._lock:
            recorded = [str(row[0]) for row in self._connection.execute("SELECT namespace FROM copying").fetchall()]
        for namespace in recorded:
            self.finish_pass(Side.SOURCE, namespace)
        with self._transaction() as connection:
            connection.execute("DELETE FROM copying")

    def start_pass(self, side: Side, namespace: str) -> None:
        with self._transaction() as connection:
            connection.execute("DELETE FROM passes WHERE side = ? AND namespace = ?", (int(side), namespace))
            connection.execute("DELETE FROM digests WHERE side = ? AND namespace = ?", (int(side), namespace))
            connection.execute("DELETE FROM hashes WHERE side = ? AND namespace = ?", (int(side), namespace))
            connection.execute("INSERT OR REPLACE INTO running (side, namespace, total) VALUES (?, ?, ?)",
                               (int(side), namespace, ZERO))

    def finish_pass(self, side: Side, namespace: str) -> None:
        """The pass read the whole namespace: its hash is the running sum, or (after a row recorded twice)
        the sum of its rows, taken now, in the background, once."""
        with self._lock:
            running = self._connection.execute("SELECT total FROM running WHERE side = ? AND namespace = ?",
                                               (int(side), namespace)).fetchone()
        total = str(running[0]) if running is not None else namespace_hash(self.digest_values(side, namespace))
        with self._transaction() as connection:
            connection.execute("DELETE FROM running WHERE side = ? AND namespace = ?", (int(side), namespace))
            connection.execute("INSERT OR REPLACE INTO passes (side, namespace) VALUES (?, ?)", (int(side), namespace))
            connection.execute("INSERT OR REPLACE INTO hashes (side, namespace, total, rows) VALUES (?, ?, ?, "
                               "(SELECT count(*) FROM digests WHERE side = ? AND namespace = ?))",
                               (int(side), namespace, total, int(side), namespace))

    def hash_of(self, side: Side, namespace: str) -> str:
        """The namespace's hash: kept since its pass, or summed now (a ledger written before hashes were kept)."""
        with self._lock:
            row = self._connection.execute("SELECT total FROM hashes WHERE side = ? AND namespace = ?",
                                           (int(side), namespace)).fetchone()
        return str(row[0]) if row is not None else namespace_hash(self.digest_values(side, namespace))

    def draw_sample(self, namespaces: Sequence[str], size: int) -> None:
        """Draw `size` of the source's keys at random, shared among namespaces by their counts (at least
        one from each non-empty one), for the cutover to read again on both sides whatever the change
        stream said (`verify/verdict.py`). Drawn once the source's pass is over, in the background: a random
        draw reads every key."""
        totals = {namespace: self.count(Side.SOURCE, namespace) for namespace in namespaces}
        everything = sum(totals.values())
        with self._transaction() as connection:
            connection.execute("DELETE FROM sample")
            for namespace, total in totals.items():
                if total == 0 or size <= 0:
                    continue
                share = min(total, max(1, round(size * total / everything)))
                connection.execute("INSERT INTO sample (namespace, key) SELECT namespace, key FROM digests "
                                   "WHERE side = 0 AND namespace = ? ORDER BY random() LIMIT ?", (namespace, share))

    def sample_keys(self) -> dict[str, list[bytes]]:
        """The keys `draw_sample` drew, by namespace."""
        with self._lock:
            rows = self._connection.execute("SELECT namespace, key FROM sample").fetchall()
        drawn: dict[str, list[bytes]] = {}
        for namespace, key in rows:
            drawn.setdefault(str(namespace), []).append(bytes(key))
        return drawn

    def differing(self, namespace: str, keys: Sequence[bytes]) -> list[bytes]:
        """Those of `keys` whose digests differ between the sides, or that one side lacks."""
        found: list[bytes] = []
        with self._lock:
            for part, marks in key_batches(keys):
                # One query per side, so that SQLite walks the primary key (side, namespace, key).
                on_side = [dict(self._connection.execute(
                    f"SELECT key, digest FROM digests WHERE side = ? AND namespace = ? AND key IN ({marks})",
                    (int(side), namespace, *part)).fetchall()) for side in Side]
                found += [key for key in part if on_side[0].get(key) != on_side[1].get(key)]
        return found

    def passed(self, side: Side, namespace: str) -> bool:
        with self._lock:
            row = self._connection.execute("SELECT 1 FROM passes WHERE side = ? AND namespace = ?",
                                           (int(side), namespace)).fetchone()
        return row is not None

    def mark_dirty(self, changed: Iterable[tuple[str, bytes]]) -> None:
        """Mark these documents changed; a document marked already gets the newer number."""
        with self._transaction() as connection:
            self._marks += 1
            connection.executemany("INSERT OR REPLACE INTO dirty (namespace, key, seq) VALUES (?, ?, ?)",
                                   [(namespace, key, self._marks) for namespace, key in changed])

    def marks_made(self) -> int:
        """The number of the last mark made: `dirty_keys` and `clear_marks` up to it leave later marks be."""
        with self._lock:
            return self._marks

    def clear_marks(self, through: int, namespaces: Iterable[str]) -> None:
        """Forget the marks of `namespaces` numbered up to `through`: their documents were read again since
        they were made."""
        with self._transaction() as connection:
            connection.executemany("DELETE FROM dirty WHERE namespace = ? AND seq <= ?",
                                   [(namespace, through) for namespace in namespaces])

    def note_events(self, events: Sequence[Mapping[str, Any]]) -> None:
        """Mark what change events say was written: their documents dirty, or the whole ledger unusable
        after a change it cannot follow document by document. An event of a kind not listed here marks
        nothing — which is why the cutover's verdict never rests on the ledger alone (`verify/verdict.py`)."""
        changed = [(namespace_of(event), document_key(event["documentKey"]["_id"])) for event in events
                   if event.get("operationType") in DOCUMENT_OPERATIONS and "_id" in (event.get("documentKey") or {})]
        self.mark_dirty(changed)
        breaking = [event for event in events if event.get("operationType") in _LEDGER_BREAKING_OPERATIONS]
        if breaking:
            self.mark_unusable(f"{breaking[0]['operationType']} of {namespace_of(breaking[0])}")

    # --- reading ---------------------------------------------------------------------------------

    def dirty_keys(self, namespace: str, through: int | None = None) -> list[bytes]:
        """The documents of `namespace` marked changed (with `through`, by the marks numbered up to it)."""
        with self._lock:
            rows = self._connection.execute("SELECT key FROM dirty WHERE namespace = ? AND seq <= ?",
                                            (namespace, self._marks if through is None else through)).fetchall()
        return [bytes(row[0]) for row in rows]


    def count(self, side: Side, namespace: str) -> int:
        """Rows of one side's namespace: kept since its pass, or counted now."""
        with self._lock:
            kept = self._connection.execute("SELECT rows FROM hashes WHERE side = ? AND namespace = ?",
                                            (int(side), namespace)).fetchone()
            if kept is not None and kept[0] is not None:
                return int(kept[0])
            row = self._connection.execute("SELECT count(*) FROM digests WHERE side = ? AND namespace = ?",
                                           (int(side), namespace)).fetchone()
        return int(row[0])

    def digest_values(self, side: Side, namespace: str, page: int = 10_000) -> Iterator[bytes]:
        """Every digest of one side's namespace, a page at a time (by key, so that writes in between
        cannot make a page skip or repeat a row): memory stays flat however large the namespace."""
        after = b""
        while True:
            with self._lock:
                rows = self._connection.execute(
                    "SELECT key, digest FROM digests WHERE side = ? AND namespace = ? AND key > ? ORDER BY key LIMIT ?",
                    (int(side), namespace, after, page)).fetchall()
            for _, digest in rows:
                yield bytes(digest)
            if len(rows) < page:
                return
            after = bytes(rows[-1][0])

    def mismatched_keys(self, namespace: str, sample: int) -> tuple[list[bytes], int]:
        """Up to `sample` keys whose digests differ between the sides or that one side lacks, and how many
        there are in all — a join in SQLite rather than both sides in memory."""
        with self._lock:
            keys = self._connection.execute(f"{MISMATCHED} LIMIT :limit",
                                            {"ns": namespace, "limit": sample + 1}).fetchall()
            # Fewer than asked: that is all of them, and the join need not run again to count them.
            total = len(keys) if len(keys) <= sample else int(self._connection.execute(
                f"SELECT count(*) FROM ({MISMATCHED})", {"ns": namespace}).fetchone()[0])
        return [bytes(row[0]) for row in keys[:sample]], total

    def disagreeing_keys(self, namespace: str) -> list[bytes]:
        """Every key whose digests differ between the sides or that one side lacks: what a cutover reads
        again when the ledger disagrees, rather than the whole namespace."""
        with self._lock:
            rows = self._connection.execute(MISMATCHED, {"ns": namespace}).fetchall()
        return [bytes(row[0]) for row in rows]

    def close(self) -> None:
        with self._lock:
            self._connection.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One transaction, all or nothing; on a full disk, `STATE_DISK_FULL` (`checkpoints.writing_state`)."""
        with self._lock, writing_state(self._directory, "writing the verification ledger"):
            self._connection.execute("BEGIN IMMEDIATE")
            try:
                yield self._connection
                self._connection.execute("COMMIT")
            except BaseException:
                roll_back(self._connection)
                raise
