"""The mongos emulator changes a document's shard key value as MongoDB documents it (`tests/mongos_shard_keys.py`):
a retryable single-document update with the full shard key in its filter moves the document to the shard
owning its new values (a delete there, an insert here, which a stream through mongos shows as such, in
one transaction); refused without the full shard key (before 7.1), with `multi: true`, outside a
retryable write, or in a batch of several statements when the document would move.

Three nx-27017 shards for the module, as in `test_mongos.py` (whose helpers these tests share).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bson import Int64
from pymongo import MongoClient, ReturnDocument, UpdateOne
from pymongo.errors import BulkWriteError, OperationFailure

from tests.mongos import Mongos
from tests.nx import NxServer
from tests.test_mongos import drain, on_shard, spread_people


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[NxServer]]:
    root = Path(tmp_path_factory.mktemp("mongos-shard-keys"))
    servers = [NxServer(root / f"shard{index}") for index in range(3)]
    threads = [threading.Thread(target=server.start) for server in servers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
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


def ids_on(mongos: Mongos, shard: str, db: str) -> list[str]:
    return sorted(document["_id"] for document in on_shard(mongos, shard, db, "people"))


def test_a_retryable_update_moves_a_document_whose_shard_key_changes(mongos: Mongos, client: MongoClient[Any],
                                                                     db_name: str) -> None:
    spread_people(client, mongos, db_name)  # [MinKey, "h") shard01, ["h", "p") shard02, ["p", MaxKey) shard03
    people = client[db_name].people
    people.insert_many([{"_id": "p1", "team": "ants", "score": 0}, {"_id": "p2", "team": "bees"}])
    stream = people.watch(max_await_time_ms=50)
    old_home = mongos.shard_client("shard01")[db_name].people.watch()  # the shards' own streams
    new_home = mongos.shard_client("shard03")[db_name].people.watch()

    moved = people.update_one({"team": "ants", "_id": "p1"}, {"$set": {"team": "yaks"}, "$inc": {"score": 1}})
    assert (moved.matched_count, moved.modified_count) == (1, 1)
    assert ids_on(mongos, "shard01", db_name) == ["p2"] and ids_on(mongos, "shard03", db_name) == ["p1"]
    assert people.find_one({"_id": "p1"}) == {"_id": "p1", "team": "yaks", "score": 1}
    assert people.update_one({"team": "bees", "_id": "p2"}, {"$set": {"team": "cats"}}).modified_count == 1
    assert ids_on(mongos, "shard01", db_name) == ["p2"]  # "cats" is still shard01's: a plain update there
    assert people.replace_one({"team": "yaks", "_id": "p1"}, {"team": "jays", "score": 2}).modified_count == 1
    assert ids_on(mongos, "shard02", db_name) == ["p1"] and ids_on(mongos, "shard03", db_name) == []
    found = people.find_one_and_update({"team": "jays", "_id": "p1"}, {"$set": {"team": "apes"}},
                                       return_document=ReturnDocument.AFTER)
    assert found == {"_id": "p1", "team": "apes", "score": 2} and ids_on(mongos, "shard01", db_name) == ["p1", "p2"]
    upserted = people.update_one({"team": "ants", "_id": "p3"}, {"$set": {"team": "wasps"}}, upsert=True)
    assert upserted.upserted_id == "p3" and ids_on(mongos, "shard03", db_name) == ["p3"]  # inserted on its owner

    events = drain(stream)
    assert [(event["operationType"], event["documentKey"]) for event in events[:2]] == [
        ("delete", {"team": "ants", "_id": "p1"}), ("insert", {"team": "yaks", "_id": "p1"})]
    delete, insert = events[:2]
    assert delete["clusterTime"] == insert["clusterTime"]  # one transaction: one cluster time, the session's ids
    assert delete["lsid"]["id"] == insert["lsid"]["id"] and isinstance(insert["txnNumber"], Int64)
    assert insert["fullDocument"] == {"_id": "p1", "team": "yaks", "score": 1}
    assert "fromMigrate" not in delete and "fromMigrate" not in insert
    assert [event["operationType"] for event in events[2:]] == ["update", "delete", "insert", "delete", "insert",
                                                                "insert"]
    assert "lsid" not in events[2]  # the plain update within shard01
    assert [event["operationType"] for event in drain(old_home)] == ["delete", "update", "insert"]
    assert [event["operationType"] for event in drain(new_home)] == ["insert", "delete", "insert"]

    mongos.log.move_order = ("insert", "delete")  # MongoDB sometimes shows the insert first
    people.update_one({"team": "apes", "_id": "p1"}, {"$set": {"team": "owls"}})
    assert [(event["operationType"], event["documentKey"]["team"]) for event in drain(stream)] == [
        ("insert", "owls"), ("delete", "apes")]
    mongos.shard_client("shard03")[db_name].people.insert_one({"_id": "p2", "team": "zebras"})  # _id not unique
    with pytest.raises(OperationFailure) as duplicate:
        people.update_one({"team": "cats", "_id": "p2"}, {"$set": {"team": "yaks"}})
    assert duplicate.value.code == 11000 and "Failed to update document's shard key field" in str(duplicate.value)
    assert people.find_one({"team": "cats"})["_id"] == "p2"  # nothing changed
    for watching in (stream, old_home, new_home):
        watching.close()


def test_a_shard_key_change_is_refused_as_mongos_refuses_it(mongos: Mongos, client: MongoClient[Any],
                                                            db_name: str) -> None:
    spread_people(client, mongos, db_name)
    people = client[db_name].people
    people.insert_many([{"_id": "p1", "team": "ants"}, {"_id": "p2", "team": "bees"}, {"_id": "p3", "nokey": 1}])
    refusals = [  # (what is written, the code, its message)
        (lambda: people.update_one({"_id": "p1"}, {"$set": {"team": "yaks"}}), 31025, "without specifying the full"),
        (lambda: people.update_many({"team": "ants"}, {"$set": {"team": "yaks"}}), 72, "Multi-update operations"),
        (lambda: people.update_many({}, {"$set": {"team": "y"}}), 31025, "full shard key"),  # before 7.1: first
        (lambda: people.update_one({"team": "ants", "_id": "p1"}, {"$set": {"_id": "p9"}}), 66, "immutable"),
    ]
    for write, code, message in refusals:
        with pytest.raises(OperationFailure) as refused:
            write()
        assert (refused.value.code, message in str(refused.value)) == (code, True)
    with pytest.raises(BulkWriteError) as batch:  # a move needs a batch of one statement
        people.bulk_write([UpdateOne({"team": "ants", "_id": "p1"}, {"$set": {"team": "yaks"}}),
                           UpdateOne({"team": "bees", "_id": "p2"}, {"$set": {"score": 1}})])
    (error,) = batch.value.details["writeErrors"]
    assert (error["index"], error["code"]) == (0, 72) and "write batch of size 1" in error["errmsg"]
    assert batch.value.details["nModified"] == 0  # ordered: stopped at the refusal
    people.bulk_write([UpdateOne({"team": "ants", "_id": "p1"}, {"$set": {"team": "apes"}}),
                       UpdateOne({"team": "bees", "_id": "p2"}, {"$set": {"team": "cats"}})])  # no move: allowed
    assert people.update_many({"nokey": 1}, {"$set": {"team": None}}).matched_count == 1  # missing to null: no change

    with MongoClient(mongos.uri, retryWrites=False) as plain:  # no txnNumber: not a retryable write
        mine = plain[db_name].people
        with pytest.raises(OperationFailure) as not_retryable:
            mine.update_one({"team": "apes", "_id": "p1"}, {"$set": {"team": "bats"}})  # even within shard01
        assert not_retryable.value.code == 20 and "retryWrites: true" in str(not_retryable.value)
        with pytest.raises(OperationFailure) as find_and_modify:
            mine.find_one_and_update({"team": "apes", "_id": "p1"}, {"$set": {"team": "yaks"}})
        assert find_and_modify.value.code == 20
        with pytest.raises(OperationFailure) as upsert:
            mine.update_one({"team": "ants", "_id": "p4"}, {"$set": {"team": "yaks"}}, upsert=True)
        assert upsert.value.code == 20 and "Cross-shard upserts" in str(upsert.value)
    assert sorted((doc["_id"], doc.get("team")) for doc in people.find()) == [
        ("p1", "apes"), ("p2", "cats"), ("p3", None)]
    assert ids_on(mongos, "shard01", db_name) == ["p1", "p2", "p3"]


def test_from_7_1_a_retryable_shard_key_change_needs_no_full_shard_key(shards: list[NxServer], db_name: str) -> None:
    newer = Mongos(shards, version="7.1").start()
    try:
        with newer.client() as client:
            spread_people(client, newer, db_name)
            people = client[db_name].people
            people.insert_many([{"_id": "p1", "team": "ants", "tag": "x"}, {"_id": "p2", "team": "bees"}])
            assert people.update_one({"tag": "x"}, {"$set": {"team": "yaks"}}).modified_count == 1
            assert ids_on(newer, "shard03", db_name) == ["p1"]  # moved by a write without shard key
            with pytest.raises(OperationFailure) as by_id:  # an exact _id alone is broadcast: still refused
                people.update_one({"_id": "p2"}, {"$set": {"team": "yaks"}})
            assert by_id.value.code == 31025
            assert people.find_one_and_update({"_id": "p2"}, {"$set": {"team": "yaks"}})["team"] == "bees"
            assert ids_on(newer, "shard03", db_name) == ["p1", "p2"]  # findAndModify by _id: without shard key
            with pytest.raises(OperationFailure) as multi:  # 7.1 checks multi first
                people.update_many({}, {"$set": {"team": "owls"}})
            assert multi.value.code == 72
            with MongoClient(newer.uri, retryWrites=False) as plain, pytest.raises(OperationFailure) as refused:
                plain[db_name].people.update_one({"tag": "x"}, {"$set": {"team": "ants"}})
            assert refused.value.code == 20
    finally:
        newer.stop()
