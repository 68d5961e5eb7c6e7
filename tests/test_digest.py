"""HTTP Digest as Cloud Manager speaks it: the challenge, both algorithms, nonce reuse, replay, staleness."""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path

import httpx
import pytest

from livemigrate.http import digest
from livemigrate.http.nonces import NonceBook, NonceState
from tests.support import LOOPBACK_TLS, SOURCE, OrgCredentials, ServerProcess

CHALLENGE = re.compile(
    r'^Digest realm="MMS Public API", domain="", nonce="[A-Za-z0-9_-]+", algorithm=MD5, qop="auth", stale=(true|false)$'
)


def answer(challenge_header: str, credentials: OrgCredentials, method: str, uri: str, *, nc: str = "00000001",
           algorithm: str = "MD5", cnonce: str = "0a4f113b") -> str:
    """Compute an Authorization header by RFC 7616, independently of the server's code."""
    nonce = re.search(r'nonce="([^"]+)"', challenge_header).group(1)  # type: ignore[union-attr]
    hash_name = {"MD5": "md5", "SHA-256": "sha256"}[algorithm]

    def h(text: str) -> str:
        return hashlib.new(hash_name, text.encode()).hexdigest()

    ha1 = h(f"{credentials.public_key}:MMS Public API:{credentials.private_key}")
    response = h(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{h(f'{method}:{uri}')}")
    return (f'Digest username="{credentials.public_key}", realm="MMS Public API", nonce="{nonce}", uri="{uri}", '
            f'algorithm={algorithm}, qop=auth, nc={nc}, cnonce="{cnonce}", response="{response}"')


def orgs_uri(org: OrgCredentials) -> str:
    return f"{SOURCE}/orgs/{org.org_id}"


def challenge_of(server: ServerProcess, uri: str) -> str:
    response = httpx.get(server.base_url + uri, verify=LOOPBACK_TLS)
    assert response.status_code == 401
    return response.headers["www-authenticate"]


def test_challenge_has_exactly_cloud_managers_parameters(server: ServerProcess, source_org: OrgCredentials) -> None:
    response = httpx.get(server.base_url + orgs_uri(source_org), verify=LOOPBACK_TLS)
    assert response.status_code == 401
    assert CHALLENGE.match(response.headers["www-authenticate"])
    assert response.json()["errorCode"] == "USER_UNAUTHORIZED"
    assert set(response.json()) == {"detail", "error", "errorCode", "parameters", "reason"}


def test_md5_and_sha256_answers_are_accepted(server: ServerProcess, source_org: OrgCredentials) -> None:
    uri = orgs_uri(source_org)
    for algorithm in ("MD5", "SHA-256"):
        header = answer(challenge_of(server, uri), source_org, "GET", uri, algorithm=algorithm)
        response = httpx.get(server.base_url + uri, headers={"Authorization": header}, verify=LOOPBACK_TLS)
        assert response.status_code == 200, (algorithm, response.text)
        assert response.json()["id"] == source_org.org_id


def test_nonce_reused_with_increasing_nc_is_accepted(server: ServerProcess, source_org: OrgCredentials) -> None:
    uri = orgs_uri(source_org)
    challenge = challenge_of(server, uri)
    for count in range(1, 6):
        header = answer(challenge, source_org, "GET", uri, nc=f"{count:08x}")
        assert httpx.get(server.base_url + uri, headers={"Authorization": header}, verify=LOOPBACK_TLS).status_code == 200


def test_replayed_nonce_count_is_refused(server: ServerProcess, source_org: OrgCredentials) -> None:
    uri = orgs_uri(source_org)
    header = answer(challenge_of(server, uri), source_org, "GET", uri)
    assert httpx.get(server.base_url + uri, headers={"Authorization": header}, verify=LOOPBACK_TLS).status_code == 200
    replay = httpx.get(server.base_url + uri, headers={"Authorization": header}, verify=LOOPBACK_TLS)
    assert replay.status_code == 401
    assert "replayed" in replay.json()["detail"]
    assert CHALLENGE.match(replay.headers["www-authenticate"])


def test_wrong_password_and_unknown_user_get_a_challenge(server: ServerProcess, source_org: OrgCredentials) -> None:
    uri = orgs_uri(source_org)
    wrong = OrgCredentials(source_org.org_id, source_org.public_key, "00000000-0000-0000-0000-000000000000")
    unknown = OrgCredentials(source_org.org_id, "zzzzzzzz", source_org.private_key)
    for credentials in (wrong, unknown):
        response = httpx.get(server.base_url + uri, headers={"Authorization": answer(challenge_of(server, uri),
                                                                                     credentials, "GET", uri)}, verify=LOOPBACK_TLS)
        assert response.status_code == 401
        assert response.json()["errorCode"] == "USER_UNAUTHORIZED"
        assert CHALLENGE.match(response.headers["www-authenticate"])


def test_answer_for_another_uri_or_method_is_refused(server: ServerProcess, source_org: OrgCredentials) -> None:
    uri = orgs_uri(source_org)
    header = answer(challenge_of(server, uri), source_org, "GET", uri + "/settings")
    assert httpx.get(server.base_url + uri, headers={"Authorization": header}, verify=LOOPBACK_TLS).status_code == 401
    header = answer(challenge_of(server, uri), source_org, "DELETE", uri)
    assert httpx.get(server.base_url + uri, headers={"Authorization": header}, verify=LOOPBACK_TLS).status_code == 401


def test_malformed_authorization_headers_get_a_challenge(server: ServerProcess, source_org: OrgCredentials) -> None:
    uri = orgs_uri(source_org)
    for header in ("Basic dXNlcjpwYXNz", "Digest", 'Digest username="x"', "Digest ,,,", 'Digest username="a", nc=zz'):
        response = httpx.get(server.base_url + uri, headers={"Authorization": header}, verify=LOOPBACK_TLS)
        assert response.status_code == 401, header
        assert response.json()["errorCode"] == "USER_UNAUTHORIZED"


def test_expired_nonce_gets_a_stale_challenge(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, extra_env={"LIVEMIGRATE_DIGEST_NONCE_SECONDS": "1"})
    org = server.admin_create_org("source", "stale")
    server.start()
    try:
        uri = orgs_uri(org)
        challenge = challenge_of(server, uri)
        time.sleep(1.5)
        response = httpx.get(server.base_url + uri, headers={"Authorization": answer(challenge, org, "GET", uri)}, verify=LOOPBACK_TLS)
        assert response.status_code == 401
        assert response.headers["www-authenticate"].endswith("stale=true")
        assert CHALLENGE.match(response.headers["www-authenticate"])
        # The real clients answer a stale challenge on their own.
        with httpx.Client(auth=org.auth, verify=LOOPBACK_TLS) as client:
            assert client.get(server.base_url + uri).status_code == 200
    finally:
        server.stop()


# --- the pure functions, hit directly -------------------------------------------------------------


def test_parse_authorization_reads_quoted_and_bare_values() -> None:
    credentials = digest.parse_authorization(
        'Digest username="abc", realm="MMS Public API", nonce="n1", uri="/a?b=c,d", response="ABCDEF", '
        'algorithm=SHA-256, qop=auth, nc=0000000a, cnonce="xyz", opaque="o"')
    assert (credentials.username, credentials.uri, credentials.nonce_count, credentials.algorithm,
            credentials.response, credentials.opaque) == ("abc", "/a?b=c,d", 10, "SHA-256", "abcdef", "o")


@pytest.mark.parametrize("header, reason", [
    ('Digest username="a", realm="r", nonce="n", uri="/", response="x", qop=auth-int, nc=1, cnonce="c"', "qop"),
    ('Digest username="a", realm="r", nonce="n", uri="/", response="x", qop=auth, nc=1, cnonce="c", algorithm=SHA-1',
     "algorithm"),
    ('Digest username="a", realm="r", nonce="n", uri="/", response="x", qop=auth, cnonce="c"', "nc"),
])
def test_parse_authorization_names_what_is_wrong(header: str, reason: str) -> None:
    with pytest.raises(digest.DigestError, match=reason):
        digest.parse_authorization(header)


def test_nonce_book_detects_foreign_stale_and_replayed_nonces() -> None:
    book = NonceBook(b"secret", lifetime_seconds=60)
    nonce = book.issue()
    assert book.check(nonce) is NonceState.FRESH
    assert NonceBook(b"other secret", 60).check(nonce) is NonceState.INVALID
    assert book.check(nonce[:-2] + "AA") is NonceState.INVALID
    assert book.consume(nonce, 1) is NonceState.FRESH
    assert book.consume(nonce, 3) is NonceState.FRESH
    assert book.consume(nonce, 2) is NonceState.FRESH
    assert book.consume(nonce, 3) is NonceState.REPLAYED
    assert NonceBook(b"secret", lifetime_seconds=0.01).check(nonce) in (NonceState.STALE, NonceState.FRESH)
    time.sleep(0.02)
    assert NonceBook(b"secret", lifetime_seconds=0.01).check(nonce) is NonceState.STALE
