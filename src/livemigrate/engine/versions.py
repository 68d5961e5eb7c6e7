"""The MongoDB versions livemigrate's behaviour depends on, in one place: each feature with the release
that brought it, as a release (what the inventory reports) and as a wire version (what `hello` answers).

MongoDB's driver specifications map each release to its wire version; livemigrate reads both.
"""

from __future__ import annotations

# A server's `maxWireVersion` and the release it means.
RELEASE_OF_WIRE_VERSION = {6: "3.6", 7: "4.0", 8: "4.2", 9: "4.4", 13: "5.0", 17: "6.0", 21: "7.0", 25: "8.0"}

MINIMUM_SOURCE = (3, 6)  # change streams: the oldest source a live migration can follow
DEPLOYMENT_STREAMS = (4, 0)  # a deployment-wide change stream (`client.watch()`)
WRITE_BLOCKING = (6, 0)  # setUserWriteBlockMode, which the cutover's drain engages

WIRE_DEPLOYMENT_STREAMS = 7  # 4.0, as a wire version
WIRE_WRITE_BLOCKING = 17  # 6.0: setUserWriteBlockMode
WIRE_EXPANDED_EVENTS = 17  # 6.0: `showExpandedEvents` — create, createIndexes, dropIndexes, modify events


def release_of(max_wire_version: int) -> str | None:
    """The newest release whose wire version a server reports, or None below the oldest one known."""
    known = [wire for wire in RELEASE_OF_WIRE_VERSION if wire <= max_wire_version]
    return RELEASE_OF_WIRE_VERSION[max(known)] if known else None
