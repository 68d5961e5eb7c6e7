"""/openapi.json tells the truth: schemathesis, an independent OpenAPI fuzzer, generates requests for
every operation of both sides from the document alone, sends them to the real server with digest
credentials, and runs its default checks on the answers — no 5xx, only documented statuses and
shapes, schema-valid requests accepted, schema-invalid ones refused, 401 without credentials, and a
405 whose `Allow` names every method of the path.

Digest needs a challenge first, so the credentials are a schemathesis auth provider: it fetches a
nonce once (again after any 401) and signs each generated request with the next nonce count. That
puts a real `Authorization` header on the case, which the checks that remove it can remove.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings

from livemigrate.app import create_app
from livemigrate.settings import Settings
from tests.support import OrgCredentials, ServerProcess

SOURCE_PREFIX = "/api/public/v1.0"
EXAMPLES_PER_OPERATION = 30


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


class DigestSigner:
    """Signs requests of one key with the digest `Authorization` header (RFC 7616, MD5, qop=auth)."""

    def __init__(self, base_url: str, credentials: OrgCredentials) -> None:
        self._base_url = base_url
        self._credentials = credentials
        self._counter = itertools.count(1)

    def fresh_nonce(self) -> tuple[str, str]:
        challenge = httpx.get(f"{self._base_url}{SOURCE_PREFIX}/orgs").headers["www-authenticate"]
        fields = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        return fields["realm"], fields["nonce"]

    def header(self, realm: str, nonce: str, method: str, uri: str) -> str:
        nc, cnonce = f"{next(self._counter):08x}", secrets.token_hex(8)
        ha1 = _md5(f"{self._credentials.public_key}:{realm}:{self._credentials.private_key}")
        ha2 = _md5(f"{method}:{uri}")
        response = _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
        return (f'Digest username="{self._credentials.public_key}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
                f'algorithm=MD5, qop=auth, nc={nc}, cnonce="{cnonce}", response="{response}"')


def _document() -> dict[str, Any]:
    """The document the server serves, built in-process at collection time so that schemathesis can make a
    test of each operation; `test_the_fuzzed_document_is_the_served_one` holds it to the served one."""
    with tempfile.TemporaryDirectory() as directory:  # the app never opens it: only its routes are read
        settings = Settings(database_url=f"sqlite:///{directory}/unused.db", secret_key="collection-time only")
        return create_app(settings).openapi()


DOCUMENT = _document()
schema = schemathesis.openapi.from_dict(DOCUMENT)


class FuzzedServer:
    """The server under test with a signer per side, started on first use: schemathesis may ask for
    credentials while it builds its cases, before any fixture of the test has run."""

    def __init__(self) -> None:
        self._started: tuple[ServerProcess, dict[str, DigestSigner]] | None = None

    def get(self) -> tuple[ServerProcess, dict[str, DigestSigner]]:
        if self._started is None:
            server = ServerProcess(Path(tempfile.mkdtemp(prefix="fuzzed-")), sync_seconds=5.0)
            source = server.admin_create_org("source", "fuzz source")
            target = server.admin_create_org("target", "fuzz target")
            server.start()
            self._started = server, {"source": DigestSigner(server.base_url, source),
                                     "target": DigestSigner(server.base_url, target)}
        return self._started

    def stop(self) -> None:
        if self._started is not None:
            self._started[0].stop()
            self._started = None


_fuzzed = FuzzedServer()


@pytest.fixture(scope="module")
def fuzzed() -> Iterator[ServerProcess]:
    yield _fuzzed.get()[0]
    _fuzzed.stop()


@schema.auth()
class Digest:
    """Each case signed for its own side, method and request-target; a 401 makes it fetch a new nonce."""

    def get(self, case: Any, context: Any) -> tuple[str, str]:
        return _fuzzed.get()[1]["source"].fresh_nonce()

    def set(self, case: Any, data: tuple[str, str], context: Any) -> None:
        server, signers = _fuzzed.get()
        signer = signers["source" if case.path.startswith(SOURCE_PREFIX) else "target"]
        prepared = requests.Request(case.method, server.base_url + case.formatted_path, params=case.query).prepare()
        case.headers = {**(case.headers or {}), "Authorization": signer.header(*data, case.method, prepared.path_url)}


def test_the_fuzzed_document_is_the_served_one(fuzzed: ServerProcess) -> None:
    assert httpx.get(f"{fuzzed.base_url}/openapi.json").json() == DOCUMENT


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture])
def test_the_document_and_the_server_agree(case: Any, fuzzed: ServerProcess) -> None:
    case.call_and_validate(base_url=fuzzed.base_url)
