"""Which shards a query filter reaches through the mongos emulator (`tests/mongos.py`) when it bounds a
ranged shard key without naming its values: mongos targets a query by the bounds it puts on the shard
key ("Targeted Operations": a query on the shard key, or on the prefix of a compound one, goes only to
the shards whose chunks those bounds overlap). `Catalog.shards_for` asks here once the filter has no
equality (or `$in`) on every key field.

The bounds are those on the key's first field, as intervals of BSON order (`mongos_values.order_key`),
type-bracketed as MongoDB's comparison operators are (`$lt: "m"` reaches the strings below "m", never a
number or null; `$gt: MinKey` and `$lt: MaxKey` reach every type): equality and `$in` (points; null
also stands for a missing field), `$gt`, `$gte`, `$lt`, `$lte`, `$type` (the whole bracket of an alias),
`$and` (the intersection of its parts), `$or` (their union). Anything else on the field (`$ne`, `$nin`,
`$regex`, `$exists`, `$not`, `$expr`, `$nor`, a nested-document form of a dotted field, ...) bounds
nothing: reaching a shard too many is never wrong (the shard finds nothing of its own), one too few would
lose documents. A filter whose bounds meet no chunk goes to the first shard owning one, as MongoDB sends
such a query to one shard.

Not emulated: bounds on a compound key's later fields (a chunk is reached when its span of the first
field meets the bounds); ranges on a hashed key (they reach every shard, as on MongoDB); collations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.regex import Regex

from tests.mongos_values import order_key

Interval = tuple[tuple[Any, ...], bool, tuple[Any, ...], bool]  # low, low included, high, high included
_LOWEST, _HIGHEST = (0,), (99,)
EVERYTHING: list[Interval] = [(_LOWEST, True, _HIGHEST, True)]
TYPE_RANKS = {"minKey": 1, "null": 2, "undefined": 2, "number": 3, "double": 3, "int": 3, "long": 3,
               "decimal": 3, "string": 4, "symbol": 4, "object": 5, "array": 6, "binData": 7, "objectId": 8,
               "bool": 9, "date": 10, "timestamp": 11, "regex": 12, "maxKey": 13}


def _comparison(operator: str, value: Any) -> list[Interval] | None:
    key = order_key(value)
    if isinstance(value, MinKey | MaxKey):  # not bracketed: the ends of the whole order
        start, end = _LOWEST, _HIGHEST
    else:
        start, end = (key[0],), (key[0] + 1,)
    return {"$gt": [(key, False, end, False)], "$gte": [(key, True, end, False)],
            "$lt": [(start, True, key, False)], "$lte": [(start, True, key, True)]}.get(operator)


def _point(value: Any) -> list[Interval] | None:
    if isinstance(value, list | Regex) or hasattr(value, "pattern"):
        return None
    key = order_key(value)
    return [(key, True, key, True)]


def _condition(condition: Any) -> list[Interval]:
    """The intervals one field's condition allows."""
    if not (isinstance(condition, Mapping) and condition and all(str(name).startswith("$") for name in condition)):
        return _point(condition) or EVERYTHING
    allowed = EVERYTHING
    for operator, value in condition.items():
        found: list[Interval] | None
        if operator == "$eq":
            found = _point(value)
        elif operator == "$in" and isinstance(value, list):
            points = [_point(item) for item in value]
            found = None if any(point is None for point in points) else [p for point in points for p in point or []]
        elif operator == "$type":
            aliases = value if isinstance(value, list) else [value]
            ranks = [TYPE_RANKS.get(alias) if isinstance(alias, str) else None for alias in aliases]
            found = None if None in ranks else [((rank,), True, (rank + 1,), False) for rank in ranks if rank]
        else:
            found = _comparison(operator, value)
        allowed = _intersect(allowed, found if found is not None else EVERYTHING)
    return allowed


def _intersect(left: list[Interval], right: list[Interval]) -> list[Interval]:
    both: list[Interval] = []
    for low_a, in_a, high_a, up_a in left:
        for low_b, in_b, high_b, up_b in right:
            low, low_in = (low_a, in_a) if low_a > low_b else (low_b, in_b) if low_b > low_a else (low_a, in_a and in_b)
            high, high_in = (high_a, up_a) if high_a < high_b else (high_b, up_b) if high_b < high_a \
                else (high_a, up_a and up_b)
            if low < high or (low == high and low_in and high_in):
                both.append((low, low_in, high, high_in))
    return both


def bounds(query: Mapping[str, Any], name: str) -> list[Interval]:
    """The intervals of field `name` a filter can match (EVERYTHING when it does not bound it)."""
    allowed = EVERYTHING
    for field, condition in query.items():
        if field == name:
            allowed = _intersect(allowed, _condition(condition))
        elif field == "$and" and isinstance(condition, list):
            for part in condition:
                if isinstance(part, Mapping):
                    allowed = _intersect(allowed, bounds(part, name))
        elif field == "$or" and isinstance(condition, list) and condition:
            union = [interval for part in condition if isinstance(part, Mapping) for interval in bounds(part, name)]
            if all(isinstance(part, Mapping) for part in condition):
                allowed = _intersect(allowed, union)
    return allowed


def _meets(interval: Interval, low: tuple[Any, ...], high: tuple[Any, ...], high_in: bool) -> bool:
    """Whether an interval meets a chunk's span of the first field: [low, high), or [low, high]."""
    start, start_in, end, end_in = interval
    below_high = start < high or (start == high and start_in and high_in)
    above_low = end > low or (end == low and end_in)
    return below_high and above_low


def targeted(fields: Sequence[str], chunks: Sequence[Any], query: Mapping[str, Any], shard_order: list[str],
             owners: list[str]) -> list[str]:
    """The shards owning a chunk the filter's bounds on the first key field meet (see the module)."""
    first = fields[0]
    allowed = bounds(query, first)
    if allowed == EVERYTHING:
        return owners
    reached = set()
    for chunk in chunks:
        low, high = order_key(chunk.min.get(first)), order_key(chunk.max.get(first))
        # A compound key's chunk may hold its max's first value (its later fields above MinKey); MaxKey
        # itself lands in the last chunk.
        high_in = len(fields) > 1 or isinstance(chunk.max.get(first), MaxKey)
        if any(_meets(interval, low, high, high_in) for interval in allowed):
            reached.add(chunk.shard)
    return [shard for shard in shard_order if shard in reached] or owners[:1]
