"""Cutover: its time should follow what changed, not how much data there is.

One collection of 10,000 and then of 100,000 small documents (string `_id`s, as
`tests/engine_support.seed` uses), migrated in process between two nx-27017 servers with per-collection
capture, while the same writer changes the source: WRITER_RATE inserts, updates and deletes a second, from just before the copy
starts until the cutover is requested. Its updates and deletes pick among the same HOT documents at
both sizes, so that only the data's size varies. The cutover is requested once the migration is ready:
replicating, both sides' counts agreeing, the verification pass over (as in bench/verdict.py), and the
lag within READY_LAG. Without the lag condition the first "ready" came while the changes spooled during
the larger copy were still being applied, seconds behind, and that backlog's drain fell inside the cutover;
the agent's `readyForCutover` asks for a small lag too. The writer runs until that moment and is
stopped just before the request: nx-27017 accepts the cutover's write block but refuses no write
(TESTING.md), so stopping it stands in for the block.

Measured for each size: the time from `request_cutover()` to `run()` returning COMPLETE, split into
the drain (to the VERIFYING event) and the verdict (to the COMPLETE event); the documents the verdict
read again on each side (`Verdict.read_again`: the changed ones, the sample and any it disagreed on)
against the distinct `_id`s the writer changed (counted here from what each write reports it did: an
update that matched nothing, or a delete that found nothing, changed nothing); the writer's real rate;
and one `count` of the source collection, which the verdict sends to both sides (nx-27017 scans the
collection for it, MongoDB reads metadata). The verdict must not read every document
(`read_everything`) nor any namespace whole (`read_whole`). Target (issue: a cutover's downtime does
not grow with the data): cutover at 100,000 / cutover at 10,000 <= 1.5.

The larger copy takes longer at the same write rate, so it has more changes behind it: the ledger
reads the changed documents again while replicating (`engine/verify/refresh.py`), so that the cutover
reads only those changed since its last round, whatever ran before. The read-again figures are printed
beside the times, with the cutover's time per document read again at each size, so that the two
causes of a longer cutover — more to read, or a dearer read — can be told apart (no target on those).

One collection: the cutover's per-namespace costs (a listing, a count on each side) are then paid once
at both sizes. A cutover takes tens of milliseconds, which vary by half from round to round on this
machine's two cores shared with both servers and the engine: each size runs ROUNDS rounds, each on a
fresh destination (the source is seeded once per size and kept), and counts their median (the least
would favour whichever size had one lucky round); every round is printed.
"""

from __future__ import annotations

import random
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pymongo import MongoClient
from tests.nx import NxServer

from livemigrate.engine import CaptureScope, Migration, MigrationEvent, MigrationOptions
from livemigrate.engine.checkpoints import MemoryCheckpointStore
from livemigrate.engine.events import Phase

ROUNDS = {10_000: 3, 100_000: 3}  # documents: rounds
HOT = 10_000  # the documents the writer's updates and deletes pick from, at both sizes
WRITER_RATE = 100.0
CATCH_UP_SECONDS = 1.0  # the writes a busy server delayed that the writer still makes up, at most
BATCH = 1000
READY_LAG = 1.0
TARGET_RATIO = 1.5
TIMEOUT = 300.0


def make_documents(start: int, count: int) -> list[dict[str, Any]]:
    """Documents `doc0000000` on, shaped like the tests' data (nested documents, arrays)."""
    return [{"_id": f"doc{index:07d}", "serial": f"s-{index}", "quantity": index,
             "profile": {"city": ("Lyon", "Oslo", "Lima")[index % 3], "tags": ["a", "b"]},
             "history": [{"step": step, "ok": step % 2 == 0} for step in range(3)]}
            for index in range(start, start + count)]


def seed(client: MongoClient[Any], documents: int) -> None:
    """`bench.docs`, inserted in batches, then watched once: nx-27017 records a collection's changes
    only from its first `watch()`, so the set-up's inserts leave no events for the server to delete
    (all at once, at a stream's first read) inside the copy."""
    collection = client.bench.docs
    for start in range(0, documents, BATCH):
        collection.insert_many(make_documents(start, min(BATCH, documents - start)), ordered=False)
    collection.watch().close()


