"""`livemigrate migrate --dry-run`: what a migration will do, before it does it — per namespace, what
will not be migrated as is, and what blocks it (exit status 1). nx-27017 keeps no collection options,
so `CollectionOptionsProxy` shows the source's collections with them (capped, time-series, clustered,
collation, validator) and a view, as MongoDB lists them. The estimate's accuracy is measured by
`make bench` (`bench/preflight.py`), not here: a timing belongs in a benchmark."""

from __future__ import annotations

import os
import subprocess

from tests.engine_support import SHAPE_NOTES, SHAPES, seed_shapes
from tests.nx import NxServer
from tests.support import LIVEMIGRATE
from tests.wire_proxy import CollectionOptionsProxy


def _dry_run(source_uri: str, target: NxServer) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LIVEMIGRATE, "migrate", source_uri, target.uri, "--dry-run"], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "COLUMNS": "250"})


def _rows(output: str) -> dict[str, str]:
    """The table's rows by namespace, each row's folded lines joined."""
    rows: dict[str, str] = {}
    current = None
    for line in output.splitlines():
        if not line.startswith("│"):
            continue
        first = line.split("│")[1].strip()
        if first.startswith("shop."):
            current = first
        if current is not None:
            cells = [cell.strip() for cell in line.split("│")[1:-1]]
            rows[current] = f"{rows.get(current, '')} {' '.join(cells)}".strip()
    return rows


def test_a_dry_run_reports_each_namespace_and_what_blocks_and_writes_nothing(servers: tuple[NxServer, NxServer]) \
        -> None:
    source, target = servers
    shaped = CollectionOptionsProxy(source.port, SHAPES).start()
    try:
        with source.client() as source_client, target.client() as target_client:
            seed_shapes(source_client)
            conflicting = target_client.shop.orders.create_index("sku", unique=True)  # the source has no such index

            blocked = _dry_run(shaped.uri, target)
            assert blocked.returncode == 1, blocked.stdout + blocked.stderr
            rows = _rows(blocked.stdout)
            assert set(rows) == {"shop.orders", *SHAPE_NOTES}, blocked.stdout
            assert "700" in rows["shop.orders"] and "BLOCKS: the destination has unique index" in rows["shop.orders"]
            for namespace, note in SHAPE_NOTES.items():
                assert note in rows[namespace], (namespace, rows[namespace])
            assert "timeseries" in rows["shop.readings"] and "view" in rows["shop.recent"]
            assert "blocked: shop.orders" in blocked.stdout and "copy estimate:" in blocked.stdout
            assert target_client.shop.orders.count_documents({}) == 0  # a dry run writes nothing that stays
            assert "livemigrate_preflight" not in target_client.list_database_names()

            target_client.shop.orders.drop_index(conflicting)
            clear = _dry_run(shaped.uri, target)
            assert clear.returncode == 0 and "BLOCKS" not in clear.stdout, clear.stdout
            assert "copied as is" in _rows(clear.stdout)["shop.orders"]
    finally:
        shaped.stop()
