"""Reading a range of a sharded collection's shard key: the copy of a collection sharded on a ranged key
follows its chunks (`copy/chunks.py`), and each of its ranges is an interval [lower, upper) of the key,
read through mongos — which sends it to the one shard owning it — sorted by the key's fields, then `_id`.

**The filter.** A bound is a tuple of values, one per key field, compared as MongoDB orders shard key
values: field after field (lexicographically), each in BSON order across types (MinKey < null < numbers
< strings < objects < arrays < BinData < ObjectId < booleans < dates < timestamps < regular expressions
< MaxKey), a missing field counting as null. A query's `$gt`/`$lt` compare only within one type (`$lt:
"m"` finds no number), so each comparison here is that operator *or* a `$type` of every type beyond it
(below it, for `$lt`, with null — which matches a missing field too); `t >= (a, b)` is `t1 > a or (t1 =
a and t2 >= b)`, and so on. Of those types, the first field's are only the ones its values were found in
when the copy was planned (`value_span`, two walks of the shard key index): a key of strings alone is
read with a plain `{key: {$gte: a, $lt: b}}`, which any server answers from its index. MinKey and MaxKey are never sent as values (a chunk bound holds them; a
server that stores no MinKey may refuse them in a filter, as nx-27017 does): `>= MinKey` is no condition,
`< MinKey` none can meet, and a bound of MinKey or MaxKey alone is no bound at all. Two approximations,
for documents that hold MinKey or MaxKey itself as a shard key value (which applications do not store):
`> MinKey` and `< MaxKey` are taken as no condition.

**Resuming.** A range is read after the last (key fields…, `_id`) it handed on — exact, since the
sort and the filter order values the same way, across types. The sort is not the shard key index's
order alone (ties of the key are ordered by `_id`): where no index starts with the key's fields and `_id`,
the server sorts the range, which MongoDB 4.4+ may spill to disk (`allowDiskUse`, asked for from that
release on; 6.0+ does so by default).

**A range's bounds in a checkpoint** are stored tagged (`{"value": v}`, `{"minKey": true}`, `{"maxKey":
true}`): checkpoints may live on a destination that cannot store MinKey/MaxKey (`destination_state.py`).
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import bson
from bson import Binary, Decimal128, ObjectId, Timestamp
from bson.datetime_ms import DatetimeMS
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.raw_bson import RawBSONDocument
from bson.regex import Regex
from pymongo import ASCENDING, MongoClient

from livemigrate.engine.mongo.connect import wire_version
from livemigrate.engine.mongo.faults import resumable_reads, retry
from livemigrate.engine.mongo.reader import in_batches, raw_collection
from livemigrate.engine.mongo.topology import value_at

# `$type` aliases in BSON order: a value's bracket is its place here.
TYPES = ("minKey", "null", "number", "string", "object", "array", "binData", "objectId", "bool", "date",
         "timestamp", "regex", "maxKey")
_MIN, _NULL, _MAX = 0, 1, len(TYPES) - 1
Filter = dict[str, Any] | bool  # True: no condition; False: none can meet it
Bound = tuple[Any, ...]


def bracket(value: Any) -> int | None:
    """The value's place in BSON order (an index of `TYPES`); None for a type not placed here."""
    kinds: tuple[tuple[Any, int], ...] = (
        (MinKey, _MIN), (type(None), _NULL), (bool, 8), ((int, float, Decimal128), 2), (str, 3), (Mapping, 4),
        ((list, tuple), 5), ((bytes, Binary), 6), (ObjectId, 7), ((datetime.datetime, DatetimeMS), 9),
        (Timestamp, 10), ((Regex, re.Pattern), 11), (MaxKey, _MAX))
    return next((place for kind, place in kinds if isinstance(value, kind)), None)


def _joined(operator: str, parts: Sequence[Filter], absorbing: bool) -> Filter:
    """`$and` (absorbing False) or `$or` (absorbing True) of `parts`, nested ones of the same kind flattened."""
    if any(part is absorbing for part in parts):
        return absorbing
    kept: list[Filter] = []
    for part in parts:
        if part is not (not absorbing):
            kept += part[operator] if isinstance(part, dict) and list(part) == [operator] else [part]
    return (not absorbing) if not kept else kept[0] if len(kept) == 1 else {operator: kept}


def _all(parts: Sequence[Filter]) -> Filter:
    return _joined("$and", parts, False)


