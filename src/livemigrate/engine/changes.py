"""The change-event vocabulary every phase speaks: the kinds of events, where an event belongs, when
it was made, and an event as a capture hands it over (with the stream it came from).

MongoDB documents the events' shapes (the change-events reference); nothing here reads or writes a
server: capture reads events, apply turns them into writes, the ledger marks what they name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bson.timestamp import Timestamp

DOCUMENT_OPERATIONS = frozenset({"insert", "update", "replace", "delete"})
COMMAND_OPERATIONS = frozenset({"drop", "rename", "dropDatabase", "create", "createIndexes", "dropIndexes",
                                "modify", "invalidate"})


def namespace_of(event: Mapping[str, Any]) -> str:
    ns = event.get("ns") or {}
    return f"{ns.get('db')}.{ns['coll']}" if ns.get("coll") else str(ns.get("db"))


@dataclass(frozen=True)
class CapturedEvent:
    stream: str
    event: dict[str, Any]


def event_time(event: Mapping[str, Any]) -> float | None:
    """Seconds since the epoch at which the source made the change (clusterTime, or wallTime)."""
    moment = event.get("clusterTime") or event.get("wallTime")
    if isinstance(moment, Timestamp):
        return float(moment.time)
    if isinstance(moment, datetime):
        aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        return aware.timestamp()
    return None
