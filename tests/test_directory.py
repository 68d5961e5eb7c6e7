"""Orgs, API keys, access lists, settings and projects on both sides, in Cloud Manager's shapes."""

from __future__ import annotations

import httpx

from tests.support import LOOPBACK_TLS, SOURCE, TARGET, OrgCredentials, ServerProcess


def test_api_key_lifecycle_shows_the_private_key_only_once(server: ServerProcess, source_org: OrgCredentials) -> None:
    keys = f"{SOURCE}/orgs/{source_org.org_id}/apiKeys"
    with server.client(source_org) as client:
        created = client.post(keys, json={"desc": "ci", "roles": ["ORG_READ_ONLY"]})
        assert created.status_code == 201
        key = created.json()
        assert set(key) == {"id", "desc", "publicKey", "privateKey", "roles", "links"}
        assert key["roles"] == [{"orgId": source_org.org_id, "roleName": "ORG_READ_ONLY"}]
        fetched = client.get(f"{keys}/{key['id']}").json()
        assert "privateKey" not in fetched and fetched["publicKey"] == key["publicKey"]
        listed = client.get(keys).json()
        assert key["id"] in [entry["id"] for entry in listed["results"]]
        assert all("privateKey" not in entry for entry in listed["results"])
        patched = client.patch(f"{keys}/{key['id']}", json={"roles": ["ORG_OWNER"]})
        assert patched.json()["roles"] == [{"orgId": source_org.org_id, "roleName": "ORG_OWNER"}]
        assert client.patch(f"{keys}/{key['id']}", json={"publicKey": "x"}).json()["errorCode"] == "ATTRIBUTE_READ_ONLY"
        assert client.post(keys, json={"desc": "x", "roles": ["GOD"]}).json()["errorCode"] == "INVALID_ENUM_VALUE"
        assert client.delete(f"{keys}/{key['id']}").status_code == 204
        assert client.get(f"{keys}/{key['id']}").json()["errorCode"] == "API_KEY_NOT_FOUND"
    # the deleted key no longer authenticates
    gone = httpx.get(f"{server.base_url}{SOURCE}/orgs/{source_org.org_id}",
                     auth=httpx.DigestAuth(key["publicKey"], key["privateKey"]), verify=LOOPBACK_TLS)
    assert gone.status_code == 401


def test_access_list_entries_are_normalized_listed_and_removed(server: ServerProcess, source_org: OrgCredentials) -> None:
    with server.client(source_org) as client:
        key = client.post(f"{SOURCE}/orgs/{source_org.org_id}/apiKeys",
                          json={"desc": "fenced", "roles": ["ORG_OWNER"]}).json()
        access = f"{SOURCE}/orgs/{source_org.org_id}/apiKeys/{key['id']}/accessList"
        added = client.post(access, json=[{"ipAddress": "127.0.0.1"}, {"cidrBlock": "10.1.2.3/16"}])
        assert added.status_code == 201
        assert sorted(entry["cidrBlock"] for entry in added.json()["results"]) == ["10.1.0.0/16", "127.0.0.1/32"]
        bad = client.post(access, json=[{"ipAddress": "300.1.1.1"}])
        assert bad.json()["errorCode"] == "INVALID_IP_ADDRESS_OR_CIDR_NOTATION"
        fenced = OrgCredentials(source_org.org_id, key["publicKey"], key["privateKey"])
        with server.client(fenced) as fenced_client:  # 127.0.0.1 is on the list
            assert fenced_client.get(f"{SOURCE}/orgs/{source_org.org_id}").status_code == 200
        assert client.delete(f"{access}/127.0.0.1").status_code == 204
        with server.client(fenced) as fenced_client:  # no longer
            assert fenced_client.get(f"{SOURCE}/orgs/{source_org.org_id}").status_code == 403
        assert client.delete(f"{access}/10.1.0.0%2F16").status_code == 204
        assert client.get(access).json()["results"] == []


