"""Link-tokens: issued by a target org for source orgs to connect with, and revoked all at once.

Each token gets its own API key (purpose 'link', no org role, bound to `accessListIps`), which
is what the source side authenticates with on the link channel.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select, update

from livemigrate import link_token
from livemigrate.directory.api_keys import create_api_key, parse_entry
from livemigrate.ids import new_object_id
from livemigrate.statuses import RUNNING, MigrationStatus
from livemigrate.store.database import Store
from livemigrate.store.models import ApiKey, LinkToken, LiveMigration, TargetLink, utcnow
from livemigrate.vocabulary import LINK_PURPOSE


def create_link_token(store: Store, org_id: str, access_list_ips: Sequence[str], target_base_url: str) -> str:
    """Create the link key and its token record in one transaction; return the token text."""
    blocks = [parse_entry(ip)[0] for ip in access_list_ips]
    with store.write() as session:
        created = create_api_key(session, org_id, "live migration link-token", [], LINK_PURPOSE, blocks)
        token = LinkToken(id=new_object_id(), org_id=org_id, api_key_id=created.api_key.id,
                          access_list_ips=list(access_list_ips))
        session.add(token)
        claims = link_token.LinkTokenClaims(
            tokenId=token.id,
            targetOrgId=org_id,
            targetBaseUrl=target_base_url,
            publicKey=created.api_key.public_key,
            privateKey=created.private_key,
        )
    return link_token.encode(claims)


REVOKED_WHILE_RUNNING = ("The organization's link-tokens were revoked while this migration ran: the source "
                         "organization can no longer reach it, and its migration host stopped. Nothing was cut "
                         "over; link again and start a new migration (dropDestinationData) to migrate.")


def revoke_link_tokens(store: Store, org_id: str) -> int:
    """Revoke every token of the org, the keys behind them and the links made with them.

    A migration still running over those links can never be reached again: it ends FAILED, saying
    why, rather than showing WORKING forever (its migration host stops once the target refuses the
    link's key)."""
    now = utcnow()
    with store.write() as session:
        session.execute(update(LiveMigration).where(LiveMigration.target_org_id == org_id,
                                                    LiveMigration.status.in_([status.value for status in RUNNING]))
                        .values(status=MigrationStatus.FAILED.value, error_message=REVOKED_WHILE_RUNNING,
                                ready_for_cutover=False))
        # No host of these links can be told anything now (a cancel's included): their destinations are
        # free; a host still writing is held off by the engine's own claim on the destination.
        session.execute(update(LiveMigration).where(LiveMigration.target_org_id == org_id,
                                                    LiveMigration.destination_claim.is_not(None))
                        .values(destination_claim=None))
        key_ids = list(session.scalars(
            select(LinkToken.api_key_id).where(LinkToken.org_id == org_id, LinkToken.revoked_at.is_(None))))
        session.execute(update(LinkToken).where(LinkToken.org_id == org_id, LinkToken.revoked_at.is_(None))
                        .values(revoked_at=now))
        if key_ids:
            session.execute(update(ApiKey).where(ApiKey.id.in_(key_ids)).values(revoked_at=now))
        session.execute(delete(TargetLink).where(TargetLink.target_org_id == org_id))
    return len(key_ids)
