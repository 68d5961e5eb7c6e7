"""A deployment's shape, as the engine needs it: a replica set or a sharded cluster (a mongos), its
shards, each sharded collection's key, and the balancer's state; and the few commands that change
them (sharding a collection, stopping and starting the balancer).

A mongos says so in its `hello` (`msg: "isdbgrid"`); what it holds is read from its `config` database
(`config.shards`, `config.collections`), as MongoDB documents it from 5.0 on (a collection's entry
carries its `key` and `unique`; one being dropped carries `dropped: true` in releases before 5.0).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pymongo import MongoClient

from livemigrate.engine.mongo.faults import retry

HASHED = "hashed"


@dataclass(frozen=True)
class ShardKey:
    """A collection's shard key: its fields in order, each 1, -1 or "hashed" (at most one hashed)."""

    namespace: str
    pattern: tuple[tuple[str, Any], ...]
    unique: bool = False

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.pattern)

    def as_document(self) -> dict[str, Any]:
        return dict(self.pattern)

    def describe(self) -> str:
        """`{team: 1, _id: "hashed"}`, as a person writes a key."""
        kinds = ", ".join(f"{name}: {kind!r}" if isinstance(kind, str) else f"{name}: {kind}"
                          for name, kind in self.pattern)
        return "{" + kinds.replace("'", '"') + "}"


