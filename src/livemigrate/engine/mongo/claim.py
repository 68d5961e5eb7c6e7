"""One writer per destination: the claim a migration keeps on its destination while it writes there.

Two migrations writing one destination leave it equal to neither source, and each may still report
itself COMPLETE: the other's writes look like its own. The control plane refuses a second migration
of a destination it knows, but it cannot see a `livemigrate migrate` run, one cluster registered
under two names, or a host that goes on writing after its migration was cancelled while it could
not hear the API. The destination can: before a migration writes anything there, it claims the
destination — one document in `STATE_DATABASE.claims` — and renews the claim while it runs.

- A live claim of another migration refuses the start, naming its holder (`DESTINATION_IN_USE`).
- A claim is given up when its run ends (completed, failed, stopped, cancelled); a process killed
  outright leaves it to go stale after `STALE_SECONDS`, so that a crash never locks a destination
  for good. A claim given up or stale may be taken by a fresh migration.
- A migration resumed from its checkpoints finds either its own claim (renewed: its `since` is
  kept) or another's: then another migration has written the destination since it last ran, and
  resuming would build on data that is not its copy — refused (`DESTINATION_TAKEN_OVER`).
- A run whose claim was taken from it (it stalled past `STALE_SECONDS`) learns so at its next
  renewal and stops writing.

The claim is a compare-and-set on one document: an insert that a unique `_id` decides, or a replace
whose filter holds the version read. No transaction is needed, so any MongoDB answers it.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from pymongo import MongoClient
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError, PyMongoError

from livemigrate.engine.errors import EngineError, EngineErrorCode
from livemigrate.engine.mongo.faults import retry
from livemigrate.engine.options import STATE_DATABASE

log = logging.getLogger("livemigrate.engine.claim")

STALE_SECONDS = 60.0  # a claim not renewed for this long belongs to a run that is gone
RELEASE_ATTEMPTS = 3  # giving a claim up after a fault: tried again after 0.5 s, then 1 s
RENEW_SECONDS = 10.0
_KEY = "destination"


def default_holder() -> str:
    """Who holds a claim, for the sentence a refused run prints: this process, on this machine."""
    return f"livemigrate on {socket.gethostname()} (pid {os.getpid()})"


def _now() -> datetime:
    """Now, to the millisecond: what BSON keeps of a date, so that a claim read back compares equal."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond - now.microsecond % 1000)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class DestinationClaim:
    """The claim of migration `migration_id` on the destination `target`, described as `holder`."""

    def __init__(self, target: MongoClient[Any], migration_id: str, holder: str) -> None:
        self._target = target
        self._claims: Collection[Any] = target[STATE_DATABASE]["claims"]
        self.migration_id = migration_id
        self.holder = holder
        self._stopping = threading.Event()
        self._renewer: threading.Thread | None = None
        self.lost: EngineError | None = None  # set when another migration took the claim from this run

    def check(self, *, resuming: bool) -> None:
        """Raise why this migration may not write the destination, reading only: a refused run leaves
        nothing behind on it."""
        self._refusal(self._current(), resuming)

    def _current(self) -> dict[str, Any] | None:
        return retry(self._target, "reading the destination's claim", lambda: self._claims.find_one({"_id": _KEY}))

    def _refusal(self, current: dict[str, Any] | None, resuming: bool) -> None:
        if current is not None and current.get("migration") != self.migration_id:
            if self._alive(current):
                raise self._in_use(current)
            if resuming:
                raise self._taken_over(current)

    def take(self, *, resuming: bool) -> None:
        """Claim the destination before anything is written there, or raise why not."""
        # Another run may claim between the read and the write: read again. So does a write whose reply was
        # lost to a fault and that is tried again: it meets itself (a duplicate key, a version moved on).
        for _ in range(5):
            current = self._current()
            self._refusal(current, resuming)
            mine = current is not None and current.get("migration") == self.migration_id
            now = _now()
            claim = {"_id": _KEY, "migration": self.migration_id, "holder": self.holder,
                     "since": current["since"] if mine and current is not None else now, "renewedAt": now,
                     "releasedAt": None}
            try:
                if current is None:
                    retry(self._target, "claiming the destination", partial(self._claims.insert_one, claim))
                    return
                if retry(self._target, "claiming the destination",
                         partial(self._claims.replace_one, _version_of(current), claim)).matched_count == 1:
                    return
            except DuplicateKeyError:
                pass
        raise EngineError(EngineErrorCode.DESTINATION_IN_USE,
                          "the destination's claim keeps changing hands: another migration is starting on it")

    def keep(self, on_lost: Callable[[], None]) -> None:
        """Renew the claim every `RENEW_SECONDS` on a thread of its own; `on_lost` once another took it."""

        def renew() -> None:
            while not self._stopping.wait(RENEW_SECONDS):
                try:
                    renewed = self._claims.update_one({"_id": _KEY, "migration": self.migration_id},
                                                      {"$set": {"renewedAt": _now(), "releasedAt": None}})
                except PyMongoError as error:  # the run meets the same server and decides; try again later
                    log.debug("the destination's claim was not renewed: %s", type(error).__name__)
                    continue
                if renewed.matched_count == 0:
                    current = self._claims.find_one({"_id": _KEY}) or {}
                    self.lost = EngineError(EngineErrorCode.DESTINATION_IN_USE, (
                        f"this migration stopped writing: {current.get('holder', 'another migration')} (migration "
                        f"{current.get('migration', '?')}) took the destination over after this run went "
                        f"{STALE_SECONDS:.0f} s without renewing its claim"))
                    log.error("%s", self.lost.message)
                    on_lost()
                    return

        self._renewer = threading.Thread(target=renew, name="destination-claim", daemon=True)
        self._renewer.start()

    def release(self) -> None:
        """Give the claim up: this run writes no more (another migration may now take the destination).
        Best effort, tried a few times (a fault that passes — an election, a reset — should not keep the
        destination from the next migration for a minute): a destination that cannot be reached lets the
        claim go stale instead."""
        self._stopping.set()
        if self._renewer is not None:
            self._renewer.join(timeout=5)
        if self.lost is not None:
            return
        for attempt in range(1, RELEASE_ATTEMPTS + 1):
            try:
                self._claims.update_one({"_id": _KEY, "migration": self.migration_id},
                                        {"$set": {"releasedAt": _now()}})
                return
            except PyMongoError as error:
                if attempt == RELEASE_ATTEMPTS:
                    log.warning("the destination's claim could not be given up (%s): it lapses in %.0f s",
                                type(error).__name__, STALE_SECONDS)
                else:
                    time.sleep(0.5 * attempt)

    @staticmethod
    def _alive(claim: dict[str, Any]) -> bool:
        renewed = claim.get("renewedAt")
        return (claim.get("releasedAt") is None and isinstance(renewed, datetime)
                and _now() - _aware(renewed) < timedelta(seconds=STALE_SECONDS))

    @staticmethod
    def _in_use(claim: dict[str, Any]) -> EngineError:
        renewed = claim.get("renewedAt")
        ago = f", last heard of {(_now() - _aware(renewed)).total_seconds():.0f} s ago" \
            if isinstance(renewed, datetime) else ""
        return EngineError(EngineErrorCode.DESTINATION_IN_USE, (
            f"the destination is being written by another migration: {claim.get('holder', 'unknown')} "
            f"(migration {claim.get('migration', '?')}, since {_shown(claim.get('since'))}{ago}). Wait until it "
            f"ends, stop it, or cancel it; a migration whose process was killed gives the destination up "
            f"{STALE_SECONDS:.0f} s after it was last heard of"))

    @staticmethod
    def _taken_over(claim: dict[str, Any]) -> EngineError:
        return EngineError(EngineErrorCode.DESTINATION_TAKEN_OVER, (
            f"another migration has written the destination since this one last ran: "
            f"{claim.get('holder', 'unknown')} (migration {claim.get('migration', '?')}, since "
            f"{_shown(claim.get('since'))}); this migration cannot resume on it. Start afresh: a new --state-dir "
            "and --drop-target (or a new migration with dropDestinationData)"))


def _version_of(claim: dict[str, Any]) -> dict[str, Any]:
    """A filter that matches the claim only as it was read: a replace with it is a compare-and-set."""
    return {"_id": _KEY, "migration": claim.get("migration"), "renewedAt": claim.get("renewedAt")}


def _shown(moment: Any) -> str:
    return _aware(moment).strftime("%Y-%m-%dT%H:%M:%SZ") if isinstance(moment, datetime) else "an unknown time"
