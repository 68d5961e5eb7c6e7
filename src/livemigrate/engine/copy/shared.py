"""The copy shared by several migration hosts: each range is copied by whichever host leases it.

Every host of a shared migration runs this loop — the one that holds the change capture inside its
`Migration`, the others alone. A thread looks at the plan in the shared checkpoints
(`mongo/destination_state.py`), leases a range nobody holds, reads that range's latest checkpoint (another
host may have copied part of it before it died), copies on from there, checkpointing each batch,
and releases it when it is done. It stops copying a range the moment its lease is no longer sure
(`RangeLeases.holds`): another host may take it over then, and resumes from the last checkpoint.
The copy is over when every range of the plan is done, by whichever host.

The plan is cut for every host the migration lists (`initial_copy.range_counts`: about hosts x
workers ranges), and a host holds at most its share of them at a time — one per worker thread, and
never more than the plan's ranges over the hosts — so that the first host to start cannot lease
everything before the others come: what it leaves is theirs to take, or its own once it is done
with what it holds (a host that never comes only slows the copy's end). On a sharded source whose plan
follows the chunks (`chunks.py`), a host takes a range of the shard it reads least at the moment, so
that its reads spread over the source's shards.

Two hosts may still, for a moment, write the same batch (one whose lease ran out mid-batch, and
its successor): both writes are absorbed (duplicate keys are skipped), and a checkpoint is only
ever saved after its batch was written, so whichever is saved last is backed by a write.
"""

from __future__ import annotations

import logging
import math
import threading
import zlib
from collections import Counter
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Protocol

from pymongo import MongoClient

from livemigrate.engine.checkpoints import CheckpointStore
from livemigrate.engine.copy.ranges import RangeState, copy_range, load_ranges, spread_over_shards
from livemigrate.engine.options import MigrationOptions

log = logging.getLogger("livemigrate.engine")

LOOK_AGAIN_SECONDS = 1.0  # how often a thread with nothing to lease looks again (a host may have died)


class RangeLeases(Protocol):
    """The leases of one shared migration, as this host holds them (`agent/leases.py`)."""

    def claim(self, name: str) -> bool:
        """Take `name` (or keep it) for this host; False while another host holds it."""

    def release(self, name: str) -> None:
        """Give `name` up at once."""

    def holds(self, name: str) -> bool:
        """Whether this host surely holds `name` now: a lease not renewed in time is not held."""


@dataclass
class _StopOrLost:
    """A range's stop signal: the copy's, or its lease no longer sure."""

    stopping: threading.Event
    leases: RangeLeases
    name: str

    def is_set(self) -> bool:
        return self.stopping.is_set() or not self.leases.holds(self.name)