class Writer(threading.Thread):
    """Inserts, updates and deletes at `per_second`, and the distinct `_id`s they changed."""

    def __init__(self, client: MongoClient[Any], per_second: float = WRITER_RATE, first_number: int = 0) -> None:
        """`first_number`: where the numbers of its inserts begin (a later round's writer on the same
        source begins past the earlier's)."""
        super().__init__(daemon=True)
        self.first_number = first_number
        self.collection = client.bench.docs
        self.interval = 1.0 / per_second
        self.stopped = threading.Event()
        self.random = random.Random(7)
        self.changed: set[str] = set()
        self.writes = 0
        self.seconds = 0.0

    def run(self) -> None:
        started = next_at = time.perf_counter()
        try:
            while not self.stopped.is_set():
                self.writes += 1
                self.changed.update(self._write(self.first_number + self.writes))
                next_at = max(next_at + self.interval, time.perf_counter() - CATCH_UP_SECONDS)
                self.stopped.wait(max(0.0, next_at - time.perf_counter()))
        finally:
            self.seconds = time.perf_counter() - started

    def _write(self, number: int) -> list[str]:
        """One write; the `_id` it changed, if it changed one."""
        action = self.random.choice(("insert", "insert", "update", "update", "delete"))
        if action == "insert":
            identifier = f"new{number:07d}"
            self.collection.insert_one({"_id": identifier, "serial": f"w-{number}", "quantity": 0,
                                        "profile": {"city": "Kyiv", "tags": ["new"]}, "history": []})
            return [identifier]
        identifier = f"doc{self.random.randrange(HOT):07d}"
        if action == "update":
            changed = self.collection.update_one({"_id": identifier}, {"$set": {"profile.city": f"City{number}"},
                                                                       "$inc": {"quantity": 1}}).matched_count
        else:
            changed = self.collection.delete_one({"_id": identifier}).deleted_count
        return [identifier] if changed else []

    def finish(self) -> None:
        self.stopped.set()
        self.join(timeout=10)


@dataclass(frozen=True)
class Round:
    ready: float  # seconds from the migration's start to ready for cutover
    cutover: float  # seconds from `request_cutover()` to `run()` returning
    drain: float  # of which: from the request to the VERIFYING event
    verdict: float  # and from the VERIFYING event to the COMPLETE event
    read_again: int
    changed: int
    writes: int
    writer_seconds: float
    count: float  # seconds of one `count` of the source's collection, after the cutover
    read_everything: bool
    read_whole: tuple[str, ...]
    complete: bool


def _count_seconds(client: MongoClient[Any]) -> float:
    """The least of three `count`s of `bench.docs` (what `estimated_document_count` sends)."""
    seconds = []
    for _ in range(3):
        started = time.perf_counter()
        client.bench.docs.estimated_document_count()
        seconds.append(time.perf_counter() - started)
    return min(seconds)


