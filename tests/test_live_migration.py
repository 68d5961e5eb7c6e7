"""Push live migration through the two APIs, as a user drives it: link, inventory, agent, validate,
create, replicate under writes, cutover, verify."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from livemigrate.engine.ledger import VerificationLedger
from tests.engine_support import SHAPE_NOTES, SHAPES, Writer, seed, seed_shapes
from tests.fault_proxy import RESET_BEFORE_REPLY, FaultProxy
from tests.migration_world import World
from tests.support import EMBEDDED_AGENT_HOSTNAME, LIVEMIGRATE, SOURCE, metric_families, wait_for
from tests.terminal import TerminalCapture
from tests.wire_proxy import SlowCopyProxy

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(base_url: str) -> Samples:
    """Each sample of `/metrics` by name and label set."""
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in metric_families(base_url) for sample in family.samples}


def sample(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    built = World(tmp_path)
    yield built
    built.close()


def _copy_figures(screen: str) -> list[tuple[int, int]]:
    """The COPIED column of a `watch` screen: (copied, total) per namespace."""
    return [(int(copied.replace(",", "")), int(total.replace(",", "")))
            for copied, total in re.findall(r"\b([\d,]+)/([\d,]+)\b", screen.split("NAMESPACE", 1)[-1])]


@pytest.fixture
def embedded_world(tmp_path: Path) -> Iterator[World]:
    """`serve` as `make serve` runs it: with its in-process migration host, and no other."""
    built = World(tmp_path, embedded_agent=True)
    yield built
    built.close()


def test_full_migration_through_the_apis(embedded_world: World, tmp_path: Path) -> None:
    world = embedded_world
    with world.source_db.client() as client:
        seed(client, total=6000)
    world.link()
    world.add_source_project_and_host()
    # The destination through a proxy that slows the copy's batches: `watch` has a copy to show moving; and,
    # in front of it, one that resets the connection on a batch of the copy, and on the batch sent again.
    slow_destination = SlowCopyProxy(world.destination_db.port).start()
    faulty_destination = FaultProxy(slow_destination.port).start()
    for _ in range(2):
        faulty_destination.inject_next(RESET_BEFORE_REPLY, on="insert",
                                       where=lambda command: command.get("insert") == "alpha")
    world.add_target_project_and_cluster(faulty_destination.uri)

    def listed() -> bool:
        projects = world.available_projects()
        return bool(projects) and projects[0]["migrationHosts"] == [EMBEDDED_AGENT_HOSTNAME]

    assert wait_for(listed, timeout=20), world.api.log_text()[-3000:]
    [project] = world.available_projects()
    assert project["projectId"] == world.source_project["id"]
    [deployment] = project["deployments"]
    assert deployment["name"] == world.source_cluster_name and deployment["dbSizeBytes"] > 0
    assert deployment["mongoDBVersion"] and deployment["sharded"] is False

    validation = world.validate(world.request_body(EMBEDDED_AGENT_HOSTNAME))
    assert (validation["status"], validation["errorMessage"]) == ("SUCCESS", None)
    assert validation["sourceGroupId"] == world.source_project["id"]
    preflight = validation["preflight"]  # the migration host read the source: 12 namespaces, 6,000 documents
    assert len(preflight["namespaces"]) == 12 and sum(check["documents"] for check in preflight["namespaces"]) == 6000
    assert preflight["blocking"] == [] and preflight["copyEstimateSeconds"] > 0
    assert preflight["summary"].startswith("12 namespace(s), 6,000 document(s): the copy takes ")
    assert preflight["summary"].endswith("; 0 namespace(s) not migrated as they are; nothing blocks the migration.")
    created = world.target_call("POST", "/liveMigrations", json=world.request_body(EMBEDDED_AGENT_HOSTNAME))
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "NEW"
    migration_id = created.json()["_id"]
    group = world.target_project["id"]
    watch = TerminalCapture([LIVEMIGRATE, "target", "live-migrations", "watch", "--group", group, "--id", migration_id,
                             "--interval", "0.2"],
                            env={**os.environ, "LIVEMIGRATE_BASE_URL": world.api.base_url,
                                 "LIVEMIGRATE_PUBLIC_KEY": world.target.public_key,
                                 "LIVEMIGRATE_PRIVATE_KEY": world.target.private_key})

    with world.source_db.client() as client:
        writer = Writer(client, per_second=50)
        writer.start()
        try:
            world.wait_migration(migration_id, lambda m: m["status"] == "WORKING", timeout=30)
            with world.api.client(world.source) as source:
                refused = source.delete(f"{SOURCE}/orgs/{world.source.org_id}/liveExport/migrationLink")
            assert refused.status_code == 409, refused.text
            assert refused.json()["errorCode"] == "CANNOT_DELETE_ORG_LINK_WITH_RUNNING_LIVE_EXPORT"
            assert refused.json()["parameters"] == [world.source_project["id"]]
            ready = world.wait_migration(migration_id, lambda m: m["readyForCutover"], timeout=120)
            assert ready["lagTimeSeconds"] is not None and ready["lagTimeSeconds"] < 5
            assert ready["copiedDocuments"] >= 6000
            assert ready["canCutover"] is True and ready["canWrite"] is False and ready["elapsedSeconds"] > 0
            assert ready["copyEtaSeconds"] is None  # the copy is over
            # The resets were ridden out, and said so.
            assert faulty_destination.count(RESET_BEFORE_REPLY) == 2 and ready["retries"]["destination"] >= 1, ready
            # The writer's changes replayed, reported by the host and shown by the target.
            assert world.wait_migration(migration_id, lambda m: m["eventsApplied"] > 0, timeout=30)
            scraped = scrape(world.api.base_url)
        finally:
            writer.finish()
    labels = {"migration_id": migration_id, "group_id": world.target_project["id"]}
    assert sample(scraped, "livemigrate_migration_lag_seconds", **labels) < 5
    assert sample(scraped, "livemigrate_migration_documents_copied", **labels) >= 6000
    assert sample(scraped, "livemigrate_migration_documents_total", **labels) >= 6000
    assert sample(scraped, "livemigrate_migration_events_applied", **labels) > 0
    assert sample(scraped, "livemigrate_migration_ready_for_cutover", **labels) == 1
    assert sample(scraped, "livemigrate_migration_retries", side="destination", **labels) >= 1
    assert sample(scraped, "livemigrate_migrations", status="WORKING") >= 1
    assert sample(scraped, "livemigrate_migration_host_heartbeat_age_seconds", group_id=world.source_project["id"],
                  hostname=EMBEDDED_AGENT_HOSTNAME) < 30
    assert sample(scraped, "livemigrate_inventory_pushes_total", result="accepted") >= 1
    # Requests by route template, never by raw path: one series for every migration's GET.
    route = "/api/atlas/v2/groups/{group_id}/liveMigrations/{migration_id}"
    assert sample(scraped, "livemigrate_http_requests_total", route=route, method="GET", status="200") >= 1
    assert not any(migration_id in dict(labels).get("route", "") for _, labels in scraped)

    # The person at `watch` sees the migration ready, with the command to run, before cutting over.
    assert wait_for(lambda: any("Ready — stop the application's writes" in screen for screen in watch.screens),
                    timeout=30), watch.screens[-1:]
    # The migration host keeps the job's checkpoints and verification ledger while it runs…
    job_state = list((world.api.directory / ".livemigrate" / "agent").glob(f"*/{migration_id}"))
    assert len(job_state) == 1 and (job_state[0] / VerificationLedger.FILE_NAME).exists(), job_state
    cutover = world.target_call("PUT", f"/liveMigrations/{migration_id}/cutover")
    assert cutover.status_code == 202, cutover.text
    # nx-27017 reports a version of 6.0 or later: its writes are blocked at the drain (it does not enforce it).
    assert cutover.json()["detail"].startswith(f"The source runs MongoDB {deployment['mongoDBVersion']}: when the "
                                               "drain begins, its user writes are blocked"), cutover.text
    done = world.wait_migration(migration_id, lambda m: m["status"] in ("COMPLETE", "FAILED"), timeout=120)
    assert done["status"] == "COMPLETE", done
    assert done["sourceWritesBlocked"] is True, done
    # The end keeps the figures of the way: copied and total as the namespaces show them.
    assert done["copiedDocuments"] == done["totalDocuments"] == sum(n["total"] for n in done["namespaces"]) \
        >= 6000 and done["eventsApplied"] > 0, done
    # Per namespace: the changes replayed add up to the migration's, and the verdict verified each one.
    assert sum(namespace["changesApplied"] for namespace in done["namespaces"]) == done["eventsApplied"]
    assert {namespace["verification"] for namespace in done["namespaces"]} == {"VERIFIED"}, done["namespaces"]
    # …and removes them once the target holds the outcome.
    assert wait_for(lambda: not job_state[0].exists(), timeout=10), list(job_state[0].iterdir())
    try:
        assert watch.wait(timeout=30) == 0
    finally:
        watch.stop()
        watch.save(tmp_path / "watch")
    # What a person saw: the copy moving, then changes counted while replicating, then the verified end.
    copying = [screen for screen in watch.screens if "INITIAL_SYNC" in screen]
    moving = {tuple(_copy_figures(screen)) for screen in copying
              if any(copied < total for copied, total in _copy_figures(screen))}
    assert len(moving) >= 2, copying[-3:]
    counted = [screen for screen in watch.screens if "REPLICATING" in screen
               and re.search(r"changes applied [1-9]", screen)]
    assert counted, watch.screens[-1:]
    final = watch.screens[-1]
    assert "COMPLETE" in final and "INITIAL_SYNC" not in final and final.count("VERIFIED") == 12, final
    assert "12 namespace(s) verified equal" in final, final
    assert re.search(r"retries destination [1-9]", final), final
    assert (done["canCutover"], done["canWrite"]) == (False, True)  # the application writes to the destination now
    assert done["warnings"] == [] and "independent checks: counts of 12 namespace(s)" in world.api.log_text()
    verified = subprocess.run([LIVEMIGRATE, "verify", world.source_db.uri, world.destination_db.uri],
                              capture_output=True, text=True, timeout=120)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    faulty_destination.stop()
    slow_destination.stop()


def test_each_validation_failure_is_reported_in_error_message(world: World) -> None:
    from tests.support import free_port
    from tests.wire_proxy import CollectionOptionsProxy, OldVersionProxy

    with world.source_db.client() as client:
        seed_shapes(client)
    old = OldVersionProxy(world.source_db.port).start()
    shaped = CollectionOptionsProxy(world.source_db.port, SHAPES).start()
    try:
        world.link()
        world.add_source_project_and_host()
        with world.api.client(world.source) as client:
            legacy = client.post(f"{SOURCE}/groups/{world.source_project['id']}/hosts",
                                 json={"hostname": "127.0.0.1", "port": old.port})
            shapes_host = client.post(f"{SOURCE}/groups/{world.source_project['id']}/hosts",
                                      json={"hostname": "127.0.0.1", "port": shaped.port})
        assert legacy.status_code == 201 and legacy.json()["version"] == "3.4.24"
        assert shapes_host.status_code == 201, shapes_host.text
        world.start_agent()
        world.add_target_project_and_cluster()
        gone = world.target_call("POST", "/clusters", json={
            "name": "Gone", "connectionString": f"mongodb://127.0.0.1:{free_port()}/?directConnection=true"})
        assert gone.status_code == 201
        assert wait_for(lambda: any(p["migrationHosts"] for p in world.available_projects()), timeout=20)

        body = world.request_body()
        cases = {
            "unknown source project": ({**body, "source": {**body["source"], "groupId": "5f" + "0" * 22}},
                                       "is not available"),
            "unknown source cluster": ({**body, "source": {**body["source"], "clusterName": "nowhere"}},
                                       "was not found in source project"),
            "migration host unknown": ({**body, "migrationHosts": ["ghost.example"]}, "is unknown or not alive"),
            # One of several hosts sharing a migration: the one that is not alive is named.
            "second migration host unknown": ({**body, "migrationHosts": [body["migrationHosts"][0], "ghost2.example"]},
                                              "Migration host 'ghost2.example' is unknown or not alive"),
            "source version unsupported": ({**body, "source": {**body["source"],
                                                               "clusterName": legacy.json()["clusterName"]}},
                                           "runs MongoDB 3.4.24"),
            "destination unreachable": ({**body, "destination": {**body["destination"], "clusterName": "Gone"}},
                                        "is unreachable"),
        }
        for name, (request, reason) in cases.items():
            outcome = world.validate(request)
            assert outcome["status"] == "FAILED", (name, outcome)
            assert reason in outcome["errorMessage"], (name, outcome)

        # The migration host's pre-flight: what blocks (a unique index the source has not) fails the validation.
        with world.destination_db.client() as client:
            client.shop.orders.create_index("sku", unique=True)
            # As listed: nx-27017 names an index its own way (idx_orders_sku), whatever name it is given.
            conflicting = next(index["name"] for index in client.shop.orders.list_indexes() if index.get("unique"))
        blocked = world.validate(body)
        assert blocked["status"] == "FAILED", blocked
        assert blocked["errorMessage"] == ("The pre-flight found what blocks the migration: shop.orders: the "
                                           f"destination has unique index {conflicting} that the source has not: "
                                           "documents the source allows could be refused (drop it, or set "
                                           "dropDestinationData)"), blocked
        assert [check["namespace"] for check in blocked["preflight"]["namespaces"] if check["blocking"]] \
            == ["shop.orders"]
        with world.destination_db.client() as client:
            client.shop.orders.drop_index(conflicting)

        # Collections not migrated as they are, each reported with what will happen to it.
        shapes = world.validate({**body, "source": {**body["source"], "clusterName": shapes_host.json()["clusterName"]}})
        assert (shapes["status"], shapes["errorMessage"]) == ("SUCCESS", None), shapes
        found = {check["namespace"]: check for check in shapes["preflight"]["namespaces"]}
        assert set(found) == {"shop.orders", *SHAPE_NOTES}
        for namespace, note in SHAPE_NOTES.items():
            assert any(note in line for line in found[namespace]["notes"]), (namespace, found[namespace])
        assert found["shop.orders"]["documents"] == 700 and found["shop.orders"]["notes"] == []
        assert (found["shop.readings"]["kind"], found["shop.recent"]["kind"]) == ("timeseries", "view")
        assert shapes["preflight"]["copyEstimateSeconds"] is not None and shapes["preflight"]["blocking"] == []
        described = world.target_cli("target", "live-migrations", "validation", "describe",
                                     "--group", world.target_project["id"], "--id", shapes["_id"])
        assert described.returncode == 0 and "shop.log" in described.stdout and "capped" in described.stdout, described
        assert "copy estimate:" in described.stdout, described.stdout

        with world.destination_db.client() as client:
            client.legacy.leftovers.insert_one({"_id": 1})
        occupied = world.validate(body)
        assert occupied["status"] == "FAILED" and "is not empty (legacy.leftovers)" in occupied["errorMessage"]
        assert "dropDestinationData" in occupied["errorMessage"]
        described = world.target_cli("target", "live-migrations", "validation", "describe",
                         "--group", world.target_project["id"], "--id", occupied["_id"])
        assert described.returncode == 1 and "FAILED" in described.stdout, described  # a script sees it failed
        assert world.validate({**body, "dropDestinationData": True})["status"] == "SUCCESS"
        assert world.validate({**{k: v for k, v in body.items() if k != "dropDestinationData"},
                               "dropEnabled": True})["status"] == "SUCCESS"  # the older alias
    finally:
        old.stop()
        shaped.stop()


def test_the_cutovers_answer_says_what_becomes_of_the_applications_writes() -> None:
    """A source before 6.0 cannot block writes: the answer tells the person to stop them now."""
    from livemigrate.atlas.migrations import writes_at_cutover

    assert writes_at_cutover("5.0.14").startswith("The source runs MongoDB 5.0.14, which cannot block user writes: "
                                                  "stop the application's writes to the source now.")
    assert "has not reported, which cannot block user writes" in writes_at_cutover(None)
    assert writes_at_cutover("7.0.2").startswith("The source runs MongoDB 7.0.2: when the drain begins, its user "
                                                 "writes are blocked (setUserWriteBlockMode)")
