"""Organization roles and which held roles satisfy a required one."""

from __future__ import annotations

from enum import Enum


class OrgRole(str, Enum):
    ORG_OWNER = "ORG_OWNER"
    ORG_MEMBER = "ORG_MEMBER"
    ORG_GROUP_CREATOR = "ORG_GROUP_CREATOR"
    ORG_BILLING_ADMIN = "ORG_BILLING_ADMIN"
    ORG_READ_ONLY = "ORG_READ_ONLY"


# A required role is satisfied by any of these held roles: the owner can do everything, and
# every org role can read what ORG_READ_ONLY can.
SATISFIED_BY: dict[OrgRole, frozenset[str]] = {
    OrgRole.ORG_OWNER: frozenset({"ORG_OWNER"}),
    OrgRole.ORG_GROUP_CREATOR: frozenset({"ORG_OWNER", "ORG_GROUP_CREATOR"}),
    OrgRole.ORG_BILLING_ADMIN: frozenset({"ORG_OWNER", "ORG_BILLING_ADMIN"}),
    OrgRole.ORG_MEMBER: frozenset({"ORG_OWNER", "ORG_GROUP_CREATOR", "ORG_BILLING_ADMIN", "ORG_MEMBER"}),
    OrgRole.ORG_READ_ONLY: frozenset(role.value for role in OrgRole),
}


def satisfies(held: frozenset[str] | set[str] | list[str], required: OrgRole) -> bool:
    return not SATISFIED_BY[required].isdisjoint(held)
