"""Digest nonces: short-lived, verifiable without server state, and never accepted twice with one `nc`.

A nonce is `timestamp.random.hmac` under the server secret, so any replica that shares the secret
can check it. The nonce counts already used are kept in memory per process (bounded by the nonce
lifetime) and, when replicas share a store, there too (`SharedNonceCounts`): a count used at one
replica is then refused at every other.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import struct
import threading
import time
from enum import Enum
from typing import Protocol

_MAX_COUNTS_PER_NONCE = 1_000_000


class NonceState(Enum):
    FRESH = "fresh"
    STALE = "stale"
    INVALID = "invalid"
    REPLAYED = "replayed"


class SharedNonceCounts(Protocol):
    """Nonce counts every replica sees (`store/nonce_counts.py`)."""

    def first_use(self, nonce: str, nonce_count: int, expires_at: float) -> bool: ...


class NonceBook:
    def __init__(self, secret: bytes, lifetime_seconds: float, shared: SharedNonceCounts | None = None) -> None:
        self._key = hashlib.sha256(b"digest-nonce:" + secret).digest()
        self._lifetime = lifetime_seconds
        self._shared = shared
        self._used: dict[str, tuple[float, set[int]]] = {}
        self._lock = threading.Lock()
        self._next_prune = 0.0

    def issue(self) -> str:
        issued = struct.pack(">d", time.time()) + secrets.token_bytes(8)
        tag = hmac.new(self._key, issued, hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(issued + tag).decode().rstrip("=")

    def _issued_at(self, nonce: str) -> float | None:
        try:
            raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
        except (ValueError, TypeError):
            return None
        if len(raw) != 32:
            return None
        issued, tag = raw[:16], raw[16:]
        if not hmac.compare_digest(tag, hmac.new(self._key, issued, hashlib.sha256).digest()[:16]):
            return None
        issued_at: float = struct.unpack(">d", issued[:8])[0]
        return issued_at

    def check(self, nonce: str) -> NonceState:
        """Is this nonce ours and still in its lifetime? (Does not consume a count.)"""
        known = self._used.get(nonce)
        issued_at = known[0] - self._lifetime if known is not None else self._issued_at(nonce)
        if issued_at is None:
            return NonceState.INVALID
        if time.time() - issued_at > self._lifetime:
            return NonceState.STALE
        return NonceState.FRESH

    def consume(self, nonce: str, nonce_count: int) -> NonceState:
        """Record `nonce_count` for `nonce` once credentials are proven; a count seen before is a replay.

        The nonce's expiry is kept with its counts, so a nonce seen before is not HMAC-checked again. A
        count new here is then checked with the other replicas, when there are any.
        """
        state, expires_at = self._consume_here(nonce, nonce_count)
        if state is NonceState.FRESH and self._shared is not None \
                and not self._shared.first_use(nonce, nonce_count, expires_at):
            return NonceState.REPLAYED
        return state

    def _consume_here(self, nonce: str, nonce_count: int) -> tuple[NonceState, float]:
        now = time.time()
        with self._lock:
            if now >= self._next_prune:
                self._prune(now)
            entry = self._used.get(nonce)
            if entry is None:
                issued_at = self._issued_at(nonce)
                if issued_at is None:
                    return NonceState.INVALID, 0.0
                entry = self._used[nonce] = (issued_at + self._lifetime, set())
            expires_at, counts = entry
            if nonce_count in counts:
                return NonceState.REPLAYED, expires_at
            if len(counts) >= _MAX_COUNTS_PER_NONCE:
                return NonceState.STALE, expires_at
            counts.add(nonce_count)
            return NonceState.FRESH, expires_at

    def _prune(self, now: float) -> None:
        for nonce in [nonce for nonce, (expires, _) in self._used.items() if expires < now]:
            del self._used[nonce]
        self._next_prune = now + min(self._lifetime, 60.0)
