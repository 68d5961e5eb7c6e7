"""Values as mongos sees them, for the emulator (`tests/mongos.py`): BSON's comparison order (chunk ranges
and merged sorts depend on it), the hashed shard key's hash, nx-27017's JSON-encoded change event
documents turned back into BSON values, and a small query matcher and pipeline evaluator for what the
emulator answers itself (the `config` database, the stages a merge runs after the shards' part).

BSON order (MongoDB's "Comparison/Sort Order"): MinKey < null < numbers < strings < objects < arrays <
BinData < ObjectId < booleans < dates < timestamps < regular expressions < MaxKey. Numbers compare by
value whatever their type; strings by their UTF-8 bytes (the simple collation); objects field by field
(the value's type, then the name, then the value); BinData by length, then subtype, then bytes. A
missing field sorts as null. In a sort an array field sorts by its smallest element ascending and its
largest descending.
"""

from __future__ import annotations

import base64
import datetime
import functools
import hashlib
import math
import random
import re
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any

import bson
from bson import Binary, Code, Decimal128, Int64, ObjectId, Regex, Timestamp
from bson.datetime_ms import DatetimeMS
from bson.max_key import MaxKey
from bson.min_key import MinKey

from tests.mongos_wire import CommandError

_EPOCH = datetime.datetime(1970, 1, 1)


