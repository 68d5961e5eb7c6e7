"""Who is calling: digest authentication of programmatic API keys, access lists, and role checks.

`Authenticator.authenticate()` turns a request into a `Principal` or raises the documented error:
401 with a fresh challenge for anything wrong with the credentials, 403 for an address that is not
on the key's access list.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import bindparam, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from livemigrate.http import access_list, digest
from livemigrate.http.errors import ApiError, ErrorCode
from livemigrate.http.nonces import NonceBook, NonceState
from livemigrate.http.roles import OrgRole, satisfies
from livemigrate.ids import is_object_id
from livemigrate.store.cache import GenerationCache
from livemigrate.store.database import Store
from livemigrate.store.models import AccessListEntry, ApiKey, Organization

LINK_PURPOSE = "link"
AGENT_PURPOSE = "agent"
PROGRAMMATIC_PURPOSE = "programmatic"
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
class _KeyRecord:
    principal: Principal
    ha1: dict[str, str]
    revoked: bool
    cidr_blocks: tuple[str, ...]
    access_list_required: bool


class Authenticator:
    def __init__(self, store: Store, nonces: NonceBook, cache_seconds: float) -> None:
        self._store = store
        self._nonces = nonces
        self._keys: GenerationCache[str, _KeyRecord] = GenerationCache(store, cache_seconds)
        self._org_sides: GenerationCache[str, str] = GenerationCache(store, cache_seconds)

    def challenge(self, detail: str = "You are not authorized for this resource.", *, stale: bool = False) -> ApiError:
        header = digest.DigestChallenge(nonce=self._nonces.issue(), stale=stale).header()
        return ApiError(ErrorCode.USER_UNAUTHORIZED, detail, WWW_Authenticate=header)

    def authenticate(self, request: Request) -> Principal:
        """Authenticate once per request (a nonce count may be consumed only once); later calls reuse it."""
        principal: Principal | None = request.scope.get(PRINCIPAL_KEY)
        if principal is None:
            principal = request.scope[PRINCIPAL_KEY] = self._authenticate(request)
        return principal

    async def authenticate_async(self, request: Request) -> Principal:
        return await run_in_threadpool(self.authenticate, request)

    def _authenticate(self, request: Request) -> Principal:
        header = request.headers.get("authorization")
        if not header:
            raise self.challenge()
        try:
            credentials = digest.parse_authorization(header)
        except digest.DigestError as error:
            raise self.challenge(str(error)) from None
        record = self._keys.get(credentials.username, self._load_key)
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
        return self._admit(request, record)

    def _admit(self, request: Request, record: _KeyRecord) -> Principal:
        if record.revoked:
            raise self.challenge("This API key was revoked: its link-token was revoked by the target organization.")
        caller_ip = request.client.host if request.client else None
        if record.cidr_blocks or record.access_list_required:
            if not access_list.is_allowed(caller_ip, record.cidr_blocks):
                raise ApiError(
                    ErrorCode.IP_ADDRESS_NOT_ON_ACCESS_LIST,
                    f"IP address {caller_ip} is not allowed to access this resource.",
                    [caller_ip],
                )
        return record.principal

    def org_side(self, org_id: str) -> str | None:
        """Which side an org belongs to (None if unknown): checked on every org-scoped call, so cached."""
        return self._org_sides.get(org_id, self._load_org_side)

    def _load_org_side(self, org_id: str) -> str | None:
        with self._store.engine.connect() as connection:
            return connection.execute(_ORG_SIDE_QUERY, {"org_id": org_id}).scalar()

    def _load_key(self, public_key: str) -> _KeyRecord | None:
        """One Core query (key, org and access list joined): this runs on every authenticated request."""
        with self._store.engine.connect() as connection:
            rows = connection.execute(_KEY_QUERY, {"public_key": public_key}).all()
        if not rows:
            return None
        first = rows[0]
        principal = Principal(first.id, first.public_key, first.org_id, first.side, frozenset(first.roles),
                              first.purpose, first.project_id)
        return _KeyRecord(
            principal=principal,
            ha1={"MD5": first.ha1_md5, "SHA-256": first.ha1_sha256},
            revoked=first.revoked_at is not None,
            cidr_blocks=tuple(row.cidr_block for row in rows if row.cidr_block is not None),
            access_list_required=bool(first.api_access_list_required),
        )


_KEY_QUERY = (
    select(ApiKey.id, ApiKey.public_key, ApiKey.org_id, ApiKey.roles, ApiKey.purpose, ApiKey.project_id,
           ApiKey.ha1_md5,
           ApiKey.ha1_sha256, ApiKey.revoked_at, Organization.side, Organization.api_access_list_required,
           AccessListEntry.cidr_block)
    .join(Organization, Organization.id == ApiKey.org_id)
    .outerjoin(AccessListEntry, AccessListEntry.api_key_id == ApiKey.id)
    .where(ApiKey.public_key == bindparam("public_key"))
)


_ORG_SIDE_QUERY = select(Organization.side).where(Organization.id == bindparam("org_id"))


def _request_uri(request: Request) -> str:
    """The request-target exactly as the client sent it, which is what the digest covers."""
    raw_path = request.scope.get("raw_path") or request.url.path.encode()
    query = request.scope.get("query_string", b"")
    return (raw_path + (b"?" + query if query else b"")).decode("latin-1")


def check_org_id(org_id: str) -> None:
    if not is_object_id(org_id):
        raise ApiError(ErrorCode.INVALID_ORG_ID, f"An invalid organization ID {org_id} was specified.", [org_id])


def require_org_role(principal: Principal, org_id: str, role: OrgRole) -> None:
    """Role failures answer 401, as Cloud Manager documents, naming the role required."""
    if principal.purpose != PROGRAMMATIC_PURPOSE:
        reach = "the link channel" if principal.is_link_key else "its project's migration-host calls"
        raise ApiError(ErrorCode.USER_UNAUTHORIZED, f"This {principal.purpose} API key may only be used on {reach}.")
    if principal.org_id != org_id or not satisfies(principal.roles, role):
        raise ApiError(
            ErrorCode.USER_UNAUTHORIZED,
            f"The API key is not authorized for this resource: the {role.value} role on organization {org_id} is required.",
            [role.value],
        )


def require_agent_key(principal: Principal, project_id: str) -> None:
    """Only an agent API key of this very project may speak for its migration hosts."""
    if not principal.is_agent_key or principal.project_id != project_id:
        raise ApiError(ErrorCode.USER_UNAUTHORIZED,
                       f"Only an agent API key of group {project_id} may call this resource.", [project_id])
