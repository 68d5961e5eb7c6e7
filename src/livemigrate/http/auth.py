"""Who is calling: digest authentication of API keys, and their access lists.

`Authenticator.authenticate()` turns a request into a `Principal` or raises the documented error:
401 with a fresh challenge for anything wrong with the credentials, 403 for an address that is not
on the key's access list. What a principal may then do (its roles, its org, its project) is checked by
the guards of `authorization.py`.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Protocol

from starlette.requests import Request

from livemigrate.http import access_list, digest
from livemigrate.http.errors import ApiError, ErrorCode
from livemigrate.http.nonces import NonceBook, NonceState
from livemigrate.vocabulary import AGENT_PURPOSE, LINK_PURPOSE, PROGRAMMATIC_PURPOSE

PRINCIPAL_KEY = "livemigrate.principal"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated API key and what it may do."""

    key_id: str
    public_key: str
    org_id: str
    org_side: str
    roles: frozenset[str]
    purpose: str
    project_id: str | None = None

    @property
    def is_link_key(self) -> bool:
        return self.purpose == LINK_PURPOSE

    @property
    def is_agent_key(self) -> bool:
        return self.purpose == AGENT_PURPOSE


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """What authenticating a request needs to know of one API key."""

    principal: Principal
    ha1: dict[str, str]
    revoked: bool
    cidr_blocks: tuple[str, ...]
    access_list_required: bool


class KeyDirectory(Protocol):
    """Where the keys are: the directory looks them up (`directory/key_lookup.py`), this module checks them."""

    def key(self, public_key: str) -> KeyRecord | None: ...

    def org_side(self, org_id: str) -> str | None: ...


class Authenticator:
    def __init__(self, keys: KeyDirectory, nonces: NonceBook) -> None:
        self._keys = keys
        self._nonces = nonces

    def challenge(self, detail: str = "You are not authorized for this resource.", *, stale: bool = False) -> ApiError:
        header = digest.DigestChallenge(nonce=self._nonces.issue(), stale=stale).header()
        return ApiError(ErrorCode.USER_UNAUTHORIZED, detail, WWW_Authenticate=header)

    def authenticate(self, request: Request) -> Principal:
        """Authenticate once per request (a nonce count may be consumed only once); later calls reuse it.
        It reads the store: call it on a worker thread (the guards of `authorization.py` are run there)."""
        principal: Principal | None = request.scope.get(PRINCIPAL_KEY)
        if principal is None:
            principal = request.scope[PRINCIPAL_KEY] = self._authenticate(request)
        return principal

    def _authenticate(self, request: Request) -> Principal:
        header = request.headers.get("authorization")
        if not header:
            raise self.challenge()
        try:
            credentials = digest.parse_authorization(header)
        except digest.DigestError as error:
            raise self.challenge(str(error)) from None
        record = self._keys.key(credentials.username)
        request_uri = _request_uri(request)
        if record is None or not digest.verify(
            credentials, record.ha1[credentials.algorithm], request.method, request_uri
        ):
            raise self.challenge("Invalid API key or digest response for this request.")
        nonce_state = self._nonces.check(credentials.nonce)
        if nonce_state is NonceState.INVALID:
            raise self.challenge("The digest nonce was not issued by this server.")
        if nonce_state is NonceState.STALE:
            raise self.challenge("The digest nonce has expired.", stale=True)
        consumed = self._nonces.consume(credentials.nonce, credentials.nonce_count)
        if consumed is NonceState.REPLAYED:
            raise self.challenge("This nonce count was already used with this nonce: the request was replayed.")
        if consumed is NonceState.STALE:
            raise self.challenge("The digest nonce has been used too often.", stale=True)
        return self._admit(request.client.host if request.client else None, record)

    def check_key_pair(self, public_key: str, private_key: str, caller_ip: str | None) -> Principal:
        """A key pair typed into the web console's sign-in: the same key, the same access list. Which half
        was wrong is not said, and only programmatic keys sign in (not a link's or an agent's)."""
        record = self._keys.key(public_key)
        if record is None or not hmac.compare_digest(record.ha1["SHA-256"], digest.ha1("SHA-256", public_key,
                                                                                          private_key)) \
                or record.principal.purpose != PROGRAMMATIC_PURPOSE:
            raise ApiError(ErrorCode.USER_UNAUTHORIZED, "Invalid API key pair.")
        return self._admit(caller_ip, record)

    def recheck(self, public_key: str, caller_ip: str | None) -> Principal:
        """The key behind a console session, checked again on each request: deleted, revoked or off its
        access list since the sign-in, it no longer signs anything."""
        record = self._keys.key(public_key)
        if record is None:
            raise ApiError(ErrorCode.USER_UNAUTHORIZED, "The API key of this session no longer exists.")
        return self._admit(caller_ip, record)

    def _admit(self, caller_ip: str | None, record: KeyRecord) -> Principal:
        if record.revoked:
            raise self.challenge("This API key was revoked: its link-token was revoked by the target organization.")
        if record.cidr_blocks or record.access_list_required:
            if not access_list.is_allowed(caller_ip, record.cidr_blocks):
                raise ApiError(
                    ErrorCode.IP_ADDRESS_NOT_ON_ACCESS_LIST,
                    f"IP address {caller_ip} is not allowed to access this resource.",
                    [caller_ip],
                )
        return record.principal

    def org_side(self, org_id: str) -> str | None:
        """Which side an org belongs to (None if unknown)."""
        return self._keys.org_side(org_id)


def _request_uri(request: Request) -> str:
    """The request-target exactly as the client sent it, which is what the digest covers."""
    raw_path = request.scope.get("raw_path") or request.url.path.encode()
    query = request.scope.get("query_string", b"")
    return (raw_path + (b"?" + query if query else b"")).decode("latin-1")
