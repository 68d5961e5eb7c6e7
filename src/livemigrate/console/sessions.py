"""Console sessions: an API key pair signs a browser in, and a random token in an HttpOnly cookie
stands for it until it expires or the browser signs out.

The store keeps the token's SHA-256 (never the token) and the session's CSRF token, so that any
replica serves any session and signing out ends it everywhere. Each request checks the key again
(`Authenticator.recheck`): a key deleted, revoked or off its access list since the sign-in no longer
signs anything — the console is the API's identity, not a second one.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete

from livemigrate.http.auth import Authenticator, Principal
from livemigrate.store.database import Store
from livemigrate.store.models import ConsoleSession, utcnow


@dataclass(frozen=True)
class ActiveSession:
    principal: Principal
    csrf_token: str


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class ConsoleSessions:
    def __init__(self, store: Store, authenticator: Authenticator, lifetime: timedelta) -> None:
        self._store = store
        self._authenticator = authenticator
        self.lifetime = lifetime

    def sign_in(self, public_key: str, private_key: str, caller_ip: str | None) -> str:
        """The new session's token, for the cookie; raises the API's error for a refused key pair."""
        self._authenticator.check_key_pair(public_key, private_key, caller_ip)
        token = secrets.token_urlsafe(32)
        now = utcnow()
        with self._store.write() as session:
            session.execute(delete(ConsoleSession).where(ConsoleSession.expires_at < now))  # keeps the table small
            session.add(ConsoleSession(token_hash=_hash(token), public_key=public_key,
                                       csrf_token=secrets.token_urlsafe(32), created_at=now,
                                       expires_at=now + self.lifetime))
        return token

    def resume(self, token: str | None, caller_ip: str | None) -> ActiveSession | None:
        """The session of this cookie, or None: no cookie, unknown, expired. Raises the API's error when
        the key may no longer be used from here."""
        if not token:
            return None
        with self._store.read() as session:
            found = session.get(ConsoleSession, _hash(token))
            if found is None or found.expires_at <= utcnow():
                return None
            public_key, csrf_token = found.public_key, found.csrf_token
        return ActiveSession(self._authenticator.recheck(public_key, caller_ip), csrf_token)

    def sign_out(self, token: str) -> None:
        with self._store.write() as session:
            session.execute(delete(ConsoleSession).where(ConsoleSession.token_hash == _hash(token)))