class SharedCopy:
    """This host's part of a shared copy; `copied` counts what it copied itself, `held()` the ranges it holds."""

    def __init__(self, checkpoints: CheckpointStore, leases: RangeLeases, hostname: str, workers: int,
                 batch_size: int, on_batch: Callable[[], None], hosts: int = 1) -> None:
        """`hosts`: how many the migration lists, which share the plan's ranges."""
        self._checkpoints = checkpoints
        self._leases = leases
        self._workers = max(1, workers)
        self._hosts = max(1, hosts)
        self._batch_size = batch_size
        self._on_batch = on_batch
        self._offset = zlib.crc32(hostname.encode())  # hosts start looking at different ranges
        self._lock = threading.Lock()
        self._held: dict[str, str | None] = {}  # the ranges this host holds, and their shards
        self.copied = 0

    def held(self) -> list[str]:
        with self._lock:
            return sorted(self._held)

    def ranges(self) -> list[RangeState]:
        """Every range of the plan as the shared checkpoints have it now, whoever copies it."""
        return load_ranges(self._checkpoints)

    def at_once(self, ranges: int) -> int:
        """How many of a plan's `ranges` this host holds at a time: one per worker, and no more than its
        share of them (the ranges over the hosts), so that the others find some left when they come."""
        return max(1, min(self._workers, math.ceil(ranges / self._hosts)))

    def run(self, source: MongoClient[Any], target: MongoClient[Any], stopping: threading.Event) -> bool:
        """Copy leased ranges until every range is done (True) or `stopping` (False)."""
        plan = self.ranges()
        threads = self.at_once(len(plan))
        log.info("copying this host's share of the shared copy: %d of the plan's %d range(s) not done yet, at most "
                 "%d at a time (%d host(s) listed)", sum(not state.done for state in plan), len(plan), threads,
                 self._hosts)
        try:
            with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="shared-copy") as pool:
                futures = [pool.submit(self._work, source, target, stopping, index) for index in range(threads)]
                finished, _ = wait(futures, return_when=FIRST_EXCEPTION)
                for future in finished:
                    if future.exception() is not None:
                        stopping.set()
                        raise future.exception()  # type: ignore[misc]
        finally:
            log.info("this host copied %d document(s) of the shared copy in this round", self.copied)
        return not stopping.is_set()

    def _work(self, source: MongoClient[Any], target: MongoClient[Any], stopping: threading.Event,
              thread: int) -> None:
        while not stopping.is_set():
            pending = [state for state in self.ranges() if not state.done]
            if not pending:
                return
            state = self._lease_one(pending, thread)
            if state is None:
                stopping.wait(LOOK_AGAIN_SECONDS)  # everything left is another host's, for now
                continue
            try:
                self._copy(source, target, state, stopping)
            finally:
                with self._lock:
                    self._held.pop(state.key, None)
                self._leases.release(state.key)

    def _lease_one(self, pending: list[RangeState], thread: int) -> RangeState | None:
        pending = spread_over_shards(pending)
        start = (self._offset + thread) % len(pending)
        with self._lock:  # a shard this host reads less first: its reads spread over the source's shards
            reading = Counter(self._held.values())
        for state in sorted(pending[start:] + pending[:start], key=lambda state: reading[state.shard]):
            with self._lock:
                if state.key in self._held:
                    continue
                self._held[state.key] = state.shard  # no other thread of this host tries it meanwhile
            if self._leases.claim(state.key):
                # Its latest checkpoint, now that it is ours: the previous holder may have copied on.
                latest = self._checkpoints.load(state.key).get(state.key)
                if latest is not None and not latest["done"]:
                    return RangeState.from_document(latest)
                self._leases.release(state.key)
            with self._lock:
                self._held.pop(state.key, None)
        return None

    def _copy(self, source: MongoClient[Any], target: MongoClient[Any], state: RangeState,
              stopping: threading.Event) -> None:
        if state.has_last:
            log.info("%s: taking range %d over from its checkpoint (%d document(s) copied before)",
                     state.namespace, state.index, state.copied)
        else:
            log.info("%s: copying range %d, %s", state.namespace, state.index, state.describe())

        def after_batch(copied_state: RangeState, copied: int) -> None:
            self._checkpoints.save({copied_state.key: copied_state.to_document()})
            with self._lock:
                self.copied += copied
            self._on_batch()

        copy_range(source, target, state, self._batch_size, _StopOrLost(stopping, self._leases, state.key), None,
                   after_batch)


@dataclass(frozen=True)
class SharedHost:
    """What a host of a shared migration copies with — its name and its leases — and what it copied."""

    hostname: str
    leases: RangeLeases
    hosts: int = 1  # how many hosts the migration lists (the plan is cut for them all: `MigrationOptions.copy_hosts`)
    parts: list[SharedCopy] = field(default_factory=list)  # every part it took, in this process

    def copy_part(self, checkpoints: CheckpointStore, options: MigrationOptions,
                  on_batch: Callable[[], None]) -> SharedCopy:
        part = SharedCopy(checkpoints, self.leases, self.hostname, options.workers, options.batch_size, on_batch,
                          hosts=self.hosts)
        self.parts.append(part)
        return part

    def copied(self) -> int:
        """Documents this host copied, in every part it took."""
        return sum(part.copied for part in self.parts)
