"""The control plane rides out the network: a migration host whose calls to the source API, and a source
whose relay over the link to the target, meet resets and answers held past their timeouts at a steady
rate still completes its migration — the job started once, every report the target recorded in order,
the final one recorded once and acknowledged to the host.

The migration host is the agent's own `MigrationHostAgent`, run in this process so that its HTTP client's
timeout can be short (a held answer costs the test that long); everything else is as `livemigrate agent`
runs it. Between it and the source API stands one `HttpFaultProxy`, between the source's link channel and
the target API another (link-tokens name it: `LIVEMIGRATE_PUBLIC_URL`). Besides the faults drawn at a
steady rate, each kind is forced once on the host's reports, and the final report's answer is lost on both
hops: the host is held past its timeout (twice) while the target has recorded it, and the link's answer to
the source is cut.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from livemigrate.agent.host import MigrationHostAgent
from livemigrate.agent.runner import RunnerSettings
from livemigrate.client.agent_api import AgentApi
from livemigrate.contracts import ProgressReport
from livemigrate.engine import CaptureScope
from livemigrate.engine.events import Phase
from tests.engine_support import namespaces, seed
from tests.http_fault_proxy import (
    KINDS,
    RESET_BEFORE_REPLY,
    STALL,
    HttpFaultProxy,
    seed_from_env,
)
from tests.migration_world import MIGRATION_HOST, World
from tests.support import ServerProcess, free_port, wait_for

PHASES = list(Phase)
# The host waits for the source longer than the source waits for the target (each call over the link, and
# its one retry on a cut connection), as with the defaults (30 s and 10 s): the source answers first.
AGENT_TIMEOUT_SECONDS = 1.5
LINK_TIMEOUT_SECONDS = 1.0
FAULT_RATE = 0.2


def _report_saying(*statuses: str) -> Any:
    """A proxy's `when`: a progress report (to the source, or relayed to the target) with one of `statuses`."""
    def when(method: str, target: str, body: bytes) -> bool:
        return method == "PATCH" and json.loads(body or b"{}").get("status", "WORKING") in statuses
    return when


