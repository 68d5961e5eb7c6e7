"""Sharding: what a migration does about sharded clusters on either side, decided before anything is
written, and the destination sharded before the copy.

- **The destination's keys.** The collections Atlas' `sharding.shardingEntries` names, and — on a
  sharded destination — every sharded collection of a sharded source that no entry names, with the
  source's key (carried over). Each is sharded on the destination while it is still empty, after its
  supporting index is built: the source's index that starts with the key when there is one, else the key
  itself when `createSupportingIndexes` asks for it.
- **What blocks**, each in one sentence: a `sharding` request for a destination that is not a sharded
  cluster (never ignored); an entry naming a collection the migration does not copy, or a key MongoDB
  cannot shard on; without `createSupportingIndexes`, a key no index of the source or destination
  supports; a destination collection sharded already on another key; a sharded source whose balancer
  runs, or is moving a chunk (chunk moves during a copy are the classic source of duplicates and
  losses), unless the migration is asked to stop it (`stop_balancer`).
- **The balancer stopped** for a run (`BalancerPause`): stopped when the run starts, started again when
  it ends, whatever the end — a run killed outright cannot (nothing records the stop: a person starts it).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pymongo import MongoClient
from pymongo.errors import OperationFailure

from livemigrate.engine.errors import EngineError, EngineErrorCode
from livemigrate.engine.mongo import topology, writer
from livemigrate.engine.mongo.collections import CollectionSpec, Discovery
from livemigrate.engine.mongo.faults import retry
from livemigrate.engine.mongo.topology import Balancer, ShardKey, Topology
from livemigrate.engine.options import MigrationOptions

log = logging.getLogger("livemigrate.engine.sharding")

PRESPLIT_SAMPLE = 1000  # source documents whose key values cut a ranged collection for the destination's shards
STOP_BALANCER_HELP = ("stop it (sh.stopBalancer()), or ask the migration to stop it while it runs (migrate "
                      "--stop-balancer; stopSourceBalancer in a live migration request)")


@dataclass(frozen=True)
class ShardingPlan:
    """Both sides' shapes, and what the migration does about them."""

    source: Topology
    destination: Topology
    keys: tuple[ShardKey, ...] = ()  # to shard on the destination, before the copy
    supporting: Mapping[str, dict[str, Any]] = field(default_factory=dict)  # namespace -> index to build first
    carried: tuple[str, ...] = ()  # namespaces whose key is the source's
    blocking: tuple[str, ...] = ()  # what the sharding asked for, or the sides' shapes, cannot do
    notes: tuple[str, ...] = ()
    balancer_blocking: str | None = None  # the source's balancer runs, and the migration may not stop it

    @property
    def all_blocking(self) -> list[str]:
        return [*self.blocking, *([self.balancer_blocking] if self.balancer_blocking else [])]

    def check(self) -> None:
        """Raise what blocks a migration's start, in one sentence."""
        if self.blocking:
            raise EngineError(EngineErrorCode.SHARDING_REFUSED, "; ".join(self.blocking))
        if self.balancer_blocking:
            raise EngineError(EngineErrorCode.SOURCE_BALANCER_RUNNING, self.balancer_blocking)

    def to_document(self) -> dict[str, Any]:
        """What a pre-flight reports of sharding."""
        def side(shape: Topology) -> dict[str, Any]:
            return {"sharded": shape.sharded, "shards": list(shape.shards),
                    "shardedCollections": [{"namespace": key.namespace, "key": key.as_document(), "unique": key.unique}
                                           for key in sorted(shape.keys.values(), key=lambda key: key.namespace)],
                    "balancer": None if shape.balancer is None else
                    {"mode": shape.balancer.mode, "inBalancerRound": shape.balancer.in_round}}

        return {"source": side(self.source), "destination": side(self.destination),
                "toShard": [{"namespace": key.namespace, "key": key.as_document(), "unique": key.unique,
                             "carriedFromSource": key.namespace in self.carried} for key in self.keys],
                "notes": list(self.notes), "blocking": self.all_blocking}


def _supports(index_key: Sequence[tuple[str, Any]], key: ShardKey) -> bool:
    """An index supports a shard key when its fields start with the key's, the same way (hashed for hashed)."""
    pattern = [(name, "hashed" if kind == "hashed" else 1) for name, kind in key.pattern]
    prefix = [(name, "hashed" if kind == "hashed" else (1 if kind in (1, -1) else kind))
              for name, kind in list(index_key)[:len(pattern)]]
    return prefix == pattern


