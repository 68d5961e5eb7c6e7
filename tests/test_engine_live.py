"""The engine end to end against two nx-27017 servers: copy while the source changes, replay, cutover,
verify — and the same run killed with SIGKILL during the copy and during replay."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import time
from pathlib import Path

from tests.engine_support import MigrateProcess, Writer, index_shapes, namespaces, seed, wait_until
from tests.nx import NxServer
from tests.support import LIVEMIGRATE

DOCUMENTS = 10_000  # in 12 namespaces: split into ranges, and long enough a copy to kill in the middle


def verify(source: NxServer, target: NxServer) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LIVEMIGRATE, "verify", source.uri, target.uri], capture_output=True, text=True, timeout=300)


def test_live_migration_with_a_writer_ends_equal(servers: tuple[NxServer, NxServer], tmp_path: Path) -> None:
    source, target = servers
    with source.client() as client:
        seed(client, total=DOCUMENTS)
        writer = Writer(client)
        # Small ranges and three workers: the parallel range copy is exercised on a small data set.
        migration = MigrateProcess(source.uri, target.uri, tmp_path / "state", "--workers", "3",
                                   "--split-threshold", "500").start()
        writer.start()
        try:
            assert wait_until(lambda: migration.phase() == "replay", timeout=180), migration.log_text()
            assert wait_until(lambda: writer.counts["delete"] > 20, timeout=30)
        finally:
            writer.finish()
        assert migration.cutover_and_wait() == 0, migration.log_text()
    assert "EQUAL" in migration.log_text()
    # Evidence that does not come from the change stream agreed: counts of every namespace, a sample.
    assert re.search(r"independent checks: counts of 12 namespace\(s\) and a sample of 9\d document\(s\) agree",
                     migration.log_text())  # 100 asked, 8 from each of 12 namespaces
    # Cutover read again only what the writer changed after the verification pass, and agreed with
    # the full comparison below.
    reread = int(migration.log_text().split("verifying through the ledger: reading again ")[1].split(" ")[0])
    assert 0 < reread < DOCUMENTS - 1000
    split = migration.checkpoint("range:sales.alpha:0002")
    assert split is not None and split["done"] and split["lower"] is not None  # copied as parallel ranges
    result = verify(source, target)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "DIFFERENT" not in result.stdout
    with source.client() as source_client, target.client() as target_client:
        for database, name in namespaces():
            assert index_shapes(target_client, database, name) == index_shapes(source_client, database, name)
            assert len(index_shapes(target_client, database, name)) == 3
        total = sum(source_client[database][name].count_documents({}) for database, name in namespaces())
    assert total > DOCUMENTS - 1000 and writer.counts["update"] > 0


def test_killed_during_copy_and_during_replay_resumes_and_ends_equal(servers: tuple[NxServer, NxServer],
                                                                     tmp_path: Path) -> None:
    source, target = servers
    state = tmp_path / "state"
    arguments = ("--workers", "1", "--batch-size", "200")
    with source.client() as client:
        seed(client, total=DOCUMENTS)
        writer = Writer(client, per_second=100)
        writer.start()
        try:
            first = MigrateProcess(source.uri, target.uri, state, *arguments).start()
            assert wait_until(lambda: first.copied() >= 3000, timeout=120), first.log_text()
            first.kill()
            copied_at_kill = first.copied()
            assert 0 < copied_at_kill < DOCUMENTS
            with sqlite3.connect(state / "spool.sqlite") as spool:  # the writer's changes wait in the spool
                spooled_at_kill = spool.execute("SELECT COUNT(*) FROM events").fetchone()[0]
            assert spooled_at_kill > 0

            second = MigrateProcess(source.uri, target.uri, state, *arguments).start()
            assert wait_until(lambda: second.phase() == "replay", timeout=180), second.log_text()
            assert wait_until(lambda: second.checkpoint("token:sales.alpha") is not None, timeout=10)
            time.sleep(1.0)  # replay is under way, with the writer still writing
            second.kill()
        finally:
            writer.finish()
        resumed_log = second.log_text()
        assert "resuming the copy from its checkpoint" in resumed_log
        assert f"{spooled_at_kill} change(s) spooled before the restart wait to be applied" in resumed_log
        already = int(resumed_log.split("resuming the copy from its checkpoint: ")[1].split(" ")[0])
        assert already >= copied_at_kill > 0  # the copy did not restart from zero

        third = MigrateProcess(source.uri, target.uri, state, *arguments).start()
        assert third.cutover_and_wait() == 0, third.log_text()
    assert "EQUAL" in third.log_text()
    assert "verifying through the ledger" in third.log_text()  # the ledger outlived both kills
    result = verify(source, target)
    assert result.returncode == 0, result.stdout + result.stderr
