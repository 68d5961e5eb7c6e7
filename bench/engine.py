"""Engine: initial-sync throughput against the raw insert ceiling, the pre-flight's estimate against the
copy it estimated, and the lag under a steady writer.

Two nx-27017 servers on loopback. The ceiling is a plain `insert_many` loop of the same 50,000
documents (1 KiB each) into the same target server, measured in the same run; the engine's figure
is documents over the wall time of its copy phase. The source's change stream is read once before
(`forget_change_history` says why). The pre-flight (`migrate --dry-run`, a
validation) runs just before the copy, on the same servers. Then a writer adds 200 changes/s to the
source and the lag the engine reports is sampled. Targets: ratio >= 0.8, lag < 2 s, and the estimate
within a factor of 2 of the copy's real time.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from tests.nx import NxServer

from livemigrate.engine import CaptureScope, Migration, MigrationEvent, MigrationOptions
from livemigrate.engine.checkpoints import MemoryCheckpointStore
from livemigrate.engine.events import Phase
from livemigrate.engine.preflight import preflight

DOCUMENTS = 50_000
BATCH = 1000
WRITER_RATE = 200
WRITER_SECONDS = 10.0
TARGET_RATIO = 0.8
TARGET_LAG = 2.0
TARGET_ESTIMATE_FACTOR = 2.0


def make_documents(count: int = DOCUMENTS) -> list[dict[str, Any]]:
    """`count` documents of 1 KiB each, `_id`s `doc0000000` on."""
    padding = "x" * 940
    return [{"_id": f"doc{index:07d}", "n": index, "pad": padding, "tags": ["a", "b"], "sub": {"k": index}}
            for index in range(count)]


def insert_all(client: Any, database: str, documents: list[dict[str, Any]]) -> float:
    """Documents a second of a plain `insert_many` loop into `database.docs`."""
    started = time.perf_counter()
    collection = client[database].docs
    for start in range(0, len(documents), BATCH):
        collection.insert_many(documents[start:start + BATCH], ordered=False)
    return len(documents) / (time.perf_counter() - started)


def forget_change_history(source: NxServer) -> None:
    """Read the source's change stream once, so that nx-27017 deletes the insert events the set-up
    left: it does so, all at once, at the first read of any stream on the collection (a second or
    more for 100,000 of them), which would otherwise fall inside the engine's copy. MongoDB's oplog
    is capped in the background, and a stream opened now never reads what came before."""
    with source.client() as client, client.bench.docs.watch(max_await_time_ms=1) as stream:
        stream.try_next()


class Timeline:
    """When the copy phase began and ended, and every lag the engine reported while replicating."""

    def __init__(self) -> None:
        self.copy_started: float | None = None
        self.copy_ended: float | None = None
        self.lags: list[float] = []
        self.replicating = threading.Event()

    def __call__(self, event: MigrationEvent) -> None:
        now = time.perf_counter()
        if event.phase is Phase.INITIAL_SYNC and self.copy_started is None:
            self.copy_started = now
        elif event.phase in (Phase.BUILDING_INDEXES, Phase.REPLICATING) and self.copy_ended is None:
            self.copy_ended = now
        if event.phase is Phase.REPLICATING:
            self.replicating.set()
            if event.lag_seconds is not None:
                self.lags.append(event.lag_seconds)


def write_changes(client: Any, stop: threading.Event) -> int:
    collection = client.bench.docs
    written = 0
    interval = 1.0 / WRITER_RATE
    next_at = time.perf_counter()
    while not stop.is_set():
        collection.update_one({"_id": f"doc{written % DOCUMENTS:07d}"}, {"$inc": {"n": 1}})
        written += 1
        next_at += interval
        time.sleep(max(0.0, next_at - time.perf_counter()))
    return written


def run() -> list[str]:
    with tempfile.TemporaryDirectory() as directory:
        source = NxServer(Path(directory) / "source").start()
        target = NxServer(Path(directory) / "target").start()
        try:
            return _measure(source, target)
        finally:
            source.stop()
            target.stop()


def _measure(source: NxServer, target: NxServer) -> list[str]:
    documents = make_documents()
    with source.client() as source_client, target.client() as target_client:
        source_client.bench.docs.watch().close()  # nx-27017 records changes only from a collection's first watch()
        insert_all(source_client, "bench", documents)
        forget_change_history(source)
        ceiling = insert_all(target_client, "ceiling", documents)
        target_client.drop_database("ceiling")

        # nx-27017's deployment-wide change stream never emits (TESTING.md): capture per collection.
        options = MigrationOptions(capture=CaptureScope.COLLECTION, batch_size=BATCH)
        estimate = preflight(source_client, target_client, options).estimate_seconds
        timeline = Timeline()
        migration = Migration(source.uri, target.uri, options, MemoryCheckpointStore(), timeline)
        outcome: dict[str, Any] = {}
        runner = threading.Thread(target=lambda: outcome.setdefault("result", migration.run()))
        runner.start()
        if not timeline.replicating.wait(600):
            return ["the engine never reached replication"]
        assert timeline.copy_started is not None and timeline.copy_ended is not None
        copy_seconds = timeline.copy_ended - timeline.copy_started
        engine_rate = DOCUMENTS / copy_seconds

        timeline.lags.clear()
        stop = threading.Event()
        writer = threading.Thread(target=lambda: outcome.setdefault("written", write_changes(source_client, stop)))
        writer.start()
        time.sleep(WRITER_SECONDS)
        stop.set()
        writer.join()
        lags = list(timeline.lags)
        migration.request_cutover()
        runner.join(300)
    result = outcome.get("result")
    ratio = engine_rate / ceiling
    worst = max(lags) if lags else float("nan")
    print(f"engine: {DOCUMENTS:,} documents of 1 KiB between two nx-27017 servers")
    print(f"  raw insert_many ceiling   {ceiling:8.0f} docs/s")
    print(f"  engine initial sync       {engine_rate:8.0f} docs/s")
    print(f"  ratio                     {ratio:8.2f}        (target >= {TARGET_RATIO})")
    estimated = estimate / copy_seconds if estimate else float("nan")
    print(f"  pre-flight estimate       {estimate or float('nan'):8.1f} s      the copy took {copy_seconds:.1f} s: "
          f"{estimated:.2f} x   (target {1 / TARGET_ESTIMATE_FACTOR:.1f} to {TARGET_ESTIMATE_FACTOR:.0f} x)")
    print(f"  writer                    {outcome.get('written', 0) / WRITER_SECONDS:8.0f} changes/s for {WRITER_SECONDS:.0f} s")
    if lags:
        print(f"  lag while writing         max {worst:.2f} s, median {statistics.median(lags):.2f} s "
              f"over {len(lags)} samples   (target < {TARGET_LAG} s)")
    verified = result is not None and result.phase is Phase.COMPLETE
    print(f"  cutover and verify        {'equal' if verified else 'NOT equal: ' + str(result)}")
    failures = []
    if ratio < TARGET_RATIO:
        failures.append(f"ratio {ratio:.2f} < {TARGET_RATIO}")
    if not lags or worst >= TARGET_LAG:
        failures.append(f"lag {worst:.2f} s >= {TARGET_LAG} s")
    if not verified:
        failures.append("cutover did not verify equal")
    if not 1 / TARGET_ESTIMATE_FACTOR <= estimated <= TARGET_ESTIMATE_FACTOR:
        failures.append(f"estimate {estimated:.2f} x the copy's time")
    print(f"  verdict                   {'PASS' if not failures else 'FAIL: ' + '; '.join(failures)}")
    return failures


if __name__ == "__main__":
    sys.exit(1 if run() else 0)
