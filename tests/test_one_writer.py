"""One migration writes a destination at a time, also for `livemigrate migrate`, which no control plane
sees: the engine claims the destination before it writes there (`engine/mongo/claim.py`)."""

from __future__ import annotations

import signal
from pathlib import Path

from tests.engine_support import MigrateProcess, seed
from tests.nx import NxServer
from tests.support import wait_for as wait_until


def test_a_second_migrate_into_a_destination_being_written_is_refused_naming_the_first(
        servers: tuple[NxServer, NxServer], tmp_path: Path) -> None:
    source, target = servers
    with source.client() as source_client:
        seed(source_client, total=600)
    first = MigrateProcess(source.uri, target.uri, tmp_path / "first").start()
    assert wait_until(first.replicating, timeout=60), first.log_text()
    assert first.process is not None

    # Refused whatever it asks, --drop-target included: nothing of the first's copy is touched.
    second = MigrateProcess(source.uri, target.uri, tmp_path / "second", "--drop-target").start()
    assert second.process is not None and second.process.wait(timeout=60) == 1, second.log_text()
    refusal = [line for line in second.log_text().splitlines() if line.startswith("Error: ")]
    assert len(refusal) == 1 and refusal[0].startswith("Error: DESTINATION_IN_USE: the destination is being "
                                                       "written by another migration"), second.log_text()
    assert f"(pid {first.process.pid})" in refusal[0] and "Traceback" not in second.log_text()
    with target.client() as target_client:
        assert target_client.sales.alpha.count_documents({}) == 50  # the first's copy, untouched

    # Once the first has stopped, the same request is accepted.
    first.process.send_signal(signal.SIGINT)
    assert first.process.wait(timeout=60) == 130, first.log_text()
    again = MigrateProcess(source.uri, target.uri, tmp_path / "second", "--drop-target", "--until-caught-up").start()
    assert again.process is not None and again.process.wait(timeout=120) == 0, again.log_text()

    # And the first, which another migration has followed on that destination, cannot resume there.
    resumed = MigrateProcess(source.uri, target.uri, tmp_path / "first").start()
    assert resumed.process is not None and resumed.process.wait(timeout=60) == 2, resumed.log_text()
    assert "Error: DESTINATION_TAKEN_OVER: another migration has written the destination since this one last ran" \
        in resumed.log_text()
