"""schemathesis hooks (`SCHEMATHESIS_HOOKS=tests.schemathesis_digest`): sign every generated request
with HTTP Digest, as the key of its side, read from the environment the test sets; and hold the few
operations that may refuse a schema-valid request to the one code that says why.

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

# Refusals no schema can state, each named in its operation's 400 answer and description: a link-token
# this server did not issue (signed, and naming a live target), a URI the MongoDB driver cannot parse (its
# grammar of hosts and options), a migration naming what the target does not know (a source project no
# linked org pushed, a destination cluster not registered, a migration host not alive). The run's
# configuration lets these operations answer a schema-valid request 400; `refused_only_for_what_no_schema_states`
# allows that 400 only with the operation's code, so a body the document allows and the parser refuses
# (INVALID_ATTRIBUTE …) still fails there as anywhere else.
VALID_REQUEST_REFUSALS = {
    "POST /api/public/v1.0/orgs/{org_id}/liveExport/migrationLink": "INVALID_LINK_TOKEN",
    "POST /api/atlas/v2/groups/{group_id}/clusters": "INVALID_CONNECTION_STRING",
    "POST /api/atlas/v2/groups/{group_id}/liveMigrations": "LIVE_MIGRATION_INVALID_REQUEST",
}


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


@schemathesis.check
def refused_only_for_what_no_schema_states(ctx: Any, response: Any, case: Any) -> bool | None:
    """A schema-valid request to an operation of `VALID_REQUEST_REFUSALS` refused 400 with another code."""
    allowed = VALID_REQUEST_REFUSALS.get(f"{case.method.upper()} {case.path}")
    meta = case.meta
    if allowed is None or response.status_code != 400 or meta is None or not meta.generation.mode.is_positive:
        return None
    code = response.json().get("errorCode")
    if code != allowed:
        raise AssertionError(f"A schema-valid request was refused 400 {code}; only {allowed} may refuse one here")
    return None
