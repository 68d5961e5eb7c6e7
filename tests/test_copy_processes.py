"""`migrate --processes 2`: the copy shared out among two worker processes, under a writer — and one of
them SIGKILLed mid-copy, after which the next run resumes and the migration still ends equal."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

from tests.engine_support import MigrateProcess, Writer, seed, wait_until
from tests.nx import NxServer
from tests.support import LIVEMIGRATE

SHARE = re.compile(r"process (\d+) copied ([\d,]+) document\(s\) on ([\d.]+) s of CPU")


def _workers_of(migration: MigrateProcess) -> list[int]:
    """The copy's worker processes: the migrate process's children that run the engine (not the
    resource tracker multiprocessing starts beside them)."""
    assert migration.process is not None
    found = subprocess.run(["pgrep", "-P", str(migration.process.pid), "-f", "multiprocessing.spawn"],
                           capture_output=True, text=True, check=False)
    return [int(pid) for pid in found.stdout.split()]


def test_two_worker_processes_share_the_copy_and_a_killed_one_is_resumed(servers: tuple[NxServer, NxServer],
                                                                          tmp_path: Path) -> None:
    source, target = servers
    state = tmp_path / "state"
    # Small ranges and batches: twelve namespaces, each split, copied slowly enough to kill a worker.
    arguments = ("--processes", "2", "--split-threshold", "500", "--batch-size", "100")
    with source.client() as client:
        seed(client, total=10_000)
        writer = Writer(client, per_second=40)
        writer.start()
        try:
            first = MigrateProcess(source.uri, target.uri, state, *arguments).start()
            assert wait_until(lambda: len(_workers_of(first)) == 2 and first.copied() >= 1000, timeout=120), \
                first.log_text()
            victim = _workers_of(first)[0]
            os.kill(victim, signal.SIGKILL)
            assert first.process is not None
            assert first.process.wait(timeout=60) == 2, first.log_text()
            assert "COPY_WORKER_LOST" in first.log_text()
            copied_at_kill = first.copied()
            assert wait_until(lambda: not _workers_of(first), timeout=10)  # no worker copies on alone

            second = MigrateProcess(source.uri, target.uri, state, *arguments).start()
            assert wait_until(lambda: second.phase() == "replay", timeout=180), second.log_text()
            assert wait_until(lambda: writer.counts["delete"] > 20, timeout=30)
        finally:
            writer.finish()
        assert second.cutover_and_wait() == 0, second.log_text()
    log = second.log_text()
    already = int(log.split("resuming the copy from its checkpoint: ")[1].split(" ")[0])
    assert already >= copied_at_kill > 0  # the copy did not restart from zero
    assert re.search(r"copying \d+ range\(s\) in 2 worker processes", log), log
    shares = SHARE.findall(log)
    assert second.process is not None
    pids = {int(pid) for pid, _, _ in shares}
    assert len(pids) == 2 and second.process.pid not in pids, shares
    copied = [int(documents.replace(",", "")) for _, documents, _ in shares]
    assert all(share >= 0.2 * sum(copied) for share in copied), shares  # both took a real part
    assert all(float(cpu) > 0 for _, _, cpu in shares), shares  # on CPU of their own
    assert "EQUAL" in log and "DIFFERENT" not in log
    result = subprocess.run([LIVEMIGRATE, "verify", source.uri, target.uri], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