def _supporting_index(spec: CollectionSpec | None, key: ShardKey) -> dict[str, Any] | None:
    """The source's index that supports `key` (its `_id` index for `{_id: 1}`), as the copy builds it."""
    if key.pattern == (("_id", 1),):
        return {"key": [["_id", 1]], "name": "_id_"}
    for index in spec.indexes if spec is not None else ():
        if _supports([tuple(pair) for pair in index["key"]], key):
            return dict(index)
    return None


def _destination_supports(target: MongoClient[Any], key: ShardKey) -> bool:
    database, name = key.namespace.split(".", 1)
    indexes = retry(target, f"listing the indexes of {key.namespace}",
                    lambda: list(target[database][name].list_indexes()))
    return any(_supports(list(dict(index["key"]).items()), key) for index in indexes)


def _unique(spec: CollectionSpec | None, key: ShardKey) -> bool:
    """A ranged key is declared unique when the source enforces it: a unique index on exactly its fields."""
    if any(kind == topology.HASHED for _, kind in key.pattern) or spec is None:
        return False
    return any(index.get("unique") and [tuple(pair)[0] for pair in index["key"]] == list(key.fields)
               for index in spec.indexes)


def plan_sharding(source: MongoClient[Any], target: MongoClient[Any], discovery: Discovery,
                  options: MigrationOptions, *, stop_balancer_help: str = STOP_BALANCER_HELP) -> ShardingPlan:
    """Both sides read, and what the migration will shard, note and refuse (see the module)."""
    source_shape = topology.read_topology(source)
    destination_shape = topology.read_topology(target)
    request = options.sharding
    specs = {spec.namespace: spec for spec in discovery.copied}
    blocking: list[str] = []
    notes: list[str] = []
    keys: list[ShardKey] = []
    supporting: dict[str, dict[str, Any]] = {}
    carried: list[str] = []
    if request is not None and not destination_shape.sharded:
        blocking.append("sharding: the destination is not a sharded cluster (its hello is not a mongos'), so no "
                        "collection can be sharded there: leave sharding out, or migrate into a sharded cluster")
    elif destination_shape.sharded:
        wanted = [ShardKey(entry.namespace, entry.key) for entry in (request.entries if request else ())]
        named = {key.namespace for key in wanted}
        for namespace, source_key in sorted(source_shape.keys.items()):
            if namespace in specs and namespace not in named:
                wanted.append(source_key)
                carried.append(namespace)
        for key in wanted:
            problem = topology.key_problem(key.pattern)
            spec = specs.get(key.namespace)
            if problem is not None:
                blocking.append(f"sharding {key.namespace}: {problem}")
                continue
            if spec is None:
                blocking.append(f"sharding {key.namespace}: not a collection this migration copies (check the "
                                "database and collection names, and the namespaces included)")
                continue
            key = ShardKey(key.namespace, key.pattern, _unique(spec, key))
            existing = destination_shape.keys.get(key.namespace)
            if existing is not None and existing.pattern != key.pattern and not options.drop_target:
                blocking.append(f"sharding {key.namespace}: the destination has it sharded on {existing.describe()} "
                                f"already, not on {key.describe()}")
                continue
            index = _supporting_index(spec, key)
            if index is None and not (request is not None and request.create_supporting_indexes) \
                    and not _destination_supports(target, key):
                blocking.append(f"sharding {key.namespace} on {key.describe()}: no index of the source or the "
                                "destination starts with the key; create one, or set createSupportingIndexes")
                continue
            supporting[key.namespace] = index or {"key": [[name, kind] for name, kind in key.pattern]}
            keys.append(key)
    if source_shape.sharded and not destination_shape.sharded and source_shape.keys:
        notes.append("the source's shard keys are not carried over: the destination is not a sharded cluster")
    balancer_blocking = None
    if source_shape.balancer is not None and (source_shape.balancer.running or source_shape.balancer.in_round):
        if options.stop_balancer:
            notes.append(f"{source_shape.balancer.describe()} on the source: the migration stops it while it runs, "
                         "and starts it again when it ends")
        else:
            balancer_blocking = balancer_refusal(source_shape.balancer, stop_balancer_help)
    return ShardingPlan(source_shape, destination_shape, tuple(keys), supporting, tuple(carried), tuple(blocking),
                        tuple(notes), balancer_blocking)


def balancer_refusal(balancer: Balancer, stop_balancer_help: str = STOP_BALANCER_HELP) -> str:
    return (f"{balancer.describe()} on the source, and chunk moves during the copy can duplicate or lose "
            f"documents: {stop_balancer_help}")


