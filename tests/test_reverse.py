"""A way back, through `livemigrate migrate --reversible` and `livemigrate reverse`, on nx-27017 with
per-collection capture: a forward migration under a writer completes; the writer moves to the destination
and writes there before the reverse is asked for (the gap) and while it runs; the reverse's host is killed
and started again; the cut back drains, verifies and ends with the source equal to the destination — every
write made on the destination is on the source. A reversible migration's dry run fails with its reason when
the destination keeps too short a change history, or the source cannot be written (wire proxies).
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path
from typing import Any

from pymongo import MongoClient

from tests.engine_support import MigrateProcess, Writer, namespaces, seed
from tests.nx import NxServer
from tests.support import LIVEMIGRATE, wait_for
from tests.wire_proxy import OplogWindowProxy, ReadOnlyProxy


def documents(client: MongoClient[Any]) -> dict[str, list[dict[str, Any]]]:
    return {f"{db}.{name}": sorted(client[db][name].find(), key=lambda document: str(document["_id"]))
            for db, name in namespaces()}


class Reverse:
    """`livemigrate reverse` in a subprocess, its log appended to one file across runs."""

    def __init__(self, source: NxServer, destination: NxServer, state: Path) -> None:
        self.log_path = state.parent / "reverse.log"
        self.command = [LIVEMIGRATE, "reverse", source.uri, destination.uri, "--state-dir", str(state)]
        self.process: subprocess.Popen[bytes] | None = None
        self.runs = 0

    def start(self) -> Reverse:
        self.runs += 1
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT)
        return self

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def replicating(self) -> bool:
        return self.log_text().count("replicating changes") >= self.runs


def test_writes_made_on_the_destination_after_cutover_flow_back_and_the_cut_back_ends_equal(tmp_path: Path) -> None:
    source, destination = NxServer(tmp_path / "source").start(), NxServer(tmp_path / "destination").start()
    try:
        with source.client() as client:
            seed(client, total=1200)
            writer = Writer(client, per_second=40)
            writer.start()
            forward = MigrateProcess(source.uri, destination.uri, tmp_path / "state", "--reversible").start()
            try:
                assert wait_for(forward.replicating, timeout=60), forward.log_text()
                assert wait_for(lambda: writer.counts["update"] >= 5, timeout=20)
            finally:
                writer.finish()
            assert forward.cutover_and_wait() == 0, forward.log_text()[-3000:]
        assert "livemigrate reverse SOURCE TARGET" in forward.log_text()

        with destination.client() as client:
            # The application now writes to the destination: some writes before the reverse is asked for.
            moved = Writer(client, per_second=40, first_number=500_000)
            moved.start()
            client.elsewhere.notes.insert_many([{"_id": n} for n in range(5)])  # not the migration's: stays here
            try:
                assert wait_for(lambda: sum(moved.counts.values()) >= 40, timeout=20)
                reverse = Reverse(source, destination, tmp_path / "state").start()
                assert wait_for(lambda: reverse.replicating() or reverse.process.poll() is not None, timeout=60)
                assert reverse.replicating(), reverse.log_text()[-3000:]
                written_before_kill = sum(moved.counts.values())
                assert wait_for(lambda: sum(moved.counts.values()) >= written_before_kill + 30, timeout=20)
                assert reverse.process is not None
                reverse.process.kill()  # the migration host dies during the reverse run
                reverse.process.wait(timeout=10)
                reverse.start()
                assert wait_for(lambda: reverse.replicating() or reverse.process.poll() is not None, timeout=60)
                assert reverse.replicating(), reverse.log_text()[-3000:]
                assert wait_for(lambda: sum(moved.counts.values()) >= written_before_kill + 60, timeout=20)
            finally:
                moved.finish()
            reverse.process.send_signal(signal.SIGUSR1)  # the cut back
            assert reverse.process.wait(timeout=120) == 0, reverse.log_text()[-3000:]
        log = reverse.log_text()
        assert "starting the reverse of a migration" in log and "EQUAL" in log
        assert "the destination blocks user writes" in log and "the source takes writes again" in log
        with source.client() as source_client, destination.client() as destination_client:
            assert documents(source_client) == documents(destination_client)
            assert source_client.elsewhere.notes.count_documents({}) == 0  # the reverse kept to the migration's
            # Every insert the application made on the destination is on the source.
            inserted = {str(document["_id"]) for db, name in namespaces()
                        for document in source_client[db][name].find({"_id": {"$regex": "^written5"}}, {"_id": 1})}
        assert moved.counts["insert"] > 0 and len(inserted) > 0.8 * moved.counts["insert"]  # the rest deleted since
    finally:
        source.stop()
        destination.stop()


def test_a_reversible_migration_is_refused_where_a_reverse_could_not_work(tmp_path: Path) -> None:
    source, destination = NxServer(tmp_path / "source").start(), NxServer(tmp_path / "destination").start()
    short = OplogWindowProxy(destination.port, seconds=600).start()
    read_only = ReadOnlyProxy(source.port).start()
    try:
        with source.client() as client:
            seed(client, total=120)

        def dry_run(source_uri: str, destination_uri: str, *args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([LIVEMIGRATE, "migrate", source_uri, destination_uri, "--dry-run", *args],
                                  capture_output=True, text=True, timeout=120)

        plain = dry_run(source.uri, destination.uri, "--reversible")
        assert plain.returncode == 0, plain.stdout  # nx-27017 tells no change history: said, not blocking
        assert "the destination does not tell its change history" in plain.stdout
        too_short = dry_run(source.uri, short.uri, "--reversible")
        assert too_short.returncode == 1, too_short.stdout
        assert "the destination keeps 600 s of change history" in too_short.stdout
        assert "it needs at least 3,600 s" in too_short.stdout
        unwritable = dry_run(read_only.uri, destination.uri, "--reversible")
        assert unwritable.returncode == 1, unwritable.stdout
        assert ("the source cannot be written by the migration host's user: its user may not insert, remove, update "
                "in inventory") in unwritable.stdout, unwritable.stdout
        # Without --reversible, neither is asked.
        assert dry_run(read_only.uri, short.uri).returncode == 0
    finally:
        short.stop()
        read_only.stop()
        source.stop()
        destination.stop()
