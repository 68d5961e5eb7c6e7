"""nx-27017 servers for the engine tests: a real MongoDB-wire-protocol server, one per role.

TESTING.md says what it supports; the engine never special-cases it. Where a test bends to one of
its gaps, the test says which.
"""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from tests.support import BIN, free_port


class NxServer:
    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    def start(self) -> NxServer:
        log = open(self.directory / "stdout.log", "ab")
        self.process = subprocess.Popen(
            [str(BIN / "nx-27017"), "--host", "127.0.0.1", "-p", str(self.port), "--data-dir", str(self.directory),
             "--log-file", str(self.directory / "nx.log"), "--pid-file", str(self.directory / "nx.pid")],
            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with self.client(timeout_ms=500) as client:
                    client.admin.command("ping")
                return self
            except PyMongoError:
                if self.process.poll() is not None:
                    raise RuntimeError((self.directory / "stdout.log").read_text()) from None
                time.sleep(0.1)
        raise RuntimeError("nx-27017 did not start")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def client(self, timeout_ms: int = 5000) -> MongoClient[Any]:
        return MongoClient(self.uri, serverSelectionTimeoutMS=timeout_ms)


def start_servers(directory: Path, count: int) -> list[NxServer]:
    """`count` servers (`shard0`, `shard1`, … under `directory`), started side by side: each takes a
    moment to start, and a sharded test wants several."""
    servers = [NxServer(directory / f"shard{number}") for number in range(count)]
    threads = [threading.Thread(target=server.start) for server in servers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return servers
