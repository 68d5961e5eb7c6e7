"""The mongos emulator (`tests/mongos.py`) behaves as MongoDB documents a mongos, seen from pymongo: it is
a mongos to the driver, shards collections (ranged and hashed), routes writes to the shard owning the
chunk and refuses the writes mongos refuses, merges reads, answers the config database and the balancer
commands, and merges the shards' change streams with the shard key in `documentKey` and a chunk
migration's events hidden. Each test looks at the shards directly (or at what reached them) for what a
plain proxy in front of one nx-27017 could not fake.

Three nx-27017 shards for the module (starting one costs ~0.6 s); a fresh emulator and database per test.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bson import Binary, MaxKey, MinKey, ObjectId, Timestamp
from pymongo import DeleteOne, InsertOne, MongoClient, UpdateOne
from pymongo.errors import BulkWriteError, OperationFailure

from tests.mongos import Mongos
from tests.nx import NxServer, start_servers


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[NxServer]]:
    servers = start_servers(Path(tmp_path_factory.mktemp("mongos-shards")), 3)
    yield servers
    for server in servers:
        server.stop()


@pytest.fixture
def mongos(shards: list[NxServer]) -> Iterator[Mongos]:
    emulator = Mongos(shards).start()
    yield emulator
    emulator.stop()


@pytest.fixture
def client(mongos: Mongos) -> Iterator[MongoClient[Any]]:
    with mongos.client() as connected:
        yield connected


@pytest.fixture
def db_name(request: pytest.FixtureRequest) -> str:
    return request.node.name.removeprefix("test_")[:40]


def on_shard(mongos: Mongos, shard: str, db: str, coll: str) -> list[dict[str, Any]]:
    return list(mongos.shard_client(shard)[db][coll].find())


def drain(stream: Any) -> list[dict[str, Any]]:
    events = []
    while (event := stream.try_next()) is not None:
        events.append(event)
    return events


def spread_people(client: MongoClient[Any], mongos: Mongos, db: str) -> None:
    """db.people sharded on {team: 1} in three chunks: [MinKey, "h") on shard01, ["h", "p") on shard02,
    ["p", MaxKey) on shard03; the database's primary shard is shard01."""
    client.admin.command({"enableSharding": db, "primaryShard": "shard01"})
    client.admin.command({"shardCollection": f"{db}.people", "key": {"team": 1}})
    mongos.split(f"{db}.people", {"team": "h"})
    mongos.split(f"{db}.people", {"team": "p"})
    mongos.move_chunk(f"{db}.people", {"team": "k"}, "shard02")
    mongos.move_chunk(f"{db}.people", {"team": "x"}, "shard03")


def test_hello_says_isdbgrid_and_pymongo_sees_a_sharded_topology(mongos: Mongos, client: MongoClient[Any],
                                                                 shards: list[NxServer]) -> None:
    hello = client.admin.command("hello")
    assert hello["msg"] == "isdbgrid" and hello["maxWireVersion"] == 21  # MongoDB 7.0's wire version
    assert "setName" not in hello
    client.admin.command("ping")
    assert client.topology_description.topology_type_name == "Sharded"
    (server,) = client.topology_description.server_descriptions().values()
    assert server.server_type_name == "Mongos"
    assert client.admin.command("isdbgrid")["isdbgrid"] == 1
    assert client.admin.command("buildInfo")["versionArray"][:2] == [7, 0]
    older = Mongos(shards, version="6.0").start()
    try:
        with older.client() as six:
            assert six.admin.command("hello")["maxWireVersion"] == 17
            assert six.admin.command("buildInfo")["version"] == "6.0.0"
    finally:
        older.stop()
    with pytest.raises(ValueError):
        Mongos([27017], version="4.4")  # the config shapes followed are 5.0+'s


