"""A destination whose disk has as much free space as a test says: `FreeSpaceProxy` rewrites the disk
figures of every `dbStats` reply of the nx-27017 server behind it, and forwards everything else.

MongoDB's `dbStats` reports the filesystem that holds the database's files: `fsTotalSize` (its size)
and `fsUsedSize` (what is used of it), in bytes (the dbStats output reference, MongoDB manual).
nx-27017 0.8.1 reports them too, for the disk its data directory is on (measured) — which is large
and the same on every machine running the tests, so a test cannot make it small. With `free_bytes`
the proxy answers a 100 GiB disk with that much free; with None it leaves both figures out, as a
server that does not report them.
"""

from __future__ import annotations

from typing import Any

from tests.wire_proxy import WireProxy, _command_of, _reply

DISK_BYTES = 100 * 1024**3


class FreeSpaceProxy(WireProxy):
    def __init__(self, upstream_port: int, free_bytes: int | None) -> None:
        super().__init__(upstream_port)
        self.free_bytes = free_bytes
        self.rewritten = 0  # dbStats replies changed: a test knows its figures were asked for

    def start(self) -> FreeSpaceProxy:
        super().start()
        return self

    def rewrite(self, command: dict[str, Any] | None, request: bytes, reply: bytes) -> bytes:
        if not command or not {"dbStats", "dbstats"} & set(command):
            return reply
        answered = _command_of(reply) or {}
        answered.pop("fsTotalSize", None)
        answered.pop("fsUsedSize", None)
        if self.free_bytes is not None:
            answered.update(fsTotalSize=DISK_BYTES, fsUsedSize=DISK_BYTES - self.free_bytes)
        self.rewritten += 1
        return _reply(request, answered)
