"""Sharded clusters through `livemigrate migrate`, on the mongos emulator (`tests/mongos.py`) over nx-27017
shards: a replica set into a sharded cluster with `--sharding` (a ranged and a hashed key, the supporting
indexes created), a sharded source into a sharded cluster (its key carried over) and into a replica set,
with a writer, a shard key value changed and a chunk moved during the migration; the source's balancer
blocks the migration until it is asked to stop it, and runs again after any end; a `sharding` the
deployments cannot honour is refused before anything is written.

The emulator refuses what a mongos refuses (an upsert without the full shard key, an update of a shard
key value without it in the filter): a replayed write that a real mongos could not route fails here.
Each side is compared directly at the end, and each shard is read for `_id`s present twice.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from tests.engine_support import MigrateProcess, Writer, namespaces, seed
from tests.mongos import Mongos
from tests.nx import NxServer, start_servers
from tests.support import LIVEMIGRATE, wait_for

DOCUMENTS = 1200  # 100 a collection
RANGED = ("sales", "alpha")  # sharded on {serial: 1}: the writer never changes `serial`
# Sharded on {quantity: "hashed"} on the destination: the writer's `$inc` of `quantity` changes a shard key
# value, again and again. (Not `_id`: nx-27017 refuses a document into a collection with a hashed `_id` index.)
HASHED = ("sales", "beta")
MOVED = 5  # documents whose shard key value the test changes


@pytest.fixture
def shards(tmp_path: Path) -> Iterator[list[NxServer]]:
    """Five nx-27017 servers: a test makes its source and destination of them (a mongos over some)."""
    servers = start_servers(tmp_path, 5)
    yield servers
    for server in servers:
        server.stop()


def documents(client: MongoClient[Any]) -> dict[str, list[dict[str, Any]]]:
    return {f"{db}.{name}": sorted(client[db][name].find(), key=lambda document: str(document["_id"]))
            for db, name in namespaces()}


def ids_on_two_shards(mongos: Mongos, database: str, name: str) -> list[Any]:
    seen: Counter[str] = Counter()
    for shard in mongos.shard_ids:
        seen.update(str(document["_id"]) for document in mongos.shard_client(shard)[database][name].find({}, {"_id": 1}))
    return [identifier for identifier, count in seen.items() if count > 1]


def on_each_shard(mongos: Mongos, database: str, name: str) -> list[int]:
    return [mongos.shard_client(shard)[database][name].count_documents({}) for shard in mongos.shard_ids]


def sharding_file(directory: Path, sharding: dict[str, Any]) -> str:
    path = directory / "sharding.json"
    path.write_text(json.dumps(sharding))
    return str(path)


def migrate_with_writer(source: MongoClient[Any], source_uri: str, destination_uri: str, state: Path, *args: str,
                        during: Any = None) -> MigrateProcess:
    """`migrate` with a writer on the source from the start; once it replicates, `during()`; then the
    writer stops and the cutover is asked for. The process, ended."""
    writer = Writer(source, per_second=40)
    writer.start()
    migration = MigrateProcess(source_uri, destination_uri, state, *args).start()
    try:
        assert wait_for(lambda: migration.replicating() or migration.process.poll() is not None, timeout=90)
        assert migration.replicating(), migration.log_text()[-3000:]
        if during is not None:
            during()
        assert wait_for(lambda: writer.counts["update"] >= 10, timeout=30)
    finally:
        writer.finish()
    code = migration.cutover_and_wait()
    assert code == 0 and "EQUAL" in migration.log_text(), migration.log_text()[-3000:]
    return migration


def change_serials(client: MongoClient[Any], with_key: bool) -> list[str]:
    """Sets a new `serial` on MOVED documents of RANGED (its shard key on a sharded side): by `_id` and the
    old value when the source is sharded there (as mongos requires), by `_id` on a replica set."""
    database, name = RANGED
    changed = []
    for document in client[database][name].find({}, {"serial": 1}).sort("_id", 1).limit(MOVED):
        query = {"_id": document["_id"], "serial": document["serial"]} if with_key else {"_id": document["_id"]}
        client[database][name].update_one(query, {"$set": {"serial": f"zz-moved-{document['_id']}"}})
        changed.append(str(document["_id"]))
    return changed


def test_a_replica_set_into_a_sharded_cluster_shards_what_it_is_asked_and_keeps_one_copy_of_each_document(
        shards: list[NxServer], tmp_path: Path) -> None:
    source = shards[0]
    destination = Mongos(shards[1:3]).start()
    try:
        with source.client() as client:
            seed(client, total=DOCUMENTS)
        sharding = sharding_file(tmp_path, {"createSupportingIndexes": True, "shardingEntries": [
            {"database": RANGED[0], "collection": RANGED[1], "shardCollection": {"key": [{"serial": 1}]}},
            {"database": HASHED[0], "collection": HASHED[1], "shardCollection": {"key": [{"quantity": "hashed"}]}}]})
        changed: list[str] = []
        with source.client() as client:
            migration = migrate_with_writer(
                client, source.uri, destination.uri, tmp_path / "state", "--sharding", sharding,
                during=lambda: changed.extend(change_serials(client, with_key=False)))
        log = migration.log_text()
        assert "sharded sales.alpha on the destination on {serial: 1} (unique), in 2 chunks over 2 shards" in log, log
        assert 'sharded sales.beta on the destination on {quantity: "hashed"}' in log, log

        with source.client() as source_client, destination.client() as destination_client:
            assert documents(source_client) == documents(destination_client)
            keys = {entry["_id"]: entry["key"] for entry in destination_client.config.collections.find()}
            moved = list(destination_client[RANGED[0]][RANGED[1]].find({"serial": {"$regex": "^zz-moved-"}}))
        assert keys == {"sales.alpha": {"serial": 1}, "sales.beta": {"quantity": "hashed"}}
        assert sorted(str(document["_id"]) for document in moved) == sorted(changed) and len(changed) == MOVED
        for database, name in (RANGED, HASHED):
            assert all(count > 0 for count in on_each_shard(destination, database, name)), (name, on_each_shard(
                destination, database, name))
            assert ids_on_two_shards(destination, database, name) == []
    finally:
        destination.stop()


def shard_the_source(mongos: Mongos) -> None:
    """RANGED sharded on {serial: 1} in three chunks over the source's shards; then the seed, through mongos."""
    with mongos.client() as client:
        client.admin.command({"enableSharding": RANGED[0]})
        client[RANGED[0]].create_collection(RANGED[1])
        client.admin.command({"shardCollection": ".".join(RANGED), "key": {"serial": 1}})
        mongos.split(".".join(RANGED), {"serial": "sales-alpha-3"})
        mongos.split(".".join(RANGED), {"serial": "sales-alpha-6"})
        mongos.move_chunk(".".join(RANGED), {"serial": "sales-alpha-4"}, mongos.shard_ids[1])
        mongos.move_chunk(".".join(RANGED), {"serial": "sales-alpha-7"}, mongos.shard_ids[2 % len(mongos.shard_ids)])
        seed(client, total=DOCUMENTS)