def value_at(document: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path of a document; None where it is missing (as a shard key counts it)."""
    value: Any = document
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def key_problem(pattern: Sequence[tuple[str, Any]]) -> str | None:
    """Why a key pattern cannot shard a collection, or None: MongoDB shards on ascending fields (1) and at
    most one "hashed" field; a descending field (-1), which an index may have, cannot be a shard key's."""
    if not pattern:
        return "the key names no field"
    names = [name for name, _ in pattern]
    if len(set(names)) != len(names):
        return "the key names a field twice"
    for name, kind in pattern:
        if not isinstance(name, str) or not name or name.startswith("$"):
            return f"{name!r} is not a field name"
        if kind == -1 and not isinstance(kind, bool):
            return f"{name}: -1: MongoDB shards on ascending (1) or hashed fields, never descending ones"
        if kind not in (1, HASHED) or isinstance(kind, bool):
            return f"{name}: {kind!r} is not 1 or \"hashed\""
    if sum(1 for _, kind in pattern if kind == HASHED) > 1:
        return "a key has at most one hashed field"
    return None


@dataclass(frozen=True)
class Balancer:
    """`balancerStatus`: its mode (`full` runs, `off` is stopped) and whether a round (a chunk migration)
    is in progress now."""

    mode: str
    in_round: bool

    @property
    def running(self) -> bool:
        return self.mode != "off"

    def describe(self) -> str:
        if self.in_round:
            return f"the balancer is {self.mode}, a balancing round (chunk migration) in progress"
        return "the balancer is stopped" if not self.running else f"the balancer runs (mode {self.mode})"


@dataclass(frozen=True)
class Topology:
    """What a deployment is: a sharded cluster (reached through a mongos) or not; its shards, its
    sharded collections' keys and its balancer (both None-empty for a replica set)."""

    sharded: bool
    shards: tuple[str, ...] = ()
    keys: Mapping[str, ShardKey] = field(default_factory=dict)
    balancer: Balancer | None = None

    def describe(self) -> str:
        if not self.sharded:
            return "a replica set"
        return (f"a sharded cluster of {len(self.shards)} shard(s) ({', '.join(self.shards)}), "
                f"{len(self.keys)} sharded collection(s); {self.balancer.describe() if self.balancer else ''}")


def is_mongos(client: MongoClient[Any]) -> bool:
    hello = retry(client, "asking what the deployment is", lambda: client.admin.command("hello"))
    return hello.get("msg") == "isdbgrid"


def shard_keys(client: MongoClient[Any]) -> dict[str, ShardKey]:
    """Every sharded collection's key, by namespace (none on a replica set)."""
    entries = retry(client, "reading the sharded collections",
                    lambda: list(client.config["collections"].find({"dropped": {"$ne": True}})))
    return {str(entry["_id"]): ShardKey(str(entry["_id"]), tuple(dict(entry["key"]).items()),
                                        bool(entry.get("unique")))
            for entry in entries if entry.get("key")}


def balancer(client: MongoClient[Any]) -> Balancer:
    status = retry(client, "asking the balancer's state", lambda: client.admin.command("balancerStatus"))
    return Balancer(str(status.get("mode", "full")), bool(status.get("inBalancerRound")))


def read_topology(client: MongoClient[Any]) -> Topology:
    if not is_mongos(client):
        return Topology(sharded=False)
    shards = retry(client, "listing the shards", lambda: client.admin.command("listShards"))
    return Topology(True, tuple(str(shard["_id"]) for shard in shards.get("shards", [])), shard_keys(client),
                    balancer(client))


def stop_balancer(client: MongoClient[Any], wait_seconds: float = 60.0) -> None:
    """Stop the balancer; the command waits for a round in progress to end (up to `wait_seconds`)."""
    retry(client, "stopping the balancer",
          lambda: client.admin.command({"balancerStop": 1, "maxTimeMS": int(wait_seconds * 1000)}))


def start_balancer(client: MongoClient[Any]) -> None:
    retry(client, "starting the balancer again", lambda: client.admin.command({"balancerStart": 1}))


def shard_collection(client: MongoClient[Any], key: ShardKey) -> None:
    """Shard an (empty) collection on `key`; sharding it again on the same key is a no-op, as MongoDB
    answers it (a run started again after a fault does it twice). The database is enabled first, which
    MongoDB before 6.0 requires and later ones accept."""
    database = key.namespace.split(".", 1)[0]
    retry(client, f"enabling sharding of {database}", lambda: client.admin.command({"enableSharding": database}))
    retry(client, f"sharding {key.namespace}", lambda: client.admin.command(
        {"shardCollection": key.namespace, "key": key.as_document(), "unique": key.unique}))


def chunks_of(client: MongoClient[Any], namespace: str) -> list[dict[str, Any]]:
    """A sharded collection's chunks (`min`, `max`, `shard`), in key order. `config.chunks` names a
    collection by its `uuid` from 5.0 on, by its namespace before."""
    def read() -> list[dict[str, Any]]:
        entry = client.config["collections"].find_one({"_id": namespace}, {"uuid": 1})
        chosen = {"uuid": entry["uuid"]} if entry is not None and "uuid" in entry else {"ns": namespace}
        return list(client.config["chunks"].find(chosen, {"min": 1, "max": 1, "shard": 1}).sort("min", 1))

    return retry(client, f"reading the chunks of {namespace}", read)


def chunk_minimums(client: MongoClient[Any], namespace: str) -> list[dict[str, Any]]:
    """The lower bounds of a sharded collection's chunks, in key order, the first (all MinKey) left out:
    where its data is already cut."""
    return [dict(chunk["min"]) for chunk in chunks_of(client, namespace)][1:]


def split_and_spread(client: MongoClient[Any], key: ShardKey, points: Sequence[Mapping[str, Any]],
                     shards: Sequence[str]) -> int:
    """Cut an empty ranged-key collection at `points` (in key order) and hand the chunks to the shards in
    turn, the first staying where it is: the copy then writes to every shard from its start, as the
    balancer would spread it only later. A cut made already (a run started again) is not made twice.
    How many chunks were handed out."""
    made = chunk_minimums(client, key.namespace)
    for point in points:
        split = {"split": key.namespace, "middle": dict(point)}
        if split["middle"] not in made:
            retry(client, f"splitting {key.namespace}", functools.partial(client.admin.command, split))
    owners = chunk_owners(client, key.namespace)
    first = owners[0][1] if owners else shards[0]
    turn = [first, *(shard for shard in shards if shard != first)]  # the first chunk stays where it is
    for number, (lower, owner) in enumerate(owners):
        wanted = turn[number % len(turn)]
        if number and owner != wanted:  # a move made already (a run started again) is not made twice
            move = {"moveChunk": key.namespace, "find": lower, "to": wanted}
            retry(client, f"moving a chunk of {key.namespace}", functools.partial(client.admin.command, move))
    return len(points)


def chunk_owners(client: MongoClient[Any], namespace: str) -> list[tuple[dict[str, Any], str]]:
    """Each chunk's lower bound and the shard owning it, in key order."""
    return [(dict(chunk["min"]), str(chunk["shard"])) for chunk in chunks_of(client, namespace)]
