"""A shard key range's filter (`engine/mongo/key_ranges.py`) holds exactly the documents MongoDB places in
[lower, upper): field after field, each in BSON order across types, a missing field as null — checked
here against MongoDB's query semantics (type-bracketed comparisons, `$type`, null matching a missing
field) on documents of mixed types, with bounds that hold MinKey as chunk bounds do. And a range resumed
after a (key…, `_id`) position holds exactly the documents after it in the copy's sort order. Pure
Python: no server (what servers accept of these filters is tested through the mongos emulator in
tests/test_chunk_copy.py); plus the grouping of chunks into ranges and the emulator's targeting of a
range to the shards owning it."""

from __future__ import annotations

import datetime
import functools
import random
from collections.abc import Mapping
from typing import Any

from bson import ObjectId
from bson.max_key import MaxKey
from bson.min_key import MinKey

from livemigrate.engine.copy.chunks import apportion, groups
from livemigrate.engine.copy.ranges import RangeState
from livemigrate.engine.mongo.key_ranges import TYPES, KeyRange, bracket, decode_bound, encode_bound
from livemigrate.engine.mongo.reader import IdRange
from tests.mongos_catalog import Catalog
from tests.mongos_targeting import TYPE_RANKS
from tests.mongos_values import order_key

_MISSING = object()


def _value(document: Mapping[str, Any], path: str) -> Any:
    value: Any = document
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _condition(value: Any, condition: Any) -> bool:
    """One field's condition as MongoDB evaluates it (the operators the copy's filters use)."""
    if not (isinstance(condition, Mapping) and condition and all(name.startswith("$") for name in condition)):
        condition = {"$eq": condition}
    for operator, argument in condition.items():
        if operator == "$eq":
            ok = (value is _MISSING and argument is None) or (
                value is not _MISSING and order_key(value) == order_key(argument))
        elif operator == "$type":
            ok = value is not _MISSING and order_key(value)[0] == TYPE_RANKS[argument]
        else:  # $gt, $gte, $lt, $lte: within the argument's type only
            if value is _MISSING or order_key(value)[0] != order_key(argument)[0]:
                return False
            left, right = order_key(value), order_key(argument)
            ok = {"$gt": left > right, "$gte": left >= right, "$lt": left < right, "$lte": left <= right}[operator]
        if not ok:
            return False
    return True


def mongo_matches(document: Mapping[str, Any], query: Mapping[str, Any]) -> bool:
    for name, condition in query.items():
        if name == "$and":
            if not all(mongo_matches(document, part) for part in condition):
                return False
        elif name == "$or":
            if not any(mongo_matches(document, part) for part in condition):
                return False
        elif not _condition(_value(document, name), condition):
            return False
    return True


def _matching(documents: list[dict[str, Any]], key_range: KeyRange, after: list[Any] | None = None) -> list[Any]:
    query = key_range.query(after)
    if query is False:
        return []
    return [document["_id"] for document in documents if query is True or mongo_matches(document, query)]


def _holds_no_edge_value(query: Any) -> bool:
    """MinKey and MaxKey never go to a server as values (nx-27017 refuses them in a filter)."""
    if isinstance(query, Mapping):
        return all(_holds_no_edge_value(value) for value in query.values())
    if isinstance(query, list):
        return all(_holds_no_edge_value(value) for value in query)
    return not isinstance(query, MinKey | MaxKey)


FIELDS = ("region", "meta.rank")
VALUES: list[Any] = [None, _MISSING, -3, 0, 2.5, 7, "", "east", "west", "west2", {"x": 1}, ObjectId(), True, False,
                     datetime.datetime(2024, 1, 1), datetime.datetime(2025, 6, 1), b"\x01\x02"]


def _documents(rng: random.Random, count: int) -> list[dict[str, Any]]:
    documents = []
    for number in range(count):
        document: dict[str, Any] = {"_id": f"d{number:04d}"}
        region, rank = rng.choice(VALUES), rng.choice(VALUES[:10])
        if region is not _MISSING:
            document["region"] = region
        if rank is not _MISSING:
            document["meta"] = {"rank": rank}
        documents.append(document)
    return documents


