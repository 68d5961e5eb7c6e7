"""The seed endpoint end to end, once with each real client the users have."""

from __future__ import annotations

import json
import subprocess

import httpx
import requests
from requests.auth import HTTPDigestAuth

from tests.support import LIVEMIGRATE, LOOPBACK_TLS, SOURCE, OrgCredentials, ServerProcess


def link_url(server: ServerProcess, org: OrgCredentials, suffix: str = "") -> str:
    return f"{server.base_url}{SOURCE}/orgs/{org.org_id}/liveExport/migrationLink{suffix}"


def test_connect_status_delete_with_curl(server: ServerProcess, source_org: OrgCredentials, target_org: OrgCredentials) -> None:
    token = server.link_token(target_org)
    user = f"{source_org.public_key}:{source_org.private_key}"

    def curl(*args: str) -> tuple[int, str]:
        result = subprocess.run(["curl", "-s", "--digest", "-u", user, "-w", "\n%{http_code}", *args],
                                check=True, capture_output=True, text=True)
        body, _, code = result.stdout.rpartition("\n")
        return int(code), body

    assert curl("-H", "Content-Type: application/json", "-d", json.dumps({"linkToken": token}),
                link_url(server, source_org)) == (200, '{"status":"SYNCED"}')
    assert curl(link_url(server, source_org, "/status")) == (200, '{"status":"SYNCED"}')
    assert curl(link_url(server, source_org, "/status?envelope=true")) == (
        200, '{"status":200,"content":{"status":"SYNCED"}}')
    assert curl(link_url(server, source_org, "/status?pretty=true")) == (200, '{\n  "status": "SYNCED"\n}')
    assert curl("-X", "DELETE", link_url(server, source_org)) == (204, "")
    code, body = curl(link_url(server, source_org, "/status"))
    assert code == 404 and json.loads(body)["errorCode"] == "ORG_LINK_NOT_FOUND"


def test_connect_status_delete_with_requests(server: ServerProcess, source_org: OrgCredentials,
                                             target_org: OrgCredentials) -> None:
    token = server.link_token(target_org)
    with requests.Session() as session:
        session.auth = HTTPDigestAuth(source_org.public_key, source_org.private_key)
        response = session.post(link_url(server, source_org), json={"linkToken": token})
        assert (response.status_code, response.json()) == (200, {"status": "SYNCED"})
        response = session.get(link_url(server, source_org, "/status"), params={"envelope": "true"})
        assert (response.status_code, response.json()) == (200, {"status": 200, "content": {"status": "SYNCED"}})
        response = session.get(link_url(server, source_org, "/status"), params={"pretty": "true"})
        assert response.text == '{\n  "status": "SYNCED"\n}'
        assert session.delete(link_url(server, source_org)).status_code == 204
        response = session.get(link_url(server, source_org, "/status"))
        assert (response.status_code, response.json()["errorCode"]) == (404, "ORG_LINK_NOT_FOUND")


def test_connect_status_delete_with_httpx(server: ServerProcess, source_org: OrgCredentials,
                                          target_org: OrgCredentials) -> None:
    token = server.link_token(target_org)
    with httpx.Client(auth=source_org.auth, verify=LOOPBACK_TLS) as client:
        response = client.post(link_url(server, source_org), json={"linkToken": token})
        assert (response.status_code, response.json()) == (200, {"status": "SYNCED"})
        response = client.get(link_url(server, source_org, "/status?envelope=true"))
        assert (response.status_code, response.json()) == (200, {"status": 200, "content": {"status": "SYNCED"}})
        assert client.get(link_url(server, source_org, "/status?pretty=true")).text == '{\n  "status": "SYNCED"\n}'
        response = client.delete(link_url(server, source_org, "?envelope=true"))
        assert (response.status_code, response.json()) == (200, {"status": 204, "content": None})
        response = client.get(link_url(server, source_org, "/status"))
        assert (response.status_code, response.json()["errorCode"]) == (404, "ORG_LINK_NOT_FOUND")
    assert server.source_link_rows(source_org.org_id) == []