def test_shard_collection_ranged_needs_an_index_unless_empty(mongos: Mongos, client: MongoClient[Any],
                                                             db_name: str) -> None:
    client[db_name].full.insert_many([{"_id": f"d{i}", "team": f"t{i}"} for i in range(5)])
    with pytest.raises(OperationFailure) as refused:
        client.admin.command({"shardCollection": f"{db_name}.full", "key": {"team": 1}})
    assert refused.value.code == 72 and "create an index that starts with the proposed shard key" in str(refused.value)
    assert client.config.collections.count_documents({"_id": f"{db_name}.full"}) == 0
    client[db_name].full.create_index("team")
    answer = client.admin.command({"shardCollection": f"{db_name}.full", "key": {"team": 1}})
    assert answer["collectionsharded"] == f"{db_name}.full"

    client.admin.command({"shardCollection": f"{db_name}.empty", "key": {"region": 1, "team": 1}, "unique": True})
    primary = client.config.databases.find_one({"_id": db_name})["primary"]
    indexed = [dict(index["key"]) for index in mongos.shard_client(primary)[db_name].empty.list_indexes()]
    assert any(list(key)[:2] == ["region", "team"] for key in indexed)  # MongoDB creates it on an empty collection
    (entry,) = client.config.collections.find({"_id": f"{db_name}.empty"})
    assert entry["key"] == {"region": 1, "team": 1} and entry["unique"] is True and isinstance(entry["uuid"], Binary)
    (chunk,) = client.config.chunks.find({"uuid": entry["uuid"]})
    assert chunk["shard"] == primary
    assert chunk["min"] == {"region": MinKey(), "team": MinKey()} and chunk["max"] == {"region": MaxKey(), "team": MaxKey()}
    with pytest.raises(OperationFailure) as bad_key:
        client.admin.command({"shardCollection": f"{db_name}.other", "key": {"team": -1}})
    assert bad_key.value.code == 72


def test_hashed_keys_are_presplit_across_the_shards(mongos: Mongos, client: MongoClient[Any], shards: list[NxServer],
                                                    db_name: str) -> None:
    client.admin.command({"shardCollection": f"{db_name}.events", "key": {"device": "hashed"}})
    chunks = mongos.chunks(f"{db_name}.events")
    assert [chunk["shard"] for chunk in chunks] == ["shard01", "shard01", "shard02", "shard02", "shard03", "shard03"]
    assert chunks[0]["min"] == {"device": MinKey()} and chunks[-1]["max"] == {"device": MaxKey()}
    client[db_name].events.insert_many([{"_id": ObjectId(), "device": f"dev-{i}", "n": i} for i in range(60)])
    held = {shard: on_shard(mongos, shard, db_name, "events") for shard in mongos.shard_ids}
    assert sum(len(documents) for documents in held.values()) == 60
    assert all(held.values()), "a hashed key spreads sixty devices over every shard"
    for shard, documents in held.items():
        assert all(mongos.shard_of(f"{db_name}.events", document) == shard for document in documents)
    assert client[db_name].events.find_one({"device": "dev-7"})["n"] == 7
    with pytest.raises(OperationFailure) as unique:
        client.admin.command({"shardCollection": f"{db_name}.other", "key": {"device": "hashed"}, "unique": True})
    assert unique.value.code == 72

    newer = Mongos(shards, version="7.2").start()  # 7.2 pre-splits one chunk a shard
    try:
        with newer.client() as later:
            later.admin.command({"shardCollection": f"{db_name}.later", "key": {"device": "hashed"}})
        assert [chunk["shard"] for chunk in newer.chunks(f"{db_name}.later")] == ["shard01", "shard02", "shard03"]
    finally:
        newer.stop()


