"""Concurrent connects across orgs, and a storm of connect/delete on one org, end consistent."""

from __future__ import annotations

import asyncio

import httpx

from tests.support import LOOPBACK_TLS, SOURCE, OrgCredentials, ServerProcess


def link_url(server: ServerProcess, org: OrgCredentials, suffix: str = "") -> str:
    return f"{server.base_url}{SOURCE}/orgs/{org.org_id}/liveExport/migrationLink{suffix}"


def test_fifty_concurrent_connects_of_fifty_orgs_all_succeed(server: ServerProcess, source_org: OrgCredentials,
                                                            target_org: OrgCredentials) -> None:
    sources = [server.new_org(source_org, "source", f"crowd {index}") for index in range(50)]
    tokens = [server.link_token(target_org) for _ in sources]

    async def connect(org: OrgCredentials, token: str) -> httpx.Response:
        async with httpx.AsyncClient(auth=org.auth, timeout=60, verify=LOOPBACK_TLS) as client:
            return await client.post(link_url(server, org), json={"linkToken": token})

    async def everyone() -> list[httpx.Response]:
        return await asyncio.gather(*(connect(org, token) for org, token in zip(sources, tokens, strict=True)))

    responses = asyncio.run(everyone())
    assert [response.status_code for response in responses] == [200] * 50
    assert all(response.json() == {"status": "SYNCED"} for response in responses)
    for org in sources:
        assert server.source_link_rows(org.org_id)[0][0] == "SYNCED"


def test_concurrent_connect_and_delete_on_one_org_leave_a_consistent_state(
        server: ServerProcess, source_org: OrgCredentials, target_org: OrgCredentials) -> None:
    token = server.link_token(target_org)

    async def storm() -> list[httpx.Response]:
        async with httpx.AsyncClient(auth=source_org.auth, timeout=60, verify=LOOPBACK_TLS) as client:
            await client.get(link_url(server, source_org, "/status"))  # answer the digest challenge once
            calls = [client.post(link_url(server, source_org), json={"linkToken": token}) if index % 2 == 0
                     else client.delete(link_url(server, source_org)) for index in range(20)]
            return await asyncio.gather(*calls)

    responses = asyncio.run(storm())
    assert all(response.status_code in (200, 204, 404) for response in responses), [r.text for r in responses]
    assert sum(response.status_code == 200 for response in responses) == 10

    rows = server.source_link_rows(source_org.org_id)
    with httpx.Client(auth=source_org.auth, verify=LOOPBACK_TLS) as client:
        final = client.get(link_url(server, source_org, "/status"))
    if rows:
        assert (final.status_code, final.json()) == (200, {"status": rows[0][0]})
    else:
        assert (final.status_code, final.json()["errorCode"]) == (404, "ORG_LINK_NOT_FOUND")