def _any(parts: Sequence[Filter]) -> Filter:
    return _joined("$or", parts, True)


Span = tuple[int, int]  # the first and last bracket (`TYPES` places) a field's values were found in


def _types(name: str, places: range, span: Span) -> list[Filter]:
    return [{name: {"$type": TYPES[place]}} for place in places if span[0] <= place <= span[1]]


def _compare(name: str, op: str, value: Any, span: Span = (_MIN, _MAX)) -> Filter:
    """`name op value` ("eq", "gt", "gte", "lt") in BSON order across types, a missing field as null; of
    the other types, only those within `span` are looked for."""
    place = bracket(value)
    if op == "eq":
        if place in (_MIN, _MAX):
            return {name: {"$type": TYPES[place]}}
        return {name: {"$eq": value}} if place in (_NULL, 4) else {name: value}
    if place == _MIN:
        return op != "lt"
    if place == _MAX:
        return True if op == "lt" else False if op == "gt" else _compare(name, "eq", value)
    if place == _NULL:
        return {"gt": _any(_types(name, range(_NULL + 1, _MAX + 1), span)), "gte": True,
                "lt": {name: {"$type": "minKey"}}}[op]
    plain = {name: {f"${op}": value}}
    if place is None:  # a type this does not place: the server's own comparison
        return plain
    if op == "lt":
        nulls: list[Filter] = [{name: {"$eq": None}}] if span[0] <= _NULL <= span[1] else []
        return _any([plain, *nulls, *_types(name, range(_MIN, 1), span), *_types(name, range(2, place), span)])
    return _any([plain, *_types(name, range(place + 1, _MAX + 1), span)])


def _spans(fields: Sequence[str], span: Span | None) -> list[Span]:
    """Each field's span: the first field's as measured, every other's all of BSON's types."""
    return [(span if index == 0 and span is not None else (_MIN, _MAX)) for index in range(len(fields))]


def _from(fields: Sequence[str], bound: Bound, last: str, span: Span | None = None) -> Filter:
    """The tuple of `fields` above `bound` ("gt") or at or above it ("gte"), lexicographically: `t1 > b1 or
    (t1 = b1 and (t2, …) above (b2, …))` — `t1 >= b1` where the rest always holds (a bound of MinKey)."""
    spans = _spans(fields, span)

    def above(index: int) -> Filter:
        name, value = fields[index], bound[index]
        if index == len(fields) - 1:
            return _compare(name, last, value, spans[index])
        rest = above(index + 1)
        if rest is True or rest is False:
            return _compare(name, "gte" if rest else "gt", value, spans[index])
        return _any([_compare(name, "gt", value, spans[index]), _all([_compare(name, "eq", value), rest])])

    return above(0)


def _below(fields: Sequence[str], bound: Bound, span: Span | None = None) -> Filter:
    """The tuple of `fields` below `bound`, lexicographically."""
    spans = _spans(fields, span)

    def below(index: int) -> Filter:
        name, value = fields[index], bound[index]
        under = _compare(name, "lt", value, spans[index])
        if index == len(fields) - 1:
            return under
        return _any([under, _all([_compare(name, "eq", value), below(index + 1)])])

    return below(0)


def _value_at(document: Mapping[str, Any], path: str) -> Any:
    """`topology.value_at`, plain: a raw BSON sub-document decoded (the copy reads raw documents)."""
    value = value_at(document, path)
    return bson.decode(value.raw) if isinstance(value, RawBSONDocument) else value


def encode_bound(bound: Bound | None) -> list[dict[str, Any]] | None:
    if bound is None:
        return None
    return [{"minKey": True} if isinstance(value, MinKey) else {"maxKey": True} if isinstance(value, MaxKey)
            else {"value": value} for value in bound]


def decode_bound(stored: Sequence[Mapping[str, Any]] | None) -> Bound | None:
    if stored is None:
        return None
    return tuple(MinKey() if entry.get("minKey") else MaxKey() if entry.get("maxKey") else entry["value"]
                 for entry in stored)


