"""The receiving end of the link channel: source orgs register and refresh their inventory here."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from livemigrate.contracts import Inventory, InventoryProject
from livemigrate.http.auth import Principal
from livemigrate.http.errors import ApiError, ErrorCode
from livemigrate.store.database import Store
from livemigrate.store.models import LinkToken, TargetLink, utcnow


def register_link(store: Store, principal: Principal, target_org_id: str, source_org_id: str,
                  inventory: dict[str, Any]) -> datetime:
    """Record (or refresh) the link of `source_org_id` and the inventory it pushed. A push that changes
    nothing — the interval's, most of the time — only moves `last_synced_at`, quietly: nothing cached
    or waited on reads that, and telling every replica made each drop its caches and wake its long
    polls once a minute per link (`bench/migration_hosts.py` measures what that cost; docs/benchmarks.md).

    Two pushes for one source org that both find no link both insert it; a push may find a link that
    its token's revocation deletes before the push writes. Either write fails, and the push is recorded
    once more from a fresh read: over the row the other push made (the later push wins, as it would
    have one after the other), or answered 401 as any call of a revoked key — never a 500."""
    try:
        return _record_push(store, principal, target_org_id, source_org_id, inventory)
    except (IntegrityError, StaleDataError):  # the row changed under the write: read it again
        return _record_push(store, principal, target_org_id, source_org_id, inventory)


def _record_push(store: Store, principal: Principal, target_org_id: str, source_org_id: str,
                 inventory: dict[str, Any]) -> datetime:
    now = utcnow()
    with store.write(quiet=True) as session:
        token_id = session.scalar(select(LinkToken.id).where(LinkToken.api_key_id == principal.key_id))
        link = session.scalar(select(TargetLink).where(
            TargetLink.target_org_id == target_org_id, TargetLink.source_org_id == source_org_id))
        if token_id is not None and link is not None and link.link_token_id == token_id \
                and link.inventory == inventory:
            link.last_synced_at = now
            return now
    with store.write() as session:
        token_id = session.scalar(select(LinkToken.id).where(LinkToken.api_key_id == principal.key_id))
        if token_id is None:
            raise ApiError(ErrorCode.USER_UNAUTHORIZED, "This API key belongs to no link-token.")
        link = session.scalar(select(TargetLink).where(
            TargetLink.target_org_id == target_org_id, TargetLink.source_org_id == source_org_id))
        if link is None:
            link = TargetLink(target_org_id=target_org_id, source_org_id=source_org_id)
            session.add(link)
        link.link_token_id = token_id
        link.inventory = inventory
        link.last_synced_at = now
    return now


def inventory_of(link: TargetLink) -> Inventory:
    """What a link last pushed, as the contract it was validated against when it arrived."""
    return Inventory.model_validate(link.inventory)


def available_projects(store: Store, target_org_id: str) -> list[InventoryProject]:
    """What every linked source org last pushed, flattened to its projects."""
    with store.read() as session:
        links = session.scalars(
            select(TargetLink).where(TargetLink.target_org_id == target_org_id).order_by(TargetLink.id))
        return [project for link in links for project in inventory_of(link).projects]
