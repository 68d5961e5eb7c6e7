"""A copy that outlasts the source's change history still completes: the changes made during the copy
are read as they come into the spool (`engine/capture/spool.py`) rather than resumed from the start point once
the copy is done.

The source is behind a proxy that keeps its change history for T seconds (`ShortHistoryProxy`): a
change stream cursor not read for longer than T is answered ChangeStreamHistoryLost, as MongoDB answers
once the oplog has rolled past a cursor's position. Before the spool, the engine left its streams
unread during the copy and this test failed: the first read after a copy longer than T ended the
migration with RESUME_TOKEN_LOST.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from livemigrate.engine.capture.spool import Spool
from livemigrate.engine.changes import CapturedEvent
from tests.engine_support import MigrateProcess, Writer, seed, wait_until
from tests.nx import NxServer
from tests.test_engine_live import verify
from tests.wire_proxy import ShortHistoryProxy, SlowCopyProxy

HISTORY_SECONDS = 1.5


def test_a_copy_three_times_longer_than_the_change_history_completes_equal(
        servers: tuple[NxServer, NxServer], tmp_path: Path) -> None:
    source, target = servers
    with source.client() as client:
        seed(client, total=3000)
    short_history = ShortHistoryProxy(source.port, HISTORY_SECONDS).start()
    far_destination = SlowCopyProxy(target.port, seconds_per_batch=0.35).start()
    try:
        with source.client() as client:
            writer = Writer(client, per_second=60)
            # Batches of 100 on two workers, each batch 0.35 s late: a copy of about 5 s, more than 3 T.
            migration = MigrateProcess(short_history.uri, far_destination.uri, tmp_path / "state", "--workers", "2",
                                       "--batch-size", "100").start()
            started = time.monotonic()
            writer.start()
            try:
                assert wait_until(lambda: migration.phase() == "replay", timeout=120), migration.log_text()
                copy_seconds = time.monotonic() - started
                assert wait_until(migration.replicating, timeout=60), migration.log_text()
            finally:
                writer.finish()
            assert migration.cutover_and_wait() == 0, migration.log_text()
        assert copy_seconds > 3 * HISTORY_SECONDS, copy_seconds
        log = migration.log_text()
        assert "EQUAL" in log and short_history.refused == 0, log[-3000:]
        found = re.search(r"(\d+) change\(s\) spooled during the copy", log)
        assert found is not None, log[-3000:]
        spooled = int(found.group(1))
        assert spooled > 0  # the writer's changes during the copy went through the spool
        assert not (tmp_path / "state" / "spool.sqlite").exists()  # applied, then deleted
        result = verify(source, target)
        assert result.returncode == 0, result.stdout + result.stderr
    finally:
        short_history.stop()
        far_destination.stop()


def test_events_spooled_after_the_replay_emptied_the_spool_are_read_after_it(tmp_path: Path) -> None:
    """The spool is written while the replay reads it and deletes what it applied: an event appended
    after everything before it was deleted comes after the last one read, never below it."""
    spool = Spool(tmp_path / Spool.FILE_NAME, limit_bytes=1024**2)
    try:
        spool.append([CapturedEvent("shop.orders", {"_id": {"n": n}, "operationType": "insert"}) for n in range(3)],
                     {"shop.orders": {"n": 2}})
        read = spool.read_after(0, 10)
        spool.forget_through(read[-1][0])  # all applied: the spool is empty
        spool.append([CapturedEvent("shop.orders", {"_id": {"n": 3}, "operationType": "insert"})], {"shop.orders": {"n": 3}})
        later = spool.read_after(read[-1][0], 10)
        assert [captured.event["_id"] for _, captured in later] == [{"n": 3}]
        assert spool.pending() == 1
    finally:
        spool.close()
