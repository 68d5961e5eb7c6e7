"""The spool: changes read from the source during the copy, kept on the migration host's disk until the
copy is done and they are applied.

Without it, the change streams would be read only after the copy, by resuming from the start point —
and a copy that lasts longer than the source keeps its history (the oplog window) would end with the
source refusing that resume (ChangeStreamHistoryLost). With it, the streams opened at the start point
are read all along, so nothing has to be resumed from far back: the copy may last as long as it needs,
within the spool's limit.

- `Spooler` reads the capture in a thread of its own while the copy runs, and appends each batch
  with the resume tokens after it, in one SQLite transaction: a killed process resumes the capture from
  the last token spooled, and the events already spooled stay to be applied.
- `SpooledCapture` is what the replay reads afterwards: first the spool, in order, then the live
  capture, which is already past everything spooled. A `Spooler` keeps reading the live capture into
  the spool until the replay has caught up with it, so applying what the copy left never counts
  against the source's history either. A spooled batch is deleted once the replay asks for the next
  one (it has been applied and its tokens saved by then); the spool's file goes when it is empty. A
  batch applied again after a restart converges: events are applied in order, as writes that set
  whole documents or fields.

SQLite (the standard library's) rather than a file format of our own: an append and its tokens are
one transaction, and reading back in order is an index walk.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import bson
from bson.codec_options import CodecOptions

from livemigrate.engine.capture.streams import Capture
from livemigrate.engine.changes import CapturedEvent
from livemigrate.engine.checkpoints import roll_back, writing_state
from livemigrate.engine.errors import EngineError, EngineErrorCode

log = logging.getLogger("livemigrate.engine.spool")

LIMIT_SETTING = "--spool-limit, LIVEMIGRATE_AGENT_SPOOL_LIMIT_MB"  # where the limit is set: `migrate`, an agent

_CODEC: CodecOptions[dict[str, Any]] = CodecOptions(tz_aware=True)
_SCHEMA = ("CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, stream TEXT NOT NULL, event BLOB NOT NULL)",
           "CREATE TABLE IF NOT EXISTS tokens (id INTEGER PRIMARY KEY CHECK (id = 1), tokens BLOB NOT NULL)")


class Spool:
    FILE_NAME = "spool.sqlite"

    def __init__(self, path: Path | None, limit_bytes: int) -> None:
        """`path` None keeps the spool in memory (a run without a state directory)."""
        self._path = path
        self.limit_bytes = limit_bytes
        self._directory = path.parent if path is not None else None
        with self._writing("opening the spool"):
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
            self._connection = sqlite3.connect(":memory:" if path is None else path, check_same_thread=False,
                                               isolation_level=None)
            self._connection.execute("PRAGMA journal_mode=WAL")
            for statement in _SCHEMA:
                self._connection.execute(statement)
        self._lock = threading.Lock()
        self._bytes = int(self._connection.execute("SELECT COALESCE(SUM(LENGTH(event)), 0) FROM events").fetchone()[0])
        # Numbered here, not by SQLite: a rowid is reused once the rows above it are deleted, and events
        # are appended while the replay deletes those it has applied (`SpooledCapture`). An event
        # numbered below what the replay has read would never be read.
        self._last_seq = int(self._connection.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0])

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def pending(self) -> int:
        with self._lock:
            return int(self._connection.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def append(self, events: list[CapturedEvent], tokens: Mapping[str, Any]) -> None:
        encoded = [(captured.stream, bson.encode(captured.event)) for captured in events]
        added = sum(len(event) for _, event in encoded)
        if self._bytes + added > self.limit_bytes:
            raise EngineError(EngineErrorCode.SPOOL_LIMIT_EXCEEDED,
                              "the changes made on the source during the copy, and while they are applied, exceed "
                              f"the spool's limit of {self.limit_bytes / 1024**2:,.0f} MiB: raise it ({LIMIT_SETTING}) where the "
                              "migration host has the disk, or "
                              "shorten the copy (more --workers, fewer namespaces per migration)")
        with self._lock, self._writing("spooling the changes read during the copy"):
            rows = [(self._last_seq + number, stream, event) for number, (stream, event) in enumerate(encoded, 1)]
            self._connection.execute("BEGIN")
            try:
                self._connection.executemany("INSERT INTO events (seq, stream, event) VALUES (?, ?, ?)", rows)
                self._connection.execute("INSERT OR REPLACE INTO tokens (id, tokens) VALUES (1, ?)",
                                         (bson.encode({"tokens": dict(tokens)}),))
                self._connection.execute("COMMIT")
            except BaseException:
                roll_back(self._connection)  # the events and the tokens after them: both, or neither
                raise
            self._last_seq += len(rows)
            self._bytes += added

    def tokens(self) -> dict[str, Any] | None:
        """The capture's resume tokens after the last batch spooled: where a restarted capture resumes."""
        with self._lock:
            row = self._connection.execute("SELECT tokens FROM tokens WHERE id = 1").fetchone()
        return None if row is None else dict(bson.decode(row[0], _CODEC)["tokens"])

    def read_after(self, seq: int, limit: int) -> list[tuple[int, CapturedEvent]]:
        with self._lock:
            rows = self._connection.execute("SELECT seq, stream, event FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
                                            (seq, limit)).fetchall()
        return [(int(number), CapturedEvent(str(stream), bson.decode(event, _CODEC))) for number, stream, event in rows]

    def forget_through(self, seq: int) -> None:
        """The events up to `seq` are applied (their tokens saved): they go."""
        with self._lock, self._writing("deleting applied changes from the spool"):
            freed = self._connection.execute("SELECT COALESCE(SUM(LENGTH(event)), 0) FROM events WHERE seq <= ?",
                                             (seq,)).fetchone()[0]
            self._connection.execute("DELETE FROM events WHERE seq <= ?", (seq,))
            self._bytes -= int(freed)

    def clear(self) -> None:
        with self._lock, self._writing("emptying the spool"):
            self._connection.execute("DELETE FROM events")
            self._connection.execute("DELETE FROM tokens")
            self._bytes = 0

    def _writing(self, doing: str) -> AbstractContextManager[None]:
        """A full disk met while writing the spool's file: `STATE_DISK_FULL` (`checkpoints.writing_state`),
        which says that the spool, too, needs room."""
        return writing_state(self._directory, doing, also_needed=(
            f", more for the changes that wait in the spool (up to {self.limit_bytes / 1024**2:,.0f} MiB: "
            f"{LIMIT_SETTING})"))

    def close(self) -> None:
        self._connection.close()

    def remove(self) -> None:
        """Close and delete the file: no longer needed once everything spooled is applied."""
        self.close()
        if self._path is not None:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self._path}{suffix}").unlink(missing_ok=True)


