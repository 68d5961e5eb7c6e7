"""Each linked org's outbound channel to its target, and the credentials it is opened with.

Both the link (inventory pushes) and the job relay speak to the target through these channels. One
channel per link is kept between calls, so its connection and digest nonce are reused; it is
replaced when the link's token changes, and closed when the link goes.
"""

from __future__ import annotations

from dataclasses import dataclass

from livemigrate.client.link_channel import LinkChannel
from livemigrate.crypto import SecretBox
from livemigrate.http.errors import ApiError, ErrorCode
from livemigrate.store.cache import GenerationCache
from livemigrate.store.database import Store
from livemigrate.store.models import SourceLink


@dataclass(frozen=True, slots=True)
class LinkCredentials:
    target_org_id: str
    target_base_url: str
    public_key: str
    private_key: str
    fingerprint: str

    def __repr__(self) -> str:
        return f"LinkCredentials(target_org_id={self.target_org_id!r})"


def link_not_found(org_id: str) -> ApiError:
    return ApiError(ErrorCode.ORG_LINK_NOT_FOUND, f"Organization {org_id} has no migration link.", [org_id])


class LinkChannels:
    def __init__(self, store: Store, secret_box: SecretBox, timeout_seconds: float, cache_seconds: float) -> None:
        self._store = store
        self._secret_box = secret_box
        self._timeout = timeout_seconds
        self._channels: dict[str, tuple[str, LinkChannel]] = {}
        self._recent: GenerationCache[str, LinkCredentials] = GenerationCache(store, cache_seconds)

    def credentials_of(self, org_id: str) -> LinkCredentials | None:
        """The link's credentials, its private key opened; None when the org is not linked. Reads the store."""
        with self._store.read() as session:
            link = session.get(SourceLink, org_id)
        if link is None:
            return None
        return LinkCredentials(link.target_org_id, link.target_base_url, link.link_public_key,
                               self._secret_box.open(link.link_private_key_encrypted), link.token_fingerprint)

    def recent_credentials_of(self, org_id: str) -> LinkCredentials | None:
        """`credentials_of`, reused while no write is heard of and for at most the read cache's lifetime:
        for the job relay, which needs them at every poll of every migration host (200 hosts: 20 reads
        a second). A link made, replaced or deleted is a write every replica hears of; connect and
        delete themselves read afresh."""
        return self._recent.get(org_id, self.credentials_of)

    def open(self, credentials: LinkCredentials) -> LinkChannel:
        """A channel of its own, for a single call the caller closes (telling a target the org left)."""
        return LinkChannel(credentials.target_base_url, credentials.public_key, credentials.private_key,
                           self._timeout)

    async def channel(self, org_id: str, credentials: LinkCredentials) -> LinkChannel:
        """The org's kept channel for these credentials; one kept for an older token is closed."""
        kept = self._channels.get(org_id)
        if kept is not None and kept[0] == credentials.fingerprint:
            return kept[1]
        await self.drop(org_id)
        channel = self.open(credentials)
        self._channels[org_id] = (credentials.fingerprint, channel)
        return channel

    async def drop(self, org_id: str) -> None:
        kept = self._channels.pop(org_id, None)
        if kept is not None:
            await kept[1].aclose()

    async def close(self) -> None:
        for org_id in list(self._channels):
            await self.drop(org_id)