def test_inserts_land_on_the_shard_owning_their_chunk(mongos: Mongos, client: MongoClient[Any], db_name: str) -> None:
    spread_people(client, mongos, db_name)
    teams = ["ants", "bees", "hawks", "jays", "owls", "pumas", "wasps", "yaks"]
    result = client[db_name].people.insert_many([{"_id": f"p{i}", "team": team} for i, team in enumerate(teams)])
    assert len(result.inserted_ids) == 8
    assert sorted(doc["team"] for doc in on_shard(mongos, "shard01", db_name, "people")) == ["ants", "bees"]
    assert sorted(doc["team"] for doc in on_shard(mongos, "shard02", db_name, "people")) == ["hawks", "jays", "owls"]
    assert sorted(doc["team"] for doc in on_shard(mongos, "shard03", db_name, "people")) == ["pumas", "wasps", "yaks"]
    client[db_name].people.insert_one({"name": "no team, no _id"})  # a missing key is null: MinKey's chunk
    assert any("team" not in doc for doc in on_shard(mongos, "shard01", db_name, "people"))
    moved = [chunk for chunk in mongos.chunks(f"{db_name}.people") if chunk["shard"] != "shard01"]
    assert all(chunk["lastmod"].time > 1 for chunk in moved)  # a migration bumps the major version

    with pytest.raises(BulkWriteError) as duplicate:  # ordered: the error stops the rest, as on one server
        client[db_name].people.insert_many([{"_id": "p0", "team": "ants"}, {"_id": "q1", "team": "zebras"}])
    assert duplicate.value.details["writeErrors"][0]["index"] == 0
    assert client[db_name].people.count_documents({"_id": "q1"}) == 0


def test_finds_are_targeted_by_the_shard_key_or_merged(mongos: Mongos, client: MongoClient[Any], db_name: str) -> None:
    spread_people(client, mongos, db_name)
    people = client[db_name].people
    people.insert_many([{"_id": f"p{i:02}", "team": team, "age": i}
                        for i, team in enumerate(["ants", "bees", "hawks", "jays", "owls", "pumas", "wasps", "yaks"] * 3)])
    mongos.router.sent.clear()
    assert sorted(doc["_id"] for doc in people.find({"team": "jays"})) == ["p03", "p11", "p19"]
    assert mongos.router.sent_to("find", db_name) == ["shard02"]
    mongos.router.sent.clear()
    assert {doc["team"] for doc in people.find({"team": {"$in": ["ants", "yaks"]}})} == {"ants", "yaks"}
    assert sorted(mongos.router.sent_to("find", db_name)) == ["shard01", "shard03"]

    mongos.router.sent.clear()
    found = list(people.find({}, {"team": 0}, sort=[("team", -1), ("age", 1)], skip=2, limit=7, batch_size=3))
    assert sorted(mongos.router.sent_to("find", db_name)) == ["shard01", "shard02", "shard03"]
    assert [doc["_id"] for doc in found] == ["p23", "p06", "p14", "p22", "p05", "p13", "p21"]
    assert all("team" not in doc for doc in found)  # the sort field was fetched for the merge, then removed
    assert [doc["age"] for doc in people.find({"age": {"$gte": 20}}, sort=[("age", 1)])] == [20, 21, 22, 23]
    cursor = people.find({}, batch_size=2)
    next(cursor)
    cursor.close()  # killCursors on the emulator's cursor
    assert people.count_documents({}) == 24 and people.estimated_document_count() == 24
    assert people.count_documents({"age": {"$lt": 10}}) == 10
    assert sorted(people.distinct("team")) == ["ants", "bees", "hawks", "jays", "owls", "pumas", "wasps", "yaks"]
    grouped = list(people.aggregate([{"$match": {"age": {"$gte": 8}}}, {"$group": {"_id": "$team", "n": {"$sum": 1}}},
                                     {"$sort": {"_id": 1}}]))
    assert [(group["_id"], group["n"]) for group in grouped][:2] == [("ants", 2), ("bees", 2)]


