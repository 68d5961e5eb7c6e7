"""A whole push-live-migration world on one machine, driven over HTTP only: the API server, a source
and a destination nx-27017, a linked pair of orgs, a monitored source host, a migration host agent and a
registered destination cluster."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import httpx

from tests.nx import NxServer
from tests.support import EMBEDDED_AGENT_HOSTNAME, LIVEMIGRATE, SOURCE, TARGET, ServerProcess, wait_for

MIGRATION_HOST = "mh1.example"


class World:
    def __init__(self, directory: Path, *, api_env: dict[str, str] | None = None,
                 agent_env: dict[str, str] | None = None, embedded_agent: bool = False,
                 api: Any = None) -> None:
        """`api`, when given, is an API already serving (replicas behind a balancer, say) with the
        `ServerProcess` calls this uses; otherwise a server of its own is started."""
        self.directory = directory
        self.source_db = NxServer(directory / "source-db").start()
        self.destination_db = NxServer(directory / "destination-db").start()
        self._owns_api = api is None
        self.api = api or ServerProcess(directory / "api", sync_seconds=1.0, embedded_agent=embedded_agent, extra_env={
            "LIVEMIGRATE_AGENT_CAPTURE": "collection", **(api_env or {})})  # nx-27017: no deployment-wide stream
        self.source = self.api.admin_create_org("source", "cloud manager org")
        self.target = self.api.admin_create_org("target", "atlas org")
        if self._owns_api:
            self.api.start()
        self.agent_env = {**os.environ, "LIVEMIGRATE_LOG_LEVEL": "INFO",
                          # nx-27017's deployment-wide change stream never emits (TESTING.md)
                          "LIVEMIGRATE_AGENT_CAPTURE": "collection", **(agent_env or {})}
        self.agent: subprocess.Popen[bytes] | None = None
        self.agent_runs = 0
        self.hosts: list[subprocess.Popen[bytes]] = []  # `start_host`'s
        self._target_client: httpx.Client | None = None  # kept alive: polling must not load what it measures

    # --- the steps a user takes ---------------------------------------------------------------

    def link(self) -> None:
        with self.api.client(self.source) as client:
            self.link_token = self.api.link_token(self.target)
            response = client.post(f"{SOURCE}/orgs/{self.source.org_id}/liveExport/migrationLink",
                                   json={"linkToken": self.link_token})
        assert response.json() == {"status": "SYNCED"}, response.text

    def add_source_project_and_host(self, port: int | None = None) -> None:
        """`port`: the source's host (a mongos, say), when not the world's own source server."""
        with self.api.client(self.source) as client:
            self.source_project = client.post(f"{SOURCE}/groups", json={"name": "shop", "orgId": self.source.org_id}).json()
            host = client.post(f"{SOURCE}/groups/{self.source_project['id']}/hosts",
                               json={"hostname": "127.0.0.1", "port": port or self.source_db.port})
            assert host.status_code == 201 and host.json()["lastError"] is None, host.text
            self.source_cluster_name = host.json()["clusterName"]
            key = client.post(f"{SOURCE}/groups/{self.source_project['id']}/agentapikeys", json={"desc": "mh1"})
            self.agent_key = key.json()["key"]

    def start_agent(self) -> None:
        self.agent_runs += 1
        log = open(self.directory / f"agent-{self.agent_runs}.log", "wb")
        self.agent = subprocess.Popen(
            [LIVEMIGRATE, "agent", "--base-url", self.api.base_url, "--group", self.source_project["id"],
             "--agent-key", self.agent_key, "--hostname", MIGRATION_HOST, "--state-dir",
             str(self.directory / "agent-state")], env=self.agent_env, stdout=log, stderr=subprocess.STDOUT)

    def start_host(self, hostname: str) -> subprocess.Popen[bytes]:
        """Another migration host of the source project, with a state directory and a log of its own
        (`host_log`); stopped at `close`."""
        log = open(self.directory / f"host-{hostname}.log", "ab")
        process = subprocess.Popen(
            [LIVEMIGRATE, "agent", "--base-url", self.api.base_url, "--group", self.source_project["id"],
             "--agent-key", self.agent_key, "--hostname", hostname, "--state-dir",
             str(self.directory / f"state-{hostname}")], env=self.agent_env, stdout=log, stderr=subprocess.STDOUT)
        self.hosts.append(process)
        return process

    def host_log(self, hostname: str) -> str:
        return (self.directory / f"host-{hostname}.log").read_text(errors="replace")

    def kill_agent(self) -> None:
        assert self.agent is not None
        self.agent.send_signal(signal.SIGKILL)
        self.agent.wait(timeout=10)

    def agent_log(self) -> str:
        return "".join((self.directory / f"agent-{run}.log").read_text(errors="replace")
                       for run in range(1, self.agent_runs + 1))

    def add_target_project_and_cluster(self, uri: str | None = None) -> None:
        with self.api.client(self.target) as client:
            self.target_project = client.post(f"{TARGET}/groups", json={"name": "atlas-shop",
                                                                         "orgId": self.target.org_id}).json()
            cluster = client.post(f"{TARGET}/groups/{self.target_project['id']}/clusters",
                                  json={"name": "Destination", "connectionString": uri or self.destination_db.uri})
            assert cluster.status_code == 201, cluster.text
            assert "connectionString" not in cluster.text

    def ready_to_migrate(self, documents: int) -> None:
        """Seed the source, link, register the source host, start the agent, register the destination,
        and wait until the target lists the migration host."""
        from tests.engine_support import seed

        with self.source_db.client() as client:
            seed(client, total=documents)
        self.link()
        self.add_source_project_and_host()
        self.start_agent()
        self.add_target_project_and_cluster()
        assert wait_for(lambda: any(p["migrationHosts"] for p in self.available_projects()), timeout=30), \
            self.agent_log()

    def migrate_with_the_embedded_host(self, documents: int) -> str:
        """Seed the source, link, register the source host and the destination, wait until the API's
        in-process migration host is listed, create a migration on it; its id."""
        from tests.engine_support import seed

        with self.source_db.client() as client:
            seed(client, total=documents)
        self.link()
        self.add_source_project_and_host()
        self.add_target_project_and_cluster()
        assert wait_for(lambda: any(p["migrationHosts"] == [EMBEDDED_AGENT_HOSTNAME]
                                    for p in self.available_projects()), timeout=30), self.api.log_text()[-2000:]
        created = self.target_call("POST", "/liveMigrations", json=self.request_body(EMBEDDED_AGENT_HOSTNAME))
        assert created.status_code == 201, created.text
        return str(created.json()["_id"])

    def available_projects(self) -> list[dict[str, Any]]:
        with self.api.client(self.target) as client:
            return list(client.get(f"{TARGET}/orgs/{self.target.org_id}/liveMigrations/availableProjects").json())

    def request_body(self, host: str = MIGRATION_HOST, **overrides: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "source": {"clusterName": self.source_cluster_name, "groupId": self.source_project["id"],
                       "managedAuthentication": False, "ssl": False},
            "destination": {"clusterName": "Destination", "groupId": self.target_project["id"],
                            "hostnameSchemaType": "PUBLIC"},
            "migrationHosts": [host],
            "dropDestinationData": False,
        }
        for key, value in overrides.items():
            body[key] = value
        return body

    def target_call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        if self._target_client is None:
            self._target_client = self.api.client(self.target)
        return self._target_client.request(method, f"{TARGET}/groups/{self.target_project['id']}{path}", **kwargs)

    def target_cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The `livemigrate` command as the target org's owner, its keys in the environment."""
        env = {**os.environ, "LIVEMIGRATE_BASE_URL": self.api.base_url, "LIVEMIGRATE_PUBLIC_KEY": self.target.public_key,
               "LIVEMIGRATE_PRIVATE_KEY": self.target.private_key}
        return subprocess.run([LIVEMIGRATE, *args], env=env, capture_output=True, text=True, timeout=60, check=False)

    def validate(self, body: dict[str, Any]) -> dict[str, Any]:
        started = self.target_call("POST", "/liveMigrations/validate", json=body)
        assert started.status_code == 200 and started.json()["status"] == "PENDING", started.text
        validation_id = started.json()["_id"]
        outcome: dict[str, Any] = {}

        def done() -> bool:
            outcome.update(self.target_call("GET", f"/liveMigrations/validate/{validation_id}").json())
            return outcome["status"] != "PENDING"

        assert wait_for(done, timeout=30)
        return outcome

    def migration(self, migration_id: str) -> dict[str, Any]:
        return dict(self.target_call("GET", f"/liveMigrations/{migration_id}").json())

    def wait_migration(self, migration_id: str, predicate: Any, timeout: float, interval: float = 0.2) -> dict[str, Any]:
        seen: dict[str, Any] = {}

        def check() -> bool:
            seen.clear()
            seen.update(self.migration(migration_id))
            return bool(predicate(seen))

        assert wait_for(check, timeout=timeout, interval=interval), (seen, self.agent_log()[-3000:])
        return seen

    def close(self) -> None:
        if self._target_client is not None:
            self._target_client.close()
        for agent in [self.agent, *self.hosts]:
            if agent is not None and agent.poll() is None:
                agent.terminate()
                try:
                    agent.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    agent.kill()
        if self._owns_api:
            self.api.stop()
        self.source_db.stop()
        self.destination_db.stop()
