"""MongoDB wire framing for the mongos emulator (`tests/mongos.py`): the requests a driver sends and the
replies a server gives, nothing about what they mean.

pymongo opens each connection with a legacy OP_QUERY `isMaster`/`hello` on `admin.$cmd` (answered with
an OP_REPLY) and speaks OP_MSG afterwards: a body document (section kind 0) and, for bulk writes, the
documents of `insert`/`update`/`delete` as document sequences (kind 1), which are folded into the body
here so that a handler sees one command document. Replies are OP_MSG with one body. A request flagged
moreToCome (an unacknowledged write) gets no reply. The emulator offers no compression in `hello`, so
OP_COMPRESSED never arrives.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import bson
from bson.codec_options import CodecOptions, DatetimeConversion

OP_REPLY = 1
OP_QUERY = 2004
OP_MSG = 2013
CHECKSUM_PRESENT = 1
MORE_TO_COME = 1 << 1

# Dates outside Python's range come back as DatetimeMS instead of failing: a test document may hold one.
CODEC = CodecOptions(datetime_conversion=DatetimeConversion.DATETIME_AUTO)

CODE_NAMES = {
    2: "BadValue", 9: "FailedToParse", 11: "UserNotFound", 26: "NamespaceNotFound", 43: "CursorNotFound",
    48: "NamespaceExists", 50: "MaxTimeMSExpired", 59: "CommandNotFound", 61: "ShardKeyNotFound",
    66: "ImmutableField", 70: "ShardNotFound", 72: "InvalidOptions", 115: "CommandNotSupported",
    117: "ConflictingOperationInProgress", 260: "InvalidResumeToken", 280: "ChangeStreamFatalError",
    286: "ChangeStreamHistoryLost", 11000: "DuplicateKey", 13: "Unauthorized", 20: "IllegalOperation",
}


class CommandError(Exception):
    """A command answered `{ok: 0}`: raised anywhere in a handler, turned into the reply by the server."""

    def __init__(self, code: int, errmsg: str, **extra: Any) -> None:
        super().__init__(errmsg)
        self.code = code
        self.errmsg = errmsg
        self.extra = extra

    def document(self) -> dict[str, Any]:
        return {"ok": 0.0, "errmsg": self.errmsg, "code": self.code,
                "codeName": CODE_NAMES.get(self.code, f"Location{self.code}"), **self.extra}


@dataclass(frozen=True)
class Request:
    """One request: its header fields, its command (sequences folded in), the database it names."""

    request_id: int
    opcode: int
    command: dict[str, Any]
    database: str
    more_to_come: bool

    @property
    def name(self) -> str:
        return next(iter(self.command), "")


def parse(message: bytes) -> Request | None:
    """The request in one whole message (header included); None for an opcode the emulator does not speak."""
    request_id, _response_to, opcode = struct.unpack_from("<iii", message, 4)
    if opcode == OP_MSG:
        flags = struct.unpack_from("<I", message, 16)[0]
        end = len(message) - (4 if flags & CHECKSUM_PRESENT else 0)
        position = 20
        body: dict[str, Any] = {}
        sequences: dict[str, list[dict[str, Any]]] = {}
        while position < end:
            kind = message[position]
            position += 1
            size = struct.unpack_from("<i", message, position)[0]
            if kind == 0:
                body = bson.decode(message[position:position + size], CODEC)
            else:
                name_end = message.index(b"\x00", position + 4)
                identifier = message[position + 4:name_end].decode()
                sequences[identifier] = list(bson.decode_all(message[name_end + 1:position + size], CODEC))
            position += size
        body.update(sequences)
        database = str(body.pop("$db", "admin"))
        return Request(request_id, opcode, body, database, bool(flags & MORE_TO_COME))
    if opcode == OP_QUERY:
        name_end = message.index(b"\x00", 20)
        collection = message[20:name_end].decode()
        start = name_end + 1 + 8  # numberToSkip, numberToReturn
        query = bson.decode(message[start:start + struct.unpack_from("<i", message, start)[0]], CODEC)
        if "$query" in query:  # a wrapped legacy command
            query = dict(query["$query"])
        return Request(request_id, opcode, query, collection.split(".", 1)[0], False)
    return None


def reply(request: Request, document: dict[str, Any]) -> bytes:
    """The reply to `request`: OP_MSG, or OP_REPLY to a legacy OP_QUERY."""
    encoded = bson.encode(document, codec_options=CODEC)
    if request.opcode == OP_QUERY:
        body = struct.pack("<iqii", 0, 0, 0, 1) + encoded
        return struct.pack("<iiii", 16 + len(body), 0, request.request_id, OP_REPLY) + body
    payload = struct.pack("<I", 0) + b"\x00" + encoded
    return struct.pack("<iiii", 16 + len(payload), 0, request.request_id, OP_MSG) + payload


def error(code: int, errmsg: str) -> dict[str, Any]:
    return CommandError(code, errmsg).document()