def order_key(value: Any) -> tuple[Any, ...]:
    """A Python-comparable key that orders values as BSON does (see the module)."""
    if isinstance(value, MinKey):
        return (1,)
    if value is None:
        return (2,)
    if isinstance(value, bool):
        return (9, value)
    if isinstance(value, int | float | Decimal128):
        number: Any = value.to_decimal() if isinstance(value, Decimal128) else value
        if isinstance(number, float | Decimal) and math.isnan(number):
            return (3, 0)  # NaN sorts below every other number
        return (3, 1, number)
    if isinstance(value, str):
        return (4, value.encode())
    if isinstance(value, Mapping):
        return (5, tuple((order_key(item)[0], str(name), order_key(item)) for name, item in value.items()))
    if isinstance(value, list | tuple):
        return (6, tuple(order_key(item) for item in value))
    if isinstance(value, bytes | Binary):
        subtype = value.subtype if isinstance(value, Binary) else 0
        return (7, len(value), subtype, bytes(value))
    if isinstance(value, ObjectId):
        return (8, value.binary)
    if isinstance(value, datetime.datetime):
        naive = value.astimezone(datetime.UTC).replace(tzinfo=None) if value.tzinfo else value
        return (10, (naive - _EPOCH) // datetime.timedelta(milliseconds=1))
    if isinstance(value, DatetimeMS):
        return (10, int(value))
    if isinstance(value, Timestamp):
        return (11, value.time, value.inc)
    if isinstance(value, Regex | re.Pattern):
        flags = value.flags if isinstance(value.flags, str) else str(value.flags)
        return (12, value.pattern, flags)
    if isinstance(value, MaxKey):
        return (13,)
    if isinstance(value, Code):
        return (12, str(value), "")
    return (14, repr(value))


def same(left: Any, right: Any) -> bool:
    """BSON equality: 1 == 1.0 == Int64(1); objects equal with their fields in the same order."""
    return order_key(left) == order_key(right)


def path_value(document: Mapping[str, Any] | None, path: str) -> Any:
    """The value at a dotted path, None when missing (no array traversal: shard keys hold no arrays)."""
    current: Any = document
    for part in path.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return None
        current = current[part]
    return current


def sort_comparator(spec: Mapping[str, Any]) -> Callable[[Mapping[str, Any], Mapping[str, Any]], int]:
    """A cmp function ordering documents by a sort specification ({field: 1 | -1, ...}) in BSON order."""
    fields = [(name, -1 if direction in (-1, -1.0) else 1) for name, direction in spec.items()]

    def sort_value(document: Mapping[str, Any], name: str, direction: int) -> tuple[Any, ...]:
        value = path_value(document, name)
        if isinstance(value, list) and value:
            keys = [order_key(item) for item in value]
            return min(keys) if direction == 1 else max(keys)
        return order_key(value)

    def compare(left: Mapping[str, Any], right: Mapping[str, Any]) -> int:
        for name, direction in fields:
            a, b = sort_value(left, name, direction), sort_value(right, name, direction)
            if a != b:
                return direction if a > b else -direction
        return 0

    return compare


def sorted_documents(documents: Iterable[dict[str, Any]], spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    return sorted(documents, key=functools.cmp_to_key(sort_comparator(spec)))


def hashed(value: Any) -> Int64:
    """The 64-bit hash of a hashed shard key's value. MongoDB's is an MD5 of the value's BSON (seeded,
    after truncating floating-point numbers to 64-bit integers); this one is also an MD5 of the BSON,
    numbers normalised the same way, so that 2, Int64(2) and 2.7 hash alike, but its values are not
    MongoDB's: tests compare placements through the emulator, never with MongoDB's hashes."""
    if isinstance(value, bool):
        normalized: Any = value
    elif isinstance(value, int | float) and not (isinstance(value, float) and not math.isfinite(value)):
        normalized = Int64(max(-2 ** 63, min(2 ** 63 - 1, int(value))))
    else:
        normalized = value
    digest = hashlib.md5(bson.encode({"": normalized})).digest()
    return Int64(int.from_bytes(digest[:8], "little", signed=True))


def from_nx_json(value: Any) -> Any:
    """nx-27017 hands change events' documents over as parsed JSON: an ObjectId becomes
    `{"__neosqlite_objectid__": true, "id": hex}`, BinData `{"__neosqlite_binary__": true, ...}`, a date
    `{"$date": iso}` (measured). This turns them back into the BSON values that were stored."""
    if isinstance(value, list):
        return [from_nx_json(item) for item in value]
    if not isinstance(value, dict):
        return value
    if value.get("__neosqlite_objectid__") is True and "id" in value:
        return ObjectId(value["id"])
    if value.get("__neosqlite_binary__") is True and "data" in value:
        data = base64.b64decode(value["data"])
        subtype = int(value.get("subtype", 0))
        return data if subtype == 0 else Binary(data, subtype)
    if set(value) == {"$date"} and isinstance(value["$date"], str):
        return datetime.datetime.fromisoformat(value["$date"].replace("Z", "+00:00")).replace(tzinfo=None)
    if set(value) == {"$oid"}:
        return ObjectId(value["$oid"])
    return {name: from_nx_json(item) for name, item in value.items()}


# --- a query matcher, for documents the emulator holds itself -------------------------------------------

def _candidates(document: Any, path: list[str]) -> list[Any]:
    """Every value a query path reaches, arrays traversed as MongoDB does (the array itself too)."""
    if not path:
        return [document]
    if isinstance(document, list):
        found = [value for item in document for value in _candidates(item, path)]
        if path[0].isdigit() and int(path[0]) < len(document):
            found += _candidates(document[int(path[0])], path[1:])
        return found
    if not isinstance(document, Mapping) or path[0] not in document:
        return []
    value = document[path[0]]
    found = _candidates(value, path[1:])
    if isinstance(value, list) and len(path) == 1:
        found = [value, *value]
    return found


def _comparable(left: Any, right: Any) -> bool:
    return order_key(left)[0] == order_key(right)[0]


def _regex_matches(value: Any, pattern: Any, options: str = "") -> bool:
    if not isinstance(value, str):
        return False
    if isinstance(pattern, Regex):
        pattern = pattern.try_compile()
    if isinstance(pattern, re.Pattern):
        return pattern.search(value) is not None
    flags = (re.IGNORECASE if "i" in options else 0) | (re.MULTILINE if "m" in options else 0) \
        | (re.DOTALL if "s" in options else 0) | (re.VERBOSE if "x" in options else 0)
    return re.search(str(pattern), value, flags) is not None


def _equals_any(values: list[Any], wanted: Any) -> bool:
    if isinstance(wanted, Regex | re.Pattern):
        return any(_regex_matches(value, wanted) for value in values)
    if wanted is None and not values:
        return True
    return any(same(value, wanted) for value in values)


def _operator_matches(values: list[Any], operator: str, argument: Any, condition: Mapping[str, Any]) -> bool:
    if operator == "$eq":
        return _equals_any(values, argument)
    if operator == "$ne":
        return not _equals_any(values, argument)
    if operator in ("$gt", "$gte", "$lt", "$lte"):
        wanted = order_key(argument)
        tests = {"$gt": lambda key: key > wanted, "$gte": lambda key: key >= wanted,
                 "$lt": lambda key: key < wanted, "$lte": lambda key: key <= wanted}[operator]
        return any(_comparable(value, argument) and tests(order_key(value)) for value in values)
    if operator == "$in":
        return any(_equals_any(values, item) for item in argument)
    if operator == "$nin":
        return not any(_equals_any(values, item) for item in argument)
    if operator == "$exists":
        return bool(values) == bool(argument)
    if operator == "$not":
        return not _condition_matches(values, argument)
    if operator == "$regex":
        return any(_regex_matches(value, argument, str(condition.get("$options", ""))) for value in values)
    if operator == "$options":
        return True
    if operator == "$size":
        return any(isinstance(value, list) and len(value) == argument for value in values)
    if operator == "$all":
        return all(_equals_any(values, item) for item in argument)
    if operator == "$elemMatch":
        return any(isinstance(value, list) and any(
            matches(item, argument) if isinstance(item, Mapping) else _condition_matches([item], argument)
            for item in value) for value in values)
    raise CommandError(115, f"query operator {operator} is not supported by the mongos emulator here")


def _condition_matches(values: list[Any], condition: Any) -> bool:
    if isinstance(condition, Mapping) and condition and all(str(name).startswith("$") for name in condition):
        return all(_operator_matches(values, operator, argument, condition)
                   for operator, argument in condition.items())
    return _equals_any(values, condition)


def matches(document: Any, query: Mapping[str, Any]) -> bool:
    """Whether `document` matches a query filter (equality, comparison, $in/$nin, $exists, $regex, $not,
    $size, $all, $elemMatch, $and/$or/$nor). Anything else is refused, never guessed."""
    for name, condition in query.items():
        if name == "$and":
            if not all(matches(document, part) for part in condition):
                return False
        elif name == "$or":
            if not any(matches(document, part) for part in condition):
                return False
        elif name == "$nor":
            if any(matches(document, part) for part in condition):
                return False
        elif name.startswith("$"):
            raise CommandError(115, f"query operator {name} is not supported by the mongos emulator here")
        elif not _condition_matches(_candidates(document, name.split(".")), condition):
            return False
    return True


# --- projection and the stages the emulator runs after merging ------------------------------------------

def project(document: Mapping[str, Any], projection: Mapping[str, Any]) -> dict[str, Any]:
    """An inclusion or exclusion projection of plain fields (dotted paths included); `_id` kept unless
    excluded. Computed fields are refused."""
    fields = {name: value for name, value in projection.items() if name != "_id"}
    if any(not isinstance(value, bool | int | float) for value in fields.values()):
        raise CommandError(115, "computed projections are not supported by the mongos emulator here")
    keep_id = bool(projection.get("_id", 1))
    if fields and all(bool(value) for value in fields.values()):
        result: dict[str, Any] = {"_id": document["_id"]} if keep_id and "_id" in document else {}
        for name in fields:
            _copy_path(document, result, name.split("."))
        return result
    result = {name: value for name, value in document.items() if keep_id or name != "_id"}
    for name in fields:
        _drop_path(result, name.split("."))
    return result


def _copy_path(source: Any, target: dict[str, Any], path: list[str]) -> None:
    if not isinstance(source, Mapping) or path[0] not in source:
        return
    if len(path) == 1:
        target[path[0]] = source[path[0]]
        return
    child = target.setdefault(path[0], {})
    if isinstance(child, dict):
        _copy_path(source[path[0]], child, path[1:])


def _drop_path(target: Any, path: list[str]) -> None:
    if not isinstance(target, dict) or path[0] not in target:
        return
    if len(path) == 1:
        del target[path[0]]
    else:
        target[path[0]] = dict(target[path[0]]) if isinstance(target[path[0]], Mapping) else target[path[0]]
        _drop_path(target[path[0]], path[1:])


def _evaluate(expression: Any, document: Mapping[str, Any]) -> Any:
    if isinstance(expression, str) and expression.startswith("$"):
        return path_value(document, expression[1:])
    if isinstance(expression, Mapping):
        if any(str(name).startswith("$") for name in expression):
            raise CommandError(115, f"expression {dict(expression)} is not supported by the mongos emulator here")
        return {name: _evaluate(value, document) for name, value in expression.items()}
    return expression


def _group(documents: list[dict[str, Any]], spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    counts: dict[tuple[Any, ...], dict[str, int]] = {}
    for document in documents:
        key_value = _evaluate(spec.get("_id"), document)
        key = order_key(key_value)
        group = groups.setdefault(key, {"_id": key_value})
        tally = counts.setdefault(key, {})
        for name, accumulator in spec.items():
            if name == "_id":
                continue
            ((operator, argument),) = accumulator.items()
            value = _evaluate(argument, document)
            if operator in ("$sum", "$avg"):
                number = value if isinstance(value, int | float) and not isinstance(value, bool) else 0
                group[name] = group.get(name, 0) + number
                tally[name] = tally.get(name, 0) + 1
            elif operator in ("$min", "$max"):
                if value is not None and (name not in group or (order_key(value) < order_key(group[name])) ==
                                          (operator == "$min")):
                    group[name] = value
            elif operator == "$first":
                group.setdefault(name, value)
            elif operator == "$last":
                group[name] = value
            elif operator == "$push":
                group.setdefault(name, []).append(value)
            elif operator == "$addToSet":
                items = group.setdefault(name, [])
                if not any(same(item, value) for item in items):
                    items.append(value)
            else:
                raise CommandError(115, f"accumulator {operator} is not supported by the mongos emulator here")
    for key, group in groups.items():
        for name, accumulator in spec.items():
            if name != "_id" and next(iter(accumulator)) == "$avg":
                group[name] = group[name] / counts[key][name] if counts[key].get(name) else None
    return list(groups.values())


def run_stages(documents: list[dict[str, Any]], stages: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The stages a mongos runs on the merged results: $match, $project, $unset, $sort, $skip, $limit,
    $count, $group (field paths and literals), $sample."""
    for stage in stages:
        ((name, argument),) = stage.items()
        if name == "$match":
            documents = [document for document in documents if matches(document, argument)]
        elif name == "$project":
            documents = [project(document, argument) for document in documents]
        elif name == "$unset":
            names = [argument] if isinstance(argument, str) else list(argument)
            documents = [project(document, dict.fromkeys(names, 0)) for document in documents]
        elif name == "$sort":
            documents = sorted_documents(documents, argument)
        elif name == "$skip":
            documents = documents[int(argument):]
        elif name == "$limit":
            documents = documents[:int(argument)]
        elif name == "$count":
            documents = [{argument: len(documents)}] if documents else []
        elif name == "$group":
            documents = _group(documents, argument)
        elif name == "$sample":
            documents = random.sample(documents, min(len(documents), int(argument.get("size", 0))))
        else:
            raise CommandError(115, f"stage {name} is not supported by the mongos emulator after a merge")
    return documents
