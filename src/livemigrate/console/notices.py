"""The green line at the top of a page ("Host … added", "Disconnected."): only ever a sentence the server
wrote after an action of this session, never one a link brings.

An action answers with a redirect to its page carrying the sentence and an HMAC of it (keyed by the
session's CSRF token, which only this session's pages hold, and bound to the page's path): a crafted
link — "Your account is locked: call …" — carries no valid signature for anyone else's session, and is
shown to nobody. Before a session exists (the sign-in page), a notice is a key naming one of the
server's own sentences (`SIGN_IN_NOTICES`); anything else is ignored.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlencode

from starlette.requests import Request

from livemigrate.context import SignedIn

# The sign-in page's notices, by the key its address carries.
SIGN_IN_NOTICES = {
    "key-gone": "The API key this browser was signed in with no longer exists (it was deleted or revoked): "
                "sign in with another key of your organization.",
}


def _signature(csrf_token: str, path: str, notice: str) -> str:
    return hmac.new(csrf_token.encode(), f"{path}\n{notice}".encode(), hashlib.sha256).hexdigest()[:32]


def address_with_notice(path: str, notice: str, active: SignedIn) -> str:
    """`path` with the signed notice its page shows once the redirect lands there."""
    return f"{path}?{urlencode({'notice': notice, 'sig': _signature(active.csrf_token, path, notice)})}"


def shown_notice(request: Request, active: SignedIn | None) -> str | None:
    """The notice this page's address carries, when this server wrote it; None otherwise."""
    notice = request.query_params.get("notice")
    if not notice:
        return None
    if active is None:
        return SIGN_IN_NOTICES.get(notice)
    expected = _signature(active.csrf_token, request.url.path, notice)
    return notice if hmac.compare_digest(request.query_params.get("sig", ""), expected) else None
