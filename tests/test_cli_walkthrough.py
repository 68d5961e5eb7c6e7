"""The README's walk-through, run as written: every step with the `livemigrate` command line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.engine_support import seed
from tests.nx import NxServer
from tests.support import LIVEMIGRATE, ServerProcess, wait_for


def test_a_full_migration_with_the_cli(tmp_path: Path) -> None:
    source_db, destination_db = NxServer(tmp_path / "src").start(), NxServer(tmp_path / "dst").start()
    api = ServerProcess(tmp_path / "api", sync_seconds=1.0)
    agent: subprocess.Popen[bytes] | None = None
    try:
        with source_db.client() as client:
            seed(client, total=1200)
        source = api.admin_create_org("source", "cm")
        target = api.admin_create_org("target", "atlas")
        api.start()

        def run(credentials: object, *args: str, columns: int = 200) -> subprocess.CompletedProcess[str]:
            env = {**os.environ, "LIVEMIGRATE_BASE_URL": api.base_url, "COLUMNS": str(columns),
                   "LIVEMIGRATE_PUBLIC_KEY": credentials.public_key,  # type: ignore[attr-defined]
                   "LIVEMIGRATE_PRIVATE_KEY": credentials.private_key}  # type: ignore[attr-defined]
            return subprocess.run([LIVEMIGRATE, *args], env=env, capture_output=True, text=True, timeout=60)

        def cli(credentials: object, *args: str) -> Any:
            result = run(credentials, *args, "-o", "json")
            assert result.returncode == 0, (args, result.stderr)
            return json.loads(result.stdout)

        token = cli(target, "target", "link-token", "create", "--org", target.org_id,
                    "--access-list-ip", "127.0.0.1")["linkToken"]
        assert cli(source, "source", "link", "create", "--org", source.org_id, "--link-token", str(token)) == {
            "status": "SYNCED"}
        group = str(cli(source, "source", "projects", "create", "--org", source.org_id, "--name", "shop")["id"])
        host = cli(source, "source", "hosts", "add", "--group", group, "--hostname", "127.0.0.1",
                   "--port", str(source_db.port))
        key = str(cli(source, "source", "agent-keys", "create", "--group", group)["key"])
        # What there is, listed: the cluster name `--source-cluster` takes, whole even in a narrow terminal.
        [cluster] = cli(source, "source", "clusters", "list", "--group", group)
        assert cluster["clusterName"] == host["clusterName"] == f"127.0.0.1:{source_db.port}"
        narrow = run(source, "source", "hosts", "list", "--group", group, columns=60)
        assert narrow.returncode == 0 and "…" not in narrow.stdout, narrow.stdout
        assert [project["id"] for project in cli(source, "source", "projects", "list", "--org", source.org_id)] \
            == [group]
        agent = subprocess.Popen(
            [LIVEMIGRATE, "agent", "--base-url", api.base_url, "--group", group, "--agent-key", key,
             "--hostname", "mh1", "--state-dir", str(tmp_path / "agent")],
            env={**os.environ, "LIVEMIGRATE_AGENT_CAPTURE": "collection"},  # nx-27017: no deployment-wide stream
            stdout=open(tmp_path / "agent.log", "wb"), stderr=subprocess.STDOUT)
        atlas_group = str(cli(target, "target", "projects", "create", "--org", target.org_id, "--name", "shop")["id"])
        cli(target, "target", "clusters", "add", "--group", atlas_group, "--name", "Destination",
            "--connection-string", destination_db.uri)

        assert [project["name"] for project in cli(target, "target", "projects", "list", "--org", target.org_id)] \
            == ["shop"]
        assert wait_for(lambda: [host["hostname"] for host in cli(source, "source", "migration-hosts", "list",
                                                                     "--group", group) if host["alive"]] == ["mh1"],
                        timeout=30)
        assert wait_for(lambda: [project["migrationHosts"] for project in cli(
            target, "target", "available-projects", "list", "--org", target.org_id)] == [["mh1"]], timeout=30)
        # Names mistyped: the validation says which exist, the closest first, and how to see them.
        typo = ["--group", atlas_group, "--source-group", group, "--migration-host", "mh1"]
        for mistyped, expected in (
                (["--source-cluster", "rs0", "--destination-cluster", "Destination"],
                 [f"its deployments: 127.0.0.1:{source_db.port}", "livemigrate source clusters list"]),
                (["--source-cluster", str(host["clusterName"]), "--destination-cluster", "Destinaton"],
                 ["did you mean 'Destination'?", "livemigrate target clusters add"])):
            failed_id = cli(target, "target", "live-migrations", "validate", *typo, *mistyped)["_id"]

            def described(failed_id: str = failed_id) -> subprocess.CompletedProcess[str]:
                return run(target, "target", "live-migrations", "validation", "describe", "--group", atlas_group,
                           "--id", failed_id, "-o", "json")

            assert wait_for(lambda: json.loads(described().stdout)["status"] != "PENDING", timeout=30)
            answer = described()
            outcome_of_typo = json.loads(answer.stdout)
            assert answer.returncode == 1 and outcome_of_typo["status"] == "FAILED", outcome_of_typo
            assert all(part in outcome_of_typo["errorMessage"] for part in expected), outcome_of_typo

        request = ["--group", atlas_group, "--source-group", group, "--source-cluster", str(host["clusterName"]),
                   "--destination-cluster", "Destination", "--migration-host", "mh1"]
        time.sleep(2)  # the agent's first heartbeat reaches the target with the next inventory push
        validation_id = str(cli(target, "target", "live-migrations", "validate", *request)["_id"])
        outcome: dict[str, Any] = {}
        assert wait_for(lambda: outcome.update(cli(target, "target", "live-migrations", "validation", "describe",
                                                   "--group", atlas_group, "--id", validation_id)) or
                        outcome["status"] != "PENDING", timeout=30)
        assert outcome["status"] == "SUCCESS", outcome
        migration_id = str(cli(target, "target", "live-migrations", "create", *request)["_id"])
        assert wait_for(lambda: cli(target, "target", "live-migrations", "describe", "--group", atlas_group,
                                    "--id", migration_id)["readyForCutover"] is True, timeout=120, interval=0.5)

        env = {**os.environ, "LIVEMIGRATE_BASE_URL": api.base_url, "LIVEMIGRATE_PUBLIC_KEY": target.public_key,
               "LIVEMIGRATE_PRIVATE_KEY": target.private_key}
        cutover = subprocess.run([LIVEMIGRATE, "target", "live-migrations", "cutover", "--group", atlas_group,
                                  "--id", migration_id, "--force"], env=env, capture_output=True, text=True)
        assert cutover.returncode == 0, cutover.stderr
        watched = subprocess.run([LIVEMIGRATE, "target", "live-migrations", "watch", "--group", atlas_group,
                                  "--id", migration_id], env=env, capture_output=True, text=True, timeout=120)
        assert watched.returncode == 0 and f"{migration_id}: COMPLETE" in watched.stdout, watched.stdout
        verified = subprocess.run([LIVEMIGRATE, "verify", source_db.uri, destination_db.uri], capture_output=True,
                                  text=True, timeout=60)
        assert verified.returncode == 0, verified.stdout
    finally:
        if agent is not None:
            agent.send_signal(signal.SIGTERM)
            agent.wait(timeout=30)
        api.stop()
        source_db.stop()
        destination_db.stop()
