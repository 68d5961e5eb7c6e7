"""A migration that meets the faults MongoDB's drivers are built for, and rides them out: `livemigrate
migrate` between two nx-27017 servers, each behind a fault proxy (`tests/fault_proxy.py`), with a writer
on the source.

- One run per kind of fault, forced at each step of a migration: the copy's reads of the source and
  its writes to the destination, the change stream's reads and the replayed writes while replicating,
  the verdict's counts at cutover. Two faults in a row at each point: the driver retries a read (and
  resumes a change stream) once by itself, so it is the second that the engine must ride out.
- A mixed run: faults of every kind at random, about one per 25 round trips on both sides, three seeds.
- A destination that stays down past `--fault-limit`: the run ends with the sentence; started again
  once it is back, it resumes and completes.
- A change stream whose history is gone (ChangeStreamFatalError, not resumable): never retried, one
  sentence.

Each ends `COMPLETE` (exit 0, the verdict EQUAL), equal by the test's own comparison (`livemigrate
verify` on the servers themselves, not through the proxies), with no `_id` twice on the destination,
and with the retries reported on the progress line.
"""

from __future__ import annotations

import subprocess
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.engine_support import MigrateProcess, Writer, seed, wait_until
from tests.fault_proxy import (
    CHANGE_STREAM_FATAL,
    ERROR,
    RESET_BEFORE_FORWARD,
    RESET_BEFORE_REPLY,
    RESET_MID_REPLY,
    STALL,
    FaultProxy,
)
from tests.nx import NxServer
from tests.support import LIVEMIGRATE

WHERE = [("sales", "alpha"), ("sales", "beta"), ("people", "alpha")]
DOCUMENTS = 900  # 300 a collection: the copy reads each in batches of 100
# The proxy holds a stalled reply longer than the engine's socket timeout: a reply that never comes.
SOCKET_TIMEOUT = "1"
STALL_SECONDS = 2.0
ARGUMENTS = ("--workers", "2", "--batch-size", "100", "--socket-timeout", SOCKET_TIMEOUT,
             "--count-check-seconds", "30")


class Sides:
    """Both servers and a fault proxy in front of each."""

    def __init__(self, servers: tuple[NxServer, NxServer], seed_value: int = 0, rate: float = 0.0,
                 kinds: tuple[str, ...] = (RESET_BEFORE_REPLY,)) -> None:
        self.source, self.target = servers
        self.source_proxy = FaultProxy(self.source.port, seed=seed_value, rate=rate, kinds=kinds,
                                       stall_seconds=STALL_SECONDS).start()
        self.target_proxy = FaultProxy(self.target.port, seed=seed_value + 1, rate=rate, kinds=kinds,
                                       stall_seconds=STALL_SECONDS).start()

    def stop(self) -> None:
        self.source_proxy.stop()
        self.target_proxy.stop()

    def forced_all_met(self) -> bool:
        return self.source_proxy.pending == 0 and self.target_proxy.pending == 0


@pytest.fixture
def sides(servers: tuple[NxServer, NxServer]) -> Iterator[Sides]:
    made = Sides(servers)
    yield made
    made.stop()


def _equal_and_whole(sides: Sides, migration: MigrateProcess) -> None:
    """What the user is promised: the verdict EQUAL, both servers equal when compared directly, no
    `_id` twice on the destination, and the retries the engine made on the progress line (the driver
    rides some faults out by itself: a read retried once, a change stream resumed)."""
    log = migration.log_text()
    assert "EQUAL" in log and "Traceback" not in log, log[-3000:]
    compared = subprocess.run([LIVEMIGRATE, "verify", sides.source.uri, sides.target.uri], capture_output=True,
                              text=True, timeout=120)
    assert compared.returncode == 0, compared.stdout + compared.stderr
    with sides.target.client() as client:
        for database, name in WHERE:
            ids = [document["_id"] for document in client[database][name].find({}, {"_id": 1})]
            assert len(ids) == len(set(ids)) and len(ids) > DOCUMENTS // len(WHERE) // 2
    assert ("retries: " in log) == ("trying again" in log), log[-2000:]


def _forced(proxy: FaultProxy, kind: str, on: str, code: int | None, labels: tuple[str, ...] | None,
            where: Callable[[dict[str, Any]], bool] | None = None) -> None:
    for _ in range(2):  # the driver's own retry meets the second
        proxy.inject_next(kind, on=on, code=code, labels=labels, where=where)


