"""Replicas: what sharing the control plane through PostgreSQL costs.

Authenticated `GET …/migrationLink/status` throughput (digest, nonce reused with an increasing `nc`,
one load client) on one replica with the embedded SQLite store, one replica on PostgreSQL, and three
replicas on one PostgreSQL with the client's connections spread over them. All run on this machine's
two cores, so three replicas cannot add throughput here: the figure says what coordination costs —
the shared nonce counts (an insert per request), the NOTIFY listener, the leases.
Target (issue: the control plane on PostgreSQL): three replicas >= 0.9 x one replica, 0 errors.
"""

from __future__ import annotations

import asyncio
import secrets
import sys
import tempfile
from pathlib import Path

import httpx
from tests.pg import EmbeddedPostgres
from tests.support import SOURCE, OrgCredentials, ServerProcess

from bench.http_load import LoadResult, run_load

SECONDS = 8.0
CONNECTIONS = 9
TARGET_RATIO = 0.9


def _status_load(replicas: list[ServerProcess], source: OrgCredentials, target: OrgCredentials) -> LoadResult:
    first = replicas[0]
    token = first.link_token(target)
    with httpx.Client(base_url=first.base_url, auth=source.auth) as client:
        linked = client.post(f"{SOURCE}/orgs/{source.org_id}/liveExport/migrationLink", json={"linkToken": token})
        assert linked.json() == {"status": "SYNCED"}, linked.text
    uri = f"{SOURCE}/orgs/{source.org_id}/liveExport/migrationLink/status"
    ports = [replica.port for replica in replicas]
    credentials = (source.public_key, source.private_key)
    asyncio.run(run_load("127.0.0.1", ports, uri, seconds=1, connections=CONNECTIONS, credentials=credentials))
    return asyncio.run(run_load("127.0.0.1", ports, uri, seconds=SECONDS, connections=CONNECTIONS,
                                credentials=credentials))


def _measure(directory: Path, count: int, database_url: str | None) -> LoadResult:
    shared = {"LIVEMIGRATE_LOG_LEVEL": "WARNING", "LIVEMIGRATE_SECRET_KEY": secrets.token_urlsafe(32)}
    replicas = [ServerProcess(directory / f"replica{number}", sync_seconds=60, database_url=database_url,
                              extra_env=shared) for number in range(count)]
    source = replicas[0].admin_create_org("source", "bench source")
    target = replicas[0].admin_create_org("target", "bench target")
    for replica in replicas:
        replica.start()
    try:
        return _status_load(replicas, source, target)
    finally:
        for replica in replicas:
            replica.stop()


def run() -> list[str]:
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        postgres = EmbeddedPostgres(root / "postgres")
        try:
            sqlite_one = _measure(root / "sqlite", 1, None)
            postgres_one = _measure(root / "pg1", 1, postgres.new_database())
            postgres_three = _measure(root / "pg3", 3, postgres.new_database())
        finally:
            postgres.cleanup()
    ratio = postgres_three.per_second / postgres_one.per_second
    print("replicas: authenticated GET …/migrationLink/status, one load client, this machine's 2 cores")
    for label, result in (("1 replica, SQLite", sqlite_one), ("1 replica, PostgreSQL", postgres_one),
                          ("3 replicas, PostgreSQL", postgres_three)):
        print(f"  {label:<24} {result.per_second:8.0f} req/s   statuses {result.statuses}")
    print(f"  3 / 1 on PostgreSQL      {ratio:8.2f}        (target >= {TARGET_RATIO})")
    failures = []
    if any(set(result.statuses) != {200} for result in (sqlite_one, postgres_one, postgres_three)):
        failures.append("non-200 answers under load")
    if ratio < TARGET_RATIO:
        failures.append(f"ratio {ratio:.2f} < {TARGET_RATIO}")
    print(f"  verdict                  {'PASS' if not failures else 'FAIL: ' + '; '.join(failures)}")
    return failures


if __name__ == "__main__":
    sys.exit(1 if run() else 0)
