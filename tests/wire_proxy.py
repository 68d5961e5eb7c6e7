"""MongoDB wire-protocol proxies that make a real server (nx-27017) answer one command the way another
MongoDB would, to reach states nx-27017 never shows:

- `HistoryLostProxy`: an `aggregate` that resumes a change stream (`$changeStream.resumeAfter`) is
  answered with ChangeStreamHistoryLost (code 286), as MongoDB answers when the oplog no longer
  holds the resume point;
- `OldVersionProxy`: `buildInfo` says MongoDB 3.4, a release live migration does not support;
- `StandaloneProxy`: every change stream is refused (code 40573), as a standalone `mongod` refuses them;
- `SlowCopyProxy`: the initial copy's unordered `insert`s wait a moment each, as on a destination far
  away, so that a copy of a few thousand documents lasts long enough to be seen moving;
- `WriteBlockProxy`: a MongoDB 6.0 that blocks user writes: `buildInfo` says 6.0.0 and
  `setUserWriteBlockMode` is answered as 6.0 answers it, each call recorded;
- `NoWriteBlockProxy`: a MongoDB older than 6.0: `setUserWriteBlockMode` is refused (CommandNotFound),
  after a delay that gives the test a moment in the drain while the application still writes;
- `CollectionOptionsProxy`: `listCollections` answers with collection options (capped, time-series,
  clustered, collation, validator) and views, as a MongoDB that keeps them would: nx-27017 keeps no
  options, and has no views or time-series collections;
- `ShortHistoryProxy`: the source keeps its change history for T seconds only, as an oplog that small
  would: a change stream cursor not read for longer than T, or a resume from a token first seen more
  than T ago, is answered ChangeStreamHistoryLost (286).
- `OplogWindowProxy`: the server keeps T seconds of oplog: the first and the last entry of
  `local.oplog.rs` (a `find` sorted on `$natural`, as the pre-flight reads the change history) are T
  seconds apart, as a replica set's oplog of that size shows them; nx-27017 has no oplog to read;
- `ReadOnlyProxy`: the client's user may read but not write, as a user holding only `readAnyDatabase`:
  `connectionStatus` (with `showPrivileges`) names that user and its privileges as MongoDB lists that
  role's (find, listCollections, listIndexes, collStats, dbStats, changeStream on every database;
  listDatabases on the cluster), and every `insert`, `update`, `delete`, `findAndModify` and
  `drop`/`dropDatabase` is refused with Unauthorized (13).

Every other message is forwarded unchanged.
"""

from __future__ import annotations

import asyncio
import struct
import threading
import time
from typing import Any

import bson

from tests.loopback import LoopbackServer

OP_MSG = 2013


def _command_of(message: bytes) -> dict[str, Any] | None:
    opcode = struct.unpack_from("<i", message, 12)[0]
    if opcode != OP_MSG or message[20] != 0:
        return None
    length = struct.unpack_from("<i", message, 21)[0]
    return bson.decode(message[21:21 + length])


def _opens_change_stream(command: dict[str, Any] | None) -> bool:
    pipeline = (command or {}).get("pipeline") or []
    return "aggregate" in (command or {}) and bool(pipeline) and "$changeStream" in pipeline[0]


def _resumes_change_stream(command: dict[str, Any] | None) -> bool:
    if not command or "aggregate" not in command:
        return False
    pipeline = command.get("pipeline") or []
    first = pipeline[0] if pipeline else {}
    stage = first.get("$changeStream") if isinstance(first, dict) else None
    return isinstance(stage, dict) and ("resumeAfter" in stage or "startAfter" in stage)


def _reply(request: bytes, document: dict[str, Any]) -> bytes:
    request_id = struct.unpack_from("<i", request, 4)[0]
    payload = struct.pack("<i", 0) + b"\x00" + bson.encode(document)
    return struct.pack("<iiii", 16 + len(payload), 1, request_id, OP_MSG) + payload


