"""Every bad input to the seed endpoint gets its documented error, in the documented shape, and
changes nothing: each case runs against an org that is already linked, and the store is read
back afterwards."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.support import LOOPBACK_TLS, SOURCE, TARGET, OrgCredentials, ServerProcess

ERROR_FIELDS = {"detail", "error", "errorCode", "parameters", "reason"}


def link_path(org_id: str, suffix: str = "") -> str:
    return f"{SOURCE}/orgs/{org_id}/liveExport/migrationLink{suffix}"


class Linked:
    """A source org linked to a target org, and what its link row looked like before a bad request."""

    def __init__(self, server: ServerProcess, source: OrgCredentials, target: OrgCredentials) -> None:
        self.server, self.source, self.target = server, source, target
        self.token = server.link_token(target)
        with server.client(source) as client:
            assert client.post(link_path(source.org_id), json={"linkToken": self.token}).json() == {"status": "SYNCED"}
        self.row_before = server.source_link_rows(source.org_id)
        self.link_rows_before = server.query("SELECT COUNT(*) FROM source_links")

    def assert_unchanged(self) -> None:
        assert self.server.source_link_rows(self.source.org_id) == self.row_before
        assert self.server.query("SELECT COUNT(*) FROM source_links") == self.link_rows_before


@pytest.fixture
def linked(server: ServerProcess, source_org: OrgCredentials, target_org: OrgCredentials) -> Iterator[Linked]:
    yield Linked(server, source_org, target_org)


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == ERROR_FIELDS
    assert (body["error"], body["errorCode"]) == (status, code)
    assert "Traceback" not in response.text
    return dict(body)


def post_raw(linked: Linked, content: bytes, content_type: str | None = "application/json",
             org_id: str | None = None) -> httpx.Response:
    headers = {"Content-Type": content_type} if content_type else {}
    with linked.server.client(linked.source) as client:
        return client.post(link_path(org_id or linked.source.org_id), content=content, headers=headers)


def test_no_credentials(linked: Linked) -> None:
    response = httpx.post(linked.server.base_url + link_path(linked.source.org_id), json={"linkToken": linked.token}, verify=LOOPBACK_TLS)
    assert_error(response, 401, "USER_UNAUTHORIZED")
    assert response.headers["www-authenticate"].startswith('Digest realm="MMS Public API"')
    linked.assert_unchanged()


def test_invalid_credentials(linked: Linked) -> None:
    wrong = httpx.DigestAuth(linked.source.public_key, "11111111-2222-3333-4444-555555555555")
    response = httpx.post(linked.server.base_url + link_path(linked.source.org_id), json={"linkToken": linked.token},
                          auth=wrong, verify=LOOPBACK_TLS)
    assert_error(response, 401, "USER_UNAUTHORIZED")
    assert "www-authenticate" in response.headers
    linked.assert_unchanged()


def test_key_of_another_org(linked: Linked, source_org: OrgCredentials) -> None:
    other = linked.server.new_org(OrgCredentials(linked.source.org_id, linked.source.public_key,
                                                 linked.source.private_key), "source", "another org")
    with linked.server.client(other) as client:
        response = client.post(link_path(linked.source.org_id), json={"linkToken": linked.token})
    body = assert_error(response, 401, "USER_UNAUTHORIZED")
    assert "ORG_OWNER" in str(body["detail"])
    linked.assert_unchanged()


def test_a_key_of_the_other_side_is_told_so(linked: Linked) -> None:
    """The target org's owner key on the source org's link: the refusal names the sides, not a role."""
    with linked.server.client(linked.target) as client:
        response = client.post(link_path(linked.source.org_id), json={"linkToken": linked.token})
    detail = str(assert_error(response, 401, "USER_UNAUTHORIZED")["detail"])
    assert "Atlas (target) organization" in detail and "Cloud Manager (source) organization" in detail
    assert f"use an API key of organization {linked.source.org_id}" in detail and "role" not in detail
    linked.assert_unchanged()


def test_key_without_org_owner(linked: Linked) -> None:
    with linked.server.client(linked.source) as client:
        created = client.post(f"{SOURCE}/orgs/{linked.source.org_id}/apiKeys",
                              json={"desc": "member", "roles": ["ORG_MEMBER"]}).json()
    member = OrgCredentials(linked.source.org_id, created["publicKey"], created["privateKey"])
    with linked.server.client(member) as client:
        for response in (client.post(link_path(linked.source.org_id), json={"linkToken": linked.token}),
                         client.get(link_path(linked.source.org_id, "/status")),
                         client.delete(link_path(linked.source.org_id))):
            assert "ORG_OWNER" in str(assert_error(response, 401, "USER_UNAUTHORIZED")["detail"])
    linked.assert_unchanged()


def test_caller_ip_off_the_key_access_list(linked: Linked) -> None:
    with linked.server.client(linked.source) as client:
        created = client.post(f"{SOURCE}/orgs/{linked.source.org_id}/apiKeys",
                              json={"desc": "fenced", "roles": ["ORG_OWNER"]}).json()
        added = client.post(f"{SOURCE}/orgs/{linked.source.org_id}/apiKeys/{created['id']}/accessList",
                            json=[{"ipAddress": "10.20.30.40"}])
        assert added.status_code == 201
    fenced = OrgCredentials(linked.source.org_id, created["publicKey"], created["privateKey"])
    with linked.server.client(fenced) as client:
        response = client.delete(link_path(linked.source.org_id))
    assert_error(response, 403, "IP_ADDRESS_NOT_ON_ACCESS_LIST")
    linked.assert_unchanged()


def test_org_requiring_an_access_list_refuses_keys_without_one(linked: Linked) -> None:
    settings = f"{SOURCE}/orgs/{linked.source.org_id}/settings"
    with linked.server.client(linked.source) as client:
        assert client.patch(settings, json={"apiAccessListRequired": True}).status_code == 200
        response = client.delete(link_path(linked.source.org_id))
    assert_error(response, 403, "IP_ADDRESS_NOT_ON_ACCESS_LIST")
    linked.assert_unchanged()


@pytest.mark.parametrize("org_id", ["xyz", "5F1A00000000000000000000", "5f1a0000000000000000000", "0" * 25])
def test_malformed_org_id(linked: Linked, org_id: str) -> None:
    assert_error(post_raw(linked, json.dumps({"linkToken": linked.token}).encode(), org_id=org_id), 400, "INVALID_ORG_ID")
    linked.assert_unchanged()


def test_unknown_org(linked: Linked) -> None:
    assert_error(post_raw(linked, json.dumps({"linkToken": linked.token}).encode(), org_id="5f1a" + "0" * 20),
                 404, "ORG_NOT_FOUND")
    linked.assert_unchanged()


def test_target_org_id_is_not_a_source_org(linked: Linked) -> None:
    assert_error(post_raw(linked, json.dumps({"linkToken": linked.token}).encode(), org_id=linked.target.org_id),
                 404, "ORG_NOT_FOUND")
    linked.assert_unchanged()


@pytest.mark.parametrize("content, content_type, status, code", [
    (b'{"linkToken": ', "application/json", 400, "INVALID_JSON"),
    (b"", "application/json", 400, "INVALID_JSON"),
    (b'["linkToken"]', "application/json", 400, "INVALID_JSON"),
    (b'{"linkToken": "x"}', "text/plain", 415, "UNSUPPORTED_MEDIA_TYPE"),
    (b"linkToken=x", "application/x-www-form-urlencoded", 415, "UNSUPPORTED_MEDIA_TYPE"),
    (b'{"linkToken": "x"}', None, 415, "UNSUPPORTED_MEDIA_TYPE"),
    (b"{}", "application/json", 400, "MISSING_ATTRIBUTE"),
    (b'{"linkToken": null}', "application/json", 400, "INVALID_ATTRIBUTE"),
    (b'{"linkToken": 12345}', "application/json", 400, "INVALID_ATTRIBUTE"),
    (b'{"linkToken": ["a"]}', "application/json", 400, "INVALID_ATTRIBUTE"),
    (b'{"linkToken": "x", "extra": 1}', "application/json", 400, "INVALID_ATTRIBUTE"),
    (b'{"linkToken": "garbage"}', "application/json", 400, "INVALID_LINK_TOKEN"),
    (b'{"linkToken": ""}', "application/json", 400, "INVALID_LINK_TOKEN"),
    (b'{"linkToken": "lmlt1.e30.AAAA"}', "application/json", 400, "INVALID_LINK_TOKEN"),
])
def test_bad_bodies(linked: Linked, content: bytes, content_type: str | None, status: int, code: str) -> None:
    assert_error(post_raw(linked, content, content_type), status, code)
    linked.assert_unchanged()


def test_every_one_character_change_of_a_token_is_refused(linked: Linked) -> None:
    fresh = linked.server.link_token(linked.target)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."
    with linked.server.client(linked.source) as client:
        for position, char in enumerate(fresh):
            replacement = alphabet[(alphabet.index(char) + 1) % len(alphabet)]
            tampered = fresh[:position] + replacement + fresh[position + 1:]
            response = client.post(link_path(linked.source.org_id), json={"linkToken": tampered})
            assert_error(response, 400, "INVALID_LINK_TOKEN")
    linked.assert_unchanged()


def test_token_of_a_revoked_org_is_refused_with_the_targets_reason(linked: Linked, target_org: OrgCredentials) -> None:
    other_target = linked.server.new_org(target_org, "target", "revoking target")
    token = linked.server.link_token(other_target)
    with linked.server.client(other_target) as client:
        assert client.delete(f"{TARGET}/orgs/{other_target.org_id}/liveMigrations/linkTokens").status_code == 204
    with linked.server.client(linked.source) as client:
        response = client.post(link_path(linked.source.org_id), json={"linkToken": token})
    body = assert_error(response, 400, "INVALID_LINK_TOKEN")
    assert "revoked" in str(body["detail"])
    linked.assert_unchanged()


def test_token_bound_to_other_ips_is_refused_with_the_targets_reason(linked: Linked) -> None:
    token = linked.server.link_token(linked.target, ["203.0.113.7"])
    with linked.server.client(linked.source) as client:
        response = client.post(link_path(linked.source.org_id), json={"linkToken": token})
    body = assert_error(response, 400, "INVALID_LINK_TOKEN")
    assert "IP_ADDRESS_NOT_ON_ACCESS_LIST" in str(body["detail"])
    linked.assert_unchanged()


def test_body_over_one_mebibyte(linked: Linked) -> None:
    huge = json.dumps({"linkToken": "x" * (1024 * 1024 + 1)}).encode()
    assert_error(post_raw(linked, huge), 413, "TOO_LARGE")

    def chunks() -> Iterator[bytes]:
        for _ in range(20):
            yield b" " * 65536
        yield json.dumps({"linkToken": linked.token}).encode()

    with linked.server.client(linked.source) as client:
        # A streamed body cannot be sent twice, so answer the digest challenge first with a GET.
        assert client.get(link_path(linked.source.org_id, "/status")).status_code == 200
        response = client.post(link_path(linked.source.org_id), content=chunks(),
                               headers={"Content-Type": "application/json"})
    assert_error(response, 413, "TOO_LARGE")
    linked.assert_unchanged()


def test_unknown_path_and_wrong_method(linked: Linked) -> None:
    with linked.server.client(linked.source) as client:
        assert_error(client.get(f"{SOURCE}/orgs/{linked.source.org_id}/liveExport/nothing"), 404, "RESOURCE_NOT_FOUND")
        response = client.put(link_path(linked.source.org_id), json={"linkToken": linked.token})
        assert_error(response, 405, "METHOD_NOT_ALLOWED")
        assert response.headers["allow"] == "DELETE, GET, POST"  # every method of the path, not one route's
        assert_error(client.post(link_path(linked.source.org_id, "/status"), json={}), 405, "METHOD_NOT_ALLOWED")
    linked.assert_unchanged()


@pytest.mark.parametrize("query", ["envelope=maybe", "pretty=yes", "envelope=1", "pretty="])
def test_bad_boolean_query_values(linked: Linked, query: str) -> None:
    with linked.server.client(linked.source) as client:
        assert_error(client.get(link_path(linked.source.org_id, f"/status?{query}")), 400, "INVALID_QUERY_PARAMETER")
        assert_error(client.post(link_path(linked.source.org_id, f"?{query}"), json={"linkToken": linked.token}),
                     400, "INVALID_QUERY_PARAMETER")
    linked.assert_unchanged()


def test_errors_are_enveloped_too(linked: Linked) -> None:
    with linked.server.client(linked.source) as client:
        response = client.post(link_path(linked.source.org_id, "?envelope=true&pretty=true"), json={"linkToken": "bad"})
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == 400 and body["content"]["errorCode"] == "INVALID_LINK_TOKEN"
    assert response.text.startswith('{\n  "status": 400')
    linked.assert_unchanged()


def test_status_and_delete_without_a_link(server: ServerProcess, source_org: OrgCredentials) -> None:
    with server.client(source_org) as client:
        assert_error(client.get(link_path(source_org.org_id, "/status")), 404, "ORG_LINK_NOT_FOUND")
        assert_error(client.delete(link_path(source_org.org_id)), 404, "ORG_LINK_NOT_FOUND")
    assert server.source_link_rows(source_org.org_id) == []


