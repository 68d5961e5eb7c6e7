"""An HTTP/1.1 proxy that injects the faults a network and a balancer produce between an HTTP client and
a server of ours (the agent and the source API; the source's link channel and the target API), so that
a test can say which fault a control-plane client met and replay a run from its seed.

Each request is read whole from the client (its head, and a body framed by Content-Length or chunked)
and, unless a fault says otherwise, forwarded on the client connection's own upstream connection; the
response is read whole, framed likewise, and sent back. The faults, drawn per request:

- `reset_before_forward`: the client's connection is reset (TCP RST) before the request reaches the
  server: nothing happened there.
- `reset_before_reply`: the server answered, the answer is dropped and the connection reset: the request
  took effect and the client cannot know.
- `reset_mid_reply`: half of the answer's bytes, then a reset (an incomplete head or body to the client).
- `stall`: the server answered; the answer is held `stall_seconds` (past the client's read timeout, in
  the tests), then the connection is reset without it.

After a fault both connections close; the client's next request opens new ones. A decision comes from
`random.Random(seed)`: each *eligible* request (`eligible(method, target, headers)`, every request by
default, while `enabled`) draws; below `rate` a fault of one of `kinds` is injected. With a client of
several threads the requests' order, and so what each draw hits, varies from run to run; the seed fixes
the sequence of decisions. `inject_next(kind, when)` forces a fault on the next request `when` accepts
(by its method, target and body: a report saying COMPLETE, say). Every injection is logged (logger
`tests.http_fault_proxy`, WARNING, with the seed) and kept in `injected`; every exchange the server
answered is kept in `exchanges`, in the order of the answers, with its request body — whether the client
received the answer or not.
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
from collections.abc import Callable
from dataclasses import dataclass

from tests.loopback import LoopbackServer

log = logging.getLogger("tests.http_fault_proxy")

RESET_BEFORE_FORWARD = "reset_before_forward"
RESET_BEFORE_REPLY = "reset_before_reply"
RESET_MID_REPLY = "reset_mid_reply"
STALL = "stall"
KINDS = (RESET_BEFORE_FORWARD, RESET_BEFORE_REPLY, RESET_MID_REPLY, STALL)

Eligible = Callable[[str, str, dict[str, str]], bool]
Forced = Callable[[str, str, bytes], bool]  # method, target, body


@dataclass(frozen=True)
class Injection:
    number: int  # among the injections, from 1
    kind: str
    method: str
    target: str  # the request's path and query
    forced: bool  # by `inject_next`, not drawn


@dataclass(frozen=True)
class Exchange:
    """A request the server answered (whatever became of the answer afterwards)."""

    method: str
    target: str
    body: bytes
    status: int
    fault: str | None  # the fault that kept the answer from the client, if one did


@dataclass
class _Message:
    head: bytes
    body: bytes  # as framed on the wire (chunked stays chunked)
    start_line: str
    headers: dict[str, str]  # names in lower case

    @property
    def raw(self) -> bytes:
        return self.head + self.body

    def content(self) -> bytes:
        """The body without its chunked framing."""
        if self.headers.get("transfer-encoding", "").lower() != "chunked":
            return self.body
        content, rest = b"", self.body
        while rest:
            size_line, rest = rest.split(b"\r\n", 1)
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                break
            content, rest = content + rest[:size], rest[size + 2:]
        return content


def seed_from_env(default: int) -> int:
    """`HTTP_FAULT_PROXY_SEED` when set (to replay a failing run), else `default`."""
    return int(os.environ.get("HTTP_FAULT_PROXY_SEED", default))


class HttpFaultProxy(LoopbackServer):
    """Forwards HTTP/1.1 to `upstream_port` on loopback, injecting faults (see the module)."""

    def __init__(self, upstream_port: int, *, seed: int, rate: float, kinds: tuple[str, ...] = KINDS,
                 stall_seconds: float = 3.0, eligible: Eligible | None = None, name: str = "http") -> None:
        super().__init__()
        self.upstream_port = upstream_port
        self.seed = seed
        self.rate = rate
        self.kinds = kinds
        self.stall_seconds = stall_seconds
        self.name = name
        self.enabled = True
        self._eligible = eligible or (lambda method, target, headers: True)
        self._random = random.Random(seed)
        self._forced: list[tuple[str, Forced]] = []
        self._lock = threading.Lock()
        self.injected: list[Injection] = []
        self.exchanges: list[Exchange] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> HttpFaultProxy:
        super().start()
        return self

    def stop(self) -> None:
        """Ends the connections still open (a long poll's, say) before the loop stops."""

        async def end_all() -> None:
            tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(end_all(), self._loop).result(timeout=5)
        super().stop()

    def counts(self) -> Counter[str]:
        with self._lock:
            return Counter(injection.kind for injection in self.injected)

    def answered(self, method: str, contains: str) -> list[Exchange]:
        """The exchanges of `method` whose target contains `contains`, in the order of their answers."""
        with self._lock:
            return [exchange for exchange in self.exchanges if exchange.method == method and contains in exchange.target]

    def inject_next(self, kind: str, when: Forced) -> None:
        """A fault on the next request `when(method, target, body)` accepts (after the draw, which it does not
        disturb); several wait their turn, in the order given."""
        with self._lock:
            self._forced.append((kind, when))

    def _draw(self, request: _Message) -> str | None:
        method, target = request.start_line.split(" ")[:2]
        if not self.enabled:
            return None
        eligible = self._eligible(method, target, request.headers)
        with self._lock:
            kind = self._random.choice(self.kinds) if eligible and self._random.random() < self.rate else None
            forced = next((entry for entry in self._forced if entry[1](method, target, request.content())), None)
            if forced is not None:
                self._forced.remove(forced)
                kind = forced[0]
            if kind is None:
                return None
            injection = Injection(len(self.injected) + 1, kind, method, target, forced is not None)
            self.injected.append(injection)
        log.warning("%s proxy (seed %d): fault %d, %s%s on %s %s", self.name, self.seed, injection.number, kind,
                    " (forced)" if injection.forced else "", method, target)
        return kind

    async def handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            while True:
                request = await _read_message(client_reader, request=True)
                if request is None:
                    return
                fault = self._draw(request)
                if fault == RESET_BEFORE_FORWARD:
                    _reset(client_writer)
                    return
                if upstream is None:
                    upstream = await asyncio.open_connection("127.0.0.1", self.upstream_port)
                upstream[1].write(request.raw)
                await upstream[1].drain()
                response = await _read_message(upstream[0], request=False, method=request.start_line.split(" ")[0])
                if response is None:
                    _reset(client_writer)
                    return
                self._note(request, response, fault)
                if fault is not None:
                    await self._fail(client_writer, response, fault)
                    return
                client_writer.write(response.raw)
                await client_writer.drain()
                if "close" in response.headers.get("connection", "").lower():
                    return
        except (ConnectionError, OSError, asyncio.IncompleteReadError, ValueError):
            return
        finally:
            if upstream is not None:
                upstream[1].close()
            if not client_writer.is_closing():
                client_writer.close()

    def _note(self, request: _Message, response: _Message, fault: str | None) -> None:
        method, target = request.start_line.split(" ")[:2]
        status = int(response.start_line.split(" ")[1])
        with self._lock:
            self.exchanges.append(Exchange(method, target, request.content(), status, fault))

    async def _fail(self, writer: asyncio.StreamWriter, response: _Message, fault: str) -> None:
        if fault == RESET_MID_REPLY:
            raw = response.raw
            writer.write(raw[:max(1, len(raw) // 2)])
            await writer.drain()
        elif fault == STALL:
            await asyncio.sleep(self.stall_seconds)
        _reset(writer)


async def _read_message(reader: asyncio.StreamReader, *, request: bool, method: str = "GET") -> _Message | None:
    """One HTTP/1.1 message, whole; None at the end of the stream before one begins."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as error:
        if error.partial:
            raise
        return None
    lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in
               (line.partition(":") for line in lines[1:] if line)}
    status = 0 if request else int(lines[0].split(" ")[1])
    if not request and (method == "HEAD" or status in (204, 304) or 100 <= status < 200):
        body = b""
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        body = await _read_chunked(reader)
    elif "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif request:
        body = b""
    else:
        body = await reader.read()  # framed by the end of the connection
    return _Message(head, body, lines[0], headers)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = b""
    while True:
        size_line = await reader.readuntil(b"\r\n")
        body += size_line
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            while (trailer := await reader.readuntil(b"\r\n")) != b"\r\n":
                body += trailer
            return body + b"\r\n"
        body += await reader.readexactly(size + 2)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST (linger 0), as a peer that crashed or a balancer that gave up does."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
