"""Disks fill: the migration host's, under the state directory, and the destination's.

The state directory's disk is made small and filled for real: a tmpfs of a few MiB is mounted on it
(the tests run as root, as the suite does; where `mount` is refused they fail saying why, never skip) and a
ballast file takes every byte left, so that SQLite's next write of the checkpoints, the verification
ledger or the spool meets ENOSPC (`SQLITE_FULL`) as it would on a full disk. Deleting the ballast frees
the space again.

The destination's disk cannot be filled that way (nx-27017 reports the disk of its data directory), so
a proxy says what a full or nearly full one answers: `FreeSpaceProxy` rewrites the free space dbStats
reports, and `FaultProxy` answers an insert with OutOfDiskSpace (14031), as a destination that ran out
of disk mid-copy does.
"""

from __future__ import annotations

import errno
import os
import re
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import bson
import pytest
from bson.raw_bson import RawBSONDocument

from livemigrate.engine.capture.spool import Spool
from livemigrate.engine.changes import CapturedEvent
from livemigrate.engine.checkpoints import SqliteCheckpointStore, human_size
from livemigrate.engine.errors import EngineError, EngineErrorCode
from livemigrate.engine.ledger import Side, VerificationLedger
from livemigrate.engine.preflight import SPACE_MARGIN
from tests.engine_support import MigrateProcess, Writer, seed
from tests.fault_proxy import ERROR, INSERT, FaultProxy
from tests.nx import NxServer
from tests.space_proxy import FreeSpaceProxy
from tests.support import LIVEMIGRATE
from tests.support import wait_for as wait_until
from tests.test_engine_live import verify
from tests.wire_proxy import SlowCopyProxy

