"""Test support: real server processes on loopback ports, and the helpers to talk to them.

Nothing here imitates a component of ours: the server is `livemigrate serve` in a subprocess,
orgs are created with the real `livemigrate admin create-org` (or the very functions it calls, in this
process) or the real API, and the store is read back with sqlite3 to check what a request left behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

BIN = Path(sys.executable).parent
LIVEMIGRATE = str(BIN / "livemigrate")
SOURCE = "/api/public/v1.0"
EMBEDDED_AGENT_HOSTNAME = "embedded.example"
TARGET = "/api/atlas/v2"

# One TLS context for every HTTP client the tests make (`verify=LOOPBACK_TLS`). Without it httpx builds
# a context per client and per `httpx.get`, loading the machine's whole CA bundle each time: measured
# with py-spy, half of the test process's CPU went there. The tests speak plain HTTP on loopback, so the
# context never takes part in a handshake.
LOOPBACK_TLS = ssl.create_default_context()


def digest_authorization(user: str, password: str, realm: str, nonce: str, method: str, uri: str, nc: int,
                         cnonce: str) -> str:
    """An `Authorization` header for one request (RFC 7616, MD5, qop=auth), computed here and not with the
    server's own code, so that a client and the server cannot agree on a mistake."""
    ha1 = hashlib.md5(f"{user}:{realm}:{password}".encode()).hexdigest()
    ha2 = hashlib.md5(f"{method}:{uri}".encode()).hexdigest()
    count = f"{nc:08x}"
    response = hashlib.md5(f"{ha1}:{nonce}:{count}:{cnonce}:auth:{ha2}".encode()).hexdigest()
    return (f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", algorithm=MD5, '
            f'qop=auth, nc={count}, cnonce="{cnonce}", response="{response}"')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class OrgCredentials:
    org_id: str
    public_key: str
    private_key: str

    @property
    def auth(self) -> httpx.DigestAuth:
        return httpx.DigestAuth(self.public_key, self.private_key)


class ServerProcess:
    """`livemigrate serve` on a free loopback port with its own SQLite store and log file."""

    def __init__(self, directory: Path, *, sync_seconds: float = 1.0, port: int | None = None,
                 extra_env: dict[str, str] | None = None, embedded_agent: bool = False,
                 database_url: str | None = None) -> None:
        self.embedded_agent = embedded_agent
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.db_path = directory / "livemigrate.db"
        self.log_path = directory / "server.log"
        self.env = {
            **os.environ,
            "LIVEMIGRATE_DATABASE_URL": database_url or f"sqlite:///{self.db_path}",
            "LIVEMIGRATE_SECRET_KEY_FILE": str(directory / "secret.key"),
            "LIVEMIGRATE_LINK_SYNC_SECONDS": str(sync_seconds),
            "LIVEMIGRATE_LOG_LEVEL": "DEBUG",
            **(extra_env or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def admin_create_org(self, side: str, name: str, *, with_the_cli: bool = False) -> OrgCredentials:
        """An org and its ORG_OWNER key, made in the store as `livemigrate admin create-org` makes them:
        by default with the functions that command calls, in this process (a Python start-up per org
        costs a second of CPU, and the suite makes dozens); `with_the_cli` runs the command itself."""
        if with_the_cli:
            output = subprocess.run(
                [LIVEMIGRATE, "admin", "create-org", "--side", side, "--name", name, "-o", "json"],
                env=self.env, check=True, capture_output=True, text=True,
            ).stdout
            record = json.loads(output)
            return OrgCredentials(record["orgId"], record["publicKey"], record["privateKey"])
        from livemigrate.directory.orgs import create_org
        from livemigrate.store.database import Store

        store = Store(self.env["LIVEMIGRATE_DATABASE_URL"])
        try:
            store.migrate()
            created = create_org(store, side, name, "Organization owner (admin create-org)")
        finally:
            store.dispose()
        assert created.api_key is not None
        return OrgCredentials(created.org.id, created.api_key.api_key.public_key, created.api_key.private_key)

    def start(self) -> ServerProcess:
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(  # the test's own directory is the working directory: .livemigrate/ lands there
            [LIVEMIGRATE, "serve", "--host", "127.0.0.1", "--port", str(self.port), "--access-log",
             *(["--agent", "--agent-hostname", EMBEDDED_AGENT_HOSTNAME] if self.embedded_agent else ["--no-agent"])],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=self.directory,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log_path.read_text()}")
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=1, verify=LOOPBACK_TLS).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"server did not start:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Read the store directly, as a test of what a request left behind (`?` placeholders)."""
        url = self.env["LIVEMIGRATE_DATABASE_URL"]
        if url.startswith("postgresql"):
            import psycopg

            with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as connection:
                return list(connection.execute(sql.replace("?", "%s"), params))  # type: ignore[call-overload]
        with sqlite3.connect(self.db_path) as connection:
            return list(connection.execute(sql, params))

    def kill(self) -> None:
        """SIGKILL: no shutdown of any kind, as a crashed machine."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def client(self, credentials: OrgCredentials | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, auth=credentials.auth if credentials else None, timeout=30, verify=LOOPBACK_TLS)

    def new_org(self, root: OrgCredentials, side: str, name: str) -> OrgCredentials:
        """A fresh org with its own ORG_OWNER key, created through the API by another owner of the side."""
        prefix = SOURCE if side == "source" else TARGET
        with self.client(root) as client:
            response = client.post(f"{prefix}/orgs", json={"name": name, "apiKey": {"desc": "owner"}})
        assert response.status_code == 201, response.text
        body = response.json()
        return OrgCredentials(body["id"], body["apiKey"]["publicKey"], body["apiKey"]["privateKey"])

    def link_token(self, target: OrgCredentials, access_list_ips: list[str] | None = None) -> str:
        with self.client(target) as client:
            response = client.post(f"{TARGET}/orgs/{target.org_id}/liveMigrations/linkTokens",
                                   json={"accessListIps": access_list_ips if access_list_ips is not None else ["127.0.0.1"]})
        assert response.status_code == 200, response.text
        return str(response.json()["linkToken"])

    def source_link_rows(self, org_id: str) -> list[tuple[Any, ...]]:
        return self.query("SELECT status, token_fingerprint, last_sync_error FROM source_links WHERE source_org_id = ?",
                          org_id)


def metric_families(base_url: str) -> list[Metric]:
    """`/metrics` read with Prometheus's own text parser; it answers at that path (no redirect to follow)."""
    response = httpx.get(f"{base_url}/metrics", verify=LOOPBACK_TLS)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain"), response
    return list(text_string_to_metric_families(response.text))


def wait_for(predicate: Any, timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def app_routes(state_dir: Path) -> list[Any]:
    """The `APIRoute`s of an application built in this process and never started, to read what each route
    declares without a request. (FastAPI keeps an included router whole: its routes are read from it.)"""
    from fastapi.routing import APIRoute

    from livemigrate.app import create_app
    from livemigrate.settings import Settings
    from livemigrate.store.database import Store

    settings = Settings(database_url=f"sqlite:///{state_dir / 'routes.db'}", secret_key="k" * 32)
    app = create_app(settings, Store(settings.database_url))

    def flattened(routes: list[Any]) -> list[Any]:
        found: list[Any] = []
        for route in routes:
            included = getattr(route, "original_router", None)
            if included is not None:
                found += flattened(included.routes)
            elif isinstance(route, APIRoute):
                found.append(route)
        return found

    return flattened(app.router.routes)