def one_round(source: NxServer, directory: Path, number: int) -> Round:
    """Round `number`: a migration from `source` (seeded) into a fresh destination, cut over once ready."""
    target = NxServer(directory / "dst").start()
    try:
        with source.client() as source_client:
            ready = threading.Event()
            moments: dict[Phase, float] = {}  # when each phase was first reported

            def on_event(event: MigrationEvent) -> None:
                moments.setdefault(event.phase, time.perf_counter())
                if (event.phase is Phase.REPLICATING and event.counts_agree and not event.verification_pending
                        and event.lag_seconds is not None and event.lag_seconds <= READY_LAG):
                    ready.set()

            # nx-27017's deployment-wide change stream never emits (TESTING.md): capture per collection.
            migration = Migration(source.uri, target.uri, MigrationOptions(capture=CaptureScope.COLLECTION),
                                  MemoryCheckpointStore(), on_event)
            outcome: dict[str, Any] = {}
            runner = threading.Thread(target=lambda: outcome.setdefault("result", migration.run()))
            writer = Writer(source_client, first_number=number * 10**6)
            writer.start()
            began = time.perf_counter()
            runner.start()
            became_ready, writing = ready.wait(TIMEOUT), writer.is_alive()
            if not became_ready or not writing:
                writer.finish()
                migration.stop()
                runner.join(60)
                raise RuntimeError("the migration never became ready for cutover" if not became_ready
                                   else "the writer stopped before the cutover was requested")
            writer.finish()
            started = time.perf_counter()
            migration.request_cutover()
            runner.join(TIMEOUT)
            cutover = time.perf_counter() - started
            count = _count_seconds(source_client)
        result = outcome.get("result")
        if result is None or result.verdict is None:
            raise RuntimeError(f"the cutover returned no verdict: {result}")
        verdict = result.verdict
        verifying, complete = moments.get(Phase.VERIFYING, started), moments.get(Phase.COMPLETE, started)
        return Round(started - began, cutover, verifying - started, complete - verifying, verdict.read_again,
                     len(writer.changed), writer.writes, writer.seconds, count, verdict.read_everything,
                     verdict.read_whole, result.phase is Phase.COMPLETE)
    finally:
        target.stop()


def run() -> list[str]:
    failures: list[str] = []
    print(f"cutover: one collection between two nx-27017 servers, a writer at {WRITER_RATE:.0f} changes/s "
          f"from before the copy until the cutover")
    times: dict[int, float] = {}
    per_document: dict[int, float] = {}
    for documents, count in ROUNDS.items():
        rounds = []
        with tempfile.TemporaryDirectory() as directory:
            source = NxServer(Path(directory) / "src").start()
            try:
                with source.client() as source_client:
                    seed(source_client, documents)
                for number in range(count):
                    rounds.append(one_round(source, Path(directory) / f"round-{number}", number))
            finally:
                source.stop()
        times[documents] = statistics.median(r.cutover for r in rounds)
        per_document[documents] = statistics.median(r.cutover / max(r.read_again, 1) for r in rounds)
        print(f"  {documents:>7,} documents: cutover -> COMPLETE {times[documents] * 1000:5.0f} ms"
              + (f" (median of {count} rounds)" if count > 1 else ""))
        for r in rounds:
            print(f"    {r.cutover * 1000:5.0f} ms: drain {r.drain * 1000:.0f}, verdict {r.verdict * 1000:.0f}; "
                  f"read again {r.read_again:,} per side, {r.changed:,} changed by the writer "
                  f"({r.writes:,} writes in {r.writer_seconds:.0f} s, {r.writes / r.writer_seconds:.0f}/s); "
                  f"ready after {r.ready:.0f} s; one count {r.count * 1000:.0f} ms; "
                  f"read everything: {'yes' if r.read_everything else 'no'}"
                  + (f", read whole: {', '.join(r.read_whole)}" if r.read_whole else ""))
            if not r.complete:
                failures.append(f"{documents:,} documents: the cutover did not complete")
            if r.read_everything or r.read_whole:
                failures.append(f"{documents:,} documents: the verdict read every document")
    small, large = sorted(times)
    ratio = times[large] / times[small]
    print(f"  per document read again         {per_document[small] * 1e6:.0f} µs at {small:,}, "
          f"{per_document[large] * 1e6:.0f} µs at {large:,}: {per_document[large] / per_document[small]:.2f} x")
    print(f"  ratio {large:,} / {small:,}         {ratio:5.2f}   (target <= {TARGET_RATIO})")
    if ratio > TARGET_RATIO:
        failures.append(f"ratio {ratio:.2f} > {TARGET_RATIO}")
    print(f"  verdict                        {'PASS' if not failures else 'FAIL: ' + '; '.join(failures)}")
    return failures


if __name__ == "__main__":
    sys.exit(1 if run() else 0)