class WireProxy(LoopbackServer):
    """Forwards messages to the upstream server; `answer()` may answer a command in its place."""

    def answer(self, command: dict[str, Any] | None) -> dict[str, Any] | None:
        return None

    def delay(self, command: dict[str, Any] | None) -> float:
        """Seconds to wait before forwarding the command."""
        return 0.0

    def observe(self, command: dict[str, Any] | None, reply: bytes) -> None:
        """Called with each command forwarded and the upstream's reply to it."""

    def rewrite(self, command: dict[str, Any] | None, request: bytes, reply: bytes) -> bytes:
        """The reply passed on to the client for a forwarded command: the upstream's, unless changed here."""
        return reply

    def __init__(self, upstream_port: int) -> None:
        super().__init__()
        self.upstream_port = upstream_port
        self.answered = 0

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    def start(self) -> WireProxy:
        super().start()
        return self

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        try:
            while True:
                header = await reader.readexactly(4)
                message = header + await reader.readexactly(struct.unpack("<i", header)[0] - 4)
                command = _command_of(message)
                wait = self.delay(command)
                if wait > 0:
                    await asyncio.sleep(wait)
                replacement = self.answer(command)
                if replacement is not None:
                    self.answered += 1
                    writer.write(_reply(message, replacement))
                    await writer.drain()
                    continue
                up_writer.write(message)
                await up_writer.drain()
                reply_header = await up_reader.readexactly(4)
                reply = reply_header + await up_reader.readexactly(struct.unpack("<i", reply_header)[0] - 4)
                self.observe(command, reply)
                writer.write(self.rewrite(command, message, reply))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            up_writer.close()
            writer.close()


class HistoryLostProxy(WireProxy):
    def answer(self, command: dict[str, Any] | None) -> dict[str, Any] | None:
        if not _resumes_change_stream(command):
            return None
        return {"ok": 0.0, "errmsg": "Resume of change stream was not possible, as the resume point may no longer "
                "be in the oplog.", "code": 286, "codeName": "ChangeStreamHistoryLost"}


class OldVersionProxy(WireProxy):
    def answer(self, command: dict[str, Any] | None) -> dict[str, Any] | None:
        if not command or not ({"buildInfo", "buildinfo"} & set(command)):
            return None
        return {"ok": 1.0, "version": "3.4.24", "versionArray": [3, 4, 24, 0]}


class StandaloneProxy(WireProxy):
    def answer(self, command: dict[str, Any] | None) -> dict[str, Any] | None:
        if not _opens_change_stream(command):
            return None
        return {"ok": 0.0, "errmsg": "The $changeStream stage is only supported on replica sets", "code": 40573,
                "codeName": "Location40573"}


class SlowCopyProxy(WireProxy):
    def __init__(self, upstream_port: int, seconds_per_batch: float = 0.8) -> None:
        super().__init__(upstream_port)
        self.seconds_per_batch = seconds_per_batch

    def delay(self, command: dict[str, Any] | None) -> float:
        copying = bool(command) and "insert" in command and command.get("ordered") is False  # type: ignore[operator]
        return self.seconds_per_batch if copying else 0.0


_HISTORY_LOST = {"ok": 0.0, "errmsg": "Resume of change stream was not possible, as the resume point may no longer be "
                 "in the oplog.", "code": 286, "codeName": "ChangeStreamHistoryLost"}


class ShortHistoryProxy(WireProxy):
    def __init__(self, upstream_port: int, seconds: float) -> None:
        super().__init__(upstream_port)
        self.seconds = seconds
        self.refused = 0
        self._first_seen: dict[str, float] = {}  # resume token -> when a reply first carried it
        self._last_read: dict[int, float] = {}  # change stream cursor id -> when it last answered

    def answer(self, command: dict[str, Any] | None) -> dict[str, Any] | None:
        now = time.monotonic()
        if _resumes_change_stream(command):
            assert command is not None
            stage = command["pipeline"][0]["$changeStream"]
            token = (stage.get("resumeAfter") or stage.get("startAfter") or {}).get("_data")
            seen = self._first_seen.get(str(token))
            if seen is not None and now - seen > self.seconds:
                self.refused += 1
                return _HISTORY_LOST
        if command and "getMore" in command:
            last = self._last_read.get(int(command["getMore"]))
            if last is not None and now - last > self.seconds:  # its position fell out of the history meanwhile
                self.refused += 1
                return _HISTORY_LOST
        return None

    def observe(self, command: dict[str, Any] | None, reply: bytes) -> None:
        if not command or not (_opens_change_stream(command)
                               or "getMore" in command and int(command["getMore"]) in self._last_read):
            return
        answered = _command_of(reply) or {}
        cursor = answered.get("cursor") or {}
        now = time.monotonic()
        if cursor.get("id"):
            self._last_read[int(cursor["id"])] = now
        tokens = [event.get("_id") for event in [*cursor.get("firstBatch", []), *cursor.get("nextBatch", [])]]
        for token in [*tokens, cursor.get("postBatchResumeToken")]:
            if isinstance(token, dict) and "_data" in token:
                self._first_seen.setdefault(str(token["_data"]), now)


