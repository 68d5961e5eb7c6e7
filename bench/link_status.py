"""Throughput of authenticated `GET …/migrationLink/status` against an unauthenticated endpoint.

Both run against the same `livemigrate serve` process (one uvicorn worker), in the same run, with
the same load generator: the ratio is the cost of digest authentication, the role check and the
link lookup. Targets (issue: the link): ratio >= 0.5 and >= 500 authenticated requests/s.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

import httpx
from tests.support import SOURCE, ServerProcess

from bench.http_load import run_load

SECONDS = 8.0
CONNECTIONS = 8
TARGET_RATIO = 0.5
TARGET_AUTH_RPS = 500.0


def run() -> list[str]:
    with tempfile.TemporaryDirectory() as directory:
        server = ServerProcess(Path(directory), sync_seconds=60, extra_env={"LIVEMIGRATE_LOG_LEVEL": "WARNING"})
        source = server.admin_create_org("source", "bench source")
        target = server.admin_create_org("target", "bench target")
        server.start()
        try:
            token = server.link_token(target)
            with httpx.Client(base_url=server.base_url, auth=source.auth) as client:
                linked = client.post(f"{SOURCE}/orgs/{source.org_id}/liveExport/migrationLink", json={"linkToken": token})
                assert linked.json() == {"status": "SYNCED"}, linked.text
            status_uri = f"{SOURCE}/orgs/{source.org_id}/liveExport/migrationLink/status"
            # warm both paths, then measure each
            asyncio.run(run_load("127.0.0.1", server.port, "/healthz", seconds=1, connections=CONNECTIONS))
            unauthenticated = asyncio.run(run_load("127.0.0.1", server.port, "/healthz", seconds=SECONDS,
                                                   connections=CONNECTIONS))
            authenticated = asyncio.run(run_load("127.0.0.1", server.port, status_uri, seconds=SECONDS,
                                                 connections=CONNECTIONS,
                                                 credentials=(source.public_key, source.private_key)))
        finally:
            server.stop()
    ratio = authenticated.per_second / unauthenticated.per_second
    print("link: GET …/migrationLink/status (digest, nonce reused) vs GET /healthz (no auth)")
    print(f"  unauthenticated   {unauthenticated.per_second:8.0f} req/s   statuses {unauthenticated.statuses}")
    print(f"  authenticated     {authenticated.per_second:8.0f} req/s   statuses {authenticated.statuses}")
    print(f"  ratio             {ratio:8.2f}        (target >= {TARGET_RATIO})")
    failures = []
    if set(authenticated.statuses) != {200} or set(unauthenticated.statuses) != {200}:
        failures.append("non-200 answers under load")
    if ratio < TARGET_RATIO:
        failures.append(f"ratio {ratio:.2f} < {TARGET_RATIO}")
    if authenticated.per_second < TARGET_AUTH_RPS:
        failures.append(f"authenticated {authenticated.per_second:.0f} req/s < {TARGET_AUTH_RPS:.0f}")
    print(f"  verdict           {'PASS' if not failures else 'FAIL: ' + '; '.join(failures)}")
    return failures


if __name__ == "__main__":
    sys.exit(1 if run() else 0)
