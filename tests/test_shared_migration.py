"""One migration shared by two migration hosts, through the APIs, under a writer: both copy; the one
copying without the change capture is SIGKILLed mid-copy and the other finishes its ranges; it comes
back, and the holder of the capture is SIGKILLed during replay: the one that came back takes the
capture over, and the migration still ends COMPLETE and equal."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from tests.engine_support import Writer, namespaces, seed
from tests.migration_world import World
from tests.support import LIVEMIGRATE, wait_for
from tests.wire_proxy import SlowCopyProxy

LEASE_SECONDS = 3.0
HOSTS = ("mh1.example", "mh2.example")
DOCUMENTS = 20_000


def _part(migration: dict[str, Any], role: str) -> dict[str, Any] | None:
    return next((host for host in migration["hosts"] if host["role"] == role), None)


def test_two_hosts_share_a_migration_and_each_takes_over_from_the_other(tmp_path: Path) -> None:
    world = World(tmp_path, api_env={"LIVEMIGRATE_MIGRATION_LEASE_SECONDS": str(LEASE_SECONDS)})
    # Each batch of the copy waits 2 s on its way to the destination: a copy long enough to
    # see both hosts at it, and to kill one of them in the middle.
    slow = SlowCopyProxy(world.destination_db.port, seconds_per_batch=2.0).start()
    try:
        with world.source_db.client() as client:
            seed(client, total=DOCUMENTS)
        world.link()
        world.add_source_project_and_host()
        world.add_target_project_and_cluster(uri=slow.uri)
        hosts = {name: world.start_host(name) for name in HOSTS}
        assert wait_for(lambda: any(sorted(p["migrationHosts"]) == list(HOSTS) for p in world.available_projects()),
                        timeout=30)
        with world.source_db.client() as client:
            writer = Writer(client, per_second=20)
            writer.start()
            try:
                created = world.target_call("POST", "/liveMigrations",
                                            json=world.request_body(migrationHosts=list(HOSTS)))
                assert created.status_code == 201, created.text
                assert created.json()["migrationHosts"] == list(HOSTS)
                migration_id = created.json()["_id"]

                # Both copy, each a fifth of the documents at least, while the copy goes on.
                both = world.wait_migration(migration_id, lambda m: m["phase"] == "INITIAL_SYNC" and len(
                    m["hosts"]) == 2 and all(h["copiedDocuments"] >= DOCUMENTS // 5 for h in m["hosts"]), timeout=90)
                copier, capturer = _part(both, "copy"), _part(both, "capture")
                assert copier is not None and capturer is not None, both
                assert copier["partitions"], copier  # the ranges it holds now

                # The copier dies mid-copy: the other takes its ranges over once their leases run out.
                hosts[copier["hostname"]].kill()
                hosts[copier["hostname"]].wait(timeout=10)
                world.wait_migration(migration_id, lambda m: m["readyForCutover"], timeout=180)
                assert "over from its checkpoint" in world.host_log(capturer["hostname"])

                # It comes back; the capture's holder dies during replay: it takes the capture over.
                hosts[copier["hostname"]] = world.start_host(copier["hostname"])
                assert wait_for(lambda: "taking part in the migration" in world.host_log(copier["hostname"]).split(
                    "migration host " + copier["hostname"] + " started")[-1], timeout=30)
                hosts[capturer["hostname"]].kill()
                hosts[capturer["hostname"]].wait(timeout=10)
                taken = world.wait_migration(migration_id, lambda m: (_part(m, "capture") or {}).get(
                    "hostname") == copier["hostname"] and m["readyForCutover"], timeout=180)
                assert taken["status"] == "WORKING"
                watched = world.target_cli("target", "live-migrations", "watch", "--group", world.target_project["id"],
                                           "--id", migration_id, "--until-ready")
                assert watched.returncode == 0, watched
                assert all(name in watched.stdout for name in (*HOSTS, "RANGES HELD", "capture")), watched.stdout
            finally:
                writer.finish()
        assert world.target_call("PUT", f"/liveMigrations/{migration_id}/cutover").status_code == 202
        done = world.wait_migration(migration_id, lambda m: m["status"] in ("COMPLETE", "FAILED"), timeout=180)
        assert done["status"] == "COMPLETE", done
        assert "holds the change capture and runs the migration" in world.host_log(copier["hostname"])
        # Its leases go once they have run out: the hosts' next job lists no longer show the job.
        assert wait_for(lambda: world.api.query("SELECT count(*) FROM job_leases WHERE job_id = ?",
                                                migration_id) == [(0,)], timeout=LEASE_SECONDS + 20)
        result = subprocess.run([LIVEMIGRATE, "verify", world.source_db.uri, world.destination_db.uri],
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
        with world.source_db.client() as source, world.destination_db.client() as destination:
            for database, name in namespaces():  # nothing lost, nothing twice
                assert (destination[database][name].count_documents({})
                        == source[database][name].count_documents({}))
    finally:
        slow.stop()
        world.close()
