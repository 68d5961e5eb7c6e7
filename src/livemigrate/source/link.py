"""The liveExport migration link of a source org: connect, status, delete, and each inventory push.

Every change to one org's link happens under that org's lock, so a connect, a delete and a
background push of the same org never interleave; the database transaction makes each write whole.
A push never resurrects a link deleted meanwhile, nor overwrites one replaced by another token.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select
from starlette.concurrency import run_in_threadpool

from livemigrate import link_token
from livemigrate.client.link_channel import (
    JobList,
    LinkCallFailed,
    LinkChannel,
    LinkKeyRefused,
    PushOutcome,
    PushResult,
)
from livemigrate.contracts import Inventory
from livemigrate.crypto import SecretBox
from livemigrate.directory.views import iso
from livemigrate.http.errors import ApiError, ErrorCode
from livemigrate.settings import Settings
from livemigrate.source.inventory import build_inventory
from livemigrate.store.cache import GenerationCache
from livemigrate.store.database import Store
from livemigrate.store.models import SourceLink, utcnow

log = logging.getLogger("livemigrate.source.link")

SYNCED = "SYNCED"
NOT_SYNCED = "NOT_SYNCED"


@dataclass(frozen=True, slots=True)
class LinkCredentials:
    target_org_id: str
    target_base_url: str
    public_key: str
    private_key: str
    fingerprint: str

    def __repr__(self) -> str:
        return f"LinkCredentials(target_org_id={self.target_org_id!r})"


class LinkService:
    def __init__(self, store: Store, secret_box: SecretBox, settings: Settings) -> None:
        self._store = store
        self._secret_box = secret_box
        self._settings = settings
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._channels: dict[str, tuple[str, LinkChannel]] = {}
        self._jobs: dict[str, tuple[float, JobList]] = {}  # the last list of each org, with when it came
        self._statuses: GenerationCache[str, str] = GenerationCache(store, settings.read_cache_seconds)
        # Told of each push that connecting makes, so that the background sync does not push again at once.
        self.on_pushed: Callable[[str, PushResult], None] = lambda org_id, result: None

    # --- reads ---------------------------------------------------------------------------------

    def get_link(self, org_id: str) -> SourceLink:
        with self._store.read() as session:
            link = session.get(SourceLink, org_id)
        if link is None:
            raise _link_not_found(org_id)
        return link

    def status(self, org_id: str) -> str:
        """SYNCED or NOT_SYNCED. Clients poll this, so it is read through the store's generation cache:
        every push, connect or delete is a write in this process and invalidates it at once."""
        found = self._statuses.get(org_id, self._load_status)
        if found is None:
            raise _link_not_found(org_id)
        return found

    def _load_status(self, org_id: str) -> str | None:
        with self._store.engine.connect() as connection:
            return connection.execute(_STATUS_QUERY, {"org_id": org_id}).scalar()

    def is_linked(self, org_id: str) -> bool:
        return self._credentials_of(org_id) is not None

    def linked_org_ids(self) -> list[str]:
        with self._store.read() as session:
            return list(session.scalars(select(SourceLink.source_org_id)))

    # --- connect / delete ------------------------------------------------------------------------

    async def connect(self, org_id: str, token_text: str) -> str:
        """Link `org_id` with a link-token; answer SYNCED or NOT_SYNCED, or raise INVALID_LINK_TOKEN."""
        try:
            claims = link_token.decode(token_text)
        except link_token.InvalidLinkToken as error:
            raise ApiError(ErrorCode.INVALID_LINK_TOKEN, f"The link-token is invalid: {error}.") from None
        credentials = LinkCredentials(claims.targetOrgId, claims.targetBaseUrl, claims.publicKey,
                                      claims.privateKey, link_token.fingerprint(token_text))
        async with self._locks[org_id]:
            current = await run_in_threadpool(self._credentials_of, org_id)
            if current is not None and current.fingerprint != credentials.fingerprint:
                await self._refuse_while_running(org_id, current, ErrorCode.CANNOT_RELINK_ORG_WITH_RUNNING_LIVE_EXPORT,
                                                 "relinked to another target")
            result = await self._push(org_id, credentials)
            if result.outcome is PushOutcome.REJECTED:
                log.warning("link connect refused: source_org=%s target_org=%s reason=%s",
                            org_id, credentials.target_org_id, result.reason)
                raise ApiError(ErrorCode.INVALID_LINK_TOKEN,
                               f"The target organization rejected the link-token: {result.reason}")
            status = await run_in_threadpool(self._save_new_link, org_id, credentials, result)
            self.on_pushed(org_id, result)
            if current is not None and current.fingerprint != credentials.fingerprint:
                await self._withdraw_inventory(org_id, current)
        log.info("link connected: source_org=%s target_org=%s status=%s%s", org_id, credentials.target_org_id,
                 status, f" reason={result.reason}" if result.reason else "")
        return status

    async def delete(self, org_id: str) -> None:
        async with self._locks[org_id]:
            current = await run_in_threadpool(self._credentials_of, org_id)
            if current is None:
                raise _link_not_found(org_id)
            await self._refuse_while_running(org_id, current, ErrorCode.CANNOT_DELETE_ORG_LINK_WITH_RUNNING_LIVE_EXPORT,
                                             "deleted")
            await run_in_threadpool(self._delete_link, org_id)
            await self._drop_channel(org_id)
            await self._withdraw_inventory(org_id, current)
        log.info("link deleted: source_org=%s", org_id)

    async def _withdraw_inventory(self, org_id: str, left: LinkCredentials) -> None:
        """Tell the target this org left, by pushing it an empty inventory: its projects stop showing
        in availableProjects there. Best effort — an unlink never fails because the target is away."""
        channel = LinkChannel(left.target_base_url, left.public_key, left.private_key,
                              self._settings.link_push_timeout_seconds)
        try:
            result = await channel.push_inventory(left.target_org_id, org_id, Inventory(projects=[]))
        finally:
            await channel.aclose()
        if result.outcome is not PushOutcome.ACCEPTED:
            log.warning("link left: source_org=%s target_org=%s could not be told (%s); it keeps the last inventory",
                        org_id, left.target_org_id, result.reason)

    # --- migration jobs, relayed between the migration hosts and the target ---------------------

    async def jobs(self, org_id: str, max_age_seconds: float = 0.2) -> JobList:
        """The org's running migrations as the target lists them, fetched at most every `max_age_seconds`."""
        cached = self._jobs.get(org_id)
        if cached is not None and time.monotonic() - cached[0] <= max_age_seconds:
            return cached[1]
        return await self.jobs_changed(org_id, None, None)

    async def jobs_changed(self, org_id: str, held: str | None, wait_seconds: float | None) -> JobList:
        """The list once it differs from version `held`, waiting up to `wait_seconds` on the target
        (long polling); `results` None when it did not change in that time."""
        credentials = await run_in_threadpool(self._credentials_of, org_id)
        if credentials is None:
            raise _link_not_found(org_id)
        channel = await self._channel(org_id, credentials)
        found = await channel.list_jobs(credentials.target_org_id, org_id, held, wait_seconds)
        if found.results is not None:
            self._jobs[org_id] = (time.monotonic(), found)
        return found

    async def report_progress(self, org_id: str, job_id: str, report: dict[str, Any]) -> dict[str, Any]:
        credentials = await run_in_threadpool(self._credentials_of, org_id)
        if credentials is None:
            raise _link_not_found(org_id)
        channel = await self._channel(org_id, credentials)
        return await channel.report_progress(credentials.target_org_id, org_id, job_id, report)

    async def _refuse_while_running(self, org_id: str, credentials: LinkCredentials, code: ErrorCode,
                                    action: str) -> None:
        """409 when a migration of the org runs; when the target cannot say, the last list it gave decides."""
        try:
            channel = await self._channel(org_id, credentials)
            listed = await channel.list_jobs(credentials.target_org_id, org_id)
            self._jobs[org_id] = (time.monotonic(), listed)
            running = listed.results or []
        except LinkKeyRefused:
            running = []  # the target revoked the link: nothing of it runs any more
        except LinkCallFailed:
            kept = self._jobs.get(org_id)
            running = (kept[1].results or []) if kept else []
        projects = sorted({job.sourceProjectId for job in running})
        if projects:
            raise ApiError(code, f"Organization {org_id} cannot be {action} while a live migration of its project(s) "
                                 f"{', '.join(projects)} is running.", projects)

    # --- background push ---------------------------------------------------------------------------

    async def refresh(self, org_id: str) -> PushResult | None:
        """Push the inventory of a linked org again and record the outcome; None if no longer linked."""
        async with self._locks[org_id]:
            credentials = await run_in_threadpool(self._credentials_of, org_id)
            if credentials is None:
                await self._drop_channel(org_id)
                return None
            result = await self._push(org_id, credentials)
            status = await run_in_threadpool(self._record_push, org_id, credentials.fingerprint, result)
        if result.outcome is PushOutcome.ACCEPTED:
            log.debug("link push: source_org=%s status=%s", org_id, status)
        else:
            log.warning("link push: source_org=%s target_org=%s status=%s reason=%s",
                        org_id, credentials.target_org_id, status, result.reason)
        return result

    async def _push(self, org_id: str, credentials: LinkCredentials) -> PushResult:
        inventory = await run_in_threadpool(build_inventory, self._store, org_id,
                                            self._settings.migration_host_alive_seconds)
        channel = await self._channel(org_id, credentials)
        return await channel.push_inventory(credentials.target_org_id, org_id, inventory)

    async def _channel(self, org_id: str, credentials: LinkCredentials) -> LinkChannel:
        """One channel per link, kept between pushes so its connection and digest nonce are reused.
        Called under the org's lock, so the channel it replaces is no longer in use."""
        kept = self._channels.get(org_id)
        if kept is not None and kept[0] == credentials.fingerprint:
            return kept[1]
        await self._drop_channel(org_id)
        channel = LinkChannel(credentials.target_base_url, credentials.public_key, credentials.private_key,
                              self._settings.link_push_timeout_seconds)
        self._channels[org_id] = (credentials.fingerprint, channel)
        return channel

    async def _drop_channel(self, org_id: str) -> None:
        kept = self._channels.pop(org_id, None)
        if kept is not None:
            await kept[1].aclose()

    async def close(self) -> None:
        for org_id in list(self._channels):
            await self._drop_channel(org_id)

    # --- store work (run in a thread) ---------------------------------------------------------------

    def _save_new_link(self, org_id: str, credentials: LinkCredentials, result: PushResult) -> str:
        accepted = result.outcome is PushOutcome.ACCEPTED
        now = utcnow()
        with self._store.write() as session:
            link = session.get(SourceLink, org_id)
            if link is None:
                link = SourceLink(source_org_id=org_id, created_at=now)
                session.add(link)
            link.target_org_id = credentials.target_org_id
            link.target_base_url = credentials.target_base_url
            link.link_public_key = credentials.public_key
            link.link_private_key_encrypted = self._secret_box.seal(credentials.private_key)
            link.token_fingerprint = credentials.fingerprint
            link.status = SYNCED if accepted else NOT_SYNCED
            link.last_synced_at = now if accepted else link.last_synced_at
            link.last_sync_error = None if accepted else result.reason
            link.consecutive_failures = 0 if accepted else 1
            return link.status

    def _delete_link(self, org_id: str) -> None:
        with self._store.write() as session:
            link = session.get(SourceLink, org_id)
            if link is not None:
                session.delete(link)
        if link is None:
            raise _link_not_found(org_id)

    def _credentials_of(self, org_id: str) -> LinkCredentials | None:
        with self._store.read() as session:
            link = session.get(SourceLink, org_id)
        if link is None:
            return None
        return LinkCredentials(link.target_org_id, link.target_base_url, link.link_public_key,
                               self._secret_box.open(link.link_private_key_encrypted), link.token_fingerprint)

    def _record_push(self, org_id: str, fingerprint: str, result: PushResult) -> str | None:
        with self._store.write() as session:
            link = session.get(SourceLink, org_id)
            if link is None or link.token_fingerprint != fingerprint:
                return None
            if result.outcome is PushOutcome.ACCEPTED:
                link.status, link.last_synced_at, link.last_sync_error = SYNCED, utcnow(), None
                link.consecutive_failures = 0
            else:
                link.status, link.last_sync_error = NOT_SYNCED, result.reason
                link.consecutive_failures += 1
            return link.status


_STATUS_QUERY = select(SourceLink.status).where(SourceLink.source_org_id == bindparam("org_id"))


def _link_not_found(org_id: str) -> ApiError:
    return ApiError(ErrorCode.ORG_LINK_NOT_FOUND, f"Organization {org_id} has no migration link.", [org_id])


def link_view(link: SourceLink) -> dict[str, object]:
    """The link as `source link describe` shows it: never the key or the token."""
    return {
        "status": link.status,
        "targetOrgId": link.target_org_id,
        "targetBaseUrl": link.target_base_url,
        "linkedAt": iso(link.created_at),
        "lastSyncedAt": iso(link.last_synced_at),
        "lastSyncError": link.last_sync_error,
        "consecutiveFailures": link.consecutive_failures,
    }