class WriteBlockProxy(WireProxy):
    def __init__(self, upstream_port: int) -> None:
        super().__init__(upstream_port)
        self.write_block_modes: list[bool] = []  # the `global` of each setUserWriteBlockMode, in order

    def answer(self, command: dict[str, Any] | None) -> dict[str, Any] | None:
        if command and "setUserWriteBlockMode" in command:
            self.write_block_modes.append(bool(command.get("global")))
            return {"ok": 1.0}
        if command and ({"buildInfo", "buildinfo"} & set(command)):
            return {"ok": 1.0, "version": "6.0.0", "versionArray": [6, 0, 0, 0]}
        return None


class CollectionOptionsProxy(WireProxy):
    """`shapes` maps a collection name to what its `listCollections` entry carries besides the name
    (`type`, `options`); a name the upstream does not list is added (a view has no storage to list)."""

    def __init__(self, upstream_port: int, shapes: dict[str, dict[str, Any]]) -> None:
        super().__init__(upstream_port)
        self.shapes = shapes

    def rewrite(self, command: dict[str, Any] | None, request: bytes, reply: bytes) -> bytes:
        if not command or "listCollections" not in command:
            return reply
        answered = _command_of(reply) or {}
        batch = (answered.get("cursor") or {}).get("firstBatch")
        if batch is None:
            return reply
        listed = {entry.get("name") for entry in batch}
        for entry in batch:
            entry.update(self.shapes.get(entry.get("name"), {}))
        batch += [{"name": name, **shape} for name, shape in self.shapes.items()
                  if name not in listed and shape.get("type") == "view"]
        only = (command.get("filter") or {}).get("name")  # list_collections(filter={"name": …})
        if isinstance(only, str):
            batch[:] = [entry for entry in batch if entry.get("name") == only]
        return _reply(request, answered)


class NoWriteBlockProxy(WireProxy):
    def __init__(self, upstream_port: int, refuse_after_seconds: float) -> None:
        super().__init__(upstream_port)
        self.refuse_after_seconds = refuse_after_seconds
        self.asked = threading.Event()  # set when the cutover asked to block writes (its drain began)

    def delay(self, command: dict[str, Any] | None) -> float:
        if command and "setUserWriteBlockMode" in command:
            self.asked.set()
            return self.refuse_after_seconds
        return 0.0

    def answer(self, command: dict[str, Any] | None) -> dict[str, Any] | None:
        if command and "setUserWriteBlockMode" in command:
            return {"ok": 0.0, "errmsg": "no such command: 'setUserWriteBlockMode'", "code": 59,
                    "codeName": "CommandNotFound"}
        return None


class OplogWindowProxy(WireProxy):
    def __init__(self, upstream_port: int, seconds: float) -> None:
        super().__init__(upstream_port)
        self.seconds = seconds

    def answer(self, command: dict[str, Any] | None) -> dict[str, Any] | None:
        if not command or command.get("find") != "oplog.rs" or command.get("$db") != "local":
            return None
        now = int(time.time())
        newest_first = (command.get("sort") or {}).get("$natural") == -1
        entry = {"ts": bson.Timestamp(now if newest_first else now - int(self.seconds), 1), "op": "n", "o": {}}
        return {"cursor": {"firstBatch": [entry], "id": 0, "ns": "local.oplog.rs"}, "ok": 1.0}


class ReadOnlyProxy(WireProxy):
    _WRITES = frozenset({"insert", "update", "delete", "drop", "dropDatabase", "findAndModify"})
    _STATUS = {"authInfo": {
        "authenticatedUsers": [{"user": "reader", "db": "admin"}],
        "authenticatedUserRoles": [{"role": "readAnyDatabase", "db": "admin"}],
        "authenticatedUserPrivileges": [
            {"resource": {"db": "", "collection": ""},
             "actions": ["changeStream", "collStats", "dbStats", "find", "listCollections", "listIndexes"]},
            {"resource": {"cluster": True}, "actions": ["listDatabases"]}]}, "ok": 1.0}

    def answer(self, command: dict[str, Any] | None) -> dict[str, Any] | None:
        if command and "connectionStatus" in command:
            return self._STATUS
        written = self._WRITES & set(command or {})
        if not written:
            return None
        assert command is not None
        return {"ok": 0.0, "code": 13, "codeName": "Unauthorized",
                "errmsg": f"not authorized on {command.get('$db')} to execute command {{ {next(iter(written))}: ... }}"}
