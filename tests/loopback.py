"""A TCP server on a loopback port, served by an asyncio loop on a thread of its own: the base of the
tests' proxies (`wire_proxy.py`, `load_balancer.py`), which say only what they do with a connection."""

from __future__ import annotations

import asyncio
import threading

from tests.support import free_port


class LoopbackServer:
    def __init__(self) -> None:
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=type(self).__name__, daemon=True)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    def start(self) -> LoopbackServer:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self.handle, "127.0.0.1", self.port))
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()
            # The connections' handlers still waiting are cancelled and let finish here, and the loop closed:
            # left pending, each is destroyed at some later garbage collection in whatever test runs then
            # ("Task was destroyed but it is pending!", a handler's cleanup meeting a closed loop) — and a
            # finalizer running inside `ast.parse` trips CPython 3.11's "AST constructor recursion depth
            # mismatch" in that other test.
            pending = asyncio.all_tasks(self._loop)
            for task in pending:
                task.cancel()
            if pending:
                self._loop.run_until_complete(asyncio.wait(pending, timeout=5))
            self._loop.close()
