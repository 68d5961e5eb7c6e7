"""The `--capture` choice, shared by `migrate`, `agent` and `serve --agent-capture`.

Its own enum rather than the engine's `CaptureScope`: importing the engine loads pymongo, and the
API commands should start quickly.
"""

from __future__ import annotations

from enum import Enum


class Capture(str, Enum):
    auto = "auto"
    cluster = "cluster"
    collection = "collection"


CAPTURE_HELP = ("auto (deployment-wide on MongoDB 4.0+), cluster, or collection (one stream per collection: for a "
                "server whose deployment-wide stream never emits, or a user allowed to watch only its collections).")
