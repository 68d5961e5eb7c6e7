"""A load balancer for the replica tests: TCP, round robin per connection, no stickiness, and an upstream
that refuses a connection is skipped — what an ordinary L4 balancer in front of replicas does."""

from __future__ import annotations

import asyncio
import itertools
import threading

from tests.support import free_port


class LoadBalancer:
    def __init__(self, upstream_ports: list[int]) -> None:
        self.port = free_port()
        self._upstreams = itertools.cycle(upstream_ports)
        self._count = len(upstream_ports)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="load-balancer", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LoadBalancer:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._relay, "127.0.0.1", self.port))
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()

    async def _relay(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
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
