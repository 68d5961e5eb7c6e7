"""schemathesis hooks (`SCHEMATHESIS_HOOKS=tests.schemathesis_digest`): sign every generated request
with HTTP Digest, as the key of its side, read from the environment the test sets.

Digest needs a challenge first: `get` fetches a nonce (again after any 401) and `set` signs each case
with the next nonce count for its own method and request-target. That puts a real `Authorization`
header on the case, which the checks that remove it (missing header, ignored auth) can remove.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import secrets
from typing import Any

import httpx
import requests
import schemathesis

SOURCE_PREFIX = "/api/public/v1.0"
_counter = itertools.count(1)


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def _key(side: str) -> tuple[str, str]:
    public, private = os.environ[f"LIVEMIGRATE_FUZZ_{side.upper()}_KEY"].split(":", 1)
    return public, private


def digest_header(public: str, private: str, realm: str, nonce: str, method: str, uri: str) -> str:
    nc, cnonce = f"{next(_counter):08x}", secrets.token_hex(8)
    ha1 = _md5(f"{public}:{realm}:{private}")
    response = _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{_md5(f'{method}:{uri}')}")
    return (f'Digest username="{public}", realm="{realm}", nonce="{nonce}", uri="{uri}", algorithm=MD5, '
            f'qop=auth, nc={nc}, cnonce="{cnonce}", response="{response}"')


@schemathesis.auth()
class Digest:
    def get(self, case: Any, context: Any) -> tuple[str, str]:
        base_url = os.environ["LIVEMIGRATE_FUZZ_BASE_URL"]
        challenge = httpx.get(f"{base_url}{SOURCE_PREFIX}/orgs").headers["www-authenticate"]
        fields = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        return fields["realm"], fields["nonce"]

    def set(self, case: Any, data: tuple[str, str], context: Any) -> None:
        side = "source" if case.path.startswith(SOURCE_PREFIX) else "target"
        url = os.environ["LIVEMIGRATE_FUZZ_BASE_URL"] + case.formatted_path
        target = requests.Request(case.method, url, params=case.query).prepare().path_url
        case.headers = {**(case.headers or {}), "Authorization": digest_header(*_key(side), *data, case.method, target)}
