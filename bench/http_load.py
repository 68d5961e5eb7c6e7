"""A small HTTP/1.1 keep-alive load generator that answers digest challenges itself.

Why not wrk or the `requests`/`httpx` clients: wrk cannot compute a digest per request, and the
Python clients spend more CPU per request than the server does, so they would measure themselves.
This one keeps one connection per worker, answers the first challenge, then reuses the nonce with
an increasing `nc` — exactly what `requests` and `httpx` do — and writes raw requests.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from dataclasses import dataclass

from tests.support import digest_authorization

REALM = "MMS Public API"


@dataclass
class LoadResult:
    requests: int
    seconds: float
    statuses: dict[int, int]

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    body = await reader.readexactly(length) if length else b""
    return status, headers, body


class DigestConnection:
    """One keep-alive HTTP/1.1 connection that signs each request with digest: it answers the first
    challenge (and a stale one) and then reuses the nonce with an increasing `nc`."""

    def __init__(self, host: str, port: int, credentials: tuple[str, str] | None) -> None:
        self._address = (host, port)
        self._credentials = credentials
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._nonce: str | None = None
        self._nc = 0
        self._cnonce = secrets.token_hex(8)

    async def request(self, method: str, uri: str, body: bytes = b"",
                      headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        host, port = self._address
        while True:
            fresh = self._streams is None
            if self._streams is None:
                self._streams = await asyncio.open_connection(*self._address)
            reader, writer = self._streams
            request = f"{method} {uri} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            for name, value in (headers or {}).items():
                request += f"{name}: {value}\r\n"
            if body:
                request += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            if self._credentials and self._nonce:
                self._nc += 1
                authorization = digest_authorization(*self._credentials, REALM, self._nonce, method, uri, self._nc,
                                                     self._cnonce)
                request += f"Authorization: {authorization}\r\n"
            writer.write((request + "\r\n").encode() + body)
            try:
                status, answer_headers, answer = await _read_response(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                self.close()
                if fresh:
                    raise
                continue  # the server closed the idle connection (keep-alive timeout), as clients expect: again

            if status == 401 and self._credentials:
                match = re.search(r'nonce="([^"]+)"', answer_headers.get("www-authenticate", ""))
                if match and (self._nonce is None or "stale=true" in answer_headers["www-authenticate"]):
                    self._nonce, self._nc = match.group(1), 0
                    continue
            return status, answer_headers, answer

    def close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()
            self._streams = None


async def _worker(host: str, port: int, uri: str, credentials: tuple[str, str] | None, deadline: float,
                  statuses: dict[int, int]) -> int:
    connection = DigestConnection(host, port, credentials)
    done = 0
    try:
        while time.perf_counter() < deadline:
            status, _, _ = await connection.request("GET", uri)
            statuses[status] = statuses.get(status, 0) + 1
            done += 1
    finally:
        connection.close()
    return done


async def run_load(host: str, port: int | list[int], uri: str, *, seconds: float, connections: int,
                   credentials: tuple[str, str] | None = None) -> LoadResult:
    """Load `uri` from `connections` keep-alive connections; given several ports (replicas), the
    connections are spread over them in turn, as a balancer spreads its clients."""
    ports = port if isinstance(port, list) else [port]
    statuses: dict[int, int] = {}
    started = time.perf_counter()
    deadline = started + seconds
    counts = await asyncio.gather(*(_worker(host, ports[index % len(ports)], uri, credentials, deadline, statuses)
                                    for index in range(connections)))
    return LoadResult(sum(counts), time.perf_counter() - started, statuses)
