"""The background sync: revocation noticed within one interval, an unreachable target retried until it answers.

These tests run their own servers with a 1 s sync interval; the target may be a separate process,
as in production, so the link crosses a real network hop between two servers.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import LOOPBACK_TLS, SOURCE, TARGET, OrgCredentials, ServerProcess, wait_for

INTERVAL = 1.0


@pytest.fixture
def fast_server(tmp_path: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path / "fast", sync_seconds=INTERVAL)
    server.start()
    yield server
    server.stop()


def status_of(server: ServerProcess, source: OrgCredentials) -> str | None:
    with server.client(source) as client:
        response = client.get(f"{SOURCE}/orgs/{source.org_id}/liveExport/migrationLink/status")
    return response.json()["status"] if response.status_code == 200 else None


def test_revoked_tokens_turn_the_link_not_synced_within_one_interval(fast_server: ServerProcess) -> None:
    source = fast_server.admin_create_org("source", "revocation source")
    target = fast_server.admin_create_org("target", "revocation target")
    with fast_server.client(source) as client:
        response = client.post(f"{SOURCE}/orgs/{source.org_id}/liveExport/migrationLink",
                               json={"linkToken": fast_server.link_token(target)})
    assert response.json() == {"status": "SYNCED"}

    with fast_server.client(target) as client:
        assert client.delete(f"{TARGET}/orgs/{target.org_id}/liveMigrations/linkTokens").status_code == 204
        # the target forgets the link at once
        projects = client.get(f"{TARGET}/orgs/{target.org_id}/liveMigrations/availableProjects")
        assert projects.json() == []

    # One interval, plus the time one push takes on a busy machine.
    assert wait_for(lambda: status_of(fast_server, source) == "NOT_SYNCED", timeout=INTERVAL + 1.5)
    with fast_server.client(source) as client:
        link = client.get(f"{SOURCE}/orgs/{source.org_id}/liveExport/migrationLink").json()
    assert link["status"] == "NOT_SYNCED"
    assert "revoked" in link["lastSyncError"]
    assert "revoked" in fast_server.log_text()


def test_unreachable_target_stores_the_link_not_synced_and_retries(tmp_path: Path,
                                                                    fast_server: ServerProcess) -> None:
    target_server = ServerProcess(tmp_path / "target", sync_seconds=INTERVAL)
    target = target_server.admin_create_org("target", "far target")
    target_server.start()
    token = target_server.link_token(target)
    target_server.stop()

    source = fast_server.admin_create_org("source", "patient source")
    with fast_server.client(source) as client:
        response = client.post(f"{SOURCE}/orgs/{source.org_id}/liveExport/migrationLink", json={"linkToken": token})
        assert (response.status_code, response.json()) == (200, {"status": "NOT_SYNCED"})
        link = client.get(f"{SOURCE}/orgs/{source.org_id}/liveExport/migrationLink").json()
    assert "unreachable" in link["lastSyncError"]
    assert fast_server.source_link_rows(source.org_id)[0][0] == "NOT_SYNCED"

    target_server.start()
    try:
        assert wait_for(lambda: status_of(fast_server, source) == "SYNCED", timeout=10)
        with target_server.client(target) as client:
            listed = client.get(f"{TARGET}/orgs/{target.org_id}/liveMigrations/availableProjects")
        assert listed.status_code == 200
    finally:
        target_server.stop()


def test_a_new_project_is_pushed_without_waiting_for_the_interval(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "slow", sync_seconds=3600)
    source = server.admin_create_org("source", "eager source")
    target = server.admin_create_org("target", "eager target")
    server.start()
    try:
        with server.client(source) as client:
            assert client.post(f"{SOURCE}/orgs/{source.org_id}/liveExport/migrationLink",
                               json={"linkToken": server.link_token(target)}).json() == {"status": "SYNCED"}
            project = client.post(f"{SOURCE}/groups", json={"name": "orders", "orgId": source.org_id}).json()

        def listed() -> list[str]:
            response = httpx.get(f"{server.base_url}{TARGET}/orgs/{target.org_id}/liveMigrations/availableProjects",
                                 auth=target.auth, verify=LOOPBACK_TLS)
            return [entry["projectId"] for entry in response.json()]

        assert wait_for(lambda: listed() == [project["id"]], timeout=5)
    finally:
        server.stop()


def test_connecting_pushes_the_inventory_once_and_the_sync_goes_on_from_there(tmp_path: Path) -> None:
    interval = 2.0
    server = ServerProcess(tmp_path / "once", sync_seconds=interval)
    source = server.admin_create_org("source", "counted source")
    target = server.admin_create_org("target", "counted target")
    server.start()
    pushes_line = f'"PUT {TARGET}/orgs/{target.org_id}/liveMigrations/links/{source.org_id} HTTP/1.1" 200'
    try:
        with server.client(source) as client:
            connected = client.post(f"{SOURCE}/orgs/{source.org_id}/liveExport/migrationLink",
                                    json={"linkToken": server.link_token(target)})
        assert connected.json() == {"status": "SYNCED"}
        time.sleep(interval * 0.75)  # a redundant push would come at once; the next regular one, an interval on
        assert server.log_text().count(pushes_line) == 1, server.log_text()[-2000:]
        assert wait_for(lambda: server.log_text().count(pushes_line) == 2, timeout=interval * 3)
    finally:
        server.stop()
