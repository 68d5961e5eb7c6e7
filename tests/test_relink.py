"""Relinking a source org with another link-token: what the target lists never goes back to nothing."""

from __future__ import annotations

import time

import httpx

from tests.support import LOOPBACK_TLS, SOURCE, TARGET, OrgCredentials, ServerProcess

# How long availableProjects is watched after the relink answers: the suite server's interval pushes are
# much further apart, so an inventory lost at the relink would stay lost for all of it.
WATCH_SECONDS = 3.0


def test_relinking_to_a_new_token_of_the_same_target_keeps_the_projects_listed_at_every_poll(
        server: ServerProcess, source_org: OrgCredentials, target_org: OrgCredentials) -> None:
    link = f"{SOURCE}/orgs/{source_org.org_id}/liveExport/migrationLink"
    with server.client(source_org) as source:
        project = source.post(f"{SOURCE}/groups", json={"name": "relinked orders", "orgId": source_org.org_id})
        assert project.status_code == 201, project.text
        first = source.post(link, json={"linkToken": server.link_token(target_org)})
        assert first.json() == {"status": "SYNCED"}, first.text
        relinked = source.post(link, json={"linkToken": server.link_token(target_org)})
        assert relinked.json() == {"status": "SYNCED"}, relinked.text

    listed_at_each_poll: list[list[str]] = []
    with httpx.Client(base_url=server.base_url, auth=target_org.auth, verify=LOOPBACK_TLS) as target:
        deadline = time.monotonic() + WATCH_SECONDS
        while time.monotonic() < deadline:
            response = target.get(f"{TARGET}/orgs/{target_org.org_id}/liveMigrations/availableProjects")
            assert response.status_code == 200, response.text
            listed_at_each_poll.append([entry["projectId"] for entry in response.json()])
    assert listed_at_each_poll and all(listed == [project.json()["id"]] for listed in listed_at_each_poll), \
        [listed for listed in listed_at_each_poll if listed != [project.json()["id"]]][:3]

    # The target holds the link by the new token, as the source does.
    [(holding_key,)] = server.query(
        "SELECT k.public_key FROM target_links t JOIN link_tokens lt ON lt.id = t.link_token_id "
        "JOIN api_keys k ON k.id = lt.api_key_id WHERE t.target_org_id = ? AND t.source_org_id = ?",
        target_org.org_id, source_org.org_id)
    [(key_of_the_source_link,)] = server.query(
        "SELECT link_public_key FROM source_links WHERE source_org_id = ?", source_org.org_id)
    assert holding_key == key_of_the_source_link
    with server.client(source_org) as source:
        assert source.delete(link).status_code == 204
