"""`livemigrate serve` from nothing: it creates the store, prints usable credentials once, and they work."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx

from tests.support import LIVEMIGRATE, LOOPBACK_TLS, SOURCE, OrgCredentials, ServerProcess, wait_for

CREDENTIALS = re.compile(
    r"(SOURCE|TARGET) \(.*?\)\n\s+org id\s+([0-9a-f]{24})\n\s+public key\s+(\S+)\n\s+private key\s+(\S+)")


def printed_credentials(server: ServerProcess) -> dict[str, OrgCredentials]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = CREDENTIALS.findall(server.log_text())
        if len(found) == 2:
            return {side: OrgCredentials(org, public, private) for side, org, public, private in found}
        time.sleep(0.1)
    raise AssertionError(f"no credentials printed:\n{server.log_text()}")


def test_first_start_prints_credentials_that_link_the_two_orgs(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "fresh", embedded_agent=True)
    assert not server.db_path.exists()
    server.start()
    try:
        printed = printed_credentials(server)
        # The same, as `export` lines to paste into a shell: run by one, they set what the README uses.
        exports = "\n".join(re.findall(r"^export .*$", server.log_text(), re.MULTILINE))
        shell = subprocess.run(["bash", "-c", exports + '\necho "$SOURCE_ORG $SOURCE_PUB $SOURCE_PRIV $TARGET_ORG '
                                '$TARGET_PUB $TARGET_PRIV $LIVEMIGRATE_BASE_URL"'],
                               capture_output=True, text=True, check=True, timeout=10)
        source, target = printed["SOURCE"], printed["TARGET"]
        assert shell.stdout.split() == [source.org_id, source.public_key, source.private_key, target.org_id,
                                        target.public_key, target.private_key, server.base_url]
        token = server.link_token(printed["TARGET"])
        source = printed["SOURCE"]
        with httpx.Client(auth=source.auth, verify=LOOPBACK_TLS) as client:
            response = client.post(f"{server.base_url}{SOURCE}/orgs/{source.org_id}/liveExport/migrationLink",
                                   json={"linkToken": token})
        assert (response.status_code, response.json()) == (200, {"status": "SYNCED"})
        # A source project: the in-process migration host waits on its job list (a long poll, held open).
        with httpx.Client(auth=source.auth, verify=LOOPBACK_TLS) as client:
            created = client.post(f"{server.base_url}{SOURCE}/groups", json={"name": "shop", "orgId": source.org_id})
        assert created.status_code == 201, created.text
        assert wait_for(lambda: "migration host embedded.example started" in server.log_text(), timeout=20)
        time.sleep(1.5)  # its first job list answered, its long poll under way
    finally:
        stopping = time.monotonic()
        assert server.process is not None
        server.process.send_signal(signal.SIGINT)  # Ctrl-C on `make serve`
        assert server.process.wait(timeout=10) in (0, 130)  # 130: stopped by Ctrl-C, as a shell says
    # The long polls end at once rather than being cancelled after the grace period, each with a traceback.
    assert time.monotonic() - stopping < 2.0
    assert "Traceback" not in server.log_text() and "CancelledError" not in server.log_text(), server.log_text()

    server.start()  # second start: the store is kept, no private key is printed again
    try:
        assert len(re.findall(r"private key  ", server.log_text())) == 2
        # What the store holds, and what to do about a lost key.
        assert wait_for(lambda: "The store holds 2 organization(s):" in server.log_text(), timeout=10)
        assert f"SOURCE  {source.org_id}" in server.log_text() and "livemigrate admin create-key --org" in \
            server.log_text()
        made = subprocess.run([LIVEMIGRATE, "admin", "create-key", "--org", source.org_id, "-o", "json"],
                              env=server.env, cwd=server.directory, capture_output=True, text=True, timeout=60)
        assert made.returncode == 0, made.stderr
        new_key = json.loads(made.stdout)
        with httpx.Client(auth=httpx.DigestAuth(new_key["publicKey"], new_key["privateKey"]),
                          verify=LOOPBACK_TLS) as client:
            assert client.get(f"{server.base_url}{SOURCE}/orgs/{source.org_id}").status_code == 200
        with httpx.Client(auth=source.auth, verify=LOOPBACK_TLS) as client:
            status = client.get(f"{server.base_url}{SOURCE}/orgs/{source.org_id}/liveExport/migrationLink/status")
        assert status.json() == {"status": "SYNCED"}
    finally:
        server.stop()


def test_openapi_document_describes_the_seed_endpoint(server: ServerProcess) -> None:
    document = httpx.get(f"{server.base_url}/openapi.json", verify=LOOPBACK_TLS).json()
    operation = document["paths"]["/api/public/v1.0/orgs/{org_id}/liveExport/migrationLink"]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["linkToken"] and schema["additionalProperties"] is False
    assert "/api/atlas/v2/orgs/{org_id}/liveMigrations/linkTokens" in document["paths"]


def test_a_store_that_cannot_be_reached_at_start_is_one_line_without_its_password(tmp_path: Path) -> None:
    unreachable = f"postgresql+psycopg://migrator:hunter2-secret@/livemigrate?host={tmp_path}/no-socket-here"
    run = subprocess.run([LIVEMIGRATE, "serve", "--no-agent", "--port", "1", "--db", unreachable],
                         capture_output=True, text=True, timeout=60, cwd=tmp_path, check=False)
    assert run.returncode == 2
    lines = [line for line in (run.stdout + run.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: the store at postgresql+psycopg://migrator:***@"), lines
    assert "hunter2" not in run.stdout + run.stderr
