"""Seeding a source, changing it while a migration runs, and watching a `livemigrate migrate` process."""

from __future__ import annotations

import itertools
import random
import signal
import sqlite3
import subprocess
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bson
from pymongo import MongoClient

from tests.support import LIVEMIGRATE
from tests.support import wait_for as wait_until

_runs = itertools.count(1)

DATABASES = ("sales", "inventory", "people")
COLLECTIONS = ("alpha", "beta", "gamma", "delta")


def namespaces() -> list[tuple[str, str]]:
    return [(database, collection) for database in DATABASES for collection in COLLECTIONS]


def seed(client: MongoClient[Any], total: int = 20_000, where: list[tuple[str, str]] | None = None) -> None:
    """3 databases x 4 collections (or the collections `where` names), `total` documents with nested
    documents and arrays, and a unique and a TTL index on each collection. String `_id`s: nx-27017
    returns `documentKey._id` as a string."""
    where = where or namespaces()
    per_collection = total // len(where)
    extra = total - per_collection * len(where)
    now = datetime.now(UTC)
    for position, (database, name) in enumerate(where):
        collection = client[database][name]
        collection.watch().close()  # nx-27017 records a collection's changes only from its first watch()
        count = per_collection + (extra if position == 0 else 0)
        collection.insert_many([
            {"_id": f"{name}{index:06d}", "serial": f"{database}-{name}-{index}", "quantity": index,
             "createdAt": now, "profile": {"city": random.choice(["Lyon", "Oslo", "Lima"]), "tags": ["a", "b"]},
             "history": [{"step": step, "ok": step % 2 == 0} for step in range(3)]}
            for index in range(count)])
        collection.create_index([("serial", 1)], unique=True)
        collection.create_index([("createdAt", 1)], expireAfterSeconds=10 * 365 * 24 * 3600)


class Writer(threading.Thread):
    """Inserts, updates and deletes on the source while the migration runs."""

    def __init__(self, client: MongoClient[Any], per_second: float = 150.0,
                 where: list[tuple[str, str]] | None = None, first_number: int = 0) -> None:
        """`first_number`: where the numbers of the documents it inserts begin (a second writer on the
        same source begins past the first's, so that their `_id`s and unique `serial`s never meet)."""
        super().__init__(daemon=True)
        self.first_number = first_number
        self.client = client
        self.where = where or namespaces()
        self.interval = 1.0 / per_second
        self.stopped = threading.Event()
        self.counts = {"insert": 0, "update": 0, "delete": 0}
        self.random = random.Random(7)

    def run(self) -> None:
        number = self.first_number
        while not self.stopped.is_set():
            database, name = self.random.choice(self.where)
            collection = self.client[database][name]
            action = self.random.choice(("insert", "insert", "update", "update", "delete"))
            number += 1
            if action == "insert":
                collection.insert_one({"_id": f"written{number:06d}", "serial": f"w-{number}", "quantity": number,
                                       "profile": {"city": "Kyiv", "tags": ["new"]}, "history": []})
            elif action == "update":
                victim = f"{name}{self.random.randrange(0, 1500):06d}"
                collection.update_one({"_id": victim}, {"$set": {"profile.city": f"City{number}"},
                                                        "$inc": {"quantity": 1}, "$push": {"history": {"step": number}}})
            else:
                collection.delete_one({"_id": f"{name}{self.random.randrange(0, 1500):06d}"})
            self.counts[action] += 1
            time.sleep(self.interval)

    def finish(self) -> None:
        self.stopped.set()
        self.join(timeout=10)