def test_updates_and_deletes_are_routed_by_the_shard_key(mongos: Mongos, client: MongoClient[Any], db_name: str) -> None:
    spread_people(client, mongos, db_name)
    people = client[db_name].people
    people.insert_many([{"_id": f"p{i}", "team": team, "score": 0} for i, team in enumerate(["ants", "jays", "yaks"])])
    mongos.router.sent.clear()
    assert people.update_one({"team": "jays"}, {"$inc": {"score": 5}}).modified_count == 1
    assert people.replace_one({"team": "yaks", "_id": "p2"}, {"team": "yaks", "score": 9}).modified_count == 1
    assert mongos.router.sent_to("update", db_name) == ["shard02", "shard03"]
    assert on_shard(mongos, "shard02", db_name, "people")[0]["score"] == 5
    mongos.router.sent.clear()
    assert people.update_many({}, {"$set": {"seen": True}}).modified_count == 3
    assert sorted(mongos.router.sent_to("update", db_name)) == ["shard01", "shard02", "shard03"]
    assert people.update_one({"_id": "p0"}, {"$set": {"by_id": True}}).modified_count == 1  # exact _id: allowed
    result = people.update_one({"team": "owls", "_id": "p9"}, {"$set": {"score": 1}}, upsert=True)
    assert result.upserted_id == "p9"
    assert on_shard(mongos, "shard02", db_name, "people")[-1]["_id"] == "p9"
    mongos.router.sent.clear()
    assert people.delete_one({"team": "ants"}).deleted_count == 1
    assert mongos.router.sent_to("delete", db_name) == ["shard01"]
    assert people.delete_many({"score": {"$gt": 4}}).deleted_count == 2
    assert sorted(doc["_id"] for doc in people.find()) == ["p9"]
    assert people.find_one_and_update({"team": "owls"}, {"$set": {"found": 1}}, return_document=True)["found"] == 1


def test_mongos_refuses_writes_it_cannot_target_before_7_1(mongos: Mongos, client: MongoClient[Any],
                                                           shards: list[NxServer], db_name: str) -> None:
    spread_people(client, mongos, db_name)
    people = client[db_name].people
    people.insert_many([{"_id": f"p{i}", "team": team, "tag": "x"} for i, team in enumerate(["ants", "jays", "yaks"])])
    with pytest.raises(OperationFailure) as upsert:
        people.update_one({"_id": "new"}, {"$set": {"team": "ants"}}, upsert=True)
    assert upsert.value.code == 61 and "could not extract exact shard key" in str(upsert.value)
    with pytest.raises(OperationFailure) as single_update:
        people.update_one({"tag": "x"}, {"$set": {"tag": "y"}})
    assert single_update.value.code == 72
    with pytest.raises(OperationFailure) as single_delete:
        people.delete_one({"tag": "x"})
    assert single_delete.value.code == 61
    with pytest.raises(OperationFailure) as find_and_modify:
        people.find_one_and_update({"tag": "x"}, {"$set": {"tag": "y"}})
    assert find_and_modify.value.code == 61
    with pytest.raises(BulkWriteError) as bulk:
        people.bulk_write([UpdateOne({"team": "ants"}, {"$set": {"tag": "a"}}), DeleteOne({"tag": "x"}),
                           InsertOne({"_id": "late", "team": "bees"})])
    assert [error["index"] for error in bulk.value.details["writeErrors"]] == [1]
    assert bulk.value.details["nModified"] == 1 and bulk.value.details["nInserted"] == 0  # ordered: stopped there
    assert sorted(doc["tag"] for doc in people.find()) == ["a", "x", "x"]
    assert people.update_many({"tag": "x"}, {"$set": {"tag": "z"}}).modified_count == 2  # multi: broadcast, fine

    newer = Mongos(shards, version="7.1").start()  # 7.1 runs single writes without the shard key
    try:
        with newer.client() as later:
            spread_people(later, newer, f"{db_name[:30]}_7_1")  # its own catalog: a collection of its own
            mine = later[f"{db_name[:30]}_7_1"].people
            mine.insert_many([{"_id": f"p{i}", "team": team, "tag": "z"} for i, team in enumerate(["ants", "jays"])])
            assert mine.update_one({"tag": "z"}, {"$set": {"tag": "one"}}).modified_count == 1
            assert mine.count_documents({"tag": "one"}) == 1
            assert mine.delete_one({"tag": "z"}).deleted_count == 1
            with pytest.raises(OperationFailure) as still:
                mine.update_one({"tag": "none"}, {"$set": {"team": "ants"}}, upsert=True)
            assert still.value.code == 61
    finally:
        newer.stop()


