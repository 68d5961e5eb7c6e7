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


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    if length:
        await reader.readexactly(length)
    return status, headers


async def _worker(host: str, port: int, uri: str, credentials: tuple[str, str] | None, deadline: float,
                  statuses: dict[int, int]) -> int:
    reader, writer = await asyncio.open_connection(host, port)
    base = f"GET {uri} HTTP/1.1\r\nHost: {host}:{port}\r\n"
    nonce: str | None = None
    nc = 0
    cnonce = secrets.token_hex(8)
    done = 0
    try:
        while time.perf_counter() < deadline:
            request = base
            if credentials and nonce:
                nc += 1
                authorization = digest_authorization(*credentials, REALM, nonce, "GET", uri, nc, cnonce)
                request += f"Authorization: {authorization}\r\n"
            writer.write((request + "\r\n").encode())
            status, headers = await _read_response(reader)
            if status == 401 and credentials:
                match = re.search(r'nonce="([^"]+)"', headers.get("www-authenticate", ""))
                if match and (nonce is None or "stale=true" in headers["www-authenticate"]):
                    nonce, nc = match.group(1), 0
                    continue
            statuses[status] = statuses.get(status, 0) + 1
            done += 1
    finally:
        writer.close()
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