@dataclass(frozen=True)
class KeyRange:
    """[lower, upper) of a shard key whose fields are `fields`; None: the key space's start (or end)."""

    fields: tuple[str, ...]
    lower: Bound | None = None
    upper: Bound | None = None
    # The brackets of the first field's values when the copy was planned (`value_span`): no document
    # the copy must read holds another type there (one written since is replayed from the change
    # stream), so the filter looks for no other. None: every type.
    span: Span | None = None

    @property
    def sort_fields(self) -> tuple[str, ...]:
        """The order a range is read and resumed in: the key's fields, then `_id` (unless the key holds it)."""
        return self.fields if "_id" in self.fields else (*self.fields, "_id")

    def query(self, after: Sequence[Any] | None = None) -> Filter:
        """The range's filter, past `after` (a position: a value per `sort_fields`) when resuming."""
        lower = True if self.lower is None else _from(self.fields, self.lower, "gte", self.span)
        upper = True if self.upper is None else _below(self.fields, self.upper, self.span)
        resume = True if after is None else _from(self.sort_fields, tuple(after), "gt", self.span)
        return _all([lower, upper, resume])

    def position_of(self, document: Mapping[str, Any]) -> list[Any]:
        """Where a read stands once `document` is handed on: its values of `sort_fields`."""
        return [_value_at(document, name) for name in self.sort_fields]

    def to_document(self) -> dict[str, Any]:
        return {"fields": list(self.fields), "lower": encode_bound(self.lower), "upper": encode_bound(self.upper),
                "span": list(self.span) if self.span is not None else None}

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> KeyRange:
        span = document.get("span")
        return cls(tuple(document["fields"]), decode_bound(document.get("lower")), decode_bound(document.get("upper")),
                   (int(span[0]), int(span[1])) if span is not None else None)


def read_key_batches(client: MongoClient[Any], namespace: str, key_range: KeyRange, after: Sequence[Any] | None,
                     batch_size: int) -> Iterator[list[RawBSONDocument]]:
    """Batches of the range's documents in (key…, `_id`) order, after `after` when resuming; a fault in the
    middle opens the read again after the last document handed on (`faults.resumable_reads`)."""
    collection = raw_collection(client, namespace)
    order = [(name, ASCENDING) for name in key_range.sort_fields]
    spill = retry(client, "asking the source's version", lambda: wire_version(client)) >= 9  # 4.4: allowDiskUse

    def open_from(position: Sequence[Any] | None) -> Iterator[list[RawBSONDocument]]:
        query = key_range.query(position)
        if query is False:
            return iter(())
        cursor = collection.find({} if query is True else query).sort(order).batch_size(batch_size)
        return in_batches(cursor.allow_disk_use(True) if spill else cursor, batch_size)

    return resumable_reads(client, f"reading {namespace} for the copy", open_from,
                           lambda batch: key_range.position_of(batch[-1]), after)


def value_span(client: MongoClient[Any], namespace: str, field: str) -> Span | None:
    """The brackets of the lowest and the highest value of `field` (a missing one as null): a walk to
    each end of the shard key index. None for an empty collection, or a value of a type not placed here."""
    collection = client[namespace.split(".", 1)[0]][namespace.split(".", 1)[1]]
    places = []
    for direction in (ASCENDING, -1):
        found = retry(client, f"reading the edges of {namespace}'s shard key", lambda direction=direction: list(  # type: ignore[misc]
            collection.find({}, {field: 1} | ({} if field == "_id" else {"_id": 0})).sort(field, direction).limit(1)))
        if not found:
            return None
        places.append(bracket(_value_at(found[0], field)))
    return (places[0], places[1]) if places[0] is not None and places[1] is not None else None


def split_points(client: MongoClient[Any], namespace: str, key_range: KeyRange, estimate: int,
                 parts: int) -> list[Bound]:
    """Key values that cut a range of about `estimate` documents into about `parts` (fewer when values
    repeat), in key order: one walk of the shard key index each (a skip over the range, sorted by the key)."""
    collection = client[namespace.split(".", 1)[0]][namespace.split(".", 1)[1]]
    query = key_range.query()
    if query is False or parts < 2 or estimate < 2:
        return []
    projection = {name: 1 for name in key_range.fields} | ({} if "_id" in key_range.fields else {"_id": 0})
    points: list[Bound] = []
    for number in range(1, parts):
        found = retry(client, f"planning the copy's ranges of {namespace}", lambda number=number: list(  # type: ignore[misc]
            collection.find({} if query is True else query, projection).sort(
                [(name, ASCENDING) for name in key_range.fields]).skip(estimate * number // parts).limit(1)))
        if not found:
            break
        point = tuple(_value_at(found[0], name) for name in key_range.fields)
        if point != key_range.lower and (not points or point != points[-1]):
            points.append(point)
    return points