def _evenly(points: Sequence[dict[str, Any]], parts: int) -> list[dict[str, Any]]:
    """`parts - 1` of `points` (in key order) that cut them into about equal parts, none twice."""
    chosen: list[dict[str, Any]] = []
    for number in range(1, parts):
        point = points[len(points) * number // parts] if points else None
        if point is not None and point not in chosen:
            chosen.append(point)
    return chosen


def split_points(source: MongoClient[Any], plan: ShardingPlan, key: ShardKey) -> list[dict[str, Any]]:
    """Where to cut an empty ranged-key collection on the destination so that each of its shards gets about
    as much of the copy: the source's own chunk bounds when the source shards it on the same key, else
    quantiles of a random sample of the source's key values ($sample). None for a hashed key (MongoDB
    spreads an empty one itself), one destination shard, or a source that cannot sample."""
    shards = len(plan.destination.shards)
    if shards < 2 or any(kind == topology.HASHED for _, kind in key.pattern):
        return []
    source_key = plan.source.keys.get(key.namespace)
    if source_key is not None and source_key.pattern == key.pattern:
        return _evenly(topology.chunk_minimums(source, key.namespace), shards)
    database, name = key.namespace.split(".", 1)
    pipeline = [{"$sample": {"size": PRESPLIT_SAMPLE}},
                {"$project": {field: 1 for field in key.fields} | ({} if "_id" in key.fields else {"_id": 0})},
                {"$sort": {field: 1 for field in key.fields}}]
    try:
        sampled = retry(source, f"sampling the keys of {key.namespace}",
                        lambda: list(source[database][name].aggregate(pipeline)))
    except OperationFailure as error:
        log.info("%s: the source's keys cannot be sampled (%s); its chunks are left to the balancer", key.namespace,
                 error.details.get("errmsg", error) if error.details else error)
        return []
    points = [{field: topology.value_at(document, field) for field in key.fields} for document in sampled]
    return _evenly([point for point in points if None not in point.values()], shards)


def shard_destination(source: MongoClient[Any], target: MongoClient[Any], plan: ShardingPlan) -> None:
    """Shard the plan's collections on the destination, each empty and created already (the copy's plan
    creates them), after its supporting index, and spread a ranged key's chunks over the shards
    (`split_points`); again after a restart, harmlessly."""
    plan.check()
    for key in plan.keys:
        index = plan.supporting[key.namespace]
        if index.get("name") != "_id_":
            writer.build_indexes(target, key.namespace, [index])
        topology.shard_collection(target, key)
        spread = topology.split_and_spread(target, key, split_points(source, plan, key), plan.destination.shards)
        log.info("sharded %s on the destination on %s%s%s%s", key.namespace, key.describe(),
                 " (unique)" if key.unique else "", ", the source's key" if key.namespace in plan.carried else "",
                 f", in {spread + 1} chunks over {len(plan.destination.shards)} shards" if spread else "")


class BalancerPause:
    """A sharded source's balancer stopped for one run, when asked and running (see the module); and,
    when not asked, whether it runs (what blocks a copy)."""

    def __init__(self, source: MongoClient[Any], *, asked: bool) -> None:
        self._source = source
        self._stopped = False
        self.running: Balancer | None = None  # the source's balancer, running and not stopped here
        if not topology.is_mongos(source):
            return
        balancer = topology.balancer(source)
        if not (balancer.running or balancer.in_round):
            return
        if not asked:
            self.running = balancer
            return
        topology.stop_balancer(source)  # a round still in progress ends first
        self._stopped = balancer.running  # started again at the end only if it ran: one turned off stays off
        log.warning("the source's balancer is stopped for this run of the migration (it was %s); it starts again "
                    "when the run stops or ends", balancer.mode)

    def end(self) -> None:
        if self._stopped:
            try:
                topology.start_balancer(self._source)
                log.info("the source's balancer is started again")
            except Exception as error:  # noqa: BLE001 - said, never hidden: a person must start it
                log.error("the source's balancer could not be started again (%s: %s): start it yourself "
                          "(sh.startBalancer())", type(error).__name__, error)
            self._stopped = False


def destination_key_fields(target: MongoClient[Any]) -> dict[str, tuple[str, ...]]:
    """Each sharded collection's key fields on the destination (none unless it is a mongos): what a replayed
    write's filter must carry for mongos to route it (`apply.py`)."""
    if not topology.is_mongos(target):
        return {}
    return {namespace: key.fields for namespace, key in topology.shard_keys(target).items()}


def unsharded() -> ShardingPlan:
    """The plan of a run that shards nothing and copies nothing (a reverse): no shape read, nothing refused."""
    return ShardingPlan(Topology(sharded=False), Topology(sharded=False))