def test_the_config_database_describes_the_cluster(mongos: Mongos, client: MongoClient[Any], db_name: str) -> None:
    spread_people(client, mongos, db_name)
    client[db_name].plain.insert_one({"_id": 1})
    shards = list(client.config.shards.find({}, sort=[("_id", 1)]))
    assert [shard["_id"] for shard in shards] == mongos.shard_ids
    assert all(shard["host"].startswith("127.0.0.1:") and shard["state"] == 1 for shard in shards)
    assert isinstance(shards[0]["topologyTime"], Timestamp)
    database = client.config.databases.find_one({"_id": db_name})
    assert database["primary"] in mongos.shard_ids and "uuid" in database["version"]
    assert "partitioned" not in database  # gone since 6.0
    collection = client.config.collections.find_one({"_id": f"{db_name}.people"})
    assert collection["key"] == {"team": 1} and collection["unique"] is False
    chunks = list(client.config.chunks.find({"uuid": collection["uuid"]}, sort=[("min", 1)]))
    assert [(chunk["min"], chunk["shard"]) for chunk in chunks] == [
        ({"team": MinKey()}, "shard01"), ({"team": "h"}, "shard02"), ({"team": "p"}, "shard03")]
    assert all("ns" not in chunk for chunk in chunks)  # 5.0+: chunks name their collection by uuid
    assert client.config.chunks.count_documents({"uuid": collection["uuid"], "shard": "shard02"}) == 1
    assert {"shards", "databases", "collections", "chunks"} <= set(client.config.list_collection_names())
    assert client.config.collections.find_one({"_id": f"{db_name}.plain"}) is None  # unsharded: not listed
    assert [shard["_id"] for shard in client.admin.command("listShards")["shards"]] == mongos.shard_ids


def test_balancer_status_stop_and_start(mongos: Mongos, client: MongoClient[Any]) -> None:
    status = client.admin.command("balancerStatus")
    assert (status["mode"], status["inBalancerRound"], status["numBalancerRounds"]) == ("full", False, 0)
    client.admin.command("balancerStop")
    assert client.admin.command("balancerStatus")["mode"] == "off"
    assert client.config.settings.find_one({"_id": "balancer"})["stopped"] is True
    client.admin.command("balancerStart")
    assert client.admin.command("balancerStatus")["mode"] == "full"

    with mongos.balancer_round():
        assert client.admin.command("balancerStatus")["inBalancerRound"] is True
        with pytest.raises(OperationFailure) as waited:  # balancerStop waits for the round, up to maxTimeMS
            client.admin.command({"balancerStop": 1, "maxTimeMS": 200})
        assert waited.value.code == 50
        status = client.admin.command("balancerStatus")
        assert (status["mode"], status["inBalancerRound"]) == ("off", True)  # off, the round left to finish
    status = client.admin.command("balancerStatus")
    assert (status["inBalancerRound"], status["numBalancerRounds"]) == (False, 1)
    client.admin.command("balancerStart")
    with mongos.balancer_round():
        stopper = threading.Thread(target=client.admin.command, args=({"balancerStop": 1},))
        stopper.start()
        time.sleep(0.2)
        assert stopper.is_alive()  # still waiting for the round
    stopper.join(5)
    assert not stopper.is_alive() and client.admin.command("balancerStatus")["mode"] == "off"


