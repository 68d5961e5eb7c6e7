"""What the verification ledger keeps of a document: its key (the `_id` element's exact BSON) and a
digest of its exact BSON, and a namespace's hash made of its documents' digests.

Pure functions over bytes: the copy, the verification pass and `livemigrate verify` all digest what
they read the same way, without a ledger.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable
from typing import Any

import bson
from bson.raw_bson import RawBSONDocument


def document_key(identifier: Any) -> bytes:
    """The `_id` element as BSON (type, name, value): equal exactly when the server's `_id`s are. The
    driver decodes every BSON type to one that encodes back to the same bytes (int64 to Int64, …)."""
    return bson.encode({"_id": identifier})[4:-1]


def identifier_of(key: bytes) -> Any:
    return bson.decode(struct.pack("<i", len(key) + 5) + key + b"\x00")["_id"]


# Sizes of BSON values by type byte, to find where a raw document's `_id` element ends.
_FIXED_SIZES = {0x01: 8, 0x06: 0, 0x07: 12, 0x08: 1, 0x09: 8, 0x0A: 0, 0x10: 4, 0x11: 8, 0x12: 8, 0x13: 16,
                0xFF: 0, 0x7F: 0}
_AFTER_LENGTH = {0x02: 4, 0x0D: 4, 0x0E: 4, 0x05: 5}  # int32 length, (binary: subtype,) then that many bytes
_SELF_SIZED = frozenset({0x03, 0x04, 0x0F})  # an int32 that counts itself
_ID_NAME = b"_id\x00"
_STRING_ID = b"\x02_id\x00"  # a string `_id` element's type and name


def _raw_id_element(raw: bytes | memoryview) -> bytes | None:
    """The `_id` element's bytes, read in place when `_id` comes first, as the server stores it.

    Written here because the bson package has no public way to read one element of a raw document:
    `document["_id"]` decodes the whole document, which costs the copy more than hashing it does.
    """
    if raw[4:9] == _STRING_ID:  # a string `_id`, common and the costliest to size below: read first
        return bytes(raw[4:13 + int.from_bytes(raw[9:13], "little")])
    if raw[5:9] != _ID_NAME:
        return None
    kind = raw[4]
    if kind in _FIXED_SIZES:
        size = _FIXED_SIZES[kind]
    elif kind in _AFTER_LENGTH:
        size = _AFTER_LENGTH[kind] + int.from_bytes(raw[9:13], "little")
    elif kind in _SELF_SIZED:
        size = int.from_bytes(raw[9:13], "little")
    else:
        return None
    return bytes(raw[4:9 + size])


def digest_of(document: RawBSONDocument) -> tuple[bytes, bytes]:
    """(key, digest) of a document: the digest is of its exact BSON, field order included, as MongoDB
    compares documents. BLAKE2b at 128 bits: the fastest of the standard library's hashes in software
    (a CPU with SHA extensions runs SHA-256 faster, a gain that depends on the CPU and would change
    every ledger's digests), and as wide as MongoDB's own dbHash (MD5); twice that doubled the ledger's writes (one
    row per document per side) for a collision chance already beyond reach."""
    raw = document.raw
    key = _raw_id_element(raw)
    return (key if key is not None else document_key(document["_id"])), hashlib.blake2b(raw, digest_size=16).digest()


_MODULUS = 2**256


def namespace_hash(digests: Iterable[bytes]) -> str:
    """A namespace's hash: the sum of its documents' digests modulo 2**256, so that it does not depend
    on the order documents are read in, and can be kept up to date by adding and taking away."""
    return hash_hex(digest_sum(digests))


def hash_hex(total: int) -> str:
    """A sum of digests as a namespace's hash: modulo 2**256, in hexadecimal."""
    return f"{total % _MODULUS:064x}"


def digest_sum(digests: Iterable[bytes]) -> int:
    """Digests summed, for a namespace's hash (kept up to date by adding and taking away)."""
    return sum(int.from_bytes(digest, "big") for digest in digests)
