"""A way back through the APIs and a migration host: a reversible migration validated, created, replicated
under a writer and cut over; the application then writes to the destination — before the reverse is
asked for and while it runs; `POST …/reverse` (and the CLI's `live-migrations reverse`) creates the reverse,
which its host follows from the point the forward cutover kept; its cutover — the cut back — completes with
the source equal to the destination. What cannot be reversed is refused with LIVE_MIGRATION_NOT_REVERSIBLE.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from tests.engine_support import Writer, namespaces
from tests.migration_world import World
from tests.support import wait_for
from tests.test_console import signed_in


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    built = World(tmp_path)
    yield built
    built.close()


def documents(client: MongoClient[Any]) -> dict[str, list[dict[str, Any]]]:
    return {f"{db}.{name}": sorted(client[db][name].find(), key=lambda document: str(document["_id"]))
            for db, name in namespaces()}


def run_to_complete(world: World, migration_id: str, writer: Writer) -> dict[str, Any]:
    try:
        world.wait_migration(migration_id, lambda m: m["readyForCutover"], timeout=120)
        assert wait_for(lambda: sum(writer.counts.values()) >= 30, timeout=30)
    finally:
        writer.finish()
    assert world.target_call("PUT", f"/liveMigrations/{migration_id}/cutover").status_code == 202
    done = world.wait_migration(migration_id, lambda m: m["status"] in ("COMPLETE", "FAILED"), timeout=120)
    assert done["status"] == "COMPLETE", done
    return done


def test_a_reversible_migration_is_reversed_and_cut_back_through_the_apis(world: World) -> None:
    world.ready_to_migrate(documents=600)
    body = world.request_body(reversible=True)
    validation = world.validate(body)
    assert validation["status"] == "SUCCESS", validation
    assert any("does not tell its change history" in warning for warning in validation["preflight"]["warnings"])

    with world.source_db.client() as source:
        created = world.target_call("POST", "/liveMigrations", json=body)
        assert created.status_code == 201, created.text
        forward_id = created.json()["_id"]
        assert created.json()["reversible"] is True and created.json()["direction"] == "FORWARD"
        premature = world.target_call("POST", f"/liveMigrations/{forward_id}/reverse")
        assert premature.status_code == 409 and premature.json()["errorCode"] == "LIVE_MIGRATION_NOT_REVERSIBLE"
        assert "only a COMPLETE migration is reversed" in premature.json()["detail"]
        writer = Writer(source, per_second=40)
        writer.start()
        forward = run_to_complete(world, forward_id, writer)
    assert forward["canReverse"] is True
    console, csrf = signed_in(world.api, world.target)
    forward_page = f"/console/groups/{world.target_project['id']}/migrations/{forward_id}"
    try:  # the console offers the reverse, behind a confirmation
        shown = console.get(forward_page).text
        assert 'id="reverse-migration"' in shown and "data-confirm=\"Reverse this migration?" in shown
    finally:
        console.close()

    with world.destination_db.client() as destination:
        moved = Writer(destination, per_second=40, first_number=500_000)  # the application, on the destination
        moved.start()
        try:
            assert wait_for(lambda: sum(moved.counts.values()) >= 30, timeout=20)  # writes in the gap
            reversed_ = world.target_cli("target", "live-migrations", "reverse", "--group",
                                         world.target_project["id"], "--id", forward_id, "--force", "-o", "json")
            assert reversed_.returncode == 0, reversed_.stderr
            reverse = world.target_call("GET", "/liveMigrations").json()["results"][0]
            assert reverse["direction"] == "REVERSE" and reverse["reverseOf"] == forward_id, reverse
            again = world.target_call("POST", f"/liveMigrations/{forward_id}/reverse")
            assert again.status_code == 409 and f"reversed already, by {reverse['_id']}" in again.json()["detail"]
            described = world.target_cli("target", "live-migrations", "describe", "--group",
                                         world.target_project["id"], "--id", reverse["_id"])
            assert "REVERSE" in described.stdout, described.stdout
            # The migration host dies while it replicates the reverse; started again, it resumes it.
            world.wait_migration(reverse["_id"], lambda m: m["phase"] == "REPLICATING" and m["eventsApplied"] > 0,
                                 timeout=60)
            world.kill_agent()
            written_while_down = sum(moved.counts.values())
            assert wait_for(lambda: sum(moved.counts.values()) >= written_while_down + 20, timeout=20)
            world.start_agent()
        except BaseException:
            moved.finish()
            raise
        console, csrf = signed_in(world.api, world.target)
        try:  # its page says which way it goes
            shown = console.get(f"/console/groups/{world.target_project['id']}/migrations/{reverse['_id']}").text
            assert 'id="migration-direction">reverse</strong> of' in shown and forward_id in shown
            refused = console.post(f"{forward_page}/reverse", data={"csrf": csrf})  # reversed already
            assert refused.status_code == 409 and "reversed already" in refused.text
        finally:
            console.close()
        done = run_to_complete(world, reverse["_id"], moved)
        assert done["direction"] == "REVERSE" and done["canReverse"] is False
        with world.source_db.client() as source:
            assert documents(source) == documents(destination)
            back = {str(document["_id"]) for db, name in namespaces()
                    for document in source[db][name].find({"_id": {"$regex": "^written5"}}, {"_id": 1})}
    assert moved.counts["insert"] > 0 and len(back) > 0.8 * moved.counts["insert"]  # the rest deleted since
    assert "starting the reverse of a migration" in world.agent_log()
    # The restarted host resumed the reverse from its checkpoints (it did not start it again), and cut back.
    restarted = (world.directory / f"agent-{world.agent_runs}.log").read_text(errors="replace")
    assert world.agent_runs == 2 and "starting the reverse of a migration" not in restarted, restarted[-3000:]
    assert "replicating changes from the saved resume tokens" in restarted
    assert "the source takes writes again" in restarted
