"""The link-token format, shared by the side that issues it (target) and the side that reads it (source).

    lmlt1.<base64url(JSON claims)>.<base64url(HMAC-SHA256(private key, "lmlt1." + claims))>

Why the tag is keyed by the link key itself and not by a server secret: the source side may run in
another process, company or network than the target and shares no secret with it, yet must
refuse a corrupted or tampered token before it stores anything. Keying the tag with the private
key carried inside lets the source check integrity on its own; authenticity comes from the target,
which accepts the key only if it issued it and has not revoked it. A token is a bearer credential:
it is never logged, and only its SHA-256 fingerprint is stored.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import asdict, dataclass

PREFIX = "lmlt1"
_FIELDS = ("tokenId", "targetOrgId", "targetBaseUrl", "publicKey", "privateKey")


class InvalidLinkToken(ValueError):
    """The token cannot be used; the message says why and never repeats the token."""


@dataclass(frozen=True, slots=True)
class LinkTokenClaims:
    tokenId: str
    targetOrgId: str
    targetBaseUrl: str
    publicKey: str
    privateKey: str

    def __repr__(self) -> str:  # keep the private key out of any traceback or log
        return f"LinkTokenClaims(tokenId={self.tokenId!r}, targetOrgId={self.targetOrgId!r})"


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _b64decode(text: str) -> bytes:
    if not text or any(char not in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_" for char in text):
        raise InvalidLinkToken("the link-token is not base64url-encoded")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise InvalidLinkToken("the link-token is not base64url-encoded") from None
    if _b64encode(raw) != text:  # a changed padding bit decodes to the same bytes: still an altered token
        raise InvalidLinkToken("the link-token was altered: it is not in canonical form")
    return raw


def _tag(private_key: str, signed_part: str) -> bytes:
    return hmac.new(private_key.encode(), signed_part.encode(), hashlib.sha256).digest()


def encode(claims: LinkTokenClaims) -> str:
    payload = _b64encode(json.dumps(asdict(claims), separators=(",", ":")).encode())
    signed_part = f"{PREFIX}.{payload}"
    return f"{signed_part}.{_b64encode(_tag(claims.privateKey, signed_part))}"


def decode(token: str) -> LinkTokenClaims:
    """Parse and check a token; raise InvalidLinkToken for anything unreadable, incomplete or altered."""
    parts = token.strip().split(".")
    if len(parts) != 3 or parts[0] != PREFIX:
        raise InvalidLinkToken("the link-token is not in a format this server issues")
    payload_raw, tag = _b64decode(parts[1]), _b64decode(parts[2])
    try:
        fields = json.loads(payload_raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidLinkToken("the link-token's content is unreadable") from None
    if not isinstance(fields, dict) or set(fields) != set(_FIELDS) or not all(
        isinstance(fields[name], str) and fields[name] for name in _FIELDS
    ):
        raise InvalidLinkToken("the link-token's content is incomplete")
    claims = LinkTokenClaims(**fields)
    if not hmac.compare_digest(tag, _tag(claims.privateKey, f"{PREFIX}.{parts[1]}")):
        raise InvalidLinkToken("the link-token was altered: its integrity check failed")
    if not claims.targetBaseUrl.startswith(("http://", "https://")):
        raise InvalidLinkToken("the link-token names no usable target URL")
    return claims


def fingerprint(token: str) -> str:
    return hashlib.sha256(token.strip().encode()).hexdigest()
