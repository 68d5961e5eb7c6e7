"""A sharded copy: the same 30,000 documents of 1 KiB copied from a sharded cluster of three shards (the
mongos emulator over three nx-27017 servers, `tests/mongos.py`) and from one nx-27017 replica set, each
by `livemigrate migrate --until-caught-up` into a fresh nx-27017 destination, with the same options
(4 worker threads, one process, a split threshold low enough that both copies are cut into ranges).

The sharded collection is sharded on a ranged key in six chunks over the three shards in turn: its copy
follows the chunks (`engine/copy/chunks.py`): eight ranges (whole rounds of the four workers), each read
through mongos from its own shard; the replica set's is four `_id` ranges. A third copy reads the same documents sharded on a hashed key,
which keeps `_id` ranges, each read from every shard and merged — how every sharded collection was copied
before the plan followed the chunks. Each figure is documents over the copy phase's own time, as the
engine logs it ("copy done: N documents in S s"); each copy runs twice, in turn with the others, and the
faster run counts. The ratios are the ranged key's rate over the replica set's, and over the hashed key's.

What the ratio measures here: not MongoDB's. The emulator is one Python process that every document
crosses (decoded, checked against its chunk's owner, merged, encoded again), in front of servers that
each handle one request at a time, all on a machine of two cores shared with the engine and the
destination. So the ratio is the emulator's cost per document against what reading three shards at
once gives back. On MongoDB, where a mongos forwards a targeted read's batches without re-sorting them
and each shard reads on cores of its own, the copy of a sharded source is expected to scale with its
shards until the destination or the migration host is the limit. There is no target: the benchmark
fails only when a copy does not complete, its documents differ, or the sharded one was not planned along
its chunks.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bson.raw_bson import RawBSONDocument
from tests.mongos import Mongos
from tests.nx import NxServer, start_servers
from tests.support import LIVEMIGRATE

from bench.engine import make_documents

DOCUMENTS = 30_000
CHUNKS = 6
ROUNDS = 2  # each copy twice, the faster counts: one run varies by half on two cores shared with others
OPTIONS = ("--capture", "collection", "--processes", "1", "--workers", "4", "--batch-size", "1000",
           "--split-threshold", "10000")
_COPY_DONE = re.compile(r"copy done: ([\d,]+) documents in ([\d.]+) s")


def _documents() -> list[dict[str, Any]]:
    return [{**document, "region": f"r{document['n']:07d}"} for document in make_documents(DOCUMENTS)]


def _shard_and_seed(mongos: Mongos, database: str, key: dict[str, Any], documents: list[dict[str, Any]]) -> None:
    """`database.docs` sharded on `key` — a ranged key in CHUNKS chunks over the shards in turn; a hashed
    one as MongoDB pre-splits it (two chunks a shard) — each document written straight into the shard
    owning its chunk (the emulator routes reads by the chunks; seeding through it would only take longer)."""
    namespace = f"{database}.docs"
    with mongos.client() as client:
        client.admin.command({"enableSharding": database, "primaryShard": mongos.shard_ids[0]})
        client[database].create_collection("docs")
        client.admin.command({"shardCollection": namespace, "key": key})
        for number in range(1, CHUNKS if key == {"region": 1} else 0):
            cut = {"region": documents[DOCUMENTS * number // CHUNKS]["region"]}
            mongos.split(namespace, cut)
            mongos.move_chunk(namespace, cut, mongos.shard_ids[number % len(mongos.shard_ids)])
        client.admin.command({"balancerStop": 1})
    for shard in mongos.shard_ids:
        mine = [document for document in documents if mongos.shard_of(namespace, document) == shard]
        collection = mongos.shard_client(shard)[database].docs
        for start in range(0, len(mine), 1000):
            collection.insert_many(mine[start:start + 1000], ordered=False)


def _copy(source_uri: str, target_uri: str, directory: Path, name: str, database: str) -> tuple[float, str]:
    """The copy's documents per second, from the run's log; and the log."""
    log_path = directory / f"{name}.log"
    with open(log_path, "wb") as log:
        ran = subprocess.run([LIVEMIGRATE, "migrate", source_uri, target_uri, "--state-dir", str(directory / name),
                              "--until-caught-up", "--drop-target", "--include", database, *OPTIONS], stdout=log,
                             stderr=subprocess.STDOUT, timeout=900, check=False)
    text = log_path.read_text(errors="replace")
    found = _COPY_DONE.search(text)
    if ran.returncode != 0 or found is None:
        raise RuntimeError(f"{name}: migrate exited {ran.returncode}: {text[-2000:]}")
    return int(found.group(1).replace(",", "")) / float(found.group(2)), text


def _read_all(mongos: Mongos) -> float:
    """Documents a second of one plain read of the whole collection through the emulator: its own pace."""
    with mongos.client(document_class=RawBSONDocument) as client:
        began = time.perf_counter()
        count = sum(1 for _ in client.bench.docs.find({}).batch_size(1000))
        return count / (time.perf_counter() - began)


def _same(left: NxServer | Mongos, right: NxServer, database: str) -> bool:
    with left.client() as source, right.client() as target:
        return sorted(document["_id"] for document in source[database].docs.find({}, {"_id": 1})) == \
            sorted(document["_id"] for document in target[database].docs.find({}, {"_id": 1}))


def run() -> list[str]:
    load = os.getloadavg()[0]
    started = time.perf_counter()
    documents = _documents()
    with tempfile.TemporaryDirectory() as directory:
        base = Path(directory)
        servers = start_servers(base, 7)  # the replica set, the source's 3 shards, the destination's 3
        replica_set, shards, targets = servers[0], servers[1:4], servers[4:]
        mongos = Mongos(shards).start()
        log = ""
        try:
            with replica_set.client() as client:
                for start in range(0, DOCUMENTS, 1000):
                    client.bench.docs.insert_many(documents[start:start + 1000], ordered=False)
            _shard_and_seed(mongos, "bench", {"region": 1}, documents)
            _shard_and_seed(mongos, "hashed", {"region": "hashed"}, documents)
            ceiling = _read_all(mongos)
            cases = {"replica-set": (replica_set.uri, targets[0].uri, "bench"),
                     "sharded": (mongos.uri, targets[1].uri, "bench"), "hashed": (mongos.uri, targets[2].uri, "hashed")}
            rates: dict[str, list[float]] = {name: [] for name in cases}
            for turn in range(ROUNDS):  # in turn, so that a change of the machine's load touches each alike
                for name, (source_uri, target_uri, database) in cases.items():
                    rate, text = _copy(source_uri, target_uri, base, f"{name}-{turn}", database)
                    rates[name].append(rate)
                    log = text if name == "sharded" else log
            plain, sharded, by_id = (max(rates[name]) for name in cases)
            equal = _same(replica_set, targets[0], "bench") and _same(mongos, targets[1], "bench") \
                and _same(mongos, targets[2], "hashed")
        finally:
            mongos.stop()
            for server in servers:
                server.stop()
    planned = re.search(r"bench\.docs: planned along its (\d+) chunk\(s\) on (\d+) shard\(s\), in (\d+) range", log)
    print(f"sharded copy: {DOCUMENTS:,} documents of 1 KiB, `migrate --until-caught-up` ({' '.join(OPTIONS)})")
    print(f"  one replica set (nx-27017)                 {plain:8.0f} docs/s   4 _id ranges   "
          f"(runs: {', '.join(f'{rate:.0f}' for rate in rates['replica-set'])})")
    print(f"  three shards, a ranged key (mongos emul.)  {sharded:8.0f} docs/s   "
          f"(runs: {', '.join(f'{rate:.0f}' for rate in rates['sharded'])}) "
          + (f"along {planned.group(1)} chunks on {planned.group(2)} shards: {planned.group(3)} ranges, each "
             "read from its shard" if planned else "NOT planned along the chunks"))
    print(f"  three shards, a hashed key (mongos emul.)  {by_id:8.0f} docs/s   "
          f"(runs: {', '.join(f'{rate:.0f}' for rate in rates['hashed'])}) 4 _id ranges, each read from every "
          "shard and merged (how every sharded collection was copied before)")
    print(f"  one find of everything through mongos      {ceiling:8.0f} docs/s   the emulator's own pace, one cursor")
    print(f"  ratio ranged key / replica set             {sharded / plain:8.2f}   (no target: the emulator is a "
          "Python proxy every document crosses; see the module)")
    print(f"  ratio ranged key / hashed key              {sharded / by_id:8.2f}")
    print(f"  load average at the start                  {load:8.1f}   ({time.perf_counter() - started:.0f} s in all)")
    failures = [] if equal else ["a copy's documents differ from its source's"]
    if planned is None:
        failures.append("the sharded copy was not planned along its chunks")
    print(f"  verdict                                    {'PASS' if not failures else 'FAIL: ' + '; '.join(failures)}")
    return failures


if __name__ == "__main__":
    sys.exit(1 if run() else 0)
