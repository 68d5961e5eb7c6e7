"""What goes wrong in a push live migration, and how the APIs report it: a killed agent, a source that
goes away, a cutover that never comes, a relink while a migration runs, a migration whose hosts are
all gone."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.engine_support import copied_in
from tests.migration_world import World
from tests.support import LIVEMIGRATE, SOURCE, TARGET, wait_for


def prepared(world: World, documents: int) -> str:
    """Everything up to a created migration; return its id."""
    world.ready_to_migrate(documents)
    created = world.target_call("POST", "/liveMigrations", json=world.request_body())
    assert created.status_code == 201, created.text
    return str(created.json()["_id"])


@pytest.fixture
def world(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[World]:
    options = getattr(request, "param", {})
    built = World(tmp_path, **options)
    yield built
    built.close()


def test_agent_killed_during_the_copy_resumes_and_completes_equal(world: World) -> None:
    migration_id = prepared(world, 20_000)
    state = world.directory / "agent-state" / migration_id
    assert wait_for(lambda: copied_in(state) >= 1000, timeout=60, interval=0.05), world.agent_log()
    world.kill_agent()
    copied_at_kill = copied_in(state)
    assert 0 < copied_at_kill < 20_000
    world.start_agent()
    # While the copy goes on, the migration tells how long it has to go (from the copy's reported rate).
    copying = world.wait_migration(migration_id, lambda m: m["readyForCutover"] or (
        m["phase"] == "INITIAL_SYNC" and m["copyEtaSeconds"] is not None), timeout=180, interval=0.1)
    assert copying["copyEtaSeconds"] > 0 and copying["canCutover"] is False, copying
    world.wait_migration(migration_id, lambda m: m["readyForCutover"], timeout=180)
    assert "resuming the copy from its checkpoint" in world.agent_log()
    assert world.target_call("PUT", f"/liveMigrations/{migration_id}/cutover").status_code == 202
    done = world.wait_migration(migration_id, lambda m: m["status"] in ("COMPLETE", "FAILED"), timeout=120)
    assert done["status"] == "COMPLETE", done
    verified = subprocess.run([LIVEMIGRATE, "verify", world.source_db.uri, world.destination_db.uri],
                              capture_output=True, text=True, timeout=120)
    assert verified.returncode == 0, verified.stdout


@pytest.mark.parametrize("world", [{"agent_env": {"LIVEMIGRATE_AGENT_RETRIES": "2",
                                                  "LIVEMIGRATE_AGENT_RETRY_SECONDS": "0.5",
                                                  "LIVEMIGRATE_AGENT_FAULT_LIMIT_SECONDS": "3"}}], indirect=True)
def test_source_stopped_mid_migration_ends_failed_naming_the_source(world: World) -> None:
    migration_id = prepared(world, 2000)
    world.wait_migration(migration_id, lambda m: m["readyForCutover"], timeout=120)
    world.source_db.stop()
    statuses: list[str] = []

    def failed() -> bool:
        statuses.append(world.migration(migration_id)["status"])
        return statuses[-1] == "FAILED"

    assert wait_for(failed, timeout=120, interval=0.5), world.agent_log()[-3000:]
    final = world.migration(migration_id)
    assert "source" in final["errorMessage"] and "after 3 attempts" in final["errorMessage"], final
    assert "COMPLETE" not in statuses and final["readyForCutover"] is False
    described = world.target_cli("target", "live-migrations", "describe", "--group", world.target_project["id"],
                                 "--id", migration_id)
    assert described.returncode == 1 and "FAILED" in described.stdout, described  # a script sees it failed
    assert "retry 2 of 2" in world.agent_log()


@pytest.mark.parametrize("world", [{"api_env": {"LIVEMIGRATE_CUTOVER_WINDOW_HOURS": "0.0006"}}], indirect=True)
def test_ready_without_cutover_expires_after_the_window(world: World) -> None:
    migration_id = prepared(world, 500)
    world.wait_migration(migration_id, lambda m: m["readyForCutover"], timeout=120)
    expired = world.wait_migration(migration_id, lambda m: m["status"] == "EXPIRED", timeout=30)
    assert "no cutover" in expired["errorMessage"] and expired["readyForCutover"] is False
    late = world.target_call("PUT", f"/liveMigrations/{migration_id}/cutover")
    assert (late.status_code, late.json()["errorCode"]) == (409, "LIVE_MIGRATION_ALREADY_FINISHED")
    assert wait_for(lambda: "no longer running on the target side" in world.agent_log(), timeout=15)


@pytest.mark.parametrize("world", [{"api_env": {"LIVEMIGRATE_MIGRATION_HOST_ALIVE_SECONDS": "11",
                                                "LIVEMIGRATE_MIGRATION_HOSTS_GONE_SECONDS": "3"}}], indirect=True)
def test_relink_while_running_is_refused_and_a_migration_whose_hosts_are_gone_fails(world: World) -> None:
    migration_id = prepared(world, 500)
    world.wait_migration(migration_id, lambda m: m["status"] == "WORKING", timeout=60)
    with world.api.client(world.source) as client:
        refused = client.post(f"{SOURCE}/orgs/{world.source.org_id}/liveExport/migrationLink",
                              json={"linkToken": world.api.link_token(world.target)})
    assert (refused.status_code, refused.json()["errorCode"]) == (409, "CANNOT_RELINK_ORG_WITH_RUNNING_LIVE_EXPORT")
    assert refused.json()["parameters"] == [world.source_project["id"]]

    # Its only migration host dies: the migration says so, then fails (it would otherwise wait forever).
    world.kill_agent()
    gone = world.wait_migration(migration_id, lambda m: m["warnings"] or m["status"] != "WORKING", timeout=60)
    assert gone["status"] == "WORKING" and "None of its migration hosts (mh1.example) is alive since" in \
        gone["warnings"][0], gone
    failed = world.wait_migration(migration_id, lambda m: m["status"] != "WORKING", timeout=30)
    assert failed["status"] == "FAILED" and "mh1.example" in failed["errorMessage"], failed
    assert failed["readyForCutover"] is False and failed["warnings"] == []


def test_link_tokens_revoked_while_running_fail_the_migration_and_stop_its_host(world: World) -> None:
    migration_id = prepared(world, 500)
    world.wait_migration(migration_id, lambda m: m["readyForCutover"], timeout=120)
    with world.api.client(world.target) as client:
        assert client.delete(f"{TARGET}/orgs/{world.target.org_id}/liveMigrations/linkTokens").status_code == 204
    failed = world.migration(migration_id)
    assert failed["status"] == "FAILED" and "revoked" in failed["errorMessage"], failed
    assert failed["readyForCutover"] is False
    # The migration host stops writing to the destination: no job of a revoked link goes on.
    assert wait_for(lambda: "no longer running on the target side; stopping it" in world.agent_log(), timeout=15), \
        world.agent_log()[-3000:]
    late = world.target_call("PUT", f"/liveMigrations/{migration_id}/cutover")
    assert (late.status_code, late.json()["errorCode"]) == (409, "LIVE_MIGRATION_ALREADY_FINISHED")
    with world.api.client(world.source) as client:  # and the source org may now unlink
        assert client.delete(f"{SOURCE}/orgs/{world.source.org_id}/liveExport/migrationLink").status_code == 204


def test_the_source_ca_certificate_path_reaches_the_migration_host(world: World) -> None:
    world.ready_to_migrate(100)
    body = world.request_body()
    body["source"] |= {"ssl": True, "caCertificatePath": "/etc/livemigrate/no-such-ca.pem"}
    created = world.target_call("POST", "/liveMigrations", json=body)
    assert created.status_code == 201, created.text
    failed = world.wait_migration(created.json()["_id"], lambda m: m["status"] in ("FAILED", "COMPLETE"), timeout=60)
    # The driver on the migration host was told to trust that CA, and says it cannot read the file.
    assert failed["status"] == "FAILED", failed
    assert "no-such-ca.pem" in failed["errorMessage"] and "cannot read" in failed["errorMessage"], failed
