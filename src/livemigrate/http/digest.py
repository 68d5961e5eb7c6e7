"""Server-side HTTP Digest (RFC 7616), the way Cloud Manager speaks it.

No maintained ASGI library does the server side, so this module does, in the shape httpx uses
for the client side: a `DigestChallenge` value that renders the header, `parse_authorization()`
that returns a value or raises one precise error, and `verify()`, a pure function of the stored
HA1, the request and the credentials. Nonce freshness and replay live in `nonces.py`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

REALM = "MMS Public API"
ALGORITHMS = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}


class DigestError(Exception):
    """The Authorization header cannot be accepted; the message says why (never with secrets)."""


@dataclass(frozen=True, slots=True)
class DigestChallenge:
    """The WWW-Authenticate value, in Cloud Manager's order and quoting (MongoDB's Go client parses it)."""

    nonce: str
    stale: bool = False
    algorithm: str = "MD5"
    realm: str = REALM

    def header(self) -> str:
        return (
            f'Digest realm="{self.realm}", domain="", nonce="{self.nonce}", '
            f'algorithm={self.algorithm}, qop="auth", stale={"true" if self.stale else "false"}'
        )


@dataclass(frozen=True, slots=True)
class DigestCredentials:
    """What a client sent in `Authorization: Digest …`."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str
    qop: str
    nc: str
    cnonce: str
    opaque: str | None = None

    @property
    def nonce_count(self) -> int:
        return int(self.nc, 16)


_PARAM = re.compile(r'\s*([a-zA-Z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*(?:,|$)')
_REQUIRED = ("username", "realm", "nonce", "uri", "response", "qop", "nc", "cnonce")


def parse_authorization(header: str) -> DigestCredentials:
    """Parse an Authorization header value; raise DigestError when it is not a usable digest answer."""
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != "digest":
        raise DigestError("Only HTTP Digest authentication is supported.")
    params: dict[str, str] = {}
    position = 0
    rest = rest.strip()
    while position < len(rest):
        match = _PARAM.match(rest, position)
        if not match or match.end() == position:
            raise DigestError("The Authorization header is malformed.")
        quoted, bare = match.group(2), match.group(3)
        value = bare if quoted is None else re.sub(r"\\(.)", r"\1", quoted) if "\\" in quoted else quoted
        params[match.group(1).lower()] = value
        position = match.end()
    missing = [name for name in _REQUIRED if not params.get(name)]
    if missing:
        raise DigestError(f"The Authorization header lacks {', '.join(missing)}.")
    algorithm = params.get("algorithm", "MD5")
    if algorithm.upper() not in ALGORITHMS:
        raise DigestError(f"Digest algorithm {algorithm} is not supported; use MD5 or SHA-256.")
    if params["qop"] != "auth":
        raise DigestError('Only qop="auth" is supported.')
    if not re.fullmatch(r"[0-9a-fA-F]{1,8}", params["nc"]):
        raise DigestError("The nonce count is not 8 hexadecimal digits.")
    return DigestCredentials(
        username=params["username"],
        realm=params["realm"],
        nonce=params["nonce"],
        uri=params["uri"],
        response=params["response"].lower(),
        algorithm=algorithm.upper(),
        qop=params["qop"],
        nc=params["nc"],
        cnonce=params["cnonce"],
        opaque=params.get("opaque"),
    )


def ha1(algorithm: str, username: str, password: str, realm: str = REALM) -> str:
    """The only form in which a private key is kept: H(username:realm:password)."""
    return ALGORITHMS[algorithm](f"{username}:{realm}:{password}".encode()).hexdigest()


def expected_response(credentials: DigestCredentials, stored_ha1: str, method: str) -> str:
    hash_function = ALGORITHMS[credentials.algorithm]
    ha2 = hash_function(f"{method}:{credentials.uri}".encode()).hexdigest()
    return hash_function(
        f"{stored_ha1}:{credentials.nonce}:{credentials.nc}:{credentials.cnonce}:{credentials.qop}:{ha2}".encode()
    ).hexdigest()


def verify(credentials: DigestCredentials, stored_ha1: str, method: str, request_uri: str) -> bool:
    """True when the client proved it knows the password for this exact method and URI."""
    if credentials.realm != REALM or credentials.uri != request_uri:
        return False
    return hmac.compare_digest(expected_response(credentials, stored_ha1, method), credentials.response)