def test_change_stream_merges_the_shards_and_hides_a_chunk_migration(mongos: Mongos, client: MongoClient[Any],
                                                                      db_name: str) -> None:
    spread_people(client, mongos, db_name)
    people = client[db_name].people
    stream = people.watch(max_await_time_ms=50, full_document="updateLookup")
    everything = client.watch(max_await_time_ms=50)
    # showMigrationEvents (an internal $changeStream option pymongo has no argument for): the raw commands
    opened = client[db_name].command({"aggregate": "people", "pipeline": [{"$changeStream": {"showMigrationEvents": True}}],
                                      "cursor": {}})
    with_migrations = opened["cursor"]["id"]
    teams = ["yaks", "ants", "jays", "bees", "wasps", "owls"]
    for index, team in enumerate(teams):  # one at a time, alternating shards: the stream keeps this order
        people.insert_one({"_id": f"p{index}", "team": team})
    people.update_one({"team": "jays"}, {"$set": {"score": 1}})
    people.delete_one({"team": "ants"})
    events = drain(stream)
    assert [(event["operationType"], event["documentKey"]) for event in events] == [
        *[("insert", {"team": team, "_id": f"p{index}"}) for index, team in enumerate(teams)],
        ("update", {"team": "jays", "_id": "p2"}), ("delete", {"team": "ants", "_id": "p1"})]
    assert events[6]["fullDocument"] == {"_id": "p2", "team": "jays", "score": 1}
    assert "fullDocument" not in events[7]  # MongoDB sends no document with a delete
    times = [event["clusterTime"] for event in events]
    assert all(isinstance(moment, Timestamp) for moment in times) and times == sorted(times)
    assert len(drain(everything)) == 8

    on_donor = mongos.shard_client("shard02")[db_name].people.watch()  # a shard's own stream sees the move
    move = mongos.move_chunk(f"{db_name}.people", {"team": "k"}, "shard01")
    assert move.documents == 2 and move.donor == "shard02"
    assert sorted(doc["team"] for doc in on_shard(mongos, "shard01", db_name, "people")) == ["bees", "jays", "owls"]
    assert on_shard(mongos, "shard02", db_name, "people") == []
    assert [event["operationType"] for event in drain(on_donor)] == ["delete", "delete"]
    people.insert_one({"_id": "after", "team": "hawks"})
    assert [(event["operationType"], event["documentKey"]) for event in drain(stream)] == [
        ("insert", {"team": "hawks", "_id": "after"})]
    assert [event["operationType"] for event in drain(everything)] == ["insert"]
    shown = client[db_name].command({"getMore": with_migrations, "collection": "people", "maxTimeMS": 50})
    migration = [event for event in shown["cursor"]["nextBatch"] if event.get("fromMigrate")]
    assert sorted(event["operationType"] for event in migration) == ["delete", "delete", "insert", "insert"]
    assert on_shard(mongos, "shard01", db_name, "people")[-1]["_id"] == "after"  # routed by the new owner
    for watching in (stream, everything, on_donor):
        watching.close()


def test_a_stream_resumes_after_its_tokens(mongos: Mongos, client: MongoClient[Any], shards: list[NxServer],
                                           db_name: str) -> None:
    client.admin.command({"shardCollection": f"{db_name}.events", "key": {"device": "hashed"}})
    events = client[db_name].events
    stream = events.watch(max_await_time_ms=50)
    events.insert_many([{"_id": f"e{i:02}", "device": f"dev-{i}"} for i in range(20)])
    seen = drain(stream)
    assert [event["documentKey"]["_id"] for event in seen] == sorted(f"e{i:02}" for i in range(20))
    middle = seen[9]["_id"]
    stream.close()
    events.insert_one({"_id": "later", "device": "dev-x"})
    resumed = events.watch(resume_after=middle, max_await_time_ms=50)
    assert [event["documentKey"]["_id"] for event in drain(resumed)] == [f"e{i:02}" for i in range(10, 20)] + ["later"]
    token = resumed.resume_token  # the postBatchResumeToken of a quiet stream: resuming there loses nothing
    resumed.close()
    events.delete_one({"_id": "later"})
    again = events.watch(start_after=token, max_await_time_ms=50)
    assert [(event["operationType"], event["documentKey"]["_id"]) for event in drain(again)] == [("delete", "later")]
    at = events.watch(start_at_operation_time=seen[18]["clusterTime"], max_await_time_ms=50)
    assert [event["documentKey"]["_id"] for event in drain(at)][:2] == ["e18", "e19"]
    for opened in (again, at):
        opened.close()

    other = Mongos(shards).start()  # a token of another emulator: its history is not there
    try:
        with other.client() as elsewhere, pytest.raises(OperationFailure) as lost:
            elsewhere[db_name].events.watch(resume_after=middle)
        assert lost.value.code == 286
    finally:
        other.stop()


def test_a_drop_through_mongos_ends_the_collection_stream(mongos: Mongos, client: MongoClient[Any],
                                                          db_name: str) -> None:
    client[db_name].gone.insert_one({"_id": 1})
    stream = client[db_name].gone.watch(max_await_time_ms=50)
    client[db_name].gone.insert_one({"_id": 2})
    client[db_name].drop_collection("gone")
    assert [event["operationType"] for event in drain(stream)] == ["insert", "drop", "invalidate"]
    assert not stream.alive