def run_cli(server: ServerProcess, credentials: OrgCredentials, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "LIVEMIGRATE_BASE_URL": server.base_url,
        "LIVEMIGRATE_PUBLIC_KEY": credentials.public_key,
        "LIVEMIGRATE_PRIVATE_KEY": credentials.private_key,
        "PATH": "/usr/bin:/bin",
    }
    return subprocess.run([LIVEMIGRATE, *args], env=env, capture_output=True, text=True, timeout=60)


def test_connect_describe_delete_with_the_cli(server: ServerProcess, source_org: OrgCredentials,
                                              target_org: OrgCredentials) -> None:
    created = run_cli(server, target_org, "target", "link-token", "create", "--org", target_org.org_id,
                      "--access-list-ip", "127.0.0.1", "-o", "json")
    assert created.returncode == 0, created.stderr
    token = json.loads(created.stdout)["linkToken"]

    linked = run_cli(server, source_org, "source", "link", "create", "--org", source_org.org_id, "--link-token", token,
                     "-o", "json")
    assert linked.returncode == 0, linked.stderr
    assert json.loads(linked.stdout) == {"status": "SYNCED"}

    described = run_cli(server, source_org, "source", "link", "describe", "--org", source_org.org_id)
    assert described.returncode == 0
    assert "SYNCED" in described.stdout and target_org.org_id in described.stdout
    assert token not in described.stdout

    deleted = run_cli(server, source_org, "source", "link", "delete", "--org", source_org.org_id, "--force")
    assert deleted.returncode == 0, deleted.stderr

    missing = run_cli(server, source_org, "source", "link", "describe", "--org", source_org.org_id)
    assert missing.returncode == 1
    assert missing.stderr.strip().startswith("Error: ORG_LINK_NOT_FOUND (404)")
    assert len(missing.stderr.strip().splitlines()) == 1


def test_cli_reports_api_errors_in_one_line(server: ServerProcess, source_org: OrgCredentials) -> None:
    result = run_cli(server, source_org, "source", "link", "create", "--org", source_org.org_id,
                     "--link-token", "not-a-token")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "INVALID_LINK_TOKEN" in result.stderr


def test_same_token_again_is_idempotent_and_a_new_token_replaces_the_link(
        server: ServerProcess, source_org: OrgCredentials, target_org: OrgCredentials) -> None:
    first, second = server.link_token(target_org), server.link_token(target_org)
    with httpx.Client(auth=source_org.auth, verify=LOOPBACK_TLS) as client:
        for token in (first, first, second):
            response = client.post(link_url(server, source_org), json={"linkToken": token})
            assert (response.status_code, response.json()) == (200, {"status": "SYNCED"})
    rows = server.query("SELECT COUNT(*) FROM source_links WHERE source_org_id = ?", source_org.org_id)
    assert rows == [(1,)]


def test_linked_projects_are_available_to_the_target(server: ServerProcess, source_org: OrgCredentials,
                                                     target_org: OrgCredentials) -> None:
    with httpx.Client(base_url=server.base_url, auth=source_org.auth, verify=LOOPBACK_TLS) as source:
        assert source.post(f"{SOURCE}/orgs/{source_org.org_id}/liveExport/migrationLink",
                           json={"linkToken": server.link_token(target_org)}).status_code == 200
        project = source.post(f"{SOURCE}/groups", json={"name": "payments", "orgId": source_org.org_id}).json()

    def listed() -> list[dict[str, object]]:
        with httpx.Client(base_url=server.base_url, auth=target_org.auth, verify=LOOPBACK_TLS) as target:
            response = target.get(f"/api/atlas/v2/orgs/{target_org.org_id}/liveMigrations/availableProjects")
        assert response.status_code == 200
        return list(response.json())

    from tests.support import wait_for
    assert wait_for(lambda: [p["projectId"] for p in listed()] == [project["id"]], timeout=5)
    assert listed()[0] == {"projectId": project["id"], "name": "payments", "deployments": [], "migrationHosts": []}