@pytest.mark.parametrize("into", ["sharded", "replica set"])
def test_a_sharded_source_is_migrated_with_its_balancer_stopped_and_its_keys_carried(
        shards: list[NxServer], tmp_path: Path, into: str) -> None:
    source = Mongos(shards[0:3]).start()
    destination: Mongos | NxServer = Mongos(shards[3:5]).start() if into == "sharded" else shards[3]
    try:
        shard_the_source(source)
        # The balancer runs: refused, before anything is written.
        refused = subprocess.run([LIVEMIGRATE, "migrate", source.uri, destination.uri, "--state-dir",
                                  str(tmp_path / "refused"), "--capture", "collection"],
                                 capture_output=True, text=True, timeout=120)
        assert refused.returncode == 2 and "SOURCE_BALANCER_RUNNING" in refused.stderr, refused.stderr
        assert "--stop-balancer" in refused.stderr and "Traceback" not in refused.stderr
        with destination.client() as destination_client:  # (a read may leave an empty database on nx-27017)
            assert all(destination_client[db][name].count_documents({}) == 0 for db, name in namespaces())

        changed: list[str] = []

        def meanwhile() -> None:
            with source.client() as client:
                assert client.admin.command("balancerStatus")["mode"] == "off"  # stopped by the migration
                changed.extend(change_serials(client, with_key=True))
            # A chunk moves while the migration replicates: its inserts and deletes are the shards' own.
            source.move_chunk(".".join(RANGED), {"serial": "sales-alpha-4"}, source.shard_ids[0])

        with source.client() as client:
            migration = migrate_with_writer(client, source.uri, destination.uri, tmp_path / "state",
                                            "--stop-balancer", during=meanwhile)
        log = migration.log_text()
        assert "the source's balancer is stopped for this run" in log and "balancer is started again" in log
        with source.client() as source_client, destination.client() as destination_client:
            assert source_client.admin.command("balancerStatus")["mode"] == "full"
            assert documents(source_client) == documents(destination_client)
            assert destination_client[RANGED[0]][RANGED[1]].count_documents(
                {"serial": {"$regex": "^zz-moved-"}}) == len(changed) == MOVED
        if isinstance(destination, Mongos):
            with destination.client() as destination_client:
                keys = {entry["_id"]: entry["key"] for entry in destination_client.config.collections.find()}
            assert keys == {"sales.alpha": {"serial": 1}}, keys  # the source's, carried
            assert "the source's key, in 2 chunks over 2 shards" in log, log
            assert all(count > 0 for count in on_each_shard(destination, *RANGED))
            assert ids_on_two_shards(destination, *RANGED) == []
    finally:
        destination.stop()
        source.stop()


