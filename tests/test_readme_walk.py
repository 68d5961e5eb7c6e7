"""The README's full migration with the CLI, run as written: its blocks are read from README.md and
pasted into one bash, against two nx-27017 servers, with a writer on the source until the README
says to stop writes. Only the block of settings a reader edits is replaced, by this test's values."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

from tests.engine_support import Writer, seed
from tests.nx import NxServer
from tests.support import LIVEMIGRATE, ServerProcess, wait_for

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
STEP_DONE = "::step-done::"


def walk_blocks() -> list[str]:
    """The section's `sh` blocks: the settings to edit, the walk until ready, and the cutover."""
    section = README.split("## A full migration, with the CLI", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, re.DOTALL)


class Shell:
    """One bash that reads what it is given as a person's paste, block after block."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.output = cwd / "shell.log"
        self.process = subprocess.Popen(["bash"], stdin=subprocess.PIPE, stdout=open(self.output, "wb"),
                                        stderr=subprocess.STDOUT, cwd=cwd, env=env, text=True,
                                        start_new_session=True)
        self.steps = 0
        self.paste("set -euo pipefail\n")

    def paste(self, block: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(block + f"\necho {STEP_DONE}\n")
        self.process.stdin.flush()
        self.steps += 1

    def wait_step(self, timeout: float) -> str:
        assert wait_for(lambda: self.log().count(STEP_DONE) >= self.steps or self.process.poll() is not None,
                        timeout=timeout, interval=0.2), self.log()[-4000:]
        assert self.log().count(STEP_DONE) >= self.steps, f"the walk stopped (exit {self.process.poll()}):\n" \
                                                          + self.log()[-4000:]
        return self.log()

    def log(self) -> str:
        return self.output.read_text(errors="replace")

    def close(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
        try:
            os.killpg(self.process.pid, 9)  # whatever the walk left in the background
        except ProcessLookupError:
            pass


def test_the_readme_walk_runs_as_written(tmp_path: Path) -> None:
    settings, until_ready, cutover = walk_blocks()
    source_db, destination_db = NxServer(tmp_path / "src").start(), NxServer(tmp_path / "dst").start()
    with source_db.client() as client:
        seed(client, total=1200)
    ours = {"SOURCE_HOST": "127.0.0.1", "SOURCE_PORT": str(source_db.port), "SOURCE_AUTH": "",
            "LIVEMIGRATE_HOST_PASSWORD": "", "SOURCE_URI": source_db.uri,
            "LIVEMIGRATE_CONNECTION_STRING": destination_db.uri,
            "LIVEMIGRATE_AGENT_CAPTURE": "collection"}  # nx-27017: no deployment-wide stream (the README says)
    assert set(re.findall(r"(?:^|\s)([A-Z_]+)=", settings)) == set(ours)  # the settings a reader edits are ours

    home = tmp_path / "walk"
    home.mkdir()
    (home / ".venv").symlink_to(ROOT / ".venv")  # the walk runs `.venv/bin/livemigrate`, from a clone's root
    api = ServerProcess(tmp_path / "api", sync_seconds=1.0).start()  # `make serve`, on a port of its own
    shell: Shell | None = None
    writer = Writer(source_db.client(), per_second=30)
    try:
        assert wait_for(lambda: "export LIVEMIGRATE_BASE_URL" in api.log_text(), timeout=10)
        exports = "\n".join(re.findall(r"^export .*$", api.log_text(), re.MULTILINE))
        env = {key: value for key, value in os.environ.items() if not key.startswith("LIVEMIGRATE_")}
        # Its output goes to a file, as a script's or a log's would, with no COLUMNS: every id whole.
        shell = Shell(home, {key: value for key, value in {**env, **ours}.items() if key != "COLUMNS"})
        writer.start()
        shell.paste(exports)
        shell.paste(until_ready + 'echo "::ids:: $GROUP $ATLAS $MID $SOURCE_CLUSTER"')
        shown = shell.wait_step(timeout=180)
        group, atlas, migration_id, source_cluster = re.findall(r"::ids:: (\S+) (\S+) (\S+) (\S+)", shown)[0]
        assert "Ready — stop the application's writes" in shown, shown[-3000:]
        assert f"livemigrate target live-migrations cutover --group {atlas} --id {migration_id}" in shown
        assert source_cluster == f"127.0.0.1:{source_db.port}"
        _what_a_mistyped_name_answers(api, group, atlas, migration_id, source_cluster)

        writer.finish()  # "Stop the application's writes to the source, then:"
        shell.paste(cutover)
        shown = shell.wait_step(timeout=120)
        assert "12 namespace(s) verified equal" in shown and "equal" in shown.rsplit("verification", 1)[-1]
        listed = [line for line in shown.splitlines() if migration_id in line]
        assert listed and any("COMPLETE" in line for line in listed), shown[-3000:]  # the id and its status whole
        assert "Error:" not in shell.log() and shell.process.poll() is None, shown[-3000:]  # nothing failed
    finally:
        if writer.is_alive():
            writer.finish()
        if shell is not None:
            shell.close()
        api.stop()
        source_db.stop()
        destination_db.stop()


def _what_a_mistyped_name_answers(api: ServerProcess, group: str, atlas: str, migration_id: str,
                                  source_cluster: str) -> None:
    """Beside the walk: a mistyped cluster name lists the names that exist, the closest first, and the
    command that shows them; a narrow terminal folds identifiers, it never cuts them."""
    keys = re.search(r"export TARGET_ORG=\S+ TARGET_PUB=(\S+) TARGET_PRIV=(\S+)", api.log_text())
    assert keys is not None
    env = {**os.environ, "LIVEMIGRATE_BASE_URL": api.base_url, "LIVEMIGRATE_PUBLIC_KEY": keys[1],
           "LIVEMIGRATE_PRIVATE_KEY": keys[2], "COLUMNS": "60"}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([LIVEMIGRATE, *args], env=env, capture_output=True, text=True, timeout=60)

    request = ["--group", atlas, "--source-group", group, "--migration-host", "mh1"]
    # The walk's migration runs: its destination is refused to another at once, naming it.
    in_use = cli("target", "live-migrations", "validate", *request, "--source-cluster", source_cluster,
                 "--destination-cluster", "Destination")
    assert in_use.returncode == 1 and "LIVE_MIGRATION_DESTINATION_IN_USE (409)" in in_use.stderr, in_use.stderr
    assert f"being written by live migration {migration_id}" in " ".join(in_use.stderr.split())
    for mistyped, expected in (
            # (the source is checked first: the destination's name is mistyped too, so that it is not in use)
            (["--source-cluster", "rs0", "--destination-cluster", "Destinaton"],
             [f"its deployments: {source_cluster}", "livemigrate source clusters list"]),
            (["--source-cluster", source_cluster, "--destination-cluster", "Destinaton"],
             ["did you mean 'Destination'?", "livemigrate target clusters add"])):
        validation_id = cli("target", "live-migrations", "validate", *request, *mistyped,
                            "-o", "json-path=$._id").stdout.strip()
        described = cli("target", "live-migrations", "validation", "describe", "--group", atlas, "--id",
                        validation_id, "--wait", "-o", "json")
        outcome: dict[str, Any] = json.loads(described.stdout)
        assert described.returncode == 1 and outcome["status"] == "FAILED", outcome
        assert all(part in outcome["errorMessage"] for part in expected), outcome
    listed = cli("target", "live-migrations", "list", "--group", atlas)
    assert listed.returncode == 0 and "…" not in listed.stdout, listed.stdout
    first_column = "".join(re.findall(r"^│ (\S+)", listed.stdout, re.MULTILINE))  # folded over lines, whole
    assert first_column == migration_id, listed.stdout
