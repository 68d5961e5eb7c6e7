"""The progress report's contract at each hop: a malformed report is refused with a 400 in the
documented error shape by the source (from the agent) and by the target (over the link), and
nothing of it is stored; a well-formed one goes through."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from livemigrate import link_token
from tests.migration_world import World
from tests.support import LOOPBACK_TLS, SOURCE, TARGET, wait_for

HOST = "contract-host.example"
MALFORMED: list[tuple[dict[str, Any], str, str]] = [
    ({"status": "WORKING", "phase": "DANCING"}, "INVALID_ENUM_VALUE", "phase"),
    ({"status": "DONE"}, "INVALID_ENUM_VALUE", "status"),
    ({"copiedDocuments": "12"}, "INVALID_ATTRIBUTE", "copiedDocuments"),
    ({"lagTimeSeconds": -1}, "INVALID_ATTRIBUTE", "lagTimeSeconds"),
    ({"readyForCutover": "yes"}, "INVALID_ATTRIBUTE", "readyForCutover"),
    ({"namespaces": [{"namespace": "shop.orders", "copied": 1, "total": 2}]}, "MISSING_ATTRIBUTE", "namespaces.0.done"),
    ({"warnings": "behind"}, "INVALID_ATTRIBUTE", "warnings"),
    ({"progress": 50}, "INVALID_ATTRIBUTE", "progress"),
]


@pytest.fixture
def migration(tmp_path: Path) -> Iterator[tuple[World, str]]:
    """A migration created for a migration host that heartbeats, and that no agent runs: only this
    test reports its progress."""
    world = World(tmp_path)
    try:
        world.link()
        world.add_source_project_and_host()
        world.add_target_project_and_cluster()
        agent_auth = _agent_auth(world)
        heartbeat = httpx.put(f"{world.api.base_url}{SOURCE}/groups/{world.source_project['id']}/liveMigrations/"
                              f"migrationHosts/{HOST}", json={"agentVersion": "test"}, auth=agent_auth, verify=LOOPBACK_TLS)
        assert heartbeat.status_code == 200, heartbeat.text
        assert wait_for(lambda: any(HOST in p["migrationHosts"] for p in world.available_projects()), timeout=20)
        created = world.target_call("POST", "/liveMigrations", json=world.request_body(HOST))
        assert created.status_code == 201, created.text
        yield world, created.json()["_id"]
    finally:
        world.close()


def _agent_auth(world: World) -> httpx.DigestAuth:
    public, _, private = world.agent_key.partition(".")  # an agent key is <public>.<private>
    return httpx.DigestAuth(public, private)


def _link_auth(world: World) -> httpx.DigestAuth:
    claims = link_token.decode(world.link_token)
    return httpx.DigestAuth(claims.publicKey, claims.privateKey)


def _is_documented_400(response: httpx.Response, code: str, attribute: str) -> bool:
    body = response.json()
    return (response.status_code == 400 and body["errorCode"] == code and body["error"] == 400
            and body["parameters"] == [attribute] and attribute in body["detail"] and bool(body["reason"]))


def test_a_malformed_report_is_refused_at_each_hop_and_changes_nothing(migration: tuple[World, str]) -> None:
    world, migration_id = migration
    def stored() -> dict[str, Any]:  # what the target holds (the elapsed time moves on by itself)
        return {key: value for key, value in world.migration(migration_id).items() if key != "elapsedSeconds"}

    before = stored()
    through_agent_api = f"{world.api.base_url}{SOURCE}/groups/{world.source_project['id']}/liveMigrations/agentJobs/{migration_id}"
    over_the_link = (f"{world.api.base_url}{TARGET}/orgs/{world.target.org_id}/liveMigrations/links/"
                     f"{world.source.org_id}/jobs/{migration_id}")
    for report, code, attribute in MALFORMED:
        from_agent = httpx.patch(through_agent_api, json=report, auth=_agent_auth(world))
        assert _is_documented_400(from_agent, code, attribute), (report, from_agent.text)
        from_source = httpx.patch(over_the_link, json=report, auth=_link_auth(world))
        assert _is_documented_400(from_source, code, attribute), (report, from_source.text)
    assert stored() == before  # nothing stored

    good = httpx.patch(through_agent_api, json={"status": "WORKING", "phase": "INITIAL_SYNC", "copiedDocuments": 7,
                                                "totalDocuments": 10, "warnings": []}, auth=_agent_auth(world))
    assert good.status_code == 200, good.text
    after = world.migration(migration_id)
    assert (after["status"], after["phase"], after["copiedDocuments"]) == ("WORKING", "INITIAL_SYNC", 7)


def test_jobs_keep_their_connection_strings_and_password_out_of_reprs_and_validation_messages() -> None:
    from pydantic import ValidationError

    from livemigrate.contracts import HostJob, LinkJob, describe_invalid

    secret = "s3cret-Pa55"
    link_job = LinkJob(id="a" * 24, status="WORKING", sourceProjectId="b" * 24, sourceClusterName="rs0",
                       migrationHost="mh1", sourcePassword=secret, destinationUri=f"mongodb://u:{secret}@db:27017")
    host_job = HostJob(id="a" * 24, status="NEW", sourceClusterName="rs0", sourceUri=f"mongodb://u:{secret}@src",
                       destinationUri=f"mongodb://u:{secret}@dst")
    assert secret not in repr(link_job) and secret not in repr(host_job)
    with pytest.raises(ValidationError) as refused:
        HostJob.model_validate({**host_job.model_dump(mode="json"), "sourceUri": [f"mongodb://u:{secret}@src"],
                                "status": "PAUSED"})
    described = describe_invalid(refused.value)
    assert secret not in described and "sourceUri" in described and "status" in described


MALFORMED_INVENTORIES: list[tuple[dict[str, Any], str, str]] = [
    ({"projects": [{"projectId": 7, "name": "shop"}]}, "INVALID_ATTRIBUTE", "projects.0.projectId"),
    ({"projects": [{"projectId": "p", "name": "shop", "deployments": [{"clusterId": "c"}]}]},
     "MISSING_ATTRIBUTE", "projects.0.deployments.0.name"),
    ({"projects": [{"projectId": "p", "name": "shop", "migrationHosts": [{"hostname": "mh1"}]}]},
     "INVALID_ATTRIBUTE", "projects.0.migrationHosts.0"),
    ({"projects": [{"projectId": "p", "name": "shop", "deployments": [
        {"clusterId": "c", "name": "rs0", "dbSizeBytes": -5}]}]}, "INVALID_ATTRIBUTE", "projects.0.deployments.0.dbSizeBytes"),
    ({"projects": {}}, "INVALID_ATTRIBUTE", "projects"),
]


def test_a_malformed_inventory_over_the_link_is_refused_and_the_last_one_kept(tmp_path: Path) -> None:
    world = World(tmp_path)
    try:
        world.link()
        world.add_source_project_and_host()
        assert wait_for(lambda: bool(world.available_projects()) and bool(world.available_projects()[0]["deployments"]),
                        timeout=20)
        before = world.available_projects()
        pushed_at = f"{world.api.base_url}{TARGET}/orgs/{world.target.org_id}/liveMigrations/links/{world.source.org_id}"
        for inventory, code, attribute in MALFORMED_INVENTORIES:
            refused = httpx.put(pushed_at, json=inventory, auth=_link_auth(world), verify=LOOPBACK_TLS)
            assert _is_documented_400(refused, code, attribute), (inventory, refused.text)
        assert world.available_projects() == before
    finally:
        world.close()
