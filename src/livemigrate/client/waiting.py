"""Asking for a list that may wait for a change: the caller's side of the servers' long polling
(`http/long_poll.py`)."""

from __future__ import annotations

from typing import Any

import httpx

# The server answers at the end of the wait at the latest; this much longer, the connection is deemed lost.
_GRACE_SECONDS = 15.0
_CONNECT_SECONDS = 5.0  # the wait is the answer's, not the connection's


def wait_options(held: str | None, wait_seconds: float | None) -> dict[str, Any]:
    """Request options for an httpx call: wait up to `wait_seconds` for a version other than `held`,
    or nothing to add when there is no version to hold or no wait to ask for."""
    if held is None or not wait_seconds:
        return {}
    return {"headers": {"If-None-Match": held, "Prefer": f"wait={wait_seconds:g}"},
            "timeout": httpx.Timeout(wait_seconds + _GRACE_SECONDS, connect=_CONNECT_SECONDS)}