WHERE = [("sales", "alpha"), ("sales", "beta")]
DOCUMENTS = 2000
DISK = "16m"  # the state directory's disk: a run of DOCUMENTS needs about 2 MiB of it (measured)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of `DISK` mounted on a directory of its own (the state directory: the migrate process's
    log is written beside it, not on it)."""
    mount_point = tmp_path / "state"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK}", "tmpfs", str(mount_point)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.fail(f"a small disk for the state directory needs `mount -t tmpfs` (root): {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "--lazy", str(mount_point)], check=False)


def fill(directory: Path) -> Path:
    """Write a ballast file until the disk refuses another byte; delete it to free the space again."""
    ballast = directory / "ballast"
    # Unbuffered: a buffered file would flush what it holds again when closed, and meet ENOSPC there.
    with open(ballast, "wb", buffering=0) as file:
        try:
            while True:
                file.write(b"\0" * 65536)  # the last one writes what still fits, the next is refused
        except OSError as error:
            assert error.errno == errno.ENOSPC, error
    assert os.statvfs(directory).f_bavail == 0
    return ballast


def _disk_full(directory: Path, error: EngineError) -> None:
    """The one sentence: the code, the directory, its disk full, what to free, and that a run resumes."""
    assert error.code is EngineErrorCode.STATE_DISK_FULL, error
    assert f"the disk of the state directory {directory} is full (0 B free)" in error.message, error.message
    assert re.search(r"free about [\d.,]+ [KMG]iB there", error.message), error.message
    assert error.message.endswith("run the migration again with the same state directory: it resumes from its "
                                  "checkpoints"), error.message


def _intact(path: Path) -> None:
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_each_state_file_on_a_full_disk_says_so_keeps_what_it_saved_and_writes_again_once_freed(
        small_disk: Path) -> None:
    checkpoints = SqliteCheckpointStore(small_disk)
    ledger = VerificationLedger(small_disk / VerificationLedger.FILE_NAME)
    spool = Spool(small_disk / Spool.FILE_NAME, limit_bytes=1024**3)
    try:
        checkpoints.save({"total:sales.alpha": {"total": 40_000}, "range:sales.alpha:0": {"copied": 100}})
        ledger.begin("m1")
        documents = [RawBSONDocument(bson.encode({"_id": f"k{n:05d}", "v": "x" * 200})) for n in range(4000)]
        ledger.record(Side.SOURCE, "sales.alpha", documents[:100])
        spool.append([CapturedEvent("sales.alpha", {"_id": {"n": 1}, "operationType": "insert"})], {"sales.alpha": 1})
        ballast = fill(small_disk)

        with pytest.raises(EngineError) as saved:
            checkpoints.save({f"range:sales.alpha:{n}": {"copied": n, "pad": "p" * 4000} for n in range(200)})
        _disk_full(small_disk, saved.value)
        # The plan's 40,000 documents: about 100 bytes each, on each side, in the ledger.
        assert "for 40,000 documents" in saved.value.message, saved.value.message
        with pytest.raises(EngineError) as recorded:
            ledger.record(Side.SOURCE, "sales.alpha", documents[100:])
        _disk_full(small_disk, recorded.value)
        with pytest.raises(EngineError) as spooled:
            spool.append([CapturedEvent("sales.alpha", {"_id": {"n": n}, "pad": "p" * 1000}) for n in range(2, 2000)],
                         {"sales.alpha": 2000})
        _disk_full(small_disk, spooled.value)
        assert "more for the changes that wait in the spool (up to 1,024 MiB: --spool-limit" in spooled.value.message

        # Nothing half-written: each file holds what it held before, whole.
        assert checkpoints.load("range:") == {"range:sales.alpha:0": {"copied": 100}}
        assert ledger.count(Side.SOURCE, "sales.alpha") == 100
        assert spool.pending() == 1 and spool.tokens() == {"sales.alpha": 1}
        for name in (SqliteCheckpointStore.FILE_NAME, VerificationLedger.FILE_NAME, Spool.FILE_NAME):
            _intact(small_disk / name)

        ballast.unlink()  # space freed: the same stores write again
        checkpoints.save({"range:sales.alpha:0": {"copied": 200}})
        ledger.record(Side.SOURCE, "sales.alpha", documents[100:])
        spool.append([CapturedEvent("sales.alpha", {"_id": {"n": 2}, "operationType": "insert"})], {"sales.alpha": 2})
        assert checkpoints.load("range:") == {"range:sales.alpha:0": {"copied": 200}}
        assert ledger.count(Side.SOURCE, "sales.alpha") == 4000 and spool.pending() == 2
    finally:
        checkpoints.close()
        ledger.close()
        spool.close()


def _resume_to_complete(source: NxServer, target: NxServer, source_uri: str, target_uri: str, state: Path) -> str:
    """Run again with the same state directory: it resumes, a cutover completes, both sides are equal."""
    again = MigrateProcess(source_uri, target_uri, state, "--batch-size", "100").start()
    assert again.cutover_and_wait() == 0, again.log_text()[-3000:]
    log = again.log_text()
    assert "resuming the copy from its checkpoint" in log and "EQUAL" in log, log[-3000:]
    result = verify(source, target)
    assert result.returncode == 0, result.stdout + result.stderr
    return log


def _one_line_error(log: str, code: str) -> str:
    errors = [line for line in log.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and errors[0].startswith(f"Error: {code}: "), log[-3000:]
    assert "Traceback" not in log, log[-5000:]
    return errors[0].removeprefix(f"Error: {code}: ")


def test_a_full_state_disk_mid_copy_ends_the_run_with_one_sentence_and_it_resumes_once_freed(
        servers: tuple[NxServer, NxServer], small_disk: Path) -> None:
    source, target = servers
    with source.client() as client:
        seed(client, total=DOCUMENTS, where=WHERE)
    far = SlowCopyProxy(target.port, seconds_per_batch=0.15)  # a copy of a few seconds: filled during it
    far.start()
    try:
        with source.client() as client:
            writer = Writer(client, per_second=40, where=WHERE)
            first = MigrateProcess(source.uri, far.uri, small_disk, "--batch-size", "100", "--workers", "2").start()
            try:
                assert wait_until(lambda: first.copied() >= 100, timeout=60), first.log_text()
                writer.start()  # once the copy is planned: its changes wait in the spool
                assert wait_until(lambda: first.copied() >= 600, timeout=60), first.log_text()
                ballast = fill(small_disk)
                assert first.process is not None
                assert first.process.wait(timeout=60) == 2, first.log_text()[-3000:]
            finally:
                writer.finish()
                if first.process is not None and first.process.poll() is None:
                    first.kill()
        sentence = _one_line_error(first.log_text(), "STATE_DISK_FULL")
        assert sentence.startswith(f"the disk of the state directory {small_disk} is full (0 B free), so "), sentence
        assert f"for {DOCUMENTS:,} documents" in sentence, sentence  # the plan's, counted before the writer began
        assert first.copied() < DOCUMENTS  # it stopped mid-copy

        ballast.unlink()
        far.seconds_per_batch = 0.0
        _resume_to_complete(source, target, source.uri, far.uri, small_disk)
    finally:
        far.stop()


def test_a_destination_out_of_disk_space_mid_copy_ends_the_run_with_one_sentence_and_it_resumes(
        servers: tuple[NxServer, NxServer], tmp_path: Path) -> None:
    source, target = servers
    with source.client() as client:
        seed(client, total=DOCUMENTS, where=WHERE)
    far = SlowCopyProxy(target.port, seconds_per_batch=0.15)
    far.start()
    full = FaultProxy(far.port).start()  # outermost, as fault_proxy.py asks
    state = tmp_path / "state"
    try:
        first = MigrateProcess(source.uri, full.uri, state, "--batch-size", "100", "--workers", "2").start()
        assert wait_until(lambda: first.copied() >= 200, timeout=60), first.log_text()
        full.inject_next(ERROR, on=INSERT, code=14031)  # the destination's disk filled: OutOfDiskSpace
        assert first.process is not None
        assert first.process.wait(timeout=60) == 2, first.log_text()[-3000:]
        assert [(injection.kind, injection.command, injection.code) for injection in full.injected] == \
            [(ERROR, "insert", 14031)]
        sentence = _one_line_error(first.log_text(), "TARGET_OUT_OF_SPACE")
        assert sentence.startswith(f"the destination (127.0.0.1:{full.port}) is out of disk space while writing a "
                                   "copy batch of sales."), sentence
        assert sentence.endswith("free space there (or grow its storage), then run the migration again: it resumes "
                                 "from its checkpoints"), sentence
        assert first.copied() < DOCUMENTS

        far.seconds_per_batch = 0.0  # space freed: the proxy injects nothing more
        _resume_to_complete(source, target, source.uri, full.uri, state)
        assert len(full.injected) == 1
    finally:
        full.stop()
        far.stop()


def _dry_run(source: NxServer, target_uri: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LIVEMIGRATE, "migrate", source.uri, target_uri, "--dry-run"], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "COLUMNS": "250"})


def test_the_dry_run_blocks_a_destination_without_room_for_the_copy_and_names_both_figures(
        servers: tuple[NxServer, NxServer]) -> None:
    source, target = servers
    with source.client() as client:
        seed(client, total=400, where=WHERE)
        stats = [client.sales.command("collStats", name) for _, name in WHERE]
    data = sum(int(stat["size"]) for stat in stats)
    indexes = sum(int(stat.get("totalIndexSize") or 0) for stat in stats)
    needed = human_size(round((data + indexes) * (1 + SPACE_MARGIN)))
    nearly_full = FreeSpaceProxy(target.port, free_bytes=50 * 1024).start()
    silent = FreeSpaceProxy(target.port, free_bytes=None).start()
    try:
        blocked = _dry_run(source, nearly_full.uri)
        assert blocked.returncode == 1, blocked.stdout + blocked.stderr
        assert (f"blocked: the destination's disk has 50.0 KiB free (fsTotalSize - fsUsedSize in its dbStats) and "
                f"the copy writes about {needed} ({human_size(data)} of data and {human_size(indexes)} of indexes on "
                "the source, in the namespaces copied, and a 10% margin): grow its storage or free space there"
                in blocked.stdout), blocked.stdout
        assert nearly_full.rewritten > 0

        unknown = _dry_run(source, silent.uri)  # a destination that does not say: told, never blocked
        assert unknown.returncode == 0 and "blocked" not in unknown.stdout, unknown.stdout + unknown.stderr
        assert ("warning: the destination does not report its free space (no fsTotalSize and fsUsedSize in its "
                f"dbStats): make sure it has room for what the copy writes, about {needed}") in unknown.stdout, \
            unknown.stdout
        assert silent.rewritten > 0
    finally:
        nearly_full.stop()
        silent.stop()
