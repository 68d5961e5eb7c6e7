"""Two migration hosts share a sharded source's copy by its chunks, through the APIs: a mongos (the emulator
over three nx-27017 shards, `tests/mongos.py`) registered as the source's host, a collection sharded on a
ranged key in six chunks over the shards in turn. The host holding the change capture plans the copy along
the chunks (one range per run of one shard's chunks, `engine/copy/chunks.py`); both hosts lease ranges
(`engine/copy/shared.py`) and each copies some; the progress document tells the copy per source shard, and
`watch` and the console show it; the cutover ends COMPLETE with both sides equal."""

from __future__ import annotations

import re
from pathlib import Path

from tests.migration_world import World
from tests.mongos import Mongos
from tests.support import wait_for
from tests.test_chunk_copy import DOCUMENTS, KEYLESS, OTHER, TIES, everything, sharded_on_chunks
from tests.test_console import signed_in
from tests.test_sharded_migration import start_servers
from tests.wire_proxy import SlowCopyProxy

HOSTS = ("mh1.example", "mh2.example")
TOTAL = DOCUMENTS + TIES + KEYLESS + OTHER


def _ranges_copied(log: str) -> set[int]:
    return {int(found) for found in re.findall(r"shop\.orders: copying range (\d+), key \[", log)}


def test_two_hosts_share_a_sharded_copy_by_its_chunks(tmp_path: Path) -> None:
    shards = start_servers(tmp_path / "shards", 3)
    mongos = Mongos(shards).start()
    world = World(tmp_path)
    # Each batch of the copy waits on its way to the destination: both hosts are at the copy before it ends.
    slow = SlowCopyProxy(world.destination_db.port, seconds_per_batch=1.5).start()
    try:
        sharded_on_chunks(mongos)
        world.link()
        world.add_source_project_and_host(port=mongos.port)  # its probe sees a mongos
        world.add_target_project_and_cluster(uri=slow.uri)
        for name in HOSTS:
            world.start_host(name)
        assert wait_for(lambda: any(sorted(p["migrationHosts"]) == list(HOSTS) for p in world.available_projects()),
                        timeout=30)
        created = world.target_call("POST", "/liveMigrations", json=world.request_body(
            migrationHosts=list(HOSTS), stopSourceBalancer=True))
        assert created.status_code == 201, created.text
        migration_id = created.json()["_id"]

        ready = world.wait_migration(migration_id, lambda m: m["readyForCutover"] and len(m["hosts"]) == 2 and sum(
            host["copiedDocuments"] for host in m["hosts"]) >= TOTAL, timeout=90)
        copied = {host["hostname"]: host["copiedDocuments"] for host in ready["hosts"]}
        assert all(count > 0 for count in copied.values()), (copied, [world.host_log(h)[-2000:] for h in HOSTS])
        capturer = next(host["hostname"] for host in ready["hosts"] if host["role"] == "capture")
        assert "shop.orders: planned along its 6 chunk(s) on 3 shard(s), in 6 range(s)" in world.host_log(capturer)
        # The chunks' ranges, shared: each host copied some of them, together all, none twice.
        taken = {name: _ranges_copied(world.host_log(name)) for name in HOSTS}
        assert all(taken.values()) and not taken[HOSTS[0]] & taken[HOSTS[1]], taken
        assert taken[HOSTS[0]] | taken[HOSTS[1]] == set(range(6)), taken

        # Per source shard, in the progress document and in `watch`.
        orders = next(entry for entry in ready["namespaces"] if entry["namespace"] == "shop.orders")
        on_shards = {shard: mongos.shard_client(shard).shop.orders.count_documents({}) for shard in mongos.shard_ids}
        assert {entry["shard"]: (entry["copied"], entry["total"], entry["done"]) for entry in orders["shards"]} == {
            shard: (count, count, True) for shard, count in on_shards.items()}, orders
        watched = world.target_cli("target", "live-migrations", "watch", "--group", world.target_project["id"],
                                   "--id", migration_id, "--until-ready")
        assert watched.returncode == 0, watched
        assert all(f"on {shard}" in watched.stdout for shard in mongos.shard_ids), watched.stdout
        console, _ = signed_in(world.api, world.target)
        try:
            page = console.get(f"/console/groups/{world.target_project['id']}/migrations/{migration_id}")
        finally:
            console.close()
        assert page.status_code == 200 and all(
            f'<tr class="shard"><td>on {shard}</td>' in page.text for shard in mongos.shard_ids), page.text

        assert world.target_call("PUT", f"/liveMigrations/{migration_id}/cutover").status_code == 202
        done = world.wait_migration(migration_id, lambda m: m["status"] in ("COMPLETE", "FAILED"), timeout=90)
        assert done["status"] == "COMPLETE", done
        with mongos.client() as source, world.destination_db.client() as destination:
            assert everything(source) == everything(destination)
    finally:
        world.close()
        slow.stop()
        mongos.stop()
        for shard in shards:
            shard.stop()
