"""Identifiers in MongoDB Cloud's shapes: 24-hex ids, 8-letter public keys, UUID private keys."""

from __future__ import annotations

import re
import secrets
import string
import time
import uuid

OBJECT_ID_PATTERN = re.compile(r"^[0-9a-f]{24}$")


def new_object_id() -> str:
    """A 24-hex id that, like an ObjectId, starts with the creation time (sortable by age)."""
    return f"{int(time.time()):08x}{secrets.token_hex(8)}"


def is_object_id(value: str) -> bool:
    return bool(OBJECT_ID_PATTERN.fullmatch(value))


def new_public_key() -> str:
    return "".join(secrets.choice(string.ascii_lowercase) for _ in range(8))


def new_private_key() -> str:
    return str(uuid.uuid4())
