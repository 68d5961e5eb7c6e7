"""Encryption at rest for credentials the server must use later (the link key a source org keeps).

Fernet (from `cryptography`) rather than anything home-made: authenticated encryption with a key
derived from the server secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from cryptography.fernet import Fernet


class SecretBox:
    def __init__(self, server_secret: bytes) -> None:
        key = base64.urlsafe_b64encode(hashlib.sha256(b"secret-box:" + server_secret).digest())
        self._fernet = Fernet(key)
        self._tag_key = hashlib.sha256(b"tags:" + server_secret).digest()

    def seal(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def open(self, sealed: str) -> str:
        return self._fernet.decrypt(sealed.encode()).decode()

    def tag(self, data: bytes) -> str:
        """A short keyed fingerprint of `data`: equal for equal data, and telling nothing of data that
        holds secrets (a plain hash of a connection string could be guessed back, password included)."""
        return hmac.new(self._tag_key, data, hashlib.sha256).hexdigest()[:24]
