"""A MongoDB wire-protocol proxy that injects the faults a real deployment produces, in front of nx-27017
(which never fails on its own): the engine must survive them, and a test must be able to say which
fault it saw and replay a failing run from its seed.

What it emulates, from MongoDB's documented behaviour:

- **Network errors** (the drivers' "network error" of the server discovery and monitoring, retryable
  reads and retryable writes specifications): the client's connection is reset (TCP RST) before the
  command reaches the server (`reset_before_forward`), after the server ran it but before the reply
  (`reset_before_reply`: a write is applied and the client cannot know), or halfway through the reply
  (`reset_mid_reply`). pymongo raises `AutoReconnect`, marks the server Unknown and clears its pool.
- **A reply that never comes** (`stall`): the command runs, its reply is held for `stall_seconds` and
  the connection is then dropped. A client with `socketTimeoutMS` below that sees `NetworkTimeout`
  (which, per the SDAM specification, closes only that connection); one without a socket timeout (the
  engine's default) waits the stall out and sees `AutoReconnect`.
- **Server errors** (`error`, `change_stream_fatal`): the command is not forwarded; it is answered
  with `{ok: 0, errmsg, code, codeName[, errorLabels]}` in an OP_MSG whose responseTo is the request's
  requestID. Codes: the transient ones the retryable-writes, retryable-reads and change-streams
  specifications name (`TRANSIENT_CODES`: NotWritablePrimary 10107, InterruptedDueToReplStateChange
  11602, PrimarySteppedDown 189, ShutdownInProgress 91, HostUnreachable 6, NetworkTimeout 89), and
  ChangeStreamFatalError 280 on a change stream's getMore (not resumable).
- **Error labels as a MongoDB 4.4+ mongod sets them** (the server's error-label rules, which the
  retryable-writes specification's "RetryableWriteError label" and the change-streams specification's
  "resumable error" sections rely on), derived from the command, never added blindly
  (`server_labels()`): `RetryableWriteError` only when the command *is* a retryable write (it carries
  `txnNumber` outside a transaction, or is commitTransaction/abortTransaction) and the code is
  retriable, with `NoWritesPerformed` (6.1+) since the proxy answered before anything was written;
  `TransientTransactionError` for a retriable code inside a transaction; `ResumableChangeStreamError`
  for a retriable code on an `aggregate` that opens a change stream or a `getMore` on one;
  `NonResumableChangeStreamError` for 280 and 286. pymongo sends `txnNumber` only to a replica-set
  member or a mongos, never to a standalone, and nx-27017 says it is a standalone: pass
  `replica_set="rs0"` to make `hello` say it is that set's primary, so that retryable writes (and so
  the `RetryableWriteError` label) happen at all. A NotWritablePrimary is what a server answers to a
  command that needs a writable primary: the random mix never gives it to a read.

The trap it exists around (measured, TESTING.md): nx-27017 drops a connection's cursors and change
streams when that connection closes, and then answers a getMore on them with an empty, *finished*
batch. MongoDB keeps cursors independent of connections. Since pymongo clears its whole pool after one
network error, a naive reset would silently end every open copy read and change stream. So the proxy
**parks** the server side of every client connection that ends, for whatever reason: the upstream
socket stays open (what it still sends is read and dropped) until the proxy stops, and the next client
connection gets a new upstream connection. nx-27017 looks cursors up by id alone, so a getMore from
the new connection continues the cursor (measured: `test_fault_proxy.py`). `park=False` restores the
naive behaviour, to show the trap.

Choosing where, and replaying:

- Faults go to commands of the kinds named by `on` (`TARGETS`): `copy_read` (`find`, or `getMore` on a
  cursor that is not a change stream), `change_stream_getmore`, `change_stream_open` (an `aggregate`
  with `$changeStream`), `insert`, `update_delete` (`update`, `delete`, `findAndModify`), `any`; or a
  command by its exact name. The handshake, authentication and housekeeping commands (`PROTECTED`:
  `hello`, `isMaster`, `saslStart`, `ping`, `endSessions`, `killCursors`, …) are never faulted unless
  named explicitly.
- Random faults: each *eligible* command (an OP_MSG expecting a reply, matching `on`, while the proxy
  is enabled) draws from `random.Random(seed)`; below `rate`, a fault of one of `kinds` is injected.
  The decisions therefore depend only on the seed and the sequence of eligible commands: a
  single-threaded test replays exactly; an engine running threads replays as far as its commands keep
  their order. `seed_from_env()` takes the seed from `FAULT_PROXY_SEED` when set.
- `inject_next(kind, on=..., code=..., labels=...)` forces a fault on the next matching command
  (after the draw, which it does not disturb); `enabled = False` or `with proxy.paused():` stops all
  injection, forced ones wait.
- Every injection is logged (logger `tests.fault_proxy`, WARNING, with the seed) and kept in
  `proxy.injected` (`Injection`: number, seq, kind, command, code, labels, forced); `counts()` counts
  them by kind, `wait_for()` waits for them.

What it does not emulate: a real failover (the "new primary" is the same nx-27017, with the same
data, and `hello` never changes); `topologyVersion` in errors (nx-27017's `hello` has none, and an
error without one is never stale to a driver); write-concern errors; retryable-write deduplication
(nx-27017 accepts `txnNumber` and ignores it: a write retried after `reset_before_reply` runs twice,
which MongoDB would not do — an insert then fails with a duplicate key); errors inside an exhaust
stream after its first reply. Messages other than OP_MSG (the legacy OP_QUERY of a connection's first
`hello`, OP_COMPRESSED) pass through untouched and are never faulted; nx-27017 offers no compression
in `hello`, so pymongo never compresses through this proxy. A request with moreToCome (an
unacknowledged write) expects no reply and is never faulted (measured: nx-27017 answers one anyway,
so the next command on that connection gets that answer and pymongo raises ProtocolError, through the
proxy or not; and w=0 writes did not show up: keep w=0 out of tests on nx-27017); a reply with
moreToCome (exhaust cursors, streaming `hello`; nx-27017 sends neither) is followed by the rest of its
stream, and a parked connection drops what is left of one. Chaining: put this proxy outermost, in front
of another `tests/wire_proxy.py` proxy if both are needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import struct
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import bson

from tests.loopback import LoopbackServer
from tests.wire_proxy import OP_MSG, _command_of, _opens_change_stream, _reply

log = logging.getLogger("tests.fault_proxy")

OP_REPLY = 1
OP_QUERY = 2004
MORE_TO_COME = 1 << 1  # OP_MSG flagBits: the sender sends another message without waiting

RESET_BEFORE_FORWARD = "reset_before_forward"
RESET_BEFORE_REPLY = "reset_before_reply"
RESET_MID_REPLY = "reset_mid_reply"
STALL = "stall"
ERROR = "error"
CHANGE_STREAM_FATAL = "change_stream_fatal"
KINDS = (RESET_BEFORE_FORWARD, RESET_BEFORE_REPLY, RESET_MID_REPLY, STALL, ERROR, CHANGE_STREAM_FATAL)
NETWORK_KINDS = (RESET_BEFORE_FORWARD, RESET_BEFORE_REPLY, RESET_MID_REPLY, STALL)

COPY_READ = "copy_read"
CHANGE_STREAM_GETMORE = "change_stream_getmore"
CHANGE_STREAM_OPEN = "change_stream_open"
INSERT = "insert"
UPDATE_DELETE = "update_delete"
ANY = "any"
TARGETS = (COPY_READ, CHANGE_STREAM_GETMORE, CHANGE_STREAM_OPEN, INSERT, UPDATE_DELETE, ANY)

# Connection handshake, authentication and housekeeping: faulting them tests the driver, not the engine.
PROTECTED = frozenset({"hello", "Hello", "isMaster", "ismaster", "saslStart", "saslContinue", "authenticate",
                       "getnonce", "buildInfo", "buildinfo", "ping", "endSessions", "killCursors"})
_HELLO = frozenset({"hello", "Hello", "isMaster", "ismaster"})
_READS = frozenset({"find", "getMore", "aggregate", "count", "distinct", "listCollections", "listIndexes",
                    "listDatabases"})

CODE_NAMES = {
    6: "HostUnreachable", 7: "HostNotFound", 43: "CursorNotFound", 89: "NetworkTimeout", 91: "ShutdownInProgress",
    133: "FailedToSatisfyReadPreference", 134: "ReadConcernMajorityNotAvailableYet", 189: "PrimarySteppedDown",
    234: "RetryChangeStream", 262: "ExceededTimeLimit", 280: "ChangeStreamFatalError", 286: "ChangeStreamHistoryLost",
    9001: "SocketException", 10107: "NotWritablePrimary", 11600: "InterruptedAtShutdown",
    11602: "InterruptedDueToReplStateChange", 13435: "NotPrimaryNoSecondaryOk", 13436: "NotPrimaryOrSecondary",
    14031: "OutOfDiskSpace",
}
TRANSIENT_CODES = (10107, 11602, 189, 91, 6, 89)
# The server's RetriableError category (error_codes.yml), as far as a client can receive it.
RETRIABLE_CODES = frozenset({6, 7, 89, 91, 134, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436})
NON_RESUMABLE_CHANGE_STREAM_CODES = frozenset({280, 286})
_COMMIT_OR_ABORT = frozenset({"commitTransaction", "abortTransaction"})
_MESSAGES = {
    6: "Connection refused: the host is unreachable",
    89: "Operation timed out waiting for a remote host",
    91: "The server is in quiesce mode and will shut down",
    189: "The primary stepped down",
    280: "cannot resume stream; the resume token was not found",
    10107: "not primary",
    11602: "operation was interrupted because of a replica set state change",
    14031: "Cannot write: the disk is full",
}


@dataclass(frozen=True)
class Injection:
    """One injected fault. `seq`: the command's position among the eligible commands (the random
    stream's index), None for a forced fault on a command outside them (a handshake named explicitly)."""

    number: int
    seq: int | None
    kind: str
    command: str
    code: int | None = None
    labels: tuple[str, ...] = ()
    forced: bool = False


