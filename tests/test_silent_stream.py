"""Never a false COMPLETE: a change stream that delivers nothing, or events the engine does not
understand, are seen by evidence that does not come from the stream.

nx-27017 accepts a deployment-wide `watch()` and never emits (TESTING.md): forcing `--capture cluster`
on it is exactly the silent stream a user met, so these tests use the server's gap on purpose.
"""

from __future__ import annotations

import datetime
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from bson import Timestamp

from livemigrate.engine.apply import apply_changes
from livemigrate.engine.ledger import VerificationLedger
from livemigrate.engine.verify.divergence import GRACE_SECONDS, DivergenceMonitor
from livemigrate.engine.verify.passes import VerificationPass, verify_changed
from livemigrate.engine.verify.verdict import reach_verdict
from tests.engine_support import MigrateProcess, Writer, namespaces, seed
from tests.migration_world import World
from tests.nx import NxServer
from tests.support import LIVEMIGRATE, wait_for

WARNING = "the destination is behind the source and the change stream does not explain it"


def _verify_exit_code(source: NxServer, target: NxServer) -> int:
    return subprocess.run([LIVEMIGRATE, "verify", source.uri, target.uri], capture_output=True, text=True,
                          timeout=120).returncode


def test_migrate_on_a_silent_stream_never_catches_up_and_a_forced_cutover_fails_naming_the_namespaces(
        servers: tuple[NxServer, NxServer], tmp_path: Path) -> None:
    source, target = servers
    with source.client() as client:
        seed(client, total=2400)
        writer = Writer(client, per_second=60)
        migration = MigrateProcess(source.uri, target.uri, tmp_path / "state", "--until-caught-up",
                                   "--count-check-seconds", "1", capture="cluster").start()
        writer.start()
        try:
            assert wait_for(lambda: WARNING in migration.log_text(), timeout=90), migration.log_text()[-3000:]
            time.sleep(4)  # the writer goes on: still never caught up
            assert migration.process is not None and migration.process.poll() is None, migration.log_text()[-3000:]
        finally:
            writer.finish()
        log = migration.log_text()
        assert "caught up" not in log
        warning = log[log.index(WARNING):].splitlines()[0]
        assert any(f"{database}.{name}: " in warning for database, name in namespaces()), warning
        assert "--capture collection" in warning and "delivering nothing" in warning

        assert migration.cutover_and_wait() == 1, migration.log_text()[-3000:]  # forced: SIGUSR1
    log = migration.log_text()
    assert "DIFFERENT" in log and "evidence independent of the change stream disagrees:" in log
    table = log.split("verification")[-1]
    assert all(f"{database}.{name}" in table for database, name in namespaces())  # the verdict names them
    assert _verify_exit_code(source, target) == 1  # and it was right: the destination differs


