"""Operating migrations safely through the APIs: one migration per destination, create checking what a
validation checks, the change capture chosen per migration, and cancel."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.atlas_api_schemas import AVAILABLE_PROJECTS, LIVE_MIGRATION, VALIDATION, assert_atlas_types
from tests.engine_support import Writer, namespaces
from tests.migration_world import MIGRATION_HOST, World
from tests.support import LOOPBACK_TLS, TARGET


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    # The migration host's own default is `auto`: on nx-27017 that picks the deployment-wide stream, which
    # never emits (TESTING.md). A migration replicates only if its request asks for COLLECTION.
    built = World(tmp_path, agent_env={"LIVEMIGRATE_AGENT_CAPTURE": "auto"})
    yield built
    built.close()


def _contents(client: Any) -> dict[str, list[dict[str, Any]]]:
    return {f"{database}.{name}": sorted(client[database][name].find(), key=lambda document: str(document["_id"]))
            for database, name in namespaces()}


def _create_at_once(world: World, body: dict[str, Any], count: int) -> list[httpx.Response]:
    """`count` creates of the same request, all sent at once."""
    url = f"{world.api.base_url}{TARGET}/groups/{world.target_project['id']}/liveMigrations"

    async def create() -> httpx.Response:
        async with httpx.AsyncClient(auth=world.target.auth, timeout=60, verify=LOOPBACK_TLS) as client:
            return await client.post(url, json=body)

    async def together() -> list[httpx.Response]:
        return await asyncio.gather(*(create() for _ in range(count)))

    return asyncio.run(together())


def _writes_seen(client: Any, seconds: float) -> int:
    """Change events on every collection of the destination during `seconds`: writes made there."""
    streams = [client[database][name].watch(max_await_time_ms=50) for database, name in namespaces()]
    seen = 0
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            for stream in streams:
                while stream.try_next() is not None:
                    seen += 1
            time.sleep(0.1)
    finally:
        for stream in streams:
            stream.close()
    return seen


def test_one_migration_per_destination_a_capture_per_migration_and_cancel(world: World) -> None:
    world.ready_to_migrate(documents=1200)
    # What MongoDB's Atlas SDK decodes, as Atlas' published types have it (`tests/atlas_api_schemas.py`).
    assert_atlas_types(AVAILABLE_PROJECTS, world.available_projects())

    # A create checks what a validation checks: a destination holding data is refused at once.
    with world.destination_db.client() as destination:
        destination.shop.stale.insert_one({"_id": "stale"})
        refused = world.target_call("POST", "/liveMigrations", json=world.request_body())
        validation = world.validate(world.request_body())
        destination.shop.stale.drop()
    assert_atlas_types(VALIDATION, validation)
    assert refused.status_code == 400 and refused.json()["errorCode"] == "LIVE_MIGRATION_INVALID_REQUEST", refused.text
    assert "is not empty (shop.stale); set dropDestinationData" in refused.json()["detail"]
    assert validation["status"] == "FAILED" and validation["errorMessage"] == refused.json()["detail"]

    # Creates that race for one destination: one holds it, the others are told who does.
    body = world.request_body(changeCapture="COLLECTION")
    raced = _create_at_once(world, body, 4)
    assert sorted(response.status_code for response in raced) == [201, 409, 409, 409], [r.text for r in raced]
    first = next(response.json() for response in raced if response.status_code == 201)
    assert first["changeCapture"] == "COLLECTION"
    assert_atlas_types(LIVE_MIGRATION, first)
    for response in raced:
        if response.status_code == 409:
            assert response.json()["errorCode"] == "LIVE_MIGRATION_DESTINATION_IN_USE"
            assert response.json()["parameters"] == [first["_id"]]

    with world.source_db.client() as source, world.destination_db.client() as destination:
        writer = Writer(source, per_second=50)
        writer.start()
        try:
            ready = world.wait_migration(first["_id"], lambda m: m["readyForCutover"], timeout=120)
            assert_atlas_types(LIVE_MIGRATION, ready)  # lagTimeSeconds whole seconds; lagSeconds keeps the fraction
            assert isinstance(ready["lagTimeSeconds"], int) and ready["lagTimeSeconds"] == round(ready["lagSeconds"])
            # Asked for Atlas' versioned type, answered in kind, as Atlas does (its SDK checks it).
            versioned = world.target_call("GET", f"/liveMigrations/{first['_id']}",
                                          headers={"Accept": "application/vnd.atlas.2023-01-01+json"})
            assert versioned.headers["content-type"] == "application/vnd.atlas.2023-01-01+json", versioned.headers
            # A second migration into that destination, dropDestinationData or not, and its validation.
            for drop in (False, True):
                second = world.target_call("POST", "/liveMigrations", json=world.request_body(dropDestinationData=drop))
                assert second.status_code == 409, second.text
                assert second.json()["errorCode"] == "LIVE_MIGRATION_DESTINATION_IN_USE"
                assert f"being written by live migration {first['_id']} (WORKING)" in second.json()["detail"]
            checked = world.target_call("POST", "/liveMigrations/validate", json=world.request_body(dropDestinationData=True))
            assert checked.status_code == 409 and checked.json()["parameters"] == [first["_id"]], checked.text
        finally:
            writer.finish()
        assert world.target_call("PUT", f"/liveMigrations/{first['_id']}/cutover").status_code == 202
        done = world.wait_migration(first["_id"], lambda m: m["status"] != "WORKING", timeout=120)
        # The per-collection capture its request asked for, on a host whose own is `auto`: every change came.
        assert done["status"] == "COMPLETE", done
        assert done["eventsApplied"] > 0 and _contents(source) == _contents(destination)

        # Once the first has ended, the same request is accepted.
        again = world.target_call("POST", "/liveMigrations", json=world.request_body(changeCapture="COLLECTION",
                                                                                     dropDestinationData=True))
        assert again.status_code == 201, again.text
        cancelled_id = again.json()["_id"]
        writer = Writer(source, per_second=50, first_number=100_000)
        writer.start()
        try:
            world.wait_migration(cancelled_id, lambda m: m["phase"] == "REPLICATING" and m["eventsApplied"] > 0,
                                 timeout=120)
            state = world.directory / "agent-state" / cancelled_id
            assert state.is_dir()
            assert _writes_seen(destination, 2.0) > 0  # replicating: what the count below would see
            cancel = world.target_call("DELETE", f"/liveMigrations/{cancelled_id}")
            answered = time.monotonic()
            assert cancel.status_code == 202, cancel.text
            assert cancel.json()["status"] == "FAILED" and cancel.json()["cancelledAt"]
            assert cancel.json()["cancelledBy"] == f"API key {world.target.public_key}"
            assert cancel.json()["errorMessage"].startswith(f"Cancelled by API key {world.target.public_key} at ")
            # The writer goes on: a migration still running would replicate its changes. None reach the
            # destination from 5 s after the answer on.
            time.sleep(max(0.0, answered + 5 - time.monotonic()))
            assert _writes_seen(destination, 4.0) == 0
        finally:
            writer.finish()
    stopped = world.wait_migration(cancelled_id, lambda m: m["hostsStoppedAt"] is not None, timeout=30)
    assert stopped["status"] == "FAILED" and stopped["readyForCutover"] is False
    assert f"job {cancelled_id}: cancelled; this host has stopped writing to its destination" in world.agent_log()
    assert not state.exists()  # the job's checkpoints, ledger and spool are gone from the host
    again_refused = world.target_call("DELETE", f"/liveMigrations/{cancelled_id}")
    assert again_refused.status_code == 409 and again_refused.json()["errorCode"] == "LIVE_MIGRATION_ALREADY_FINISHED"

    # And a new migration into that destination is accepted.
    third = world.target_call("POST", "/liveMigrations", json=world.request_body(changeCapture="COLLECTION",
                                                                                 dropDestinationData=True))
    assert third.status_code == 201, third.text
    assert world.wait_migration(third.json()["_id"], lambda m: m["status"] == "WORKING", timeout=60)

    # The command line cancels it too, and waits for its host to stop.
    cancelled = world.target_cli("target", "live-migrations", "cancel", "--group", world.target_project["id"],
                                 "--id", third.json()["_id"], "--force")
    assert cancelled.returncode == 0, cancelled.stderr
    assert "Its migration hosts have stopped writing" in cancelled.stdout, cancelled.stdout
    assert world.migration(third.json()["_id"])["hostsStoppedAt"] is not None
    assert f"job {third.json()['_id']}: cancelled; this host has stopped writing" in world.agent_log()
    assert MIGRATION_HOST in world.migration(third.json()["_id"])["migrationHosts"]