@dataclass(frozen=True)
class _Forced:
    kind: str
    on: frozenset[str]
    code: int | None
    labels: tuple[str, ...] | None
    where: Callable[[dict[str, Any]], bool] | None = None  # and only a command this says yes to


@dataclass
class _Request:
    message: bytes
    command: dict[str, Any] | None
    name: str | None
    change_stream: bool  # an aggregate that opens a change stream, or a getMore on one
    more_to_come: bool


@dataclass(frozen=True)
class _Fault:
    kind: str
    code: int | None
    labels: tuple[str, ...]


def seed_from_env(default: int | None = None) -> int:
    """The seed for a randomised test: `FAULT_PROXY_SEED` if set (to replay a logged failure), else
    `default`, else a fresh one. Logged either way, so that every run can be replayed."""
    raw = os.environ.get("FAULT_PROXY_SEED")
    seed = int(raw) if raw else default if default is not None else random.SystemRandom().randrange(2**31)
    log.warning("fault proxy seed %d (replay with FAULT_PROXY_SEED=%d)", seed, seed)
    return seed


def server_labels(command: dict[str, Any], code: int, change_stream: bool) -> tuple[str, ...]:
    """The errorLabels a MongoDB 4.4+ mongod attaches when it answers `command` with error `code`
    (the rules of the server's ErrorLabelBuilder). `change_stream`: the command is an aggregate
    opening a change stream or a getMore on one (the proxy knows which cursors those are)."""
    name = next(iter(command), "")
    in_transaction = "txnNumber" in command and "autocommit" in command
    retryable_write = "txnNumber" in command and "autocommit" not in command
    commit_or_abort = in_transaction and name in _COMMIT_OR_ABORT
    labels: list[str] = []
    if in_transaction and not commit_or_abort and code in RETRIABLE_CODES:
        labels.append("TransientTransactionError")
    elif (retryable_write or commit_or_abort) and code in RETRIABLE_CODES:
        labels += ["RetryableWriteError", "NoWritesPerformed"]  # answered before anything was written
    if not labels and change_stream and name in ("aggregate", "getMore") and code in RETRIABLE_CODES | {133, 234}:
        labels.append("ResumableChangeStreamError")
    elif code in NON_RESUMABLE_CHANGE_STREAM_CODES:
        labels.append("NonResumableChangeStreamError")
    return tuple(labels)


