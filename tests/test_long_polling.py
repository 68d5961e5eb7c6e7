"""A migration host waits on its job list (If-None-Match + Prefer: wait, passed on to the target over the
link): the list comes back as soon as a migration is created on the target, and 304 when nothing changed."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.migration_world import MIGRATION_HOST, World
from tests.support import LOOPBACK_TLS, SOURCE, metric_families


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    built = World(tmp_path)
    built.ready_to_migrate(200)  # its agent runs too; this test asks for the jobs as a second host would
    yield built
    built.close()


def test_the_job_list_waits_for_a_change_and_answers_at_once_when_one_comes(world: World) -> None:
    public, private = world.agent_key.split(".", 1)
    jobs_url = f"{world.api.base_url}{SOURCE}/groups/{world.source_project['id']}/liveMigrations/agentJobs"
    with httpx.Client(auth=httpx.DigestAuth(public, private), timeout=30, verify=LOOPBACK_TLS) as agent:
        def jobs(**headers: str) -> httpx.Response:
            return agent.get(jobs_url, params={"hostname": MIGRATION_HOST}, headers=headers)

        first = jobs()
        assert first.status_code == 200 and first.json() == {"results": []}
        version = first.headers["etag"]
        assert jobs(**{"Prefer": "wait=abc", "If-None-Match": version}).status_code == 200  # no wait asked

        started = time.monotonic()
        unchanged = jobs(**{"If-None-Match": version, "Prefer": "wait=1"})
        assert (unchanged.status_code, unchanged.content) == (304, b"")
        assert unchanged.headers["etag"] == version and unchanged.headers["preference-applied"] == "wait=1"
        assert time.monotonic() - started >= 0.9

        answered: dict[str, Any] = {}

        def wait_for_a_job() -> None:
            began = time.monotonic()
            answered["response"] = jobs(**{"If-None-Match": version, "Prefer": "wait=20"})
            answered["seconds"] = time.monotonic() - began

        waiting = threading.Thread(target=wait_for_a_job)
        waiting.start()
        time.sleep(0.5)  # the request is waiting when the migration is created
        created = world.target_call("POST", "/liveMigrations", json=world.request_body())
        assert created.status_code == 201, created.text
        waiting.join(timeout=30)
    response = answered["response"]
    assert response.status_code == 200 and answered["seconds"] < 10  # well before its 20 s were over
    assert [job["id"] for job in response.json()["results"]] == [created.json()["_id"]]
    assert response.headers["etag"] != version
    assert "destinationUri" in response.json()["results"][0]


RELAYED_JOBS = "/api/atlas/v2/orgs/{org_id}/liveMigrations/links/{source_org_id}/jobs"


def relayed_waits(base_url: str) -> float:
    """Relayed job-list requests (source → target) that took over a second — the waits — answered so far,
    from the server's own request histogram."""
    samples = [sample for family in metric_families(base_url) for sample in family.samples
               if sample.labels.get("route") == RELAYED_JOBS and sample.labels.get("method") == "GET"]
    answered = sum(s.value for s in samples if s.name == "livemigrate_http_request_duration_seconds_count")
    quick = sum(s.value for s in samples if s.name == "livemigrate_http_request_duration_seconds_bucket"
                and s.labels["le"] == "1.0")
    return answered - quick


def test_the_hosts_of_an_org_share_one_wait_on_the_target_and_each_gets_what_is_its_own(world: World) -> None:
    public, private = world.agent_key.split(".", 1)
    jobs_url = f"{world.api.base_url}{SOURCE}/groups/{world.source_project['id']}/liveMigrations/agentJobs"
    hostnames = [MIGRATION_HOST] + [f"idle{number}.example" for number in range(5)]
    answers: dict[str, tuple[int, float, list[Any]]] = {}

    def wait_as(hostname: str) -> None:
        with httpx.Client(auth=httpx.DigestAuth(public, private), timeout=30, verify=LOOPBACK_TLS) as host:
            version = host.get(jobs_url, params={"hostname": hostname}).headers["etag"]
            began = time.monotonic()
            response = host.get(jobs_url, params={"hostname": hostname},
                                headers={"If-None-Match": version, "Prefer": "wait=6"})
            answers[hostname] = (response.status_code, time.monotonic() - began,
                                 response.json()["results"] if response.status_code == 200 else [])

    hosts = [threading.Thread(target=wait_as, args=(hostname,)) for hostname in hostnames]
    before = relayed_waits(world.api.base_url)
    for host in hosts:
        host.start()
    time.sleep(1.5)  # all six wait now (with the agent's own poll)
    created = world.target_call("POST", "/liveMigrations", json=world.request_body())
    assert created.status_code == 201, created.text
    for host in hosts:
        host.join(timeout=30)
    status, seconds, results = answers[MIGRATION_HOST]
    assert status == 200 and seconds < 5 and [job["id"] for job in results] == [created.json()["_id"]]
    for hostname in hostnames[1:]:  # the change is not theirs: they waited on, to the end of their wait
        status, seconds, _ = answers[hostname]
        assert status == 304 and 5.5 <= seconds < 9, (hostname, status, seconds)
    time.sleep(1.0)  # a shared wait may end after the last host it served
    # The waits relayed to the target: the shared one the change ended, the one the five idle hosts
    # waited on after it, and perhaps the agent's. One per host and per turn made it twelve.
    waits = relayed_waits(world.api.base_url) - before
    assert waits <= 4, waits
