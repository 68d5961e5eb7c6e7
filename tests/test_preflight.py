"""`livemigrate migrate --dry-run`: what a migration will do, before it does it — per namespace, what
will not be migrated as is, and what blocks it (exit status 1). nx-27017 keeps no collection options
(capped, time-series, collation, validator: TESTING.md), so those notes are not exercised here."""

from __future__ import annotations

import os
import subprocess

from tests.nx import NxServer
from tests.support import LIVEMIGRATE


def _dry_run(source: NxServer, target: NxServer) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LIVEMIGRATE, "migrate", source.uri, target.uri, "--dry-run"], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "COLUMNS": "200"})


def test_a_dry_run_reports_each_namespace_and_what_blocks_and_writes_nothing(servers: tuple[NxServer, NxServer]) \
        -> None:
    source, target = servers
    with source.client() as source_client, target.client() as target_client:
        source_client.shop.orders.insert_many([{"_id": i, "sku": f"s{i % 7}"} for i in range(700)])
        source_client.shop.odd.insert_one({"_id": 1, "$price": 3, "nested": {"$unit": "eur"}})
        conflicting = target_client.shop.orders.create_index("sku", unique=True)  # the source has no such index

        blocked = _dry_run(source, target)
        assert blocked.returncode == 1, blocked.stdout + blocked.stderr
        rows = {line.split("│")[1].strip(): line for line in blocked.stdout.splitlines() if line.startswith("│ shop.")}
        assert set(rows) == {"shop.odd", "shop.orders"}
        assert "700" in rows["shop.orders"] and "BLOCKS: the destination has unique index" in rows["shop.orders"]
        assert "field names starting with $ ($price, nested.$unit)" in rows["shop.odd"]
        assert "blocked: shop.orders" in blocked.stdout and "copy estimate:" in blocked.stdout
        assert target_client.shop.orders.count_documents({}) == 0  # a dry run writes nothing that stays
        assert "livemigrate_preflight" not in target_client.list_database_names()

        target_client.shop.orders.drop_index(conflicting)
        clear = _dry_run(source, target)
        assert clear.returncode == 0 and "BLOCKS" not in clear.stdout, clear.stdout
