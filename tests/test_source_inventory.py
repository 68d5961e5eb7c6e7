"""A source project's inventory: monitored hosts probed into deployments, agent keys, migration hosts,
and all of it pushed over the link to the target's availableProjects."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.nx import NxServer
from tests.support import LOOPBACK_TLS, SOURCE, TARGET, OrgCredentials, ServerProcess, free_port, wait_for


@pytest.fixture
def mongo(tmp_path: Path) -> Iterator[NxServer]:
    server = NxServer(tmp_path / "mongo").start()
    with server.client() as client:
        client.shop.orders.insert_many([{"_id": f"o{index}", "total": index} for index in range(100)])
    yield server
    server.stop()


@pytest.fixture
def fast(tmp_path: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path / "api", sync_seconds=1.0,
                           extra_env={"LIVEMIGRATE_MIGRATION_HOST_ALIVE_SECONDS": "2"})
    server.start()
    yield server
    server.stop()


def test_hosts_agents_and_inventory_reach_the_target(fast: ServerProcess, mongo: NxServer) -> None:
    source = fast.admin_create_org("source", "inventory source")
    target = fast.admin_create_org("target", "inventory target")
    with fast.client(source) as client:
        assert client.post(f"{SOURCE}/orgs/{source.org_id}/liveExport/migrationLink",
                           json={"linkToken": fast.link_token(target)}).json() == {"status": "SYNCED"}
        project = client.post(f"{SOURCE}/groups", json={"name": "shop", "orgId": source.org_id}).json()
        group = f"{SOURCE}/groups/{project['id']}"

        added = client.post(f"{group}/hosts", json={"hostname": "127.0.0.1", "port": mongo.port,
                                                    "username": "monitor", "password": "hunter2-secret",
                                                    "authMechanismName": "NONE"})
        assert added.status_code == 201, added.text
        assert added.json()["lastError"] is None and added.json()["lastPing"] is not None
        dead_port = free_port()
        dead = client.post(f"{group}/hosts", json={"hostname": "127.0.0.1", "port": dead_port})
        assert dead.status_code == 201 and dead.json()["lastError"]
        # The host, the cause and what to check, in one sentence: not the driver's topology dump.
        assert dead.json()["lastError"] == (f"127.0.0.1:{dead_port}: connection refused; check that mongod (or "
                                            "mongos) runs and listens on that address and port")
        duplicate = client.post(f"{group}/hosts", json={"hostname": "127.0.0.1", "port": mongo.port})
        assert (duplicate.status_code, duplicate.json()["errorCode"]) == (409, "DUPLICATE_HOST")
        bad = client.post(f"{group}/hosts", json={"hostname": "127.0.0.1", "authMechanismName": "MAGIC"})
        assert bad.json()["errorCode"] == "INVALID_ENUM_VALUE"

        listed = client.get(f"{group}/hosts")
        clusters = client.get(f"{group}/clusters").json()["results"]
        assert "hunter2-secret" not in listed.text + added.text + client.get(f"{group}/clusters").text
        assert "password" not in listed.text
        by_name = {cluster["name"]: cluster for cluster in clusters}
        live = by_name[f"127.0.0.1:{mongo.port}"]
        assert live["lastError"] is None and live["dbSizeBytes"] > 0 and live["typeName"] == "STANDALONE"
        assert by_name[f"127.0.0.1:{dead_port}"]["lastError"]  # unreachable, listed with its error

        key = client.post(f"{group}/agentapikeys", json={"desc": "migration host"}).json()
        public, private = key["key"].split(".", 1)
        assert private not in client.get(f"{group}/agentapikeys").text
        programmatic = client.put(f"{group}/liveMigrations/migrationHosts/mh1.example", json={"agentVersion": "x"})
        assert (programmatic.status_code, programmatic.json()["errorCode"]) == (401, "USER_UNAUTHORIZED")

    agent = httpx.DigestAuth(public, private)
    beat = httpx.put(f"{fast.base_url}{group}/liveMigrations/migrationHosts/mh1.example",
                     json={"agentVersion": "0.1.0"}, auth=agent, verify=LOOPBACK_TLS)
    assert beat.status_code == 200 and beat.json()["alive"] is True
    elsewhere = httpx.get(f"{fast.base_url}{SOURCE}/orgs/{source.org_id}", auth=agent, verify=LOOPBACK_TLS)
    assert elsewhere.status_code == 401  # an agent key reaches only its migration-host calls

    def available() -> list[dict[str, object]]:
        with fast.client(target) as client:
            return list(client.get(f"{TARGET}/orgs/{target.org_id}/liveMigrations/availableProjects").json())

    assert wait_for(lambda: any(p["migrationHosts"] == ["mh1.example"] for p in available()), timeout=5)
    [pushed] = available()
    assert pushed["projectId"] == project["id"] and pushed["name"] == "shop"
    deployment = next(d for d in pushed["deployments"] if d["name"] == f"127.0.0.1:{mongo.port}")  # type: ignore[union-attr]
    assert set(deployment) >= {"clusterId", "name", "mongoDBVersion", "featureCompatibilityVersion", "managed",
                               "sharded", "shardsSize", "tlsEnabled", "dbSizeBytes", "agentVersion"}
    # A standalone has no oplog: its size is left out, never a null Atlas' int32 field cannot hold.
    assert "oplogSizeMB" not in deployment
    assert deployment["dbSizeBytes"] > 0 and deployment["sharded"] is False and deployment["tlsEnabled"] is False

    # No heartbeat for longer than the alive window: the host leaves the live migration hosts.
    time.sleep(2.5)
    assert wait_for(lambda: available()[0]["migrationHosts"] == [], timeout=5)

    # The source org unlinks: its projects leave the target's availableProjects at once.
    with fast.client(source) as client:
        assert client.delete(f"{SOURCE}/orgs/{source.org_id}/liveExport/migrationLink").status_code == 204
    assert available() == []


def test_relinking_to_another_target_withdraws_the_inventory_from_the_first(fast: ServerProcess) -> None:
    source = fast.admin_create_org("source", "relinked source")
    first, second = fast.admin_create_org("target", "first target"), fast.admin_create_org("target", "second")

    def available(target: OrgCredentials) -> list[dict[str, object]]:
        with fast.client(target) as client:
            return list(client.get(f"{TARGET}/orgs/{target.org_id}/liveMigrations/availableProjects").json())

    with fast.client(source) as client:
        client.post(f"{SOURCE}/groups", json={"name": "shop", "orgId": source.org_id})
        for target in (first, second):
            linked = client.post(f"{SOURCE}/orgs/{source.org_id}/liveExport/migrationLink",
                                 json={"linkToken": fast.link_token(target)})
            assert linked.json() == {"status": "SYNCED"}, linked.text
            assert [project["name"] for project in available(target)] == ["shop"]
    assert available(first) == []
