"""`/metrics` answers at its own path, and the Grafana dashboard in `docs/` asks only for what it exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.support import ServerProcess, metric_families

DASHBOARD = Path(__file__).resolve().parent.parent / "docs" / "grafana-dashboard.json"
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}


def exported_names(base_url: str) -> set[str]:
    names = set()
    for family in metric_families(base_url):
        names.add(family.name)
        names.update(family.name + suffix for suffix in _SUFFIXES.get(family.type, ()))
    return names


def test_every_query_of_the_dashboard_names_an_exported_metric(server: ServerProcess) -> None:
    exported = exported_names(server.base_url)
    assert {"livemigrate_migration_lag_seconds", "livemigrate_migration_documents_copied",
            "livemigrate_http_requests_total", "livemigrate_migrations"} <= exported
    queries = [target["expr"] for panel in json.loads(DASHBOARD.read_text())["panels"] for target in panel["targets"]]
    named = {name for query in queries for name in re.findall(r"\blivemigrate_\w+", query)}
    assert len(queries) >= 8 and named
    assert named - exported == set()
