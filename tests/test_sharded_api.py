"""Atlas' `sharding` through the APIs: a replica set migrated into a sharded cluster (the mongos emulator over
two nx-27017 shards, `tests/mongos.py`) with `shardingEntries` for two collections, one ranged and one
hashed, and `createSupportingIndexes` — validated (its pre-flight says what it will shard), created,
replicated under a writer, cut over: COMPLETE, equal, both collections sharded with those keys and their
documents on both shards. A key MongoDB cannot shard on is refused at once (400); a `sharding` for a
destination that is not a sharded cluster fails the validation with the reason, never ignored.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.engine_support import Writer, namespaces, seed
from tests.migration_world import World
from tests.mongos import Mongos
from tests.nx import start_servers
from tests.support import wait_for
from tests.test_sharded_migration import (
    documents,
    ids_on_two_shards,
    on_each_shard,
    shard_the_source,
)

SHARDING = {"createSupportingIndexes": True, "shardingEntries": [
    {"database": "sales", "collection": "alpha", "shardCollection": {"key": [{"serial": 1}]}},
    {"database": "sales", "collection": "beta", "shardCollection": {"key": [{"quantity": "hashed"}]}}]}


@pytest.fixture
def sharded_world(tmp_path: Path) -> Iterator[tuple[World, Mongos]]:
    shards = start_servers(tmp_path / "shards", 2)
    mongos = Mongos(shards).start()
    world = World(tmp_path)
    try:
        with world.source_db.client() as client:
            seed(client, total=600)
        world.link()
        world.add_source_project_and_host()
        world.start_agent()
        world.add_target_project_and_cluster(uri=mongos.uri)
        assert wait_for(lambda: any(p["migrationHosts"] for p in world.available_projects()), timeout=30)
        yield world, mongos
    finally:
        world.close()
        mongos.stop()
        for shard in shards:
            shard.stop()


def test_a_replica_set_into_a_sharded_cluster_through_the_apis(sharded_world: tuple[World, Mongos]) -> None:
    world, mongos = sharded_world
    # A descending key: refused at once, naming the attribute and the reason.
    descending = {"shardingEntries": [{"database": "sales", "collection": "alpha",
                                       "shardCollection": {"key": [{"serial": -1}]}}]}
    refused = world.target_call("POST", "/liveMigrations", json=world.request_body(sharding=descending))
    assert refused.status_code == 400 and refused.json()["errorCode"] == "INVALID_ATTRIBUTE", refused.text
    assert "never descending" in refused.json()["detail"] and "sharding.shardingEntries.0" in refused.json()["detail"]

    validation = world.validate(world.request_body(sharding=SHARDING))
    assert validation["status"] == "SUCCESS", validation
    shown = validation["preflight"]["sharding"]
    assert shown["destination"]["sharded"] is True and len(shown["destination"]["shards"]) == 2
    assert [(entry["namespace"], entry["key"]) for entry in shown["toShard"]] == [
        ("sales.alpha", {"serial": 1}), ("sales.beta", {"quantity": "hashed"})]

    with world.source_db.client() as source:
        writer = Writer(source, per_second=40)
        writer.start()
        try:
            created = world.target_call("POST", "/liveMigrations", json=world.request_body(sharding=SHARDING))
            assert created.status_code == 201, created.text
            migration_id = created.json()["_id"]
            world.wait_migration(migration_id, lambda m: m["readyForCutover"], timeout=120)
            assert wait_for(lambda: writer.counts["update"] >= 10, timeout=30)
        finally:
            writer.finish()
        assert world.target_call("PUT", f"/liveMigrations/{migration_id}/cutover").status_code == 202
        done = world.wait_migration(migration_id, lambda m: m["status"] in ("COMPLETE", "FAILED"), timeout=120)
        assert done["status"] == "COMPLETE", done
        with mongos.client() as destination:
            assert documents(source) == documents(destination)
            keys = {entry["_id"]: entry["key"] for entry in destination.config.collections.find()}
    assert keys == {"sales.alpha": {"serial": 1}, "sales.beta": {"quantity": "hashed"}}
    for name in ("alpha", "beta"):
        assert all(count > 0 for count in on_each_shard(mongos, "sales", name)), on_each_shard(mongos, "sales", name)
        assert ids_on_two_shards(mongos, "sales", name) == []
    assert "sharded sales.alpha on the destination" in world.agent_log()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    world = World(tmp_path)
    yield world
    world.close()


def test_sharding_for_a_destination_that_is_not_sharded_fails_the_validation(world: World) -> None:
    world.ready_to_migrate(documents=120)
    validation = world.validate(world.request_body(sharding=SHARDING))
    assert validation["status"] == "FAILED", validation
    assert "sharding: the destination is not a sharded cluster" in validation["errorMessage"], validation
    # And a migration created anyway ends FAILED with the same reason, having written nothing.
    created = world.target_call("POST", "/liveMigrations", json=world.request_body(sharding=SHARDING))
    assert created.status_code == 201, created.text
    failed = world.wait_migration(created.json()["_id"], lambda m: m["status"] in ("FAILED", "COMPLETE"), timeout=60)
    assert failed["status"] == "FAILED" and "not a sharded cluster" in failed["errorMessage"], failed
    with world.destination_db.client() as destination:
        assert all(destination[db][name].count_documents({}) == 0 for db, name in namespaces())


@pytest.mark.parametrize("into", ["replica set", "sharded"])
def test_a_sharded_source_through_the_apis_with_its_balancer_stopped(tmp_path: Path, into: str) -> None:
    """A mongos registered as the source's host; its balancer fails the validation until the request says
    stopSourceBalancer; the migration stops it, completes under a writer, and it runs again after. Into a
    sharded cluster, the source's key is carried over."""
    shards = start_servers(tmp_path / "shards", 5 if into == "sharded" else 3)
    source = Mongos(shards[:3]).start()
    destination = Mongos(shards[3:]).start() if into == "sharded" else None
    world = World(tmp_path)
    try:
        shard_the_source(source)
        world.link()
        world.add_source_project_and_host(port=source.port)
        world.start_agent()
        world.add_target_project_and_cluster(uri=destination.uri if destination is not None else None)
        assert wait_for(lambda: any(p["migrationHosts"] for p in world.available_projects()), timeout=30)
        refused = world.validate(world.request_body())
        assert refused["status"] == "FAILED" and "balancer runs" in refused["errorMessage"], refused
        assert "set stopSourceBalancer" in refused["errorMessage"]
        shown = refused["preflight"]["sharding"]["source"]
        assert shown["sharded"] and len(shown["shards"]) == 3 and shown["balancer"]["mode"] == "full"
        assert shown["shardedCollections"] == [{"namespace": "sales.alpha", "key": {"serial": 1}, "unique": False}]
        body = world.request_body(stopSourceBalancer=True)
        assert world.validate(body)["status"] == "SUCCESS"
        with source.client() as client:
            writer = Writer(client, per_second=40)
            writer.start()
            try:
                created = world.target_call("POST", "/liveMigrations", json=body)
                assert created.status_code == 201, created.text
                migration_id = created.json()["_id"]
                world.wait_migration(migration_id, lambda m: m["readyForCutover"], timeout=120)
                assert client.admin.command("balancerStatus")["mode"] == "off"
                assert wait_for(lambda: writer.counts["update"] >= 10, timeout=30)
            finally:
                writer.finish()
            assert world.target_call("PUT", f"/liveMigrations/{migration_id}/cutover").status_code == 202
            done = world.wait_migration(migration_id, lambda m: m["status"] in ("COMPLETE", "FAILED"), timeout=120)
            assert done["status"] == "COMPLETE", done
            with (destination.client() if destination is not None else world.destination_db.client()) as written:
                assert documents(client) == documents(written)
                keys = {entry["_id"]: entry["key"] for entry in written.config.collections.find()}
            assert wait_for(lambda: client.admin.command("balancerStatus")["mode"] == "full", timeout=10)
        if destination is not None:
            assert keys == {"sales.alpha": {"serial": 1}}, keys  # the source's key, carried
            assert all(count > 0 for count in on_each_shard(destination, "sales", "alpha"))
            assert ids_on_two_shards(destination, "sales", "alpha") == []
    finally:
        world.close()
        source.stop()
        if destination is not None:
            destination.stop()
        for shard in shards:
            shard.stop()