def _of_sales_alpha(command: dict[str, Any]) -> bool:
    """A command on sales.alpha: an insert names it, a getMore names it in `collection`."""
    return command.get("$db") == "sales" and "alpha" in (command.get("insert"), command.get("collection"))


def _continues_a_cursor(command: dict[str, Any]) -> bool:
    """The copy's getMore of sales.alpha, past its first batch: a read the driver never retries."""
    return "getMore" in command and _of_sales_alpha(command)


# kind, code, labels (None: as the server's rules give them; (): none)
FAULTS = {
    "reset_before_forward": (RESET_BEFORE_FORWARD, None, None),
    "reset_before_reply": (RESET_BEFORE_REPLY, None, None),
    "reset_mid_reply": (RESET_MID_REPLY, None, None),
    "reply_never_comes": (STALL, None, None),
    "primary_stepped_down": (ERROR, 189, None),
    "interrupted_by_election_unlabelled": (ERROR, 11602, ()),
    "host_unreachable_labelled": (ERROR, 6, ("RetryableWriteError", "ResumableChangeStreamError")),
}


@pytest.mark.parametrize("fault", FAULTS)
def test_a_migration_rides_out_each_kind_of_fault_at_every_step(sides: Sides, tmp_path: Path, fault: str) -> None:
    kind, code, labels = FAULTS[fault]
    source, target = sides.source_proxy, sides.target_proxy
    with sides.source.client() as client:
        seed(client, total=DOCUMENTS, where=WHERE)
        writer = Writer(client, per_second=40, where=WHERE)
        # The copy: its reads of the source (a cursor's next batch), its writes to the destination.
        _forced(source, kind, "copy_read", code, labels, _continues_a_cursor)
        _forced(target, kind, "insert", code, labels, _of_sales_alpha)
        migration = MigrateProcess(source.uri, target.uri, tmp_path / "state", *ARGUMENTS).start()
        writer.start()
        try:
            assert wait_until(lambda: migration.phase() == "replay" and sides.forced_all_met(), timeout=90), \
                (migration.log_text()[-3000:], source.pending, target.pending)
            # Replication: the change stream's reads, the replayed writes.
            _forced(source, kind, "change_stream_getmore", code, labels)
            _forced(target, kind, "update_delete", code, labels)
            assert wait_until(sides.forced_all_met, timeout=60), (migration.log_text()[-3000:], source.pending,
                                                                   target.pending)
        finally:
            writer.finish()
        # The cutover: a burst of writes its drain must apply while the change stream's reads fail (a stream
        # the driver resumed answers "nothing" from its new cursor, which a drain must not take for
        # caught up), and the verdict's counts of both sides.
        _forced(source, kind, "change_stream_getmore", code, labels)
        client.sales.alpha.insert_many([{"_id": f"burst{number:03d}", "serial": f"burst-{number}"}
                                        for number in range(40)])
        _forced(source, kind, "count", code, labels)
        _forced(target, kind, "count", code, labels)
        assert migration.cutover_and_wait(timeout=120) == 0, migration.log_text()[-3000:]
    assert sides.forced_all_met(), (source.pending, target.pending)
    assert "retries: " in migration.log_text()  # two faults in a row at each point: the engine retried
    assert source.count(kind) == 8 and target.count(kind) == 6
    _equal_and_whole(sides, migration)


@pytest.mark.parametrize("seed_value", [11, 22, 33])
def test_a_migration_with_random_faults_on_both_sides_ends_equal(servers: tuple[NxServer, NxServer], tmp_path: Path,
                                                                 seed_value: int) -> None:
    """Faults of every kind at random on both sides through the whole migration (replay a failure with its
    seed: the proxies log each injection with it)."""
    sides = Sides(servers, seed_value, rate=1 / 25,
                  kinds=(RESET_BEFORE_FORWARD, RESET_BEFORE_REPLY, RESET_MID_REPLY, STALL, ERROR))
    try:
        with sides.source.client() as client:
            with sides.source_proxy.paused(), sides.target_proxy.paused():
                seed(client, total=DOCUMENTS, where=WHERE)
            writer = Writer(client, per_second=40, where=WHERE)
            migration = MigrateProcess(sides.source_proxy.uri, sides.target_proxy.uri, tmp_path / "state",
                                       *ARGUMENTS).start()
            writer.start()
            try:
                assert wait_until(lambda: migration.phase() == "replay", timeout=120), migration.log_text()[-3000:]
                assert wait_until(lambda: writer.counts["update"] > 60, timeout=30)
            finally:
                writer.finish()
            assert migration.cutover_and_wait(timeout=180) == 0, migration.log_text()[-3000:]
        met: Counter[str] = sides.source_proxy.counts() + sides.target_proxy.counts()
        assert sum(met.values()) >= 5 and len(met) >= 3, met  # faults of several kinds, on the way
        _equal_and_whole(sides, migration)
    finally:
        sides.stop()