class Spooler:
    """Reads the capture into the spool in a thread of its own, until `finish()`; a failure (the spool
    full, the source's history lost) stops the copy through `on_failure`, if given, and is raised by
    `finish()`."""

    def __init__(self, capture: Capture, spool: Spool, batch_size: int, on_failure: threading.Event | None,
                 quiet_seconds: float) -> None:
        self._capture = capture
        self._spool = spool
        self._batch_size = batch_size
        self._quiet_seconds = quiet_seconds  # the wait between two looks at a quiet source
        self._on_failure = on_failure
        self._done = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="spooler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._done.is_set():
                events = self._capture.poll(self._batch_size)
                if events:
                    self._spool.append(events, self._capture.tokens())
                else:  # a server may answer a quiet stream at once: not a loop that spins beside the copy
                    self._done.wait(self._quiet_seconds)
        except BaseException as error:  # noqa: BLE001 - raised again by finish(), in the migration's thread
            self._error = error
            if self._on_failure is not None:
                self._on_failure.set()

    @property
    def failed(self) -> bool:
        return self._error is not None

    def finish(self) -> None:
        """Stop reading (what is spooled stays), and raise what stopped the spooler early, if anything."""
        self._done.set()
        self._thread.join()
        if self._error is not None:
            raise self._error


