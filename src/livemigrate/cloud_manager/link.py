"""The liveExport migration link of a source org: connect, status, delete, and each inventory push.

(What the org's migration hosts ask of the target goes through `job_relay.py`; both speak over the
channels of `link_channels.py`.)

Every change to one org's link happens under that org's lock, so a connect, a delete and a
background push of the same org never interleave, at one replica or several: the lock is an asyncio
lock in the process and, on PostgreSQL (where replicas share the store), a row lock on the org's own
row, held from reading the link until its pushes and writes are done. So the target receives one
org's pushes in the order the source decided them, and two replicas never both find the org unlinked
and both insert its link. The database transaction makes each write whole. A push never resurrects a
link deleted meanwhile, nor overwrites one replaced by another token.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from prometheus_client import Counter
from sqlalchemy import Connection, bindparam, select
from starlette.concurrency import run_in_threadpool

from livemigrate import link_token
from livemigrate.client.link_channel import PushOutcome, PushResult
from livemigrate.cloud_manager.inventory import build_inventory
from livemigrate.cloud_manager.job_relay import JobRelay
from livemigrate.cloud_manager.link_channels import LinkChannels, LinkCredentials, link_not_found
from livemigrate.contracts import Inventory
from livemigrate.crypto import SecretBox
from livemigrate.directory.views import iso
from livemigrate.http.errors import ApiError, ErrorCode
from livemigrate.settings import Settings
from livemigrate.store.cache import GenerationCache
from livemigrate.store.database import Store
from livemigrate.store.models import Organization, SourceLink, utcnow

log = logging.getLogger("livemigrate.cloud_manager.link")

# Counted as pushes happen, in this process (`metrics.py` exports them with the store's series).
INVENTORY_PUSHES = Counter("livemigrate_inventory_pushes", "Inventory pushes of linked source orgs to their "
                           "target, by result (accepted, rejected, unreachable).", ["result"])

SYNCED = "SYNCED"
NOT_SYNCED = "NOT_SYNCED"


class LinkService:
    def __init__(self, store: Store, secret_box: SecretBox, settings: Settings, channels: LinkChannels,
                 relay: JobRelay) -> None:
        self._store = store
        self._secret_box = secret_box
        self._settings = settings
        self._channels = channels
        self._relay = relay
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._statuses: GenerationCache[str, str] = GenerationCache(store, settings.read_cache_seconds)
        # Told of each push that connecting makes, so that the background sync does not push again at once.
        self.on_pushed: Callable[[str, PushResult], None] = lambda org_id, result: None

    # --- reads ---------------------------------------------------------------------------------

    def get_link(self, org_id: str) -> SourceLink:
        with self._store.read() as session:
            link = session.get(SourceLink, org_id)
        if link is None:
            raise link_not_found(org_id)
        return link

    def status(self, org_id: str) -> str:
        """SYNCED or NOT_SYNCED. Clients poll this, so it is read through the store's generation cache:
        every push, connect or delete is a write in this process and invalidates it at once."""
        found = self._statuses.get(org_id, self._load_status)
        if found is None:
            raise link_not_found(org_id)
        return found

    def _load_status(self, org_id: str) -> str | None:
        with self._store.engine.connect() as connection:
            return connection.execute(_STATUS_QUERY, {"org_id": org_id}).scalar()

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
        async with self._changing(org_id) as org_exists:
            if not org_exists:
                raise org_not_found(org_id)
            current = await run_in_threadpool(self._channels.credentials_of, org_id)
            replaced = current if current is not None and current.fingerprint != credentials.fingerprint else None
            if replaced is not None:
                await self._refuse_while_running(org_id, replaced, ErrorCode.CANNOT_RELINK_ORG_WITH_RUNNING_LIVE_EXPORT,
                                                 "relinked to another target")
            result = await self._push(org_id, credentials)
            if result.outcome is PushOutcome.REJECTED:
                log.warning("link connect refused: source_org=%s target_org=%s reason=%s",
                            org_id, credentials.target_org_id, result.reason)
                raise ApiError(ErrorCode.INVALID_LINK_TOKEN,
                               f"The target organization rejected the link-token: {result.reason}")
            status = await run_in_threadpool(self._save_new_link, org_id, credentials, result)
            self.on_pushed(org_id, result)
            # The target keeps one inventory per source org: a new token of the same target org has just
            # replaced it with this push, and withdrawing by the old token then would empty it again.
            if replaced is not None and replaced.target_org_id != credentials.target_org_id:
                await self._withdraw_inventory(org_id, replaced)
        log.info("link connected: source_org=%s target_org=%s status=%s%s", org_id, credentials.target_org_id,
                 status, f" reason={result.reason}" if result.reason else "")
        return status

    async def delete(self, org_id: str) -> None:
        async with self._changing(org_id) as org_exists:
            if not org_exists:
                raise org_not_found(org_id)
            current = await run_in_threadpool(self._channels.credentials_of, org_id)
            if current is None:
                raise link_not_found(org_id)
            await self._refuse_while_running(org_id, current, ErrorCode.CANNOT_DELETE_ORG_LINK_WITH_RUNNING_LIVE_EXPORT,
                                             "deleted")
            await run_in_threadpool(self._delete_link, org_id)
            await self._channels.drop(org_id)
            await self._withdraw_inventory(org_id, current)
        log.info("link deleted: source_org=%s", org_id)

    @asynccontextmanager
    async def _changing(self, org_id: str) -> AsyncIterator[bool]:
        """Hold the org's link for one change (see the module's docstring); whether the org still
        exists — one deleted while the change waited has no link to change. The row lock is waited for
        in a worker thread, so at most one call per org and replica holds a thread and a connection for
        it; the others wait on the asyncio lock first, at no cost."""
        async with self._locks[org_id]:
            if self._store.is_sqlite:  # one process: the asyncio lock is the whole story
                yield True
                return
            held = await run_in_threadpool(self._hold_org_row, org_id)
            try:
                yield held is not None
            finally:
                if held is not None:  # closing rolls its transaction back (it wrote nothing): the lock goes
                    await run_in_threadpool(held.close)

    def _hold_org_row(self, org_id: str) -> Connection | None:
        """A connection in a transaction holding the org's row `FOR NO KEY UPDATE` until it is closed;
        None when the org is gone. That lock lets through the `KEY SHARE` lock that inserting the link
        (a row referring to the org, written on another connection) takes, and keeps out every other
        replica's change to the link, which asks for the same lock first."""
        connection = self._store.engine.connect()
        try:
            connection.begin()
            found = connection.execute(_LOCK_ORG_ROW, {"org_id": org_id}).first()
        except BaseException:
            connection.close()
            raise
        if found is None:
            connection.close()
            return None
        return connection

    async def _withdraw_inventory(self, org_id: str, left: LinkCredentials) -> None:
        """Tell the target this org left, by pushing it an empty inventory: its projects stop showing
        in availableProjects there. Best effort — an unlink never fails because the target is away."""
        channel = self._channels.open(left)
        try:
            result = await channel.push_inventory(left.target_org_id, org_id, Inventory(projects=[]))
        finally:
            await channel.aclose()
        if result.outcome is not PushOutcome.ACCEPTED:
            log.warning("link left: source_org=%s target_org=%s could not be told (%s); it keeps the last inventory",
                        org_id, left.target_org_id, result.reason)

    async def _refuse_while_running(self, org_id: str, credentials: LinkCredentials, code: ErrorCode,
                                    action: str) -> None:
        """409 when a migration of the org runs; when the target cannot say, the last list it gave decides."""
        projects = await self._relay.running_projects(org_id, credentials)
        if projects:
            raise ApiError(code, f"Organization {org_id} cannot be {action} while a live migration of its project(s) "
                                 f"{', '.join(projects)} is running.", projects)

    # --- background push ---------------------------------------------------------------------------

    async def refresh(self, org_id: str) -> PushResult | None:
        """Push the inventory of a linked org again and record the outcome; None if no longer linked."""
        async with self._changing(org_id) as org_exists:
            credentials = await run_in_threadpool(self._channels.credentials_of, org_id) if org_exists else None
            if credentials is None:
                await self._channels.drop(org_id)
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
        channel = await self._channels.channel(org_id, credentials)
        result = await channel.push_inventory(credentials.target_org_id, org_id, inventory)
        INVENTORY_PUSHES.labels(result.outcome.value).inc()
        return result

    async def close(self) -> None:
        await self._channels.close()

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
            raise link_not_found(org_id)

    def _record_push(self, org_id: str, fingerprint: str, result: PushResult) -> str | None:
        """The outcome of a push. One accepted by a link already SYNCED only moves `last_synced_at`:
        a quiet write, which tells no replica to drop its caches (see `register_link` on the target)."""
        with self._store.write(quiet=True) as session:
            link = session.get(SourceLink, org_id)
            if (link is not None and link.token_fingerprint == fingerprint and result.outcome is PushOutcome.ACCEPTED
                    and link.status == SYNCED and link.last_sync_error is None and link.consecutive_failures == 0):
                link.last_synced_at = utcnow()
                return link.status
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


def org_not_found(org_id: str) -> ApiError:
    return ApiError(ErrorCode.ORG_NOT_FOUND, f"Organization {org_id} not found.", [org_id])


_STATUS_QUERY = select(SourceLink.status).where(SourceLink.source_org_id == bindparam("org_id"))
_LOCK_ORG_ROW = (select(Organization.id).where(Organization.id == bindparam("org_id"))
                 .with_for_update(key_share=True))


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