def test_the_apis_on_a_silent_stream_never_report_ready_and_say_why(tmp_path: Path) -> None:
    world = World(tmp_path, embedded_agent=True,
                  api_env={"LIVEMIGRATE_AGENT_CAPTURE": "cluster", "LIVEMIGRATE_AGENT_COUNT_CHECK_SECONDS": "1"})
    try:
        migration_id = world.migrate_with_the_embedded_host(1200)
        seen: list[dict[str, Any]] = []
        with world.source_db.client() as client:
            writer = Writer(client, per_second=60)
            writer.start()
            try:
                def warned(migration: dict[str, Any]) -> bool:
                    seen.append(dict(migration))
                    return bool(migration["warnings"])

                world.wait_migration(migration_id, warned, timeout=90)
                deadline = time.monotonic() + 4
                while time.monotonic() < deadline:
                    seen.append(world.migration(migration_id))
                    time.sleep(0.2)
            finally:
                writer.finish()
        assert not any(m["readyForCutover"] for m in seen), [m for m in seen if m["readyForCutover"]][0]
        last = seen[-1]
        assert last["status"] == "WORKING" and last["phase"] == "REPLICATING", last
        [warning] = last["warnings"]
        # The remedy as a user of the API takes it: cancel, and create again asking for the other capture;
        # or make it the default of the host — here the one `serve` runs in process.
        assert WARNING in warning and "cancel this migration" in warning
        assert "create it again with changeCapture COLLECTION" in warning
        assert "`livemigrate serve --agent-capture collection`" in warning
        assert any(f"{database}.{name}: " in warning for database, name in namespaces()), warning
        # Lag counts from when the counts first disagreed: a silent stream does not read as lag 0.
        assert last["lagTimeSeconds"] is not None and last["lagTimeSeconds"] >= 3, last

        refused = world.target_call("PUT", f"/liveMigrations/{migration_id}/cutover")
        assert refused.status_code == 409 and refused.json()["errorCode"] == "LIVE_MIGRATION_NOT_READY_FOR_CUTOVER"

        env = {**os.environ, "LIVEMIGRATE_BASE_URL": world.api.base_url,
               "LIVEMIGRATE_PUBLIC_KEY": world.target.public_key, "LIVEMIGRATE_PRIVATE_KEY": world.target.private_key}
        group = world.target_project["id"]
        described = subprocess.run([LIVEMIGRATE, "target", "live-migrations", "describe", "--group", group,
                                    "--id", migration_id], env=env, capture_output=True, text=True, timeout=60)
        assert described.returncode == 0 and WARNING in " ".join(described.stdout.split()), described.stdout
        watch = subprocess.Popen([LIVEMIGRATE, "target", "live-migrations", "watch", "--group", group, "--id",
                                  migration_id], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            output, _ = watch.communicate(timeout=4)
        except subprocess.TimeoutExpired:
            watch.kill()
            output, _ = watch.communicate()
        # Through a pipe: the warning once, on one line, whole (nothing folded at 80 columns), however the
        # namespaces behind it change from one look to the next.
        warned = [line for line in output.splitlines() if line.startswith("WARNING: ")]
        assert len(warned) == 1 and warned[0].startswith("WARNING: " + WARNING), output[-2000:]
        assert warned[0].rstrip().endswith("(the migration host `serve` runs)."), warned
    finally:
        world.close()


# --- recorded events the engine skips ------------------------------------------------------------------


def _event(kind: str, number: int, **fields: Any) -> dict[str, Any]:
    """A change event in MongoDB's documented shape."""
    return {"_id": {"_data": f"8265A1B2C300000{number:03d}2B022C0100296E5A1004"}, "operationType": kind,
            "clusterTime": Timestamp(1705100000, number),
            "wallTime": datetime.datetime(2024, 1, 12, 22, 53, 20, tzinfo=datetime.UTC),
            "ns": {"db": "shop", "coll": "orders"}, **fields}


def test_events_the_engine_skips_or_does_not_understand_are_caught_by_the_verdict(
        servers: tuple[NxServer, NxServer], tmp_path: Path) -> None:
    source_server, target_server = servers
    ledger = VerificationLedger(tmp_path / VerificationLedger.FILE_NAME)
    namespaces = ["shop.orders", "shop.users"]
    with source_server.client() as source, target_server.client() as target:
        for client in (source, target):
            client.shop.orders.insert_many([{"_id": f"order{i:03d}", "total": i} for i in range(200)])
            client.shop.users.insert_many([{"_id": f"user{i:03d}", "name": f"user {i}"} for i in range(100)])
        ledger.begin("recorded")
        assert VerificationPass(source, target, ledger, namespaces, threading.Event(), lambda: None,
                                sample=1000).wait(timeout=60)

        # The source changes, and the stream brings only events of kinds the engine does not apply (as a
        # stream that misses the real ones would). Applied and noted as the replay loop does.
        source.shop.orders.insert_one({"_id": "order999", "total": 999})
        source.shop.users.update_one({"_id": "user042"}, {"$set": {"name": "renamed"}})
        recorded = [
            _event("reshardCollection", 1, operationDescription={"reshardUUID": "x"}),
            {**_event("shardCollection", 2, operationDescription={"shardKey": {"_id": 1}}),
             "ns": {"db": "shop", "coll": "users"}},
            _event("somethingNew", 3, documentKey={"_id": "order999"}),
        ]
        apply_changes(target, recorded)
        ledger.note_events(recorded)

        blind = verify_changed(source, target, namespaces, ledger)
        assert blind.equal  # what the ledger alone would have said: the stream told it nothing

        verdict = reach_verdict(source, target, namespaces, ledger)
        # The counts' difference has no key in the ledger: that namespace, and only it, is read whole.
        assert not verdict.equal and not verdict.read_everything and verdict.read_whole == ("shop.orders",)
        assert verdict.evidence is not None and verdict.evidence.count_differences == {"shop.orders": (201, 200)}
        # Counts cannot see an update; the sample (every document here: 1,000 asked, 300 there) does.
        assert verdict.evidence.sampled == 300 and verdict.evidence.sample_mismatches == {"shop.users": ("user042",)}
        differences = verdict.report.describe_differences()
        assert "shop.orders (201 document(s) on the source, 200 on the destination; 1 differ, first _id: order999)" \
            in differences
        assert "shop.users" in differences and "user042" in differences



def test_collections_created_during_a_per_collection_migration_reach_the_destination(tmp_path: Path) -> None:
    """A stream per collection sees only the collections of the start: the others are looked for every
    5 s while replicating (`coordinator/late_collections.py`), and once more when the cutover's drain begins. A
    collection dropped meanwhile is dropped on the destination."""
    world = World(tmp_path)  # its migration host captures per collection
    try:
        world.ready_to_migrate(1200)
        created = world.target_call("POST", "/liveMigrations", json=world.request_body())
        assert created.status_code == 201, created.text
        migration_id = created.json()["_id"]
        world.wait_migration(migration_id, lambda m: m["readyForCutover"], timeout=120)
        with world.source_db.client() as source, world.destination_db.client() as destination:
            source.shop.late.insert_many([{"_id": f"late{i}", "n": i} for i in range(5)])
            source.shop.late.update_one({"_id": "late0"}, {"$set": {"n": 100}})
            assert wait_for(lambda: destination.shop.late.count_documents({}) == 5, timeout=30), world.agent_log()
            world.wait_migration(migration_id, lambda m: m["readyForCutover"], timeout=30)
            assert destination.shop.late.find_one({"_id": "late0"}) == {"_id": "late0", "n": 100}
            # A collection dropped on the source (one of the start) is dropped on the destination.
            source.people.delta.drop()
            assert wait_for(lambda: "delta" not in destination.people.list_collection_names(), timeout=30), \
                world.agent_log()
            world.wait_migration(migration_id, lambda m: m["readyForCutover"], timeout=30)
            # One more, just before the cutover, while the migration still says it is ready.
            source.shop.later.insert_many([{"_id": f"later{i}"} for i in range(3)])
        # The look for new collections may find it first and make the migration not ready for a
        # moment: that cutover is refused (409) until it is ready again.
        assert wait_for(lambda: world.target_call("PUT", f"/liveMigrations/{migration_id}/cutover").status_code == 202,
                        timeout=30, interval=0.5), world.agent_log()
        done = world.wait_migration(migration_id, lambda m: m["status"] in ("COMPLETE", "FAILED"), timeout=120)
        assert done["status"] == "COMPLETE", done
        log = world.agent_log()
        assert "shop.late, created on the source during the migration: 5 document(s) copied" in log
        assert "shop.later, created on the source during the migration: 3 document(s) copied" in log
        assert _verify_exit_code(world.source_db, world.destination_db) == 0
    finally:
        world.close()


def test_counts_that_differ_while_spooled_changes_are_applied_warn_only_once_those_are(
        servers: tuple[NxServer, NxServer]) -> None:
    """The destination is behind while the changes read during the copy are applied from the spool: a
    reason the stream's lag does not show. No warning then, however long it lasts; the usual grace once
    the spool is applied, and a warning if the difference stays (found by the soak: a warning that told a
    person to start the migration again, a few seconds into replication, for nothing)."""
    source, target = servers
    with source.client() as source_client, target.client() as target_client:
        source_client.shop.orders.insert_many([{"_id": number} for number in range(5)])
        target_client.shop.orders.insert_many([{"_id": number} for number in range(3)])
        catching_up = threading.Event()
        catching_up.set()
        monitor = DivergenceMonitor(source_client, target_client, lambda: ["shop.orders"], 60.0, threading.Event(),
                                    capture="collection", catching_up=catching_up.is_set)
        monitor.check()
        time.sleep(GRACE_SECONDS + 0.5)
        monitor.check()
        assert monitor.state().pending == ("shop.orders",) and monitor.warning() is None
        catching_up.clear()  # the spool is applied: the grace starts now
        monitor.check()
        assert monitor.warning() is None
        time.sleep(GRACE_SECONDS + 0.5)
        monitor.check()
        assert monitor.warning() is not None and WARNING in monitor.warning()