def test_a_destination_down_past_the_limit_ends_the_run_and_a_later_run_resumes(
        servers: tuple[NxServer, NxServer], tmp_path: Path) -> None:
    source, target = servers
    state = tmp_path / "state"
    with source.client() as client:
        seed(client, total=DOCUMENTS, where=WHERE)
    first = MigrateProcess(source.uri, target.uri, state, *ARGUMENTS, "--fault-limit", "4", "--batch-size", "50",
                           "--workers", "1").start()
    assert wait_until(lambda: first.copied() >= 100, timeout=60), first.log_text()
    target.stop()  # the destination goes away in the middle of the copy, and stays away
    assert first.process is not None
    assert first.process.wait(timeout=60) == 2
    log = first.log_text()
    [sentence] = [line for line in log.splitlines() if line.startswith("Error: ")]
    assert sentence.startswith("Error: TARGET_UNREACHABLE: the destination (127.0.0.1:") and "kept failing" in sentence
    assert "run the migration again: it resumes from its checkpoints" in sentence and "Traceback" not in log
    target.start()  # back, with what it had been sent
    second = MigrateProcess(source.uri, target.uri, state, *ARGUMENTS).start()
    assert wait_until(lambda: "resuming the copy from its checkpoint" in second.log_text(), timeout=60), \
        second.log_text()
    assert second.cutover_and_wait(timeout=120) == 0, second.log_text()[-3000:]
    assert "EQUAL" in second.log_text()
    compared = subprocess.run([LIVEMIGRATE, "verify", source.uri, target.uri], capture_output=True, text=True,
                              timeout=120)
    assert compared.returncode == 0, compared.stdout


def test_a_change_stream_whose_history_is_gone_ends_the_run_in_one_sentence(sides: Sides, tmp_path: Path) -> None:
    """ChangeStreamFatalError (280) is not resumable: never retried, the run ends with RESUME_TOKEN_LOST
    and what to do, no traceback."""
    with sides.source.client() as client:
        seed(client, total=DOCUMENTS, where=WHERE)
        migration = MigrateProcess(sides.source_proxy.uri, sides.target_proxy.uri, tmp_path / "state",
                                   *ARGUMENTS).start()
        assert wait_until(lambda: migration.phase() == "replay", timeout=60), migration.log_text()[-3000:]
        sides.source_proxy.inject_next(CHANGE_STREAM_FATAL)
        client.sales.alpha.insert_one({"_id": "after-the-copy", "serial": "after"})
        assert migration.process is not None and migration.process.wait(timeout=60) == 2
    log = migration.log_text()
    [sentence] = [line for line in log.splitlines() if line.startswith("Error: ")]
    assert sentence.startswith("Error: RESUME_TOKEN_LOST: the source no longer has the changes") and \
        "start again with a new --state-dir and --drop-target" in sentence
    assert "Traceback" not in log and sides.source_proxy.count(CHANGE_STREAM_FATAL) == 1


def test_a_fault_met_in_a_copy_worker_process_is_counted_once(sides: Sides, tmp_path: Path) -> None:
    """A copy in two worker processes of eight collections (a range each, so each worker copies several):
    one reset on the copy's first insert is one retry in the progress line — a worker tells the
    coordinator only the retries it has not told yet, whichever range it copies next."""
    eight = [("sales", f"part{number}") for number in range(8)]
    with sides.source.client() as client:
        seed(client, total=12_000, where=eight)  # each range outlasts a retry: the faulted worker copies more
    sides.target_proxy.inject_next(RESET_BEFORE_FORWARD, on="insert",
                                   where=lambda command: command.get("$db") == "sales")
    migration = MigrateProcess(sides.source_proxy.uri, sides.target_proxy.uri, tmp_path / "state", *ARGUMENTS,
                               "--processes", "2", "--until-caught-up").start()
    assert migration.process is not None and migration.process.wait(timeout=120) == 0, migration.log_text()[-3000:]
    log = migration.log_text()
    assert sides.target_proxy.count(RESET_BEFORE_FORWARD) == 1 and log.count("trying again") == 1, log[-3000:]
    assert "retries: destination 1" in log and "retries: destination 2" not in log, log[-3000:]
