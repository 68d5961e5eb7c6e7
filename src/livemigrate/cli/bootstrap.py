"""First start of `livemigrate serve`: one source org and one target org, each with an owner key."""

from __future__ import annotations

import logging

from sqlalchemy import select

from livemigrate.directory.orgs import create_org
from livemigrate.store.database import Store
from livemigrate.store.leases import Lease, replica_name
from livemigrate.store.models import Organization


def _organizations(store: Store) -> list[Organization]:
    with store.read() as session:
        return list(session.scalars(select(Organization).order_by(Organization.side, Organization.created_at)))


_log = logging.getLogger(__name__)


def _say_what_is_held(held: list[Organization], *, as_log_record: bool) -> None:
    """A later start: the organizations the store holds, and what to do when their keys are lost. Where
    the log is JSON for a shipper, the output is too: one record, the organizations a field of it."""
    if as_log_record:
        _log.info("the store holds %d organization(s); a lost key: `livemigrate admin create-key --org ORG_ID`",
                  len(held), extra={"organizations": [{"side": org.side, "id": org.id, "name": org.name}
                                                      for org in held]})
        return
    lines = "\n".join(f"  {org.side.upper():<7} {org.id}  {org.name}" for org in held)
    print(f"\nThe store holds {len(held)} organization(s):\n{lines}\n"
          "  Lost a key? `livemigrate admin create-key --org ORG_ID` makes a new ORG_OWNER key of that "
          "organization (its private key shown once).\n", flush=True)


def bootstrap_if_empty(store: Store, base_url: str, *, json_log: bool = False) -> bool:
    """Create the two orgs when the store has none, and print their credentials once. Replicas starting
    together on an empty store take a lease first: one of them bootstraps, the others find orgs."""
    held = _organizations(store)
    if held:
        _say_what_is_held(held, as_log_record=json_log)
        return False
    if not Lease(store, "bootstrap", replica_name(), ttl_seconds=60).try_hold():
        return False
    if _organizations(store):  # another replica bootstrapped between the look and the lease
        return False
    source = create_org(store, "source", "Source organization", "Organization owner (first start)")
    target = create_org(store, "target", "Target organization", "Organization owner (first start)")
    assert source.api_key is not None and target.api_key is not None
    print(
        "\nFirst start: created two organizations. Their private keys are shown only now; keep them.\n\n"
        f"  SOURCE (Cloud Manager role, {base_url}/api/public/v1.0)\n"
        f"    org id       {source.org.id}\n"
        f"    public key   {source.api_key.api_key.public_key}\n"
        f"    private key  {source.api_key.private_key}\n\n"
        f"  TARGET (Atlas role, {base_url}/api/atlas/v2)\n"
        f"    org id       {target.org.id}\n"
        f"    public key   {target.api_key.api_key.public_key}\n"
        f"    private key  {target.api_key.private_key}\n\n"
        "  For a shell (the README's walk-through uses these names):\n\n"
        f"export SOURCE_ORG={source.org.id} SOURCE_PUB={source.api_key.api_key.public_key} "
        f"SOURCE_PRIV={source.api_key.private_key}\n"
        f"export TARGET_ORG={target.org.id} TARGET_PUB={target.api_key.api_key.public_key} "
        f"TARGET_PRIV={target.api_key.private_key}\n"
        f"export LIVEMIGRATE_BASE_URL={base_url}\n",
        flush=True,
    )
    return True
