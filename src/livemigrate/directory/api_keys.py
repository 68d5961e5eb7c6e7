"""Programmatic API keys and their access lists.

The private key is generated here, returned once, and kept only as digest HA1 values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from livemigrate.http import access_list, digest
from livemigrate.http.errors import ApiError, ErrorCode
from livemigrate.ids import is_object_id, new_object_id, new_private_key, new_public_key
from livemigrate.store.database import Store
from livemigrate.store.models import AccessListEntry, ApiKey
from livemigrate.vocabulary import PROGRAMMATIC_PURPOSE


@dataclass(frozen=True, slots=True)
class CreatedApiKey:
    """A new key with its private key: the only moment the private key exists outside the client."""

    api_key: ApiKey
    private_key: str


def create_api_key(session: Session, org_id: str, description: str, roles: Sequence[str],
                   purpose: str = PROGRAMMATIC_PURPOSE, cidr_blocks: Sequence[str] = ()) -> CreatedApiKey:
    public_key = new_public_key()
    while session.scalar(select(ApiKey.id).where(ApiKey.public_key == public_key)) is not None:
        public_key = new_public_key()
    private_key = new_private_key()
    api_key = ApiKey(
        id=new_object_id(),
        org_id=org_id,
        public_key=public_key,
        ha1_md5=digest.ha1("MD5", public_key, private_key),
        ha1_sha256=digest.ha1("SHA-256", public_key, private_key),
        description=description,
        roles=list(roles),
        purpose=purpose,
    )
    # A block named twice, or in two notations (10.0.0.1/8 and 10.0.0.0/8), is one entry, as an access
    # list added to later takes it (`add_access_list_entries`): a second row would repeat the primary
    # key (key, block) and answer 500.
    entries = dict(access_list.normalize_entry(block) for block in cidr_blocks)
    for cidr_block, ip_address in entries.items():
        api_key.access_list.append(AccessListEntry(cidr_block=cidr_block, ip_address=ip_address))
    session.add(api_key)
    session.flush()
    return CreatedApiKey(api_key, private_key)


def get_api_key(session: Session, org_id: str, key_id: str) -> ApiKey:
    if not is_object_id(key_id):
        raise ApiError(ErrorCode.INVALID_API_KEY_ID, f"An invalid API key ID {key_id} was specified.", [key_id])
    api_key = session.get(ApiKey, key_id)
    if api_key is None or api_key.org_id != org_id or api_key.purpose != PROGRAMMATIC_PURPOSE:
        raise ApiError(ErrorCode.API_KEY_NOT_FOUND, f"API key {key_id} not found in organization {org_id}.", [key_id])
    return api_key


def list_api_keys(store: Store, org_id: str) -> list[ApiKey]:
    with store.read() as session:
        return list(
            session.scalars(
                select(ApiKey).where(ApiKey.org_id == org_id, ApiKey.purpose == PROGRAMMATIC_PURPOSE).order_by(ApiKey.id)
            )
        )


def new_api_key(store: Store, org_id: str, description: str, roles: Sequence[str]) -> CreatedApiKey:
    with store.write() as session:
        return create_api_key(session, org_id, description, roles)


def find_api_key(store: Store, org_id: str, key_id: str) -> ApiKey:
    with store.read() as session:
        return get_api_key(session, org_id, key_id)


def update_api_key(store: Store, org_id: str, key_id: str, description: str | None,
                   roles: Sequence[str] | None) -> ApiKey:
    with store.write() as session:
        api_key = get_api_key(session, org_id, key_id)
        if description is not None:
            api_key.description = description
        if roles is not None:
            api_key.roles = list(roles)
        return api_key


def delete_api_key(store: Store, org_id: str, key_id: str) -> None:
    with store.write() as session:
        session.delete(get_api_key(session, org_id, key_id))


def parse_entry(value: str) -> tuple[str, str | None]:
    """A caller's access list entry, normalized; refused unless written as `/openapi.json` says
    (`access_list.IP_OR_CIDR`), though `ipaddress` reads more (a zone id, a dotted netmask, spaces)."""
    try:
        if not access_list.is_ip_or_cidr(value):
            raise ValueError(value)
        return access_list.normalize_entry(value)
    except ValueError:
        raise ApiError(
            ErrorCode.INVALID_IP_ADDRESS_OR_CIDR_NOTATION,
            f"The address {value!r} must be in valid IP address or CIDR notation.",
            [value],
        ) from None


def add_access_list_entries(store: Store, org_id: str, key_id: str, entries: Sequence[str]) -> ApiKey:
    normalized = [parse_entry(entry) for entry in entries]
    with store.write() as session:
        api_key = get_api_key(session, org_id, key_id)
        existing = {entry.cidr_block for entry in api_key.access_list}
        for cidr_block, ip_address in normalized:
            if cidr_block not in existing:
                api_key.access_list.append(AccessListEntry(cidr_block=cidr_block, ip_address=ip_address))
                existing.add(cidr_block)
        session.flush()
        return api_key


def delete_access_list_entry(store: Store, org_id: str, key_id: str, ip_or_cidr: str) -> None:
    cidr_block, _ = parse_entry(ip_or_cidr)
    with store.write() as session:
        api_key = get_api_key(session, org_id, key_id)
        entry = next((entry for entry in api_key.access_list if entry.cidr_block == cidr_block), None)
        if entry is None:
            raise ApiError(
                ErrorCode.ACCESS_LIST_ENTRY_NOT_FOUND,
                f"Access list entry {ip_or_cidr} not found for API key {key_id}.",
                [ip_or_cidr],
            )
        api_key.access_list.remove(entry)
