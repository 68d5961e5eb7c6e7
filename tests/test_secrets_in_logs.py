"""No private key, password or link-token reaches a log line, whatever happens: success, refusal, revocation —
in the JSON log format, whose every line is one object naming the request (and its org) it was written for."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.support import LOOPBACK_TLS, SOURCE, TARGET, ServerProcess, wait_for


def test_no_secret_appears_in_any_log_line(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "logs", sync_seconds=0.5,  # DEBUG logging and an access log
                           extra_env={"LIVEMIGRATE_LOG_FORMAT": "json"})
    source = server.admin_create_org("source", "quiet source")
    target = server.admin_create_org("target", "quiet target")
    server.start()
    secrets: list[str] = [source.private_key, target.private_key]
    try:
        token = server.link_token(target)
        fenced_token = server.link_token(target, ["198.51.100.1"])
        secrets += [token, fenced_token, token.split(".")[1], token.split(".")[2]]
        link = f"{SOURCE}/orgs/{source.org_id}/liveExport/migrationLink"
        with server.client(source) as client:
            assert client.post(link, json={"linkToken": token}).status_code == 200
            assert client.post(link, json={"linkToken": fenced_token}).status_code == 400
            assert client.post(link, json={"linkToken": token[:-3] + "abc"}).status_code == 400
            assert client.post(link, json={"linkToken": token, "extra": token}).status_code == 400
            assert client.post(link, content=b'{"linkToken": "' + token.encode() + b'"', headers={
                "Content-Type": "application/json"}).status_code == 400
            created = client.post(f"{SOURCE}/orgs/{source.org_id}/apiKeys",
                                  json={"desc": "extra", "roles": ["ORG_MEMBER"]}).json()
            secrets.append(created["privateKey"])
            describe = client.get(link).text
        for secret in secrets:
            assert secret not in describe
        with server.client(target) as client:
            assert client.delete(f"{TARGET}/orgs/{target.org_id}/liveMigrations/linkTokens").status_code == 204
        wait_for(lambda: "revoked" in server.log_text(), timeout=5)
        httpx.get(f"{server.base_url}{link}", auth=httpx.DigestAuth(source.public_key, "wrong-password"), verify=LOOPBACK_TLS)
    finally:
        server.stop()
    log = server.log_text()
    assert "link connected" in log and "revoked" in log  # the log does speak of these events
    leaked = [secret[:12] + "…" for secret in secrets if secret in log]
    assert leaked == []
    records = [json.loads(line) for line in log.splitlines() if line.strip()]  # each line, one JSON object
    assert all({"time", "level", "logger", "message"} <= set(record) for record in records)
    [connected] = [record for record in records if "link connected" in record["message"]]
    assert connected["orgId"] == source.org_id and connected["requestId"]
    accessed = [record for record in records if record["logger"] == "uvicorn.access"]
    assert accessed and all(record.get("requestId") for record in accessed)
