"""The API keys as digest authentication reads them, on every authenticated request.

One Core query per key (key, org and access list joined), read through the store's generation
cache: a key or org changed in this process is seen at once, one changed elsewhere within the
cache's time to live. The checks themselves live in `http/auth.py`, which asks this module.
"""

from __future__ import annotations

from sqlalchemy import bindparam, select

from livemigrate.http.auth import KeyRecord, Principal
from livemigrate.store.cache import GenerationCache
from livemigrate.store.database import Store
from livemigrate.store.models import AccessListEntry, ApiKey, Organization


class KeyLookup:
    def __init__(self, store: Store, cache_seconds: float) -> None:
        self._store = store
        self._keys: GenerationCache[str, KeyRecord] = GenerationCache(store, cache_seconds)
        self._org_sides: GenerationCache[str, str] = GenerationCache(store, cache_seconds)

    def key(self, public_key: str) -> KeyRecord | None:
        return self._keys.get(public_key, self._load_key)

    def org_side(self, org_id: str) -> str | None:
        """Which side an org belongs to (None if unknown): checked on every org-scoped call, so cached."""
        return self._org_sides.get(org_id, self._load_org_side)

    def _load_org_side(self, org_id: str) -> str | None:
        with self._store.engine.connect() as connection:
            return connection.execute(_ORG_SIDE_QUERY, {"org_id": org_id}).scalar()

    def _load_key(self, public_key: str) -> KeyRecord | None:
        with self._store.engine.connect() as connection:
            rows = connection.execute(_KEY_QUERY, {"public_key": public_key}).all()
        if not rows:
            return None
        first = rows[0]
        principal = Principal(first.id, first.public_key, first.org_id, first.side, frozenset(first.roles),
                              first.purpose, first.project_id)
        return KeyRecord(
            principal=principal,
            ha1={"MD5": first.ha1_md5, "SHA-256": first.ha1_sha256},
            revoked=first.revoked_at is not None,
            cidr_blocks=tuple(row.cidr_block for row in rows if row.cidr_block is not None),
            access_list_required=bool(first.api_access_list_required),
        )


_KEY_QUERY = (
    select(ApiKey.id, ApiKey.public_key, ApiKey.org_id, ApiKey.roles, ApiKey.purpose, ApiKey.project_id,
           ApiKey.ha1_md5, ApiKey.ha1_sha256, ApiKey.revoked_at, Organization.side,
           Organization.api_access_list_required, AccessListEntry.cidr_block)
    .join(Organization, Organization.id == ApiKey.org_id)
    .outerjoin(AccessListEntry, AccessListEntry.api_key_id == ApiKey.id)
    .where(ApiKey.public_key == bindparam("public_key"))
)

_ORG_SIDE_QUERY = select(Organization.side).where(Organization.id == bindparam("org_id"))