def test_projects_pagination_and_list_envelope(server: ServerProcess, source_org: OrgCredentials) -> None:
    with server.client(source_org) as client:
        for index in range(5):
            response = client.post(f"{SOURCE}/groups", json={"name": f"project {index}", "orgId": source_org.org_id})
            assert response.status_code == 201
        duplicate = client.post(f"{SOURCE}/groups", json={"name": "project 0", "orgId": source_org.org_id})
        assert (duplicate.status_code, duplicate.json()["errorCode"]) == (409, "DUPLICATE_GROUP_NAME")
        page = client.get(f"{SOURCE}/groups", params={"itemsPerPage": 2, "pageNum": 2}).json()
        assert page["totalCount"] == 5 and len(page["results"]) == 2
        assert {link["rel"] for link in page["links"]} == {"self", "previous", "next"}
        last = client.get(f"{SOURCE}/groups", params={"itemsPerPage": 2, "pageNum": 3, "includeCount": "false"}).json()
        assert "totalCount" not in last and {link["rel"] for link in last["links"]} == {"self", "previous"}
        enveloped = client.get(f"{SOURCE}/groups", params={"envelope": "true"})
        assert enveloped.status_code == 200 and enveloped.json()["status"] == 200
        assert enveloped.json()["totalCount"] == 5
        too_many = client.get(f"{SOURCE}/groups", params={"itemsPerPage": 501})
        assert too_many.json()["errorCode"] == "INVALID_QUERY_PARAMETER"
        project_id = page["results"][0]["id"]
        assert client.get(f"{SOURCE}/groups/{project_id}").json()["orgId"] == source_org.org_id
        assert client.get(f"{SOURCE}/groups/nothex").json()["errorCode"] == "INVALID_GROUP_ID"
        assert client.get(f"{SOURCE}/groups/{'a' * 24}").json()["errorCode"] == "GROUP_NOT_FOUND"
        assert client.delete(f"{SOURCE}/groups/{project_id}").status_code == 204


def test_target_side_accepts_atlas_versioned_media_type(server: ServerProcess, target_org: OrgCredentials) -> None:
    with server.client(target_org) as client:
        response = client.post(f"{TARGET}/orgs/{target_org.org_id}/liveMigrations/linkTokens",
                               content=b'{"accessListIps": ["127.0.0.1"]}',
                               headers={"Content-Type": "application/vnd.atlas.2023-01-01+json"})
        assert response.status_code == 200 and response.json()["linkToken"].startswith("lmlt1.")
        bad_ip = client.post(f"{TARGET}/orgs/{target_org.org_id}/liveMigrations/linkTokens",
                             json={"accessListIps": ["not-an-ip"]})
        assert bad_ip.json()["errorCode"] == "INVALID_IP_ADDRESS_OR_CIDR_NOTATION"


def test_sides_are_kept_apart_and_link_keys_reach_only_the_link_channel(
        server: ServerProcess, source_org: OrgCredentials, target_org: OrgCredentials) -> None:
    with server.client(source_org) as client:
        assert client.get(f"{TARGET}/orgs/{target_org.org_id}").json()["errorCode"] == "USER_UNAUTHORIZED"
        assert client.get(f"{TARGET}/orgs/{source_org.org_id}").json()["errorCode"] == "ORG_NOT_FOUND"
    from livemigrate.link_token import decode
    claims = decode(server.link_token(target_org))
    link_key = OrgCredentials(target_org.org_id, claims.publicKey, claims.privateKey)
    with server.client(link_key) as client:
        refused = client.get(f"{TARGET}/orgs/{target_org.org_id}/liveMigrations/availableProjects")
        assert (refused.status_code, refused.json()["errorCode"]) == (401, "USER_UNAUTHORIZED")
        other = client.put(f"{TARGET}/orgs/{'b' * 24}/liveMigrations/links/{source_org.org_id}", json={"projects": []})
        assert other.status_code == 401


def test_org_with_projects_cannot_be_deleted(server: ServerProcess, source_org: OrgCredentials) -> None:
    with server.client(source_org) as client:
        client.post(f"{SOURCE}/groups", json={"name": "keeps org", "orgId": source_org.org_id})
        refused = client.delete(f"{SOURCE}/orgs/{source_org.org_id}")
        assert (refused.status_code, refused.json()["errorCode"]) == (409, "CANNOT_DELETE_ORG_WITH_LINK_OR_PROJECTS")
