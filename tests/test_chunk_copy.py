"""A sharded source's copy follows its chunks, through `livemigrate migrate` and the mongos emulator over
three nx-27017 shards (`tests/mongos.py`): a collection sharded on a ranged key, in six chunks spread over
the three shards, is planned in one range per run of one shard's chunks (the checkpoints name each range's
key bounds and shard), each range read from its shard alone; killed with SIGKILL mid-copy and started
again, the copy resumes after the last (key, `_id`) copied — nothing lost, nothing read twice (the
ranges' counts add up to the documents exactly) — and the migration ends EQUAL. Progress is told per
shard. Documents without the key (counted as null) and runs of equal key values across batches are
among the data, the cases a resume after (key, `_id`) must get right.

String `_id`s and key values: nx-27017 sorts integer values by their text while it compares them as
numbers (TESTING.md), which no resumed read could follow.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from livemigrate.engine.checkpoints import SqliteCheckpointStore
from livemigrate.engine.copy.initial_copy import InitialCopy
from livemigrate.engine.options import MigrationOptions
from tests.engine_support import MigrateProcess
from tests.mongos import Mongos
from tests.nx import NxServer
from tests.support import wait_for
from tests.test_sharded_migration import start_servers
from tests.wire_proxy import SlowCopyProxy

DOCUMENTS = 3000
TIES = 40  # documents sharing one key value, across batches of 25
KEYLESS = 5  # documents without the key: null, in the first chunk
CUTS = ("k00500", "k01000", "k01500", "k02000", "k02500")  # six chunks
OTHER = 300  # an unsharded collection: on its database's primary shard


def sharded_on_chunks(mongos: Mongos) -> None:
    """`shop.orders` sharded on {region: 1}, in six chunks over the shards in turn; `shop.notes` unsharded."""
    with mongos.client() as client:
        client.admin.command({"enableSharding": "shop", "primaryShard": mongos.shard_ids[0]})
        client.shop.create_collection("orders")
        client.admin.command({"shardCollection": "shop.orders", "key": {"region": 1}})
        for number, cut in enumerate(CUTS, start=1):
            mongos.split("shop.orders", {"region": cut})
            mongos.move_chunk("shop.orders", {"region": cut}, mongos.shard_ids[number % 3])
        for name in ("orders", "notes"):
            client.shop[name].watch().close()  # nx-27017 records a collection's changes from its first watch()
        documents: list[dict[str, Any]] = [{"_id": f"o{index:05d}", "region": f"k{index:05d}", "n": index}
                                           for index in range(DOCUMENTS)]
        documents += [{"_id": f"tie{index:03d}", "region": "k01200", "n": index} for index in range(TIES)]
        documents += [{"_id": f"nokey{index}", "n": index} for index in range(KEYLESS)]
        for start in range(0, len(documents), 1000):
            client.shop.orders.insert_many(documents[start:start + 1000])
        client.shop.notes.insert_many([{"_id": f"note{index:04d}", "text": "x" * 20} for index in range(OTHER)])


def everything(client: MongoClient[Any]) -> dict[str, list[dict[str, Any]]]:
    return {name: sorted(client.shop[name].find(), key=lambda document: document["_id"]) for name in ("orders", "notes")}


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[Mongos, NxServer]]:
    started = start_servers(tmp_path, 4)
    mongos = Mongos(started[:3]).start()
    try:
        yield mongos, started[3]
    finally:
        mongos.stop()
        for server in started:
            server.stop()


def test_a_sharded_collection_is_copied_along_its_chunks_and_resumed_after_a_kill(
        servers: tuple[Mongos, NxServer], tmp_path: Path) -> None:
    mongos, destination = servers
    sharded_on_chunks(mongos)
    slow = SlowCopyProxy(destination.port, seconds_per_batch=0.08).start()  # a copy long enough to kill mid-way
    state = tmp_path / "state"
    args = ("--stop-balancer", "--processes", "1", "--workers", "2", "--batch-size", "25")
    try:
        first = MigrateProcess(mongos.uri, slow.uri, state, *args).start()
        assert wait_for(lambda: first.copied() >= 700 or first.process.poll() is not None, timeout=60)  # type: ignore[union-attr]
        first.kill()
        killed_at = first.copied()
        assert 700 <= killed_at < DOCUMENTS, (killed_at, first.log_text()[-3000:])
        log = first.log_text()
        assert "shop.orders: planned along its 6 chunk(s) on 3 shard(s), in 6 range(s)" in log, log[-3000:]

        ranges = [first.checkpoint(f"range:shop.orders:{index:04d}") for index in range(6)]
        assert all(found is not None for found in ranges), ranges
        shards = [found["shard"] for found in ranges if found is not None]
        assert shards == [mongos.shard_ids[number % 3] for number in range(6)]
        bounds = [(found["keyRange"]["lower"], found["keyRange"]["upper"]) for found in ranges if found is not None]
        edges = [None, *[[{"value": cut}] for cut in CUTS], None]
        assert bounds == [(edges[index], edges[index + 1]) for index in range(6)]
        assert first.checkpoint("range:shop.notes:0000")["shard"] == mongos.shard_ids[0]  # type: ignore[index]

        second = MigrateProcess(mongos.uri, slow.uri, state, *args).start()
        assert wait_for(second.replicating, timeout=60), second.log_text()[-3000:]
        assert "resuming the copy from its checkpoint" in second.log_text()
        # Each range read once from where it stood: the counts add up to the documents exactly.
        orders = [second.checkpoint(f"range:shop.orders:{index:04d}") for index in range(6)]
        assert sum(found["copied"] for found in orders if found is not None) == DOCUMENTS + TIES + KEYLESS
        assert all(found is not None and found["done"] for found in orders)

        # Progress per source shard: what each shard holds, copied.
        copy = InitialCopy(MigrationOptions(), SqliteCheckpointStore(state), threading.Event(), lambda: None)
        progress = {namespace.namespace: namespace for namespace in copy.progress()}
        on_shards = {shard: mongos.shard_client(shard).shop.orders.count_documents({}) for shard in mongos.shard_ids}
        assert {shard.shard: (shard.copied, shard.total, shard.done) for shard in progress["shop.orders"].shards} == {
            shard: (count, count, True) for shard, count in on_shards.items()}
        assert [(shard.shard, shard.copied) for shard in progress["shop.notes"].shards] == [(mongos.shard_ids[0], OTHER)]

        assert second.cutover_and_wait() == 0 and "EQUAL" in second.log_text(), second.log_text()[-3000:]
        with mongos.client() as source, destination.client() as target:
            assert everything(source) == everything(target)
    finally:
        slow.stop()
