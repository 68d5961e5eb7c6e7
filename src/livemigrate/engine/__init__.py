"""The data plane: a live, resumable, verifiable copy of one MongoDB deployment into another.

It reads as its phases: `discover` → `copy` (`reader` → `writer`) → `capture` → `apply` →
`verify`, coordinated by `migration`, with `checkpoints` beside them. No HTTP and no ORM in here:
the agent and the CLI drive it, and it persists through the `CheckpointStore` interface.
"""

from livemigrate.engine.errors import EngineError
from livemigrate.engine.events import MigrationEvent, NamespaceProgress
from livemigrate.engine.migration import Migration
from livemigrate.engine.options import CaptureScope, MigrationOptions

__all__ = ["CaptureScope", "EngineError", "Migration", "MigrationEvent", "MigrationOptions", "NamespaceProgress"]
