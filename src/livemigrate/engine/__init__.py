"""The data plane: a live, resumable, verifiable copy of one MongoDB deployment into another.

It is laid out in layers, and imports point only downward (`tests/test_layers.py` checks it):

    coordinator/   migration (the phases in order), replay (the change loop and the cutover's drain),
                   late_collections, progress;   preflight.py beside it (`migrate --dry-run`)
    phases         discover.py → copy/ → capture/ → apply.py → verify/   (none imports another)
    the floor      mongo/: connect, reader, writer, collections, write_block, claim, destination_state
    shared state   checkpoints.py (what a restart resumes from), ledger.py (what verification knows)
    vocabulary     errors, options, events, changes (the change events), digests

No HTTP and no ORM in here: the agent and the CLI drive it, and it persists through the
`CheckpointStore` interface.

`Migration` is loaded on first use (PEP 562): the API server imports the phase names of `events`
and the error types, and should not pay for pymongo and the whole engine at each start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from livemigrate.engine.errors import EngineError
from livemigrate.engine.events import MigrationEvent, NamespaceProgress
from livemigrate.engine.options import CaptureScope, MigrationOptions

if TYPE_CHECKING:
    from livemigrate.engine.coordinator.migration import Migration

__all__ = ["CaptureScope", "EngineError", "Migration", "MigrationEvent", "MigrationOptions", "NamespaceProgress"]


def __getattr__(name: str) -> Any:
    if name == "Migration":
        from livemigrate.engine.coordinator.migration import Migration

        return Migration
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