class LogLines(logging.Handler):
    """The messages of the `livemigrate` loggers, as the agent's log file would hold them."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def count(self, text: str) -> int:
        return sum(text in line for line in self.lines)


@dataclass
class Observer:
    """Reads the migration from the target API every tenth of a second: what a person watching sees."""

    world: World
    migration_id: str
    seen: list[dict[str, Any]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        with self.world.api.client(self.world.target) as client:
            path = f"/api/atlas/v2/groups/{self.world.target_project['id']}/liveMigrations/{self.migration_id}"
            while not self._stop.wait(0.1):
                self.seen.append(client.get(path).json())

    def stop(self) -> list[dict[str, Any]]:
        self._stop.set()
        self._thread.join(timeout=10)
        return self.seen


def _documents(client: Any) -> dict[str, list[Any]]:
    return {f"{db}.{name}": sorted(client[db][name].find(), key=lambda d: str(d["_id"])) for db, name in namespaces()}


def _out_of_order(reports: list[dict[str, Any]]) -> list[str]:
    """What goes backwards in a sequence of reports (or of the migration as shown): a phase, the documents
    copied, the changes applied, a final status."""
    problems = []
    for before, after in zip(reports, reports[1:], strict=False):
        if before.get("phase") and after.get("phase") and \
                PHASES.index(Phase(after["phase"])) < PHASES.index(Phase(before["phase"])):
            problems.append(f"phase {before['phase']} then {after['phase']}")
        for figure in ("copiedDocuments", "eventsApplied"):
            if after.get(figure) is not None and (before.get(figure) or 0) > after[figure]:
                problems.append(f"{figure} {before[figure]} then {after[figure]}")
        if before.get("status") in ("COMPLETE", "FAILED") and after.get("status") != before["status"]:
            problems.append(f"status {before['status']} then {after.get('status')}")
    return problems


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[tuple[World, HttpFaultProxy, HttpFaultProxy]]:
    """A world whose source API serves the host through one proxy, and reaches the target through another;
    neither injects anything until the test sets its rate."""
    port, first_seed = free_port(), seed_from_env(5)
    link_proxy = HttpFaultProxy(port, seed=first_seed + 1, rate=0.0, stall_seconds=LINK_TIMEOUT_SECONDS + 0.5,
                                name="link").start()
    server = ServerProcess(tmp_path / "api", sync_seconds=1.0, port=port, extra_env={
        "LIVEMIGRATE_AGENT_CAPTURE": "collection", "LIVEMIGRATE_PUBLIC_URL": link_proxy.url,
        "LIVEMIGRATE_LINK_PUSH_TIMEOUT_SECONDS": str(LINK_TIMEOUT_SECONDS)})
    world = World(tmp_path, api=server)
    server.start()
    agent_proxy = HttpFaultProxy(port, seed=first_seed, rate=0.0, stall_seconds=AGENT_TIMEOUT_SECONDS + 0.5,
                                 name="agent").start()
    try:
        yield world, agent_proxy, link_proxy
    finally:
        world.close()
        server.stop()
        agent_proxy.stop()
        link_proxy.stop()


@pytest.fixture
def agent_logs() -> Iterator[LogLines]:
    logs, logger = LogLines(), logging.getLogger("livemigrate")
    previous = logger.level
    logger.addHandler(logs)
    logger.setLevel(logging.INFO)
    yield logs
    logger.removeHandler(logs)
    logger.setLevel(previous)


def test_a_migration_completes_once_with_its_reports_in_order_through_resets_and_held_answers(
        proxied: tuple[World, HttpFaultProxy, HttpFaultProxy], agent_logs: LogLines, tmp_path: Path) -> None:
    world, agent_proxy, link_proxy = proxied
    with world.source_db.client() as client:
        seed(client, total=360)
    world.link()
    world.add_source_project_and_host()
    world.add_target_project_and_cluster()
    # From here on, faults at a steady rate on every call of the host and every call over the link; each
    # kind once on the host's first reports; the final report's answer lost on both hops.
    agent_proxy.rate = link_proxy.rate = FAULT_RATE
    for kind in KINDS:
        agent_proxy.inject_next(kind, _report_saying("WORKING"))
    for _ in range(2):  # twice: the list without the job reaches the host before its outcome is answered
        agent_proxy.inject_next(STALL, _report_saying("COMPLETE", "FAILED"))
    link_proxy.inject_next(RESET_BEFORE_REPLY, _report_saying("COMPLETE", "FAILED"))
    state = tmp_path / "agent-state"
    api = AgentApi(agent_proxy.url, world.source_project["id"], world.agent_key, timeout_seconds=AGENT_TIMEOUT_SECONDS)
    host = MigrationHostAgent(api, MIGRATION_HOST, RunnerSettings(
        state_dir=state, capture=CaptureScope.COLLECTION, retries=5, retry_seconds=0.5, ready_lag_seconds=5.0,
        count_check_seconds=1.0, processes=1), report_seconds=0.3)
    running = threading.Thread(target=host.run, daemon=True)
    running.start()
    observer: Observer | None = None
    try:
        assert wait_for(lambda: any(p["migrationHosts"] for p in world.available_projects()), timeout=30)
        created = world.target_call("POST", "/liveMigrations", json=world.request_body())
        assert created.status_code == 201, created.text
        migration_id = created.json()["_id"]
        observer = Observer(world, migration_id)
        world.wait_migration(migration_id, lambda m: m["readyForCutover"], timeout=60)
        database, collection = namespaces()[0]
        with world.source_db.client() as client:  # changes to replay, reported as they are applied
            client[database][collection].insert_many([{"_id": f"late{n:03d}", "quantity": n} for n in range(20)])
        world.wait_migration(migration_id, lambda m: m["eventsApplied"] >= 20 and m["readyForCutover"], timeout=60)
        assert world.target_call("PUT", f"/liveMigrations/{migration_id}/cutover").status_code == 202
        done = world.wait_migration(migration_id, lambda m: m["status"] in ("COMPLETE", "FAILED"), timeout=60)
        assert done["status"] == "COMPLETE", done
        # The host learns the target holds the outcome (its final report acknowledged): it forgets the job.
        assert wait_for(lambda: not (state / migration_id).exists(), timeout=20), agent_logs.lines[-30:]
        assert wait_for(lambda: agent_logs.count(f"job {migration_id} ended COMPLETE") == 1, timeout=5)
    finally:
        host.stop()
        running.join(timeout=30)
        api.close()
        seen = observer.stop() if observer is not None else []

    with world.source_db.client() as source, world.destination_db.client() as destination:
        assert _documents(source) == _documents(destination)
    injected = agent_proxy.counts() + link_proxy.counts()
    assert agent_proxy.counts().total() >= 6 and link_proxy.counts().total() >= 2, injected
    assert any(not injection.forced for injection in agent_proxy.injected + link_proxy.injected), injected
    # The job started once: one runner, one fresh sync.
    assert agent_logs.count(f"job {migration_id}: starting the migration") == 1, agent_logs.lines
    assert agent_logs.count("starting a fresh sync") == 1, agent_logs.lines
    # What the target answered, in the order it answered (the answer reaching the source or not), is in
    # order; the first final report is COMPLETE, and nothing recorded after it changes the migration.
    reports = [ProgressReport.model_validate_json(exchange.body).to_json()
               for exchange in link_proxy.answered("PATCH", f"/jobs/{migration_id}") if exchange.status == 200]
    assert _out_of_order(reports) == [], reports
    assert [report["status"] for report in reports if report.get("status") != "WORKING"][:1] == ["COMPLETE"]
    assert _out_of_order(seen) == [], [(m["status"], m["phase"], m["copiedDocuments"]) for m in seen]
    final = [{key: shown[key] for key in ("status", "phase", "copiedDocuments", "eventsApplied", "namespaces")}
             for shown in seen if shown["status"] == "COMPLETE"]
    assert final and all(shown == final[0] for shown in final), final
    assert final[0]["copiedDocuments"] >= 360 and final[0]["eventsApplied"] >= 20, final[0]