def error_document(code: int, labels: Iterable[str] = ()) -> dict[str, Any]:
    """The command error a mongod sends: `errorLabels` only when there are some, as the server does."""
    document: dict[str, Any] = {"ok": 0.0, "errmsg": f"{_MESSAGES.get(code, 'injected error')} (fault proxy)",
                                "code": code, "codeName": CODE_NAMES.get(code, f"Location{code}")}
    if labels := list(labels):
        document["errorLabels"] = labels
    return document


def _targets(on: str | Iterable[str]) -> frozenset[str]:
    names = frozenset([on] if isinstance(on, str) else on)
    for name in names:  # a command name never has an underscore: one here is a mistyped target
        if "_" in name and name not in TARGETS:
            raise ValueError(f"unknown target {name!r}: one of {TARGETS} or a command name")
    return names


async def _read_message(reader: asyncio.StreamReader) -> bytes:
    header = await reader.readexactly(4)
    return header + await reader.readexactly(struct.unpack("<i", header)[0] - 4)


def _flags(message: bytes) -> int:
    if struct.unpack_from("<i", message, 12)[0] != OP_MSG:
        return 0
    return int(struct.unpack_from("<I", message, 16)[0])


def _legacy_query(message: bytes) -> dict[str, Any] | None:
    """The command of an OP_QUERY (a connection's first `hello`), to recognise a handshake."""
    if struct.unpack_from("<i", message, 12)[0] != OP_QUERY:
        return None
    start = message.index(b"\x00", 20) + 1 + 8  # fullCollectionName, numberToSkip, numberToReturn
    return bson.decode(message[start:start + struct.unpack_from("<i", message, start)[0]])


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST (linger 0), as a peer that crashed or a middlebox that gave up does."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy(LoopbackServer):
    """Forwards MongoDB wire messages to nx-27017 on `upstream_port`, injecting faults (see the module).

    `seed`, `rate`: the random faults (probability per eligible command; 0 = only forced ones);
    `kinds`: which fault kinds the random draw chooses among; `on`: which commands are eligible;
    `codes`: the codes of random `error` faults; `stall_seconds`: how long a `stall` holds a reply;
    `replica_set`: answer `hello` as the primary of a replica set of that name (retryable writes);
    `park`: keep the server side of ended client connections open (see the trap in the module)."""

    def __init__(self, upstream_port: int, seed: int = 0, rate: float = 0.0,
                 kinds: Iterable[str] = (RESET_BEFORE_REPLY, RESET_MID_REPLY, ERROR),
                 on: str | Iterable[str] = ANY, codes: Iterable[int] = TRANSIENT_CODES,
                 stall_seconds: float = 3.0, replica_set: str | None = None, park: bool = True) -> None:
        super().__init__()
        self.upstream_port = upstream_port
        self.seed = seed
        self.rate = rate
        self.kinds = tuple(kinds)
        unknown = set(self.kinds) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}: {KINDS}")
        self.on = _targets(on)
        self.codes = tuple(codes)
        self.stall_seconds = stall_seconds
        self.replica_set = replica_set
        self.park = park
        self.enabled = True
        self.injected: list[Injection] = []
        self.eligible = 0  # eligible commands seen: the random stream's position
        self._random = random.Random(seed)
        self._forced: list[_Forced] = []
        self._lock = threading.Lock()
        self._injected_changed = threading.Condition(self._lock)
        self._change_stream_cursors: set[int] = set()
        self._parked: list[asyncio.StreamWriter] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    @property
    def parked(self) -> int:
        """Server-side connections kept open after their client connection ended."""
        return len(self._parked)

    def start(self) -> FaultProxy:
        super().start()
        log.warning("fault proxy :%d -> :%d seed=%d rate=%s kinds=%s on=%s codes=%s", self.port, self.upstream_port,
                    self.seed, self.rate, ",".join(self.kinds), ",".join(sorted(self.on)), self.codes)
        return self

    def stop(self) -> None:
        """Close every connection, parked ones included (nx-27017 then drops their cursors), and stop."""
        if self._thread.is_alive():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._close_all(), self._loop).result(timeout=5)
        super().stop()

    def inject_next(self, kind: str, on: str | Iterable[str] | None = None, code: int | None = None,
                    labels: Iterable[str] | None = None,
                    where: Callable[[dict[str, Any]], bool] | None = None) -> None:
        """Force a `kind` fault on the next command matching `on` (default: `any`; a change stream
        getMore for `change_stream_fatal`). `code` for `error` (default: the first of `codes` a server
        would send that command); `labels` replaces the labels the server's rules give (`()`: none);
        `where`, when given, must also say yes to the command document (one collection's, say)."""
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}: {KINDS}")
        targets = _targets(on if on is not None else CHANGE_STREAM_GETMORE if kind == CHANGE_STREAM_FATAL else ANY)
        with self._lock:
            self._forced.append(_Forced(kind, targets, code, None if labels is None else tuple(labels), where))

    @property
    def pending(self) -> int:
        """Forced faults not injected yet."""
        with self._lock:
            return len(self._forced)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """No fault at all inside (forced ones wait): the proxy is a plain proxy, e.g. while seeding."""
        before, self.enabled = self.enabled, False
        try:
            yield
        finally:
            self.enabled = before

    def counts(self) -> Counter[str]:
        """Injections so far, by kind."""
        with self._lock:
            return Counter(injection.kind for injection in self.injected)

    def count(self, kind: str | None = None) -> int:
        """Injections so far (of `kind`): a test asserts the faults it meant really happened."""
        with self._lock:
            return sum(1 for injection in self.injected if kind is None or injection.kind == kind)

    def wait_for(self, kind: str | None = None, count: int = 1, timeout: float = 10.0) -> bool:
        """Wait until `count` faults (of `kind`) were injected: for faults a process in the background meets."""
        with self._injected_changed:
            return self._injected_changed.wait_for(
                lambda: sum(1 for i in self.injected if kind is None or i.kind == kind) >= count, timeout)

    # --- deciding ---------------------------------------------------------------------------------

    def _request(self, message: bytes) -> _Request:
        command = _command_of(message)
        name = next(iter(command), None) if command else None
        change_stream = _opens_change_stream(command) or (
            name == "getMore" and command is not None and int(command["getMore"]) in self._change_stream_cursors)
        return _Request(message, command, name, change_stream, bool(_flags(message) & MORE_TO_COME))

    def _matches(self, on: frozenset[str], request: _Request) -> bool:
        name = request.name
        if name is None:
            return False
        if name in on:
            return True
        if name in PROTECTED:
            return False
        return (ANY in on
                or COPY_READ in on and (name == "find" or name == "getMore" and not request.change_stream)
                or CHANGE_STREAM_GETMORE in on and name == "getMore" and request.change_stream
                or CHANGE_STREAM_OPEN in on and name == "aggregate" and request.change_stream
                or INSERT in on and name == "insert"
                or UPDATE_DELETE in on and name in ("update", "delete", "findAndModify"))

    @staticmethod
    def _applies(kind: str, request: _Request) -> bool:
        return kind != CHANGE_STREAM_FATAL or request.name == "getMore" and request.change_stream

    def _decide(self, request: _Request) -> _Fault | None:
        """Runs on the proxy's loop thread, one message at a time: the random stream is consumed in
        the order the commands arrive."""
        if not self.enabled or request.command is None or request.more_to_come:
            return None
        seq: int | None = None
        drawn: _Fault | None = None
        if self._matches(self.on, request):
            self.eligible += 1
            seq = self.eligible
            if self._random.random() < self.rate:
                kinds = [kind for kind in self.kinds if self._applies(kind, request)]
                if kinds:
                    drawn = self._fault(self._random.choice(kinds), request, None, None, draw=True)
        with self._lock:
            forced = next((f for f in self._forced if self._matches(f.on, request) and self._applies(f.kind, request)
                           and (f.where is None or f.where(request.command))), None)
            if forced is not None:
                self._forced.remove(forced)
        fault = self._fault(forced.kind, request, forced.code, forced.labels, draw=False) if forced else drawn
        if fault is not None:
            self._record(fault, request, seq, forced is not None)
        return fault

    def _fault(self, kind: str, request: _Request, code: int | None, labels: tuple[str, ...] | None,
               draw: bool) -> _Fault:
        """`draw`: a random fault, whose code comes from the seeded stream; a forced one never touches it."""
        assert request.command is not None
        if kind in NETWORK_KINDS:
            return _Fault(kind, None, ())
        if kind == CHANGE_STREAM_FATAL:
            code = 280
        elif kind == ERROR and code is None:
            # A server answers NotWritablePrimary to what needs a writable primary, never to a read.
            codes = [c for c in self.codes if not (c == 10107 and request.name in _READS)] or list(self.codes)
            code = self._random.choice(codes) if draw else codes[0]
        if code is None:
            return _Fault(kind, None, ())
        if labels is None:
            labels = server_labels(request.command, code, request.change_stream)
        return _Fault(kind, code, labels)

    def _record(self, fault: _Fault, request: _Request, seq: int | None, forced: bool) -> None:
        with self._injected_changed:
            injection = Injection(len(self.injected) + 1, seq, fault.kind, request.name or "?", fault.code, fault.labels,
                                  forced)
            self.injected.append(injection)
            self._injected_changed.notify_all()
        log.warning("fault proxy (seed %d) injected #%d %s on %s (eligible command %s)%s%s", self.seed,
                    injection.number, fault.kind, injection.command, seq, " forced" if forced else "",
                    f" code {fault.code} labels {list(fault.labels)}" if fault.code is not None else "")

    # --- forwarding -------------------------------------------------------------------------------

    def _observe(self, request: _Request, reply: bytes) -> None:
        """Remembers which cursors are change streams, so that their getMores can be told apart."""
        if not request.change_stream:
            return
        answered = _command_of(reply) or {}
        cursor_id = int((answered.get("cursor") or {}).get("id") or 0)
        if request.name == "aggregate" and cursor_id:
            self._change_stream_cursors.add(cursor_id)
        elif request.name == "getMore" and not cursor_id and request.command is not None:
            self._change_stream_cursors.discard(int(request.command["getMore"]))

    def _rewrite_hello(self, request: _Request, reply: bytes) -> bytes:
        """With `replica_set`: `hello` says this is the set's primary (pymongo then sends `txnNumber`)."""
        if not self.replica_set:
            return reply
        command = request.command if request.command is not None else _legacy_query(request.message)
        if not command or not _HELLO & set(command):
            return reply
        me = f"127.0.0.1:{self.port}"
        member = {"setName": self.replica_set, "setVersion": 1, "hosts": [me], "primary": me, "me": me,
                  "secondary": False}
        opcode = struct.unpack_from("<i", reply, 12)[0]
        if opcode == OP_MSG:
            document = _command_of(reply) or {}
            return _reply(request.message, {**document, **member})
        if opcode == OP_REPLY:  # the answer to a legacy OP_QUERY hello: header, flags, cursor, from, count, doc
            document = bson.decode(reply[36:36 + struct.unpack_from("<i", reply, 36)[0]])
            body = reply[16:36] + bson.encode({**document, **member})
            return struct.pack("<iiii", 16 + len(body), *struct.unpack_from("<iii", reply, 4)) + body
        return reply

    async def _round_trip(self, request: _Request, up_reader: asyncio.StreamReader,
                          up_writer: asyncio.StreamWriter) -> bytes | None:
        """Sends the request upstream and returns its (first) reply; None when none is expected."""
        up_writer.write(request.message)
        await up_writer.drain()
        if request.more_to_come:
            return None
        reply = await _read_message(up_reader)
        self._observe(request, reply)
        return self._rewrite_hello(request, reply)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return
        upstream_sound = True  # idle (or streaming to be drained) and open: fit to park
        try:
            while True:
                try:
                    request = self._request(await _read_message(reader))
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                fault = self._decide(request)
                upstream_sound = False
                if fault is None or fault.kind in (ERROR, CHANGE_STREAM_FATAL):
                    if fault is not None:
                        reply: bytes | None = _reply(request.message, error_document(fault.code or 0, fault.labels))
                    else:
                        reply = await self._round_trip(request, up_reader, up_writer)
                    upstream_sound = True
                    if reply is None:
                        continue
                    writer.write(reply)
                    await writer.drain()
                    while _flags(reply) & MORE_TO_COME and fault is None:  # exhaust: the rest of the stream
                        upstream_sound = False
                        reply = await _read_message(up_reader)
                        upstream_sound = True
                        writer.write(reply)
                        await writer.drain()
                    continue
                if fault.kind == RESET_BEFORE_FORWARD:
                    upstream_sound = True
                    _reset(writer)
                    return
                reply = await self._round_trip(request, up_reader, up_writer)
                upstream_sound = True
                if fault.kind == RESET_MID_REPLY and reply is not None:
                    writer.write(reply[:max(1, len(reply) // 2)])
                    await writer.drain()
                    await asyncio.sleep(0.05)  # let the client take the first half
                elif fault.kind == STALL:
                    with contextlib.suppress(TimeoutError):  # the client may give up first: then no need to wait
                        await asyncio.wait_for(reader.read(1), self.stall_seconds)
                _reset(writer)
                return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client went away (its side) or the upstream did (then upstream_sound is False)
        except asyncio.CancelledError:
            pass  # stop(): ends quietly (asyncio's stream callback would log a cancelled task as an error)
        finally:
            writer.close()
            self._retire(up_reader, up_writer, upstream_sound)
            if task is not None:
                self._tasks.discard(task)

    def _retire(self, up_reader: asyncio.StreamReader, up_writer: asyncio.StreamWriter, sound: bool) -> None:
        if not (self.park and sound and not self._stopping and not up_reader.at_eof()):
            up_writer.close()
            return
        self._parked.append(up_writer)
        drain = asyncio.ensure_future(self._drain(up_reader, up_writer))
        self._tasks.add(drain)
        drain.add_done_callback(self._tasks.discard)

    async def _drain(self, up_reader: asyncio.StreamReader, up_writer: asyncio.StreamWriter) -> None:
        """A parked connection's reader: drops what it still sends (the rest of an exhaust stream), and
        forgets the connection if the server closes it."""
        with contextlib.suppress(ConnectionError, OSError):
            while await up_reader.read(65536):
                pass
        with contextlib.suppress(ValueError):
            self._parked.remove(up_writer)
        up_writer.close()

    async def _close_all(self) -> None:
        self._stopping = True
        current = asyncio.current_task()
        tasks = [task for task in self._tasks if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for up_writer in self._parked:
            up_writer.close()
        self._parked.clear()