class MigrateProcess:
    """`livemigrate migrate` in a subprocess, with its log in a file."""

    def __init__(self, source_uri: str, target_uri: str, state_dir: Path, *args: str,
                 capture: str = "collection") -> None:
        self.state_dir = state_dir
        self.log_path = state_dir.parent / f"{state_dir.name}-migrate-{next(_runs)}.log"
        # nx-27017: client.watch() never emits (TESTING.md), so tests that replicate capture per collection
        self.command = [LIVEMIGRATE, "migrate", source_uri, target_uri, "--state-dir", str(state_dir),
                        "--capture", capture, *args]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> MigrateProcess:
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT)
        return self

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def checkpoint(self, key: str) -> dict[str, Any] | None:
        path = self.state_dir / "checkpoints.sqlite"
        if not path.exists():
            return None
        try:
            with sqlite3.connect(path, timeout=5) as connection:
                row = connection.execute("SELECT value FROM checkpoints WHERE key = ?", (key,)).fetchone()
        except sqlite3.Error:
            return None
        return bson.decode(row[0]) if row else None

    def copied(self) -> int:
        return copied_in(self.state_dir)

    def phase(self) -> str | None:
        meta = self.checkpoint("meta")
        return None if meta is None else str(meta["phase"])

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def replicating(self) -> bool:
        return "replicating changes" in self.log_text()

    def cutover_and_wait(self, timeout: float = 120) -> int:
        assert self.process is not None
        assert wait_until(self.replicating, timeout=60), self.log_text()  # its SIGUSR1 handler is in place
        self.process.send_signal(signal.SIGUSR1)
        return self.process.wait(timeout=timeout)


def copied_in(state_dir: Path) -> int:
    """Documents the checkpoints in `state_dir` record as copied."""
    path = state_dir / "checkpoints.sqlite"
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(path, timeout=5) as connection:
            rows = connection.execute("SELECT value FROM checkpoints WHERE key LIKE 'range:%'").fetchall()
    except sqlite3.Error:
        return 0
    return sum(bson.decode(row[0])["copied"] for row in rows)


def index_shapes(client: MongoClient[Any], database: str, name: str) -> list[tuple[Any, ...]]:
    """Indexes by key and the options the server keeps (names are the server's own business)."""
    shapes = []
    for index in client[database][name].list_indexes():
        options = tuple(sorted((key, value) for key, value in dict(index).items() if key not in ("v", "name", "key", "ns")))
        shapes.append((tuple(dict(index["key"]).items()), options))
    return sorted(shapes)


# Collections that are not migrated as they are, in database `shop`, as `CollectionOptionsProxy` makes a
# source show them (nx-27017 keeps no collection options), and what the pre-flight must say of each.
SHAPES: dict[str, dict[str, Any]] = {
    "log": {"options": {"capped": True, "size": 4096}},
    "readings": {"type": "timeseries", "options": {"timeseries": {"timeField": "t", "granularity": "seconds"}}},
    "events": {"options": {"clusteredIndex": {"key": {"_id": 1}, "unique": True}}},
    "names": {"options": {"collation": {"locale": "fr", "strength": 2}}},
    "checked": {"options": {"validator": {"qty": {"$gte": 0}}, "validationAction": "error"}},
    "recent": {"type": "view", "options": {"viewOn": "orders", "pipeline": [{"$match": {"sku": "s1"}}]}},
}
SHAPE_NOTES = {
    "shop.log": "capped (4096 bytes): created capped with the same size",
    "shop.readings": "time-series: not migrated",
    "shop.events": "clustered: created clustered on the same key",
    "shop.names": "collation fr: created with it",
    "shop.checked": "validator (error): created with it; a document it refuses stops the copy",
    "shop.recent": "view: re-created on the destination after the copy, with its pipeline",
    "shop.odd": "field names starting with $ ($price, nested.$unit)",
}


def seed_shapes(client: MongoClient[Any]) -> None:
    """`shop.orders` (ordinary, 700 documents), `shop.odd` ($-prefixed field names) and a few documents
    in each collection of `SHAPES` that has storage."""
    client.shop.orders.insert_many([{"_id": i, "sku": f"s{i % 7}"} for i in range(700)])
    client.shop.odd.insert_one({"_id": 1, "$price": 3, "nested": {"$unit": "eur"}})
    for name, shape in SHAPES.items():
        if shape.get("type") != "view":
            client.shop[name].insert_many([{"_id": i, "qty": i, "t": datetime.now(UTC)} for i in range(5)])
