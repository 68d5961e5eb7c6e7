"""A load balancer for the replica tests: TCP, round robin per connection, no stickiness, and an upstream
that refuses a connection is skipped — what an ordinary L4 balancer in front of replicas does."""

from __future__ import annotations

import asyncio
import itertools

from tests.loopback import LoopbackServer


class LoadBalancer(LoopbackServer):
    def __init__(self, upstream_ports: list[int]) -> None:
        super().__init__()
        self._upstreams = itertools.cycle(upstream_ports)
        self._count = len(upstream_ports)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LoadBalancer:
        super().start()
        return self

    async def handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        for _ in range(self._count):
            try:
                upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", next(self._upstreams))
                break
            except OSError:
                continue  # a replica that is down: the next one
        else:
            client_writer.close()
            return
        await asyncio.gather(_pipe(client_reader, upstream_writer), _pipe(upstream_reader, client_writer))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()