def test_sharding_that_cannot_be_honoured_is_refused_before_anything_is_written(
        shards: list[NxServer], tmp_path: Path) -> None:
    plain, source, empty = shards[0], Mongos(shards[1:3]).start(), Mongos(shards[3:5]).start()
    try:
        with plain.client() as client:
            seed(client, total=120)
        shard_the_source(source)
        missing = sharding_file(tmp_path, {"shardingEntries": [
            {"database": "sales", "collection": "nowhere", "shardCollection": {"key": [{"serial": 1}]}}]})
        # Into a replica set: the sharding is refused, never ignored — by the dry run and the migration.
        dry = subprocess.run([LIVEMIGRATE, "migrate", source.uri, plain.uri, "--sharding", missing, "--dry-run",
                              "--stop-balancer"], capture_output=True, text=True, timeout=120)
        assert dry.returncode == 1 and "the destination is not a sharded cluster" in dry.stdout, dry.stdout
        # A sharded destination: an entry naming a collection not migrated, and a key no index supports.
        unsupported = sharding_file(tmp_path, {"shardingEntries": [
            {"database": "people", "collection": "gamma", "shardCollection": {"key": [{"profile.city": 1}]}},
            {"database": "sales", "collection": "nowhere", "shardCollection": {"key": [{"serial": 1}]}}]})
        ran = subprocess.run([LIVEMIGRATE, "migrate", plain.uri, empty.uri, "--state-dir", str(tmp_path / "s"),
                              "--sharding", unsupported], capture_output=True, text=True, timeout=120)
        assert ran.returncode == 2 and "SHARDING_REFUSED" in ran.stderr, ran.stderr
        assert "sharding people.gamma on {profile.city: 1}: no index of the source or the destination" in ran.stderr
        assert "sharding sales.nowhere: not a collection this migration copies" in ran.stderr
        with empty.client() as client:
            assert all(client[db][name].count_documents({}) == 0 for db, name in namespaces())
            assert client.config.collections.count_documents({}) == 0
        # A sharded source whose balancer the migration stopped: running again after a refused start.
        with source.client() as client:
            client.admin.command({"balancerStart": 1})
        refused = subprocess.run([LIVEMIGRATE, "migrate", source.uri, plain.uri, "--state-dir", str(tmp_path / "r"),
                                  "--sharding", missing, "--stop-balancer", "--drop-target"],
                                 capture_output=True, text=True, timeout=120)
        assert refused.returncode == 2 and "not a sharded cluster" in refused.stderr, refused.stderr
        with source.client() as client:
            assert client.admin.command("balancerStatus")["mode"] == "full"
    finally:
        empty.stop()
        source.stop()