def _sort_key(document: Mapping[str, Any]) -> tuple[Any, ...]:
    values = [_value(document, name) for name in (*FIELDS, "_id")]
    return tuple(order_key(None if value is _MISSING else value) for value in values)


def _compare(left: tuple[Any, ...], right: tuple[Any, ...]) -> int:
    return (left > right) - (left < right)


def test_ranges_of_a_compound_key_hold_each_document_once_and_resume_exactly() -> None:
    rng = random.Random(11)
    documents = sorted(_documents(rng, 400), key=functools.cmp_to_key(lambda a, b: _compare(_sort_key(a), _sort_key(b))))
    keys = sorted({_sort_key(document)[:2] for document in documents})
    # Chunk bounds as MongoDB cuts them: key values of the documents, some with MinKey for the second field.
    cuts: list[tuple[Any, ...]] = []
    for document in rng.sample(documents, 12):
        region, rank = (_value(document, name) for name in FIELDS)
        bound = (None if region is _MISSING else region, MinKey() if rng.random() < 0.3 else
                 None if rank is _MISSING else rank)
        cuts.append(bound)
    cuts = sorted({tuple(order_key(value) for value in cut): cut for cut in cuts}.values(),
                  key=lambda cut: tuple(order_key(value) for value in cut))
    edges: list[tuple[Any, ...] | None] = [None, *cuts, None]
    # The first field's types as the plan finds them (its lowest and highest value), or every type.
    places = sorted(bracket(None if _value(document, FIELDS[0]) is _MISSING else _value(document, FIELDS[0]))
                    for document in documents)
    span = (places[0], places[-1])
    assert span != (0, len(TYPES) - 1)
    ranges = [KeyRange(FIELDS, edges[index], edges[index + 1], known)
              for known in (None, span) for index in range(len(edges) - 1)]
    assert len(keys) > 20 and len(ranges) > 16

    held = [_matching(documents, key_range) for key_range in ranges]
    for known in (None, span):
        everything = [identifier for key_range, part in zip(ranges, held, strict=True) if key_range.span == known
                      for identifier in part]
        assert sorted(everything) == sorted(document["_id"] for document in documents)  # each once, none lost
    for key_range, part in zip(ranges, held, strict=True):
        low = None if key_range.lower is None else tuple(order_key(value) for value in key_range.lower)
        high = None if key_range.upper is None else tuple(order_key(value) for value in key_range.upper)
        expected = [document["_id"] for document in documents
                    if (low is None or _sort_key(document)[:2] >= low) and (high is None or _sort_key(document)[:2] < high)]
        assert part == expected, key_range
        assert _holds_no_edge_value(key_range.query())
        # Resumed after any document of the range: exactly those after it, in the copy's order.
        for position in sorted(rng.sample(range(len(part)), min(len(part), 6))):
            identifier = part[position]
            document = next(document for document in documents if document["_id"] == identifier)
            after = key_range.position_of(document)
            assert _matching(documents, key_range, after) == part[position + 1:], (key_range, after)


def test_bounds_survive_a_checkpoint_without_min_or_max_key_values() -> None:
    bound = ("east", MinKey())
    stored = encode_bound(bound)
    assert stored == [{"value": "east"}, {"minKey": True}] and decode_bound(stored) == bound
    assert decode_bound(encode_bound((MaxKey(), None))) == (MaxKey(), None)
    assert KeyRange.from_document(KeyRange(("a",), None, (5,)).to_document()) == KeyRange(("a",), None, (5,))
    # The whole key space: no filter at all; an empty interval: nothing to read.
    assert KeyRange(("a", "b")).query() is True
    assert KeyRange(("a",), (MaxKey(),), None).query() == {"a": {"$type": "maxKey"}}
    # A key whose values are all strings (its span): the plain interval, as any index answers it.
    strings = TYPES.index("string")
    assert KeyRange(("a", "_id"), ("m", MinKey()), ("t", MinKey()), (strings, strings)).query() == {
        "$and": [{"a": {"$gte": "m"}}, {"a": {"$lt": "t"}}]}
    assert KeyRange(("a",), ("m",), None, (strings, strings)).query(["p", "id7"]) == {"$and": [
        {"a": {"$gte": "m"}}, {"$or": [{"a": {"$gt": "p"}}, {"$and": [{"a": "p"}, {"$or": [
            {"_id": {"$gt": "id7"}}, *({"_id": {"$type": kind}} for kind in TYPES[strings + 1:])]}]}]}]}


