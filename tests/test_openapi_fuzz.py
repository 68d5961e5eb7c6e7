"""/openapi.json tells the truth: schemathesis, an independent OpenAPI fuzzer, reads the document the
server serves, generates requests for every operation of both sides, sends them with digest
credentials (`schemathesis_digest.py`) and runs its default checks on the answers — no 5xx, only
documented statuses and shapes, schema-valid requests accepted, schema-invalid ones refused, 401
without credentials, and a 405 whose `Allow` names the methods of the path.

It runs as schemathesis's own command line, once: a pytest-parametrized run would generate every
operation's cases again in each test worker at collection time.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx

from tests.support import LOOPBACK_TLS, ServerProcess

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES_PER_OPERATION = 6  # with the coverage phase's boundary cases; 20 cost 14 s more of CPU than 10, 30 more again


def test_schemathesis_finds_no_difference_between_the_document_and_the_server(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "server", sync_seconds=5.0)
    source = server.admin_create_org("source", "fuzz source")
    target = server.admin_create_org("target", "fuzz target")
    server.start()
    try:
        document = httpx.get(f"{server.base_url}/openapi.json", verify=LOOPBACK_TLS).json()
        operations = sum(len(methods) for methods in document["paths"].values())
        environment = {**os.environ, "PYTHONPATH": str(ROOT), "SCHEMATHESIS_HOOKS": "tests.schemathesis_digest",
                       "LIVEMIGRATE_FUZZ_BASE_URL": server.base_url,
                       "LIVEMIGRATE_FUZZ_SOURCE_KEY": f"{source.public_key}:{source.private_key}",
                       "LIVEMIGRATE_FUZZ_TARGET_KEY": f"{target.public_key}:{target.private_key}"}
        run = subprocess.run(
            [str(Path(sys.executable).parent / "schemathesis"), "run", f"{server.base_url}/openapi.json",
             "--phases", "examples,coverage,fuzzing", "--max-examples", str(EXAMPLES_PER_OPERATION),
             "--workers", "1", "--no-color",
             # No example database: a CI run starts from nothing anyway, and keeping one made Hypothesis
             # shrink and re-run its Pareto front of examples, a sixth of the client's CPU (py-spy).
             "--generation-database", "none"],
            env=environment, cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False)
    finally:
        server.stop()
    (tmp_path / "schemathesis.txt").write_text(run.stdout + run.stderr)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    tested = re.search(r"Tested: (\d+)", run.stdout)
    assert tested is not None and int(tested[1]) == operations > 50  # every operation of both sides
