"""Encryption at rest for credentials the server must use later (the link key a source org keeps).

Fernet (from `cryptography`) rather than anything home-made: authenticated encryption with a key
derived from the server secret.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet


class SecretBox:
    def __init__(self, server_secret: bytes) -> None:
        key = base64.urlsafe_b64encode(hashlib.sha256(b"secret-box:" + server_secret).digest())
        self._fernet = Fernet(key)

    def seal(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def open(self, sealed: str) -> str:
        return self._fernet.decrypt(sealed.encode()).decode()