def test_a_checkpoint_of_an_id_range_saved_before_key_ranges_reads_as_one() -> None:
    saved = {"namespace": "shop.orders", "index": 2, "lower": "o00100", "upper": None, "resumable": True,
             "copied": 40, "last": "o00139", "hasLast": True, "done": False}  # as written before key ranges
    state = RangeState.from_document(saved)
    assert (state.id_range, state.key_range, state.shard, state.last_key) == (IdRange("o00100", None), None, None, None)
    assert state.to_document() == saved
    keyed = RangeState("shop.orders", 0, IdRange(), True, 5, "o7", True, False,
                       KeyRange(("region",), None, ("k5", MinKey())), "shard02", ["k1", "o7"])
    assert RangeState.from_document(keyed.to_document()) == keyed


def test_ranges_are_shared_out_among_runs_of_chunks_in_proportion_to_their_size() -> None:
    assert apportion([1, 1, 1, 1, 1, 1], 8) == [2, 2, 1, 1, 1, 1]  # whole rounds of 4 workers: 8, not 6
    assert apportion([30, 10], 4) == [3, 1]
    assert apportion([100, 1, 1], 2) == [1, 1, 1]  # one at least each: more than asked, never a run left out
    assert apportion([0, 0], 4) == [2, 2]


def test_chunks_are_grouped_into_runs_of_about_equal_size() -> None:
    assert groups([1, 1, 1, 1, 1, 1], 3) == [range(0, 2), range(2, 4), range(4, 6)]
    assert groups([10, 1, 1, 1, 1, 10], 2) == [range(0, 3), range(3, 6)]
    assert groups([5, 5, 5], 3) == [range(0, 1), range(1, 2), range(2, 3)]
    assert groups([0, 0, 0], 2) == [range(0, 1), range(1, 3)]
    assert groups([7], 1) == [range(0, 1)]


def test_the_emulator_sends_a_range_of_a_ranged_key_to_the_shards_owning_it() -> None:
    catalog = Catalog({"shard01": "h:1", "shard02": "h:2", "shard03": "h:3"}, (7, 0))
    catalog.add_database("db", "shard01")
    catalog.shard_collection("db.c", {"region": 1}, False, True, "shard01")
    for point in ("f", "m", "t"):
        catalog.split("db.c", {"region": point})
    collection = catalog.sharded("db.c")
    assert collection is not None
    for chunk, shard in zip(collection.chunks, ("shard01", "shard02", "shard03", "shard01"), strict=True):
        catalog.assign("db.c", chunk, shard)
    order = catalog.shard_order

    def reached(key_range: KeyRange) -> list[str]:
        query = key_range.query()
        return collection.shards_for({} if query is True else query, order)  # type: ignore[arg-type]

    assert reached(KeyRange(("region",), ("f",), ("m",))) == ["shard02"]
    assert reached(KeyRange(("region",), ("m",), ("t",))) == ["shard03"]
    assert reached(KeyRange(("region",), None, ("f",))) == ["shard01"]  # null, numbers and the first strings
    assert reached(KeyRange(("region",), ("t",), None)) == ["shard01"]
    assert reached(KeyRange(("region",), ("g",), ("p",))) == ["shard02", "shard03"]
    assert collection.shards_for({"region": {"$ne": "x"}}, order) == ["shard01", "shard02", "shard03"]
    assert collection.shards_for({"region": {"$gt": 5}}, order) == ["shard01"]  # numbers sort before strings