class SpooledCapture:
    """The capture as the replay reads it after the copy: the spool first, then the live capture.

    While the spool drains, a spooler of its own goes on reading the live capture into it: applying a
    long copy's changes takes time, and a capture left unread that long could find its history gone
    (the test server's history is 1.5 s in `test_spool.py`; a source's oplog window, hours). Once the
    replay has read all that was spooled, the spooler stops, and what it spooled last is read before
    the live capture is, which is then exactly past it."""

    def __init__(self, spool: Spool, live: Capture, tokens: Mapping[str, Any], batch_size: int,
                 quiet_seconds: float) -> None:
        self._spool = spool
        self._live = live
        self._tokens = dict(tokens)  # after the last event handed out: saved once it is applied
        self._handed_out = 0  # the spool's seq of that event
        self._draining = spool.pending() > 0
        # Its failure is raised by the next poll, in the replay's thread, rather than stopping anything.
        self._spooler: Spooler | None = Spooler(live, spool, batch_size, None, quiet_seconds) \
            if self._draining else None

    def tokens(self) -> dict[str, Any]:
        return dict(self._tokens) if self._draining else self._live.tokens()

    def poll(self, max_events: int) -> list[CapturedEvent]:
        if self._draining:
            if self._spooler is not None and self._spooler.failed:
                self._stop_spooling()  # raises what stopped it: the spool full, the history lost
            self._spool.forget_through(self._handed_out)  # applied, and their tokens saved, by now
            batch = self._spool.read_after(self._handed_out, max_events)
            if not batch and self._spooler is not None:
                self._stop_spooling()  # caught up with it: what it read last is in the spool now
                batch = self._spool.read_after(self._handed_out, max_events)
            if batch:
                self._handed_out = batch[-1][0]
                for _, captured in batch:
                    self._tokens[captured.stream] = captured.event["_id"]
                return [captured for _, captured in batch]
            self._draining = False
            self._spool.clear()
            log.info("every change spooled is applied; reading the live change stream")
        return self._live.poll(max_events)

    @property
    def draining(self) -> bool:
        """What was spooled is still being handed out: the live capture is not read yet."""
        return self._draining

    def stop_spooling(self) -> None:
        """Stop the spooler if it still runs (the replay ended before the spool was drained): what it
        read is in the spool, with its tokens, and the next run applies it first."""
        self._stop_spooling(raise_error=False)

    def _stop_spooling(self, *, raise_error: bool = True) -> None:
        spooler, self._spooler = self._spooler, None
        if spooler is not None:
            try:
                spooler.finish()
            except BaseException as error:
                if raise_error:
                    raise
                log.warning("the spooler had stopped: %s", error)

    # A per-collection capture's late collections (`coordinator/late_collections.py`), while the spool drains too.
    # The spooler stops first: the live capture's streams change in this thread, not under its reads.

    def watched(self) -> set[str]:
        return self._live.watched()  # type: ignore[attr-defined,no-any-return]

    def open_stream(self, namespace: str) -> Any:
        self._stop_spooling()
        return self._live.open_stream(namespace)  # type: ignore[attr-defined]

    def add_stream(self, namespace: str, stream: Any) -> None:
        self._stop_spooling()
        self._live.add_stream(namespace, stream)  # type: ignore[attr-defined]
        self._tokens[namespace] = stream.resume_token

    def end_stream(self, namespace: str) -> None:
        self._stop_spooling()
        self._live.end_stream(namespace)  # type: ignore[attr-defined]  # its last events after the spool's

    def close(self) -> None:
        self.stop_spooling()
        self._live.close()
