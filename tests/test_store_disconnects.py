"""A PostgreSQL connection ended by the server in the middle of a request costs at most a retry, never a
500: `pg_terminate_backend` on every connection of a replica, again and again, while clients send it about
20 requests a second of reads and writes. What a client may see besides its answers is the documented 503
(`SERVICE_UNAVAILABLE`, `Retry-After`), and that only rarely: a request whose connection was ended is
answered from a new one. Every write answered 201 is there afterwards.
"""

from __future__ import annotations

import random
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.pg import EmbeddedPostgres
from tests.support import LOOPBACK_TLS, SOURCE, TARGET, OrgCredentials, ServerProcess

LOAD_SECONDS = 8.0
CLIENTS = 4
PER_CLIENT_SECONDS = CLIENTS / 20  # one request every this long per client: 20 a second in all
KILL_SECONDS = 0.3
ERROR_KEYS = {"detail", "error", "errorCode", "parameters", "reason"}


@dataclass
class Server:
    postgres: EmbeddedPostgres
    api: ServerProcess
    source: OrgCredentials
    target: OrgCredentials


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    postgres = EmbeddedPostgres(tmp_path / "postgres")
    api = ServerProcess(tmp_path / "api", sync_seconds=60.0, database_url=postgres.new_database(),
                        extra_env={"LIVEMIGRATE_SECRET_KEY": secrets.token_urlsafe(32)})
    source = api.admin_create_org("source", "terminated source")
    target = api.admin_create_org("target", "terminated target")
    api.start()
    try:
        yield Server(postgres, api, source, target)
    finally:
        api.stop()
        postgres.cleanup()


@dataclass
class Load:
    """Clients of both sides, each sending a request every `PER_CLIENT_SECONDS`: a project created, the
    projects listed, an org read, a project read. What each answered, and which writes were acknowledged."""

    server: Server
    answers: list[httpx.Response] = field(default_factory=list)
    created: dict[str, str] = field(default_factory=dict)  # project name -> the side's API prefix
    failures: list[str] = field(default_factory=list)  # transport errors: the server never answered
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, number: int, until: float) -> None:
        side, credentials = (SOURCE, self.server.source) if number % 2 else (TARGET, self.server.target)
        choose = random.Random(number)
        known: list[str] = []
        with httpx.Client(base_url=self.server.api.base_url, auth=credentials.auth, timeout=30,
                          verify=LOOPBACK_TLS) as client:
            count = 0
            while time.monotonic() < until:
                began = time.monotonic()
                action, count = choose.choice(("create", "create", "list", "org", "project")), count + 1
                name = f"load {number}-{count}"
                try:
                    if action == "create":
                        answer = client.post(f"{side}/groups", json={"name": name, "orgId": credentials.org_id})
                    elif action == "list":
                        answer = client.get(f"{side}/groups")
                    elif action == "org":
                        answer = client.get(f"{side}/orgs/{credentials.org_id}")
                    else:
                        answer = client.get(f"{side}/groups/{choose.choice(known)}" if known else f"{side}/groups")
                except httpx.HTTPError as error:
                    with self._lock:
                        self.failures.append(f"{action}: {type(error).__name__}: {error}")
                    continue
                with self._lock:
                    self.answers.append(answer)
                    if action == "create" and answer.status_code == 201:
                        self.created[name] = side
                        known.append(answer.json()["id"])
                time.sleep(max(0.0, PER_CLIENT_SECONDS - (time.monotonic() - began)))


def _terminate_all(conninfo: str, database: str, until: float) -> int:
    """Every backend of the database ended, every `KILL_SECONDS`, as an administrator (or a failover) does;
    how many were ended."""
    ended = 0
    with psycopg.connect(conninfo, autocommit=True) as connection:
        while time.monotonic() < until:
            rows = connection.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                      "WHERE datname = %s AND pid <> pg_backend_pid()", (database,)).fetchall()
            ended += sum(1 for (done,) in rows if done)
            time.sleep(KILL_SECONDS)
    return ended


def test_backends_terminated_under_load_cost_a_retry_never_a_500(server: Server) -> None:
    load = Load(server)
    url = server.api.env["LIVEMIGRATE_DATABASE_URL"]
    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    database = make_url(url).database
    until = time.monotonic() + LOAD_SECONDS
    clients = [threading.Thread(target=load.run, args=(number, until)) for number in range(CLIENTS)]
    for client in clients:
        client.start()
    ended = _terminate_all(conninfo, database, until)
    for client in clients:
        client.join(timeout=60)

    statuses = Counter(answer.status_code for answer in load.answers)
    assert load.failures == [] and ended >= LOAD_SECONDS / KILL_SECONDS, (load.failures, ended)
    assert len(load.answers) >= 0.75 * LOAD_SECONDS * 20, statuses  # the load was there
    unexpected = [(answer.request.method, answer.request.url.path, answer.status_code, answer.text)
                  for answer in load.answers if answer.status_code >= 500 and answer.status_code != 503]
    assert unexpected == [], (unexpected, statuses)
    for refused in (answer for answer in load.answers if answer.status_code == 503):
        assert set(refused.json()) == ERROR_KEYS and refused.json()["errorCode"] == "SERVICE_UNAVAILABLE", refused.text
        assert refused.headers["Retry-After"] == "5"
    # A pooled connection ended while idle is never handed to a request, and one ended under a request that
    # has not written yet costs that request a retry on a new one (the server says so). What is left answers
    # 503: a request whose connection is ended under its write, or in the moment between a kill and the
    # backend's exit — a share that grows with how long each request takes, so with the machine's load; the
    # bound is loose (see docs/replicas.md for a figure measured on a quiet machine).
    assert "made again on a new connection" in server.api.log_text(), server.api.log_text()[-2000:]
    assert statuses[503] <= 0.25 * len(load.answers), statuses
    assert statuses.keys() <= {200, 201, 401, 503}, statuses
    # Every write acknowledged is there.
    listed: set[str] = set()
    for side, credentials in ((SOURCE, server.source), (TARGET, server.target)):
        with httpx.Client(base_url=server.api.base_url, auth=credentials.auth, verify=LOOPBACK_TLS) as client:
            answer = client.get(f"{side}/groups", params={"itemsPerPage": 500})
        assert answer.status_code == 200, answer.text
        listed |= {project["name"] for project in answer.json()["results"]}
    assert len(load.created) >= 20 and set(load.created) <= listed, set(load.created) - listed
