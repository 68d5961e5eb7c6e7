"""Errors a person can act on: one clear line each, exit status 2, and nothing written to the target first."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.nx import NxServer
from tests.support import LIVEMIGRATE, free_port
from tests.wire_proxy import HistoryLostProxy


@pytest.fixture
def servers(servers: tuple[NxServer, NxServer]) -> Iterator[tuple[NxServer, NxServer]]:
    """The pair of conftest.py, the source holding one small collection."""
    source, target = servers
    with source.client() as client:
        client.shop.orders.watch().close()  # nx-27017 records changes only from a collection's first watch()
        client.shop.orders.insert_many([{"_id": f"o{index}", "total": index} for index in range(50)])
    yield source, target


def migrate(source_uri: str, target_uri: str, state: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LIVEMIGRATE, "migrate", source_uri, target_uri, "--state-dir", str(state),
                           "--capture", "collection", "--until-caught-up", *extra],
                          capture_output=True, text=True, timeout=120)


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def target_namespaces(target: NxServer) -> set[str]:
    with target.client() as client:
        return {f"{database}.{name}" for database in client.list_database_names() if database != "admin"
                for name in client[database].list_collection_names()}


def closed_port_uri() -> str:
    return f"mongodb://127.0.0.1:{free_port()}/?directConnection=true&serverSelectionTimeoutMS=1500"


def test_unreachable_source(servers: tuple[NxServer, NxServer], tmp_path: Path) -> None:
    _, target = servers
    result = migrate(closed_port_uri(), target.uri, tmp_path / "state")
    assert result.returncode == 2
    line = error_line(result)
    # The host, the cause and what to check, in one sentence: not the driver's topology dump.
    assert line.startswith("Error: SOURCE_UNREACHABLE: cannot reach the source: 127.0.0.1:"), line
    assert line.endswith(": connection refused; check that mongod (or mongos) runs and listens on that address "
                         "and port"), line
    assert "Topology" not in line
    assert target_namespaces(target) == set()


def test_unreachable_target(servers: tuple[NxServer, NxServer], tmp_path: Path) -> None:
    source, _ = servers
    result = migrate(source.uri, closed_port_uri(), tmp_path / "state")
    assert result.returncode == 2
    assert error_line(result).startswith("Error: TARGET_UNREACHABLE: cannot reach the target")


def test_bad_credentials_are_reported_without_the_password(servers: tuple[NxServer, NxServer], tmp_path: Path) -> None:
    source, target = servers
    with_credentials = source.uri.replace("mongodb://", "mongodb://migrator:s3cr3t-pw@")
    result = migrate(with_credentials, target.uri, tmp_path / "state")
    assert result.returncode == 2
    line = error_line(result)
    assert line.startswith("Error: SOURCE_AUTH_FAILED: ") and "migrator:***@" in line
    assert "s3cr3t-pw" not in result.stderr + result.stdout
    assert target_namespaces(target) == set()


def test_non_empty_target_is_refused_and_listed(servers: tuple[NxServer, NxServer], tmp_path: Path) -> None:
    source, target = servers
    with source.client() as client:
        client.shop.customers.insert_one({"_id": "c1"})
    with target.client() as client:
        client.shop.orders.insert_one({"_id": "stale"})
    before = target_namespaces(target)
    result = migrate(source.uri, target.uri, tmp_path / "state")
    assert result.returncode == 2
    line = error_line(result)
    assert line.startswith("Error: TARGET_NOT_EMPTY: ") and "shop.orders" in line and "--drop-target" in line
    assert "shop.customers" not in line
    assert target_namespaces(target) == before  # nothing created, nothing copied
    with target.client() as client:
        assert list(client.shop.orders.find()) == [{"_id": "stale"}]

    replaced = migrate(source.uri, target.uri, tmp_path / "state2", "--drop-target")
    assert replaced.returncode == 0, replaced.stderr
    with target.client() as client:
        assert client.shop.orders.find_one({"_id": "stale"}) is None
        assert len(list(client.shop.orders.find())) == 50


def test_lost_resume_token_says_a_fresh_sync_is_needed(servers: tuple[NxServer, NxServer], tmp_path: Path) -> None:
    source, target = servers
    proxy = HistoryLostProxy(source.port).start()
    try:
        first = migrate(proxy.uri, target.uri, tmp_path / "state")
        assert first.returncode == 0, first.stderr
        again = migrate(proxy.uri, target.uri, tmp_path / "state")
    finally:
        proxy.stop()
    assert again.returncode == 2
    line = error_line(again)
    assert line.startswith("Error: RESUME_TOKEN_LOST: ") and "fresh sync is needed" in line
    assert proxy.answered >= 1


def test_ctrl_c_stops_cleanly_and_the_next_run_resumes(servers: tuple[NxServer, NxServer], tmp_path: Path) -> None:
    import signal
    import time

    source, target = servers
    state = tmp_path / "state"
    log_path = tmp_path / "interrupted.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([LIVEMIGRATE, "migrate", source.uri, target.uri, "--state-dir", str(state),
                                    "--capture", "collection"], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while "replicating changes" not in log_path.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        with source.client() as client:
            client.shop.orders.insert_one({"_id": "late", "total": 1})
        time.sleep(0.5)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 130
    assert "stopping at the next checkpoint" in log_path.read_text()
    assert "Traceback" not in log_path.read_text()

    resumed = migrate(source.uri, target.uri, state)
    assert resumed.returncode == 0, resumed.stderr
    assert "fresh sync" not in resumed.stderr and "replicating changes" in resumed.stderr
    with target.client() as client:
        assert client.shop.orders.find_one({"_id": "late"}) == {"_id": "late", "total": 1}
