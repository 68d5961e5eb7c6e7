"""The cutover's independent checks: what the counts and the sample add to a cutover.

A 10,000-document deployment (12 collections) between two nx-27017 servers, migrated in process with
per-collection capture while a writer changes the source; once ready, the writer stops and cutover
is requested. The cutover's time runs from that request to the verdict.

The checks' cost is measured on the same data right after: the ledger's re-read of the documents
the writer changed, alone (what a cutover verified with before the checks) and with the checks (the
counts meanwhile, the sample in the same queries), alternating REPEATS times each; the cost is the
difference of their medians. Target (issue: never a false COMPLETE): <= 10 % of the cutover.
Median of ROUNDS rounds: timings on this machine vary by a third from one run to the next.
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from tests.engine_support import Writer, namespaces, seed
from tests.nx import NxServer

from livemigrate.engine import CaptureScope, Migration, MigrationEvent, MigrationOptions
from livemigrate.engine.checkpoints import MemoryCheckpointStore
from livemigrate.engine.events import Phase
from livemigrate.engine.ledger import VerificationLedger
from livemigrate.engine.verdict import through_the_ledger
from livemigrate.engine.verify import verify_changed

DOCUMENTS = 10_000
ROUNDS = 3
REPEATS = 5
TARGET_SHARE = 0.10
WRITER_SECONDS = 3.0


def _seconds(action: Any) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def one_round(directory: Path) -> tuple[float, float, float, int]:
    """(cutover, ledger re-read alone, re-read with the checks: seconds; documents sampled)."""
    source, target = NxServer(directory / "src").start(), NxServer(directory / "dst").start()
    try:
        with source.client() as source_client, target.client() as target_client:
            seed(source_client, total=DOCUMENTS)
            ready = threading.Event()

            def on_event(event: MigrationEvent) -> None:
                if event.phase is Phase.REPLICATING and event.counts_agree and not event.verification_pending:
                    ready.set()

            ledger = VerificationLedger()
            # nx-27017's deployment-wide change stream never emits (TESTING.md): capture per collection.
            migration = Migration(source.uri, target.uri, MigrationOptions(capture=CaptureScope.COLLECTION),
                                  MemoryCheckpointStore(), on_event, ledger)
            outcome: dict[str, Any] = {}
            runner = threading.Thread(target=lambda: outcome.setdefault("result", migration.run()))
            runner.start()
            writer = Writer(source_client, per_second=100)
            writer.start()
            time.sleep(WRITER_SECONDS)
            writer.finish()
            ready.clear()
            if not ready.wait(300):
                raise RuntimeError("the migration never became ready")
            started = time.perf_counter()
            migration.request_cutover()
            runner.join(300)
            cutover = time.perf_counter() - started
            result = outcome["result"]
            assert result.phase is Phase.COMPLETE and result.verdict is not None and not result.verdict.read_everything
            assert result.verdict.evidence is not None
            names = [f"{database}.{name}" for database, name in namespaces()]
            alone, checked = [], []
            for _ in range(REPEATS):
                alone.append(_seconds(lambda: verify_changed(source_client, target_client, names, ledger)))
                checked.append(_seconds(lambda: through_the_ledger(source_client, target_client, names, ledger)))
        return cutover, statistics.median(alone), statistics.median(checked), result.verdict.evidence.sampled
    finally:
        source.stop()
        target.stop()


def run() -> list[str]:
    rounds = []
    for _ in range(ROUNDS):
        with tempfile.TemporaryDirectory() as directory:
            rounds.append(one_round(Path(directory)))
    cutover, alone, checked = (statistics.median(r[index] for r in rounds) for index in range(3))
    share = statistics.median((r[2] - r[1]) / r[0] for r in rounds)
    print(f"verdict: the cutover's independent checks, {DOCUMENTS:,} documents in 12 collections "
          f"(median of {ROUNDS} rounds)")
    print(f"  cutover -> verdict                 {cutover * 1000:6.0f} ms   rounds: "
          f"{', '.join(f'{r[0] * 1000:.0f}' for r in rounds)}")
    print(f"  ledger re-read alone               {alone * 1000:6.0f} ms   rounds: "
          f"{', '.join(f'{r[1] * 1000:.0f}' for r in rounds)}")
    print(f"  with counts and a {rounds[0][3]:4d}-doc sample   {checked * 1000:6.0f} ms   rounds: "
          f"{', '.join(f'{r[2] * 1000:.0f}' for r in rounds)}")
    print(f"  checks' share of the cutover       {share:6.2f}      (target <= {TARGET_SHARE})")
    failures = [f"share {share:.2f} > {TARGET_SHARE}"] if share > TARGET_SHARE else []
    print(f"  verdict                            {'PASS' if not failures else 'FAIL: ' + failures[0]}")
    return failures


if __name__ == "__main__":
    run()
