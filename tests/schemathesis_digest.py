"""schemathesis hooks (`SCHEMATHESIS_HOOKS=tests.schemathesis_digest`): sign every generated request
with HTTP Digest, as the key of its side, read from the environment the test sets.

Digest needs a challenge first: `get` fetches a nonce (again after any 401) and `set` signs each case
with the next nonce count for its own method and request-target. That puts a real `Authorization`
header on the case, which the checks that remove it (missing header, ignored auth) can remove.
"""

from __future__ import annotations

import itertools
import os
import re
import secrets
from typing import Any

import httpx
import requests
import schemathesis

from tests.support import LOOPBACK_TLS, digest_authorization

SOURCE_PREFIX = "/api/public/v1.0"
_counter = itertools.count(1)


def _key(side: str) -> tuple[str, str]:
    public, private = os.environ[f"LIVEMIGRATE_FUZZ_{side.upper()}_KEY"].split(":", 1)
    return public, private


@schemathesis.auth()
class Digest:
    def get(self, case: Any, context: Any) -> tuple[str, str]:
        base_url = os.environ["LIVEMIGRATE_FUZZ_BASE_URL"]
        challenge = httpx.get(f"{base_url}{SOURCE_PREFIX}/orgs", verify=LOOPBACK_TLS).headers["www-authenticate"]
        fields = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        return fields["realm"], fields["nonce"]

    def set(self, case: Any, data: tuple[str, str], context: Any) -> None:
        side = "source" if case.path.startswith(SOURCE_PREFIX) else "target"
        url = os.environ["LIVEMIGRATE_FUZZ_BASE_URL"] + case.formatted_path
        target = requests.Request(case.method, url, params=case.query).prepare().path_url
        authorization = digest_authorization(*_key(side), *data, case.method, target, next(_counter),
                                             secrets.token_hex(8))
        case.headers = {**(case.headers or {}), "Authorization": authorization}
