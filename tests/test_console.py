"""The web console over HTTP, without a browser: sign-in and its refusals, the session cookie, CSRF,
roles and another org's pages, a read-only key's disabled buttons, a deleted key's session sent to the
sign-in, the security headers and the icon, notices only the server wrote, the link-tokens listed —
each checked by what the server answers and what it then holds; and what each route declares it
requires, read from the app's routes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from livemigrate.console.signed_in import ConsoleOrgRole, ConsoleProjectRole, active_session, csrf_checked_form
from livemigrate.http.roles import OrgRole
from tests.support import LOOPBACK_TLS, SOURCE, TARGET, OrgCredentials, ServerProcess, app_routes, wait_for

COOKIE = "livemigrate_console"


def post_sign_in(client: httpx.Client, public_key: str, private_key: str) -> httpx.Response:
    """The sign-in form as a browser sends it: fetched first (its sign-in token), then posted."""
    form = client.get("/console/sign-in")
    token = re.findall(r'name="signInToken" value="([^"]+)"', form.text)[0]
    return client.post("/console/sign-in", data={"publicKey": public_key, "privateKey": private_key,
                                                 "signInToken": token})


def signed_in(server: ServerProcess, credentials: OrgCredentials) -> tuple[httpx.Client, str]:
    """A browser-like client signed in with the key pair, and the CSRF token of its session."""
    client = httpx.Client(base_url=server.base_url, verify=LOOPBACK_TLS)
    answer = post_sign_in(client, credentials.public_key, credentials.private_key)
    assert answer.status_code == 303 and answer.headers["location"] == "/console/", answer.text
    page = client.get(f"/console/orgs/{credentials.org_id}")
    assert page.status_code == 200, page.text
    return client, re.findall(r'name="csrf" value="([^"]+)"', page.text)[0]


@pytest.fixture
def target_browser(server: ServerProcess, target_org: OrgCredentials) -> Iterator[tuple[httpx.Client, str]]:
    client, csrf = signed_in(server, target_org)
    yield client, csrf
    client.close()


def _projects(server: ServerProcess, credentials: OrgCredentials, prefix: str) -> list[str]:
    with server.client(credentials) as client:
        return [project["name"] for project in client.get(f"{prefix}/groups").json()["results"]]


def test_without_a_session_every_page_leads_to_the_sign_in(server: ServerProcess, target_org: OrgCredentials) -> None:
    with httpx.Client(base_url=server.base_url, verify=LOOPBACK_TLS) as client:
        for path in ("/console/", f"/console/orgs/{target_org.org_id}", "/console/groups/" + "a" * 24):
            answer = client.get(path)
            assert answer.status_code == 303 and answer.headers["location"].startswith("/console/sign-in"), path
        posted = client.post(f"/console/orgs/{target_org.org_id}/projects", data={"name": "sneaky"})
        assert posted.status_code == 303 and posted.headers["location"].startswith("/console/sign-in")
    assert "sneaky" not in _projects(server, target_org, TARGET)


def test_a_wrong_key_pair_is_refused_without_saying_which_half(server: ServerProcess,
                                                                target_org: OrgCredentials) -> None:
    with httpx.Client(base_url=server.base_url, verify=LOOPBACK_TLS) as client:
        wrong_private = post_sign_in(client, target_org.public_key, "0" * 36)
        wrong_public = post_sign_in(client, "nobody00", target_org.private_key)
        for answer in (wrong_private, wrong_public):
            assert answer.status_code == 401 and COOKIE not in answer.cookies
            assert "That API key pair was not accepted." in answer.text
        # The same page, whichever half was wrong: nothing in it tells them apart (but its fresh form token).
        def shown(answer: httpx.Response) -> str:
            return re.sub(r'name="signInToken" value="[^"]+"', "", re.sub(r"\s+", " ", answer.text))

        assert shown(wrong_private) == shown(wrong_public)
        assert target_org.private_key not in wrong_public.text
        # A form that did not come from this console (another site's page posting it) signs nobody in.
        forged = client.post("/console/sign-in", data={"publicKey": target_org.public_key,
                                                       "privateKey": target_org.private_key})
        assert forged.status_code == 403 and COOKIE not in forged.cookies


def test_the_session_cookie_is_http_only_strict_and_ends_at_sign_out(server: ServerProcess,
                                                                     target_org: OrgCredentials) -> None:
    with httpx.Client(base_url=server.base_url, verify=LOOPBACK_TLS) as client:
        signed = post_sign_in(client, target_org.public_key, target_org.private_key)
        [header] = [value.lower() for value in signed.headers.get_list("set-cookie") if value.startswith(f"{COOKIE}=")]
        assert "httponly" in header and "samesite=strict" in header and "max-age=28800" in header
        assert "path=/console;" in header and "secure" not in header  # plain HTTP here; behind TLS it says Secure
        token = client.cookies[COOKIE]
        csrf = re.findall(r'name="csrf" value="([^"]+)"', client.get(f"/console/orgs/{target_org.org_id}").text)[0]
        assert client.post("/console/sign-out", data={"csrf": csrf}).status_code == 303
    with httpx.Client(base_url=server.base_url, verify=LOOPBACK_TLS, cookies={COOKIE: token}) as replayed:
        assert replayed.get("/console/").status_code == 303  # the old cookie signs nothing in any more


def test_a_post_without_its_csrf_token_changes_nothing(server: ServerProcess, target_org: OrgCredentials,
                                                        target_browser: tuple[httpx.Client, str]) -> None:
    client, csrf = target_browser
    for data in ({"name": "forged"}, {"name": "forged", "csrf": "not-the-token"}):
        answer = client.post(f"/console/orgs/{target_org.org_id}/projects", data=data)
        assert answer.status_code == 403 and "CSRF" in answer.text
    revoke = client.post(f"/console/orgs/{target_org.org_id}/link-tokens", data={"accessListIps": "127.0.0.1"})
    assert revoke.status_code == 403 and "lmlt1." not in revoke.text
    assert "forged" not in _projects(server, target_org, TARGET)
    made = client.post(f"/console/orgs/{target_org.org_id}/projects", data={"name": "made", "csrf": csrf})
    assert made.status_code == 303 and "made" in _projects(server, target_org, TARGET)


def test_another_orgs_pages_do_not_exist_for_a_session(server: ServerProcess, source_org: OrgCredentials,
                                                        target_org: OrgCredentials,
                                                        target_browser: tuple[httpx.Client, str]) -> None:
    client, csrf = target_browser
    with server.client(source_org) as api:
        source_project = api.post(f"{SOURCE}/groups", json={"name": "theirs", "orgId": source_org.org_id}).json()
    assert client.get(f"/console/orgs/{source_org.org_id}").status_code == 404
    assert client.get(f"/console/groups/{source_project['id']}").status_code == 404
    assert client.get("/console/groups/not-an-id").status_code == 404
    posted = client.post(f"/console/groups/{source_project['id']}/hosts",
                         data={"csrf": csrf, "hostname": "db.example", "port": "27017"})
    assert posted.status_code == 404
    with server.client(source_org) as api:
        assert api.get(f"{SOURCE}/groups/{source_project['id']}/hosts").json()["results"] == []


def test_a_read_only_key_sees_but_does_not_act_and_an_access_list_applies(
        server: ServerProcess, target_org: OrgCredentials) -> None:
    with server.client(target_org) as api:
        keys = f"{TARGET}/orgs/{target_org.org_id}/apiKeys"
        reader = api.post(keys, json={"desc": "reader", "roles": ["ORG_READ_ONLY"]}).json()
        fenced = api.post(keys, json={"desc": "fenced", "roles": ["ORG_OWNER"]}).json()
        assert api.post(f"{keys}/{fenced['id']}/accessList", json=[{"ipAddress": "10.20.30.40"}]).status_code == 201
        project = api.post(f"{TARGET}/groups", json={"name": "watched", "orgId": target_org.org_id}).json()
    client, csrf = signed_in(server, OrgCredentials(target_org.org_id, reader["publicKey"], reader["privateKey"]))
    try:
        # The owner's buttons are there, disabled, each saying why; and the page says it once in words.
        for path in (f"/console/orgs/{target_org.org_id}", f"/console/groups/{project['id']}"):
            shown = client.get(path).text
            acting = [(attributes, label) for attributes, label in _buttons(shown) if label != "Sign out"]
            assert acting and all("disabled" in attributes and "read-only" in attributes for attributes, _ in acting), \
                (path, acting)
            assert 'id="read-only"' in shown and "Your key is read-only (ORG_READ_ONLY)" in shown, path
        refused = client.post(f"/console/orgs/{target_org.org_id}/projects", data={"csrf": csrf, "name": "nope"})
        assert refused.status_code == 403 and "ORG_OWNER" in refused.text
        # The owner's actions on a migration, as the API's: refused before the migration is even looked at.
        for action in ("cutover", "cancel", "reverse"):
            answer = client.post(f"/console/groups/{project['id']}/migrations/{'a' * 24}/{action}", data={"csrf": csrf})
            assert answer.status_code == 403 and "This needs the ORG_OWNER role" in answer.text, action
    finally:
        client.close()
    assert "nope" not in _projects(server, target_org, TARGET)
    with httpx.Client(base_url=server.base_url, verify=LOOPBACK_TLS) as client:
        answer = post_sign_in(client, fenced["publicKey"], fenced["privateKey"])
        assert answer.status_code == 403 and "127.0.0.1 is not allowed" in answer.text


def _buttons(html: str) -> list[tuple[str, str]]:
    """Each button of a page: its attributes and its label."""
    return [(attributes, label.strip()) for attributes, label in re.findall(r"<button([^>]*)>([^<]*)</button>", html)]


def test_an_owner_and_a_member_key_see_the_buttons_they_may_or_may_not_use(
        server: ServerProcess, target_org: OrgCredentials, target_browser: tuple[httpx.Client, str]) -> None:
    owner, _ = target_browser
    shown = owner.get(f"/console/orgs/{target_org.org_id}").text
    assert 'id="read-only"' not in shown and not any("disabled" in attributes for attributes, _ in _buttons(shown))
    with server.client(target_org) as api:
        member = api.post(f"{TARGET}/orgs/{target_org.org_id}/apiKeys",
                          json={"desc": "member", "roles": ["ORG_MEMBER"]}).json()
    client, _ = signed_in(server, OrgCredentials(target_org.org_id, member["publicKey"], member["privateKey"]))
    try:
        shown = client.get(f"/console/orgs/{target_org.org_id}").text
    finally:
        client.close()
    assert "Your key is read-only (ORG_MEMBER)" in shown
    assert all("disabled" in attributes for attributes, label in _buttons(shown) if label != "Sign out")


def test_a_deleted_keys_session_is_sent_to_sign_in_saying_so(server: ServerProcess, target_org: OrgCredentials) -> None:
    with server.client(target_org) as api:
        keys = f"{TARGET}/orgs/{target_org.org_id}/apiKeys"
        doomed = api.post(keys, json={"desc": "doomed", "roles": ["ORG_OWNER"]}).json()
    client, _ = signed_in(server, OrgCredentials(target_org.org_id, doomed["publicKey"], doomed["privateKey"]))
    try:
        with server.client(target_org) as api:
            assert api.delete(f"{keys}/{doomed['id']}").status_code == 204
        answer = client.get(f"/console/orgs/{target_org.org_id}")
        assert answer.status_code == 303, answer.text
        assert answer.headers["location"].startswith("/console/sign-in?") and COOKIE not in client.cookies
        sign_in_page = client.get(answer.headers["location"])
        assert sign_in_page.status_code == 200 and 'id="sign-in"' in sign_in_page.text
        assert "The API key this browser was signed in with no longer exists" in sign_in_page.text
    finally:
        client.close()


def test_console_answers_carry_security_headers_inline_nothing_and_an_icon(
        server: ServerProcess, target_org: OrgCredentials, target_browser: tuple[httpx.Client, str]) -> None:
    client, _ = target_browser
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"] == "image/x-icon"
    assert icon.content.startswith(b"\0\0\1\0")  # an ICO
    org_page = client.get(f"/console/orgs/{target_org.org_id}")
    linked = re.findall(r'<link rel="icon" href="([^"]+)"', org_page.text)
    assert linked and client.get(linked[0]).content == icon.content
    answers = {"page": org_page, "redirect": client.get("/console/"), "refusal": client.get("/console/groups/nope"),
               "sign-in": httpx.get(f"{server.base_url}/console/sign-in", verify=LOOPBACK_TLS)}
    assert [answer.status_code for answer in answers.values()] == [200, 303, 404, 200]
    for name, answer in answers.items():
        policy = answer.headers.get("content-security-policy", "")
        for directive in ("default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self'",
                          "frame-ancestors 'none'"):
            assert directive in policy, (name, policy)
        assert answer.headers.get("x-frame-options") == "DENY", name
        assert answer.headers.get("referrer-policy") == "same-origin", name
    # What the policy would block, none is there: no inline script, no style element or attribute.
    for answer in (org_page, answers["sign-in"]):
        assert not re.search(r"<script(?![^>]*\bsrc=)|<style|\sstyle=", answer.text)


def test_a_notice_is_shown_only_when_this_server_wrote_it_for_this_session(
        server: ServerProcess, target_org: OrgCredentials, target_browser: tuple[httpx.Client, str]) -> None:
    client, csrf = target_browser
    org_path = f"/console/orgs/{target_org.org_id}"
    crafted = "Your account is locked: call +1 555 0100 with your private key."
    assert crafted not in client.get(org_path, params={"notice": crafted}).text
    assert crafted not in client.get(org_path, params={"notice": crafted, "sig": "0" * 32}).text
    revoked = client.post(f"{org_path}/link-tokens/revoke", data={"csrf": csrf})
    assert revoked.status_code == 303
    landed = client.get(revoked.headers["location"])
    assert '<p class="notice" role="status">Revoked 0 link-token(s) and their links.</p>' in landed.text
    # The same address, opened in another session (another person's, sent the link): no notice there.
    other, _ = signed_in(server, target_org)
    try:
        assert "Revoked 0 link-token(s)" not in other.get(revoked.headers["location"]).text
    finally:
        other.close()
    with httpx.Client(base_url=server.base_url, verify=LOOPBACK_TLS) as anonymous:  # before a session: fixed keys only
        assert crafted not in anonymous.get("/console/sign-in", params={"notice": crafted}).text


def _form_page(client: httpx.Client, path: str, csrf: str, **fields: str) -> httpx.Response:
    return client.post(path, data={"csrf": csrf, **fields}, follow_redirects=True)


def test_each_sides_actions_over_http_say_what_happened_and_show_secrets_once(
        server: ServerProcess, source_org: OrgCredentials, target_org: OrgCredentials) -> None:
    atlas, atlas_csrf = signed_in(server, target_org)
    cloud, cloud_csrf = signed_in(server, source_org)
    try:
        target_page = f"/console/orgs/{target_org.org_id}"
        refused = _form_page(atlas, f"{target_page}/link-tokens", atlas_csrf, accessListIps="not-an-ip")
        assert refused.status_code == 400 and "not-an-ip" in refused.text and "lmlt1." not in refused.text
        made = _form_page(atlas, f"{target_page}/link-tokens", atlas_csrf, accessListIps="127.0.0.1")
        token = re.findall(r'id="link-token">([^<]+)<', made.text)[0]
        assert made.status_code == 201 and token.startswith("lmlt1.") and 'data-page="' + target_page in made.text
        listed = atlas.get(target_page).text
        assert token not in listed  # shown once; listed without its text, with its access list, unused yet
        [row] = re.findall(r'<table id="link-tokens">.*?<tbody>(.*?)</tbody>', listed, re.S)
        assert "127.0.0.1" in row and "no link yet" in row and "never" in row and " UTC" in row, row

        source_page = f"/console/orgs/{source_org.org_id}"
        garbage = _form_page(cloud, f"{source_page}/link", cloud_csrf, linkToken="lmlt1.garbage")
        assert garbage.status_code == 400 and "Not linked" in garbage.text
        linked = _form_page(cloud, f"{source_page}/link", cloud_csrf, linkToken=token)
        assert "Linked: SYNCED." in linked.text and 'id="link-status">SYNCED' in linked.text
        [row] = re.findall(r'<table id="link-tokens">.*?<tbody>(.*?)</tbody>', atlas.get(target_page).text, re.S)
        assert f"source org <code>{source_org.org_id}</code>" in row and "never" not in row, row

        project = _form_page(cloud, f"{source_page}/projects", cloud_csrf, name="shop")
        project_path = str(project.url.path)
        host = _form_page(cloud, f"{project_path}/hosts", cloud_csrf, hostname="127.0.0.1", port="1")
        assert "Host 127.0.0.1:1 added — probe failed" in host.text, host.text
        bad_port = _form_page(cloud, f"{project_path}/hosts", cloud_csrf, hostname="127.0.0.1", port="http")
        assert bad_port.status_code == 400 and "port" in bad_port.text
        key = _form_page(cloud, f"{project_path}/agent-keys", cloud_csrf, desc="mh")
        agent_key = re.findall(r'id="agent-key" value="([^"]+)"', key.text)[0]
        assert key.status_code == 201 and agent_key not in cloud.get(project_path).text

        atlas_project = str(_form_page(atlas, f"{target_page}/projects", atlas_csrf, name="atlas-shop").url.path)
        wrong = _form_page(atlas, f"{atlas_project}/clusters", atlas_csrf, name="Destination",
                           connectionString="http://nowhere")
        assert wrong.status_code == 400 and "<li>Destination</li>" not in wrong.text
        added = _form_page(atlas, f"{atlas_project}/clusters", atlas_csrf, name="Destination",
                           connectionString="mongodb://127.0.0.1:1/?directConnection=true")
        assert "Destination cluster Destination registered." in added.text
        request = {"source": "5f" + "0" * 22 + "/nowhere", "destinationCluster": "Destination",
                   "migrationHost": "mh1"}
        unknown_capture = _form_page(atlas, f"{atlas_project}/migrations", atlas_csrf, **request,
                                     changeCapture="STREAMS")
        assert unknown_capture.status_code == 400 and "changeCapture" in unknown_capture.text
        unknown = _form_page(atlas, f"{atlas_project}/migrations", atlas_csrf, **request)
        assert unknown.status_code == 400 and "is not available" in unknown.text
        assert "No migration yet." in unknown.text
        started = _form_page(atlas, f"{atlas_project}/validations", atlas_csrf, **request)
        assert "Validation" in started.text and "started" in started.text
        assert wait_for(lambda: 'class="badge FAILED"' in atlas.get(atlas_project).text, timeout=10)
        validations = re.findall(r'<section id="validations".*?</section>', atlas.get(atlas_project).text, re.S)[0]
        assert "is not available" in validations  # named: the source as the link shows it, and the destination
        # Refused before its host was asked, it still names what it validated.
        assert f'<td class="source">{"5f" + "0" * 22} / nowhere</td>' in validations, validations
        assert '<td class="destination">atlas-shop / Destination</td>' in validations, validations
    finally:
        atlas.close()
        cloud.close()


def test_every_console_route_declares_who_may_use_it_in_its_signature(tmp_path: Path) -> None:
    """Read from the app's routes, so that a page added without a guard fails here rather than in use: the
    sign-in's two routes are the only ones without one; every other names the session; one under an org or a
    project names the role it needs there — a page ORG_READ_ONLY, a form action ORG_OWNER, as the APIs
    require — and a form action names the CSRF check before its role guard, so that a forged form is
    refused before anything is read."""
    declared: dict[tuple[str, str], list[Any]] = {
        (method, route.path): [dependency.call for dependency in route.dependant.dependencies]
        for route in app_routes(tmp_path) if route.path.startswith("/console") for method in route.methods}
    assert len(declared) == 20, sorted(declared)
    unguarded = sorted(route for route, guards in declared.items() if not guards)
    assert unguarded == [("GET", "/console/sign-in"), ("POST", "/console/sign-in")]
    for (method, path), guards in declared.items():
        if path == "/console/sign-in":
            continue
        assert guards[0] is active_session, (method, path)
        roles = [guard for guard in guards if isinstance(guard, ConsoleOrgRole | ConsoleProjectRole)]
        if "{org_id}" in path or "{group_id}" in path:
            kind = ConsoleProjectRole if "{group_id}" in path else ConsoleOrgRole
            assert [type(guard) for guard in roles] == [kind], (method, path)
            expected = OrgRole.ORG_READ_ONLY if method == "GET" else OrgRole.ORG_OWNER
            assert roles[0].role is expected, (method, path)
        else:
            assert roles == [], (method, path)
        if method == "POST":
            assert csrf_checked_form in guards, (method, path)
            if roles:
                assert guards.index(csrf_checked_form) < guards.index(roles[0]), (method, path)
