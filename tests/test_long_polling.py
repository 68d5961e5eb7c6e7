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
from tests.support import LOOPBACK_TLS, SOURCE


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
