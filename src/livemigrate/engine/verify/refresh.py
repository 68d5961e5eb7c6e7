"""The documents changed while replicating, read again as they change, so that a cutover reads only
what changed in its last few seconds.

Without it, a cutover reads again every document changed since the copy began: a migration that
replicates for a day under a steady writer has a day of changes to read while the application
waits — a downtime that grows with the migration's length, and so with its data. With it, every
`every_seconds` the documents marked dirty are read again on both sides into the ledger and their
marks cleared, so that the cutover's share is what changed since the last round (and the few the
ledger then disagrees on: `verify/verdict.py`).

Why clearing marks here loses nothing. A mark is cleared only up to the number it had when the round
began (`VerificationLedger.marks_made`): a change applied or seen on the destination while the round
reads is marked again, with a higher number, and stays for the next round or the cutover. A round
that reads a document mid-change — the source's new version, the destination's old one, its event not
applied yet — records that disagreement in the ledger, where the cutover finds it and reads the
document again. A document the ledger shows equal on both sides was equal when read, and has been
marked again by anything that changed it since.

Its first round runs as soon as the verification pass has put both sides in the ledger (before that
there is no destination side to refresh), for the changes made while the pass read: only then is the
migration ready for cutover (`caught_up`), so that a cutover asked for at once does not read them.
It stops when the cutover's drain begins: the verdict reads the rest.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Sequence
from typing import Any

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from livemigrate.engine.ledger import VerificationLedger
from livemigrate.engine.verify.passes import read_again

log = logging.getLogger("livemigrate.engine.verify")

_FIRST_ROUND_LOOK_SECONDS = 0.25


class LedgerRefresh:
    """Started by the replay; `stop()` at cutover, then `join()` before the verdict."""

    def __init__(self, source: MongoClient[Any], target: MongoClient[Any], ledger: VerificationLedger,
                 namespaces: Callable[[], Sequence[str]], ready: Callable[[], bool], every_seconds: float,
                 on_caught_up: Callable[[], None] = lambda: None) -> None:
        """`namespaces`: those whose both sides the ledger holds (the verification pass's); `ready`: true
        once the pass is complete; `on_caught_up`: called after the first round."""
        self._on_caught_up = on_caught_up
        self._clients = (source, target)
        self._ledger = ledger
        self._namespaces = namespaces
        self._ready = ready
        self._every = every_seconds
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self.caught_up = False  # a round has run since the pass ended: what it read while reading is read
        self.read = 0  # documents read again on each side, in every round so far
        self._thread = threading.Thread(target=self._run, name="ledger-refresh", daemon=True)

    def start(self) -> LedgerRefresh:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    def nudge(self) -> None:
        """Run a round now (the verification pass has ended, say)."""
        self._wake.set()

    def join(self, timeout: float | None = None) -> None:
        self.stop()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def refresh(self) -> int:
        """One round: the dirty documents of the ledger's namespaces read again, their marks cleared.
        Returns how many were read again on each side."""
        through = self._ledger.marks_made()
        keys = {namespace: found for namespace in self._namespaces()
                if (found := self._ledger.dirty_keys(namespace, through))}
        if not keys:
            return 0
        read = read_again(*self._clients, keys, self._ledger)
        self._ledger.clear_marks(through, keys)
        self.read += read
        log.debug("ledger refreshed: %d changed document(s) read again on both sides", read)
        return read

    def _run(self) -> None:
        while True:
            # Until its first round, it looks often: readiness for cutover waits on that round.
            self._wake.wait(self._every if self.caught_up else min(self._every, _FIRST_ROUND_LOOK_SECONDS))
            self._wake.clear()
            if self._stopping.is_set():
                return
            if not self._ready():
                continue
            try:
                self.refresh()
            except (PyMongoError, sqlite3.Error) as error:  # the replay meets the same servers and decides
                log.debug("the ledger's refresh is skipped this round: %s", type(error).__name__)
                continue
            if not self.caught_up:
                self.caught_up = True
                self._on_caught_up()
