"""`/metrics` answers at its own path, and the Grafana dashboard in `docs/` asks only for what it exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx

from tests.support import LOOPBACK_TLS, SOURCE, OrgCredentials, ServerProcess, metric_families

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


def _sample(base_url: str, name: str, **labels: str) -> float:
    return sum(sample.value for family in metric_families(base_url) for sample in family.samples
               if sample.name == name and all(sample.labels.get(key) == value for key, value in labels.items()))


def test_a_digest_challenge_is_counted_apart_from_a_refusal(server: ServerProcess, source_org: OrgCredentials) -> None:
    """Every digest client's first request is answered 401 with a challenge: that is digest, not a refusal.
    The requests' 401s are the refusals alone, so that an alert on them means something."""
    route = "/api/public/v1.0/orgs/{org_id}"
    url = f"{server.base_url}{SOURCE}/orgs/{source_org.org_id}"
    refusals = _sample(server.base_url, "livemigrate_http_requests_total", route=route, status="401")
    challenges = _sample(server.base_url, "livemigrate_http_digest_challenges_total", route=route)
    answered = _sample(server.base_url, "livemigrate_http_requests_total", route=route, status="200")
    with httpx.Client(auth=source_org.auth, verify=LOOPBACK_TLS) as client:  # challenged, then answered
        assert client.get(url).status_code == 200
    with httpx.Client(auth=httpx.DigestAuth(source_org.public_key, "not-the-key"), verify=LOOPBACK_TLS) as client:
        assert client.get(url).status_code == 401  # challenged, then refused
    assert _sample(server.base_url, "livemigrate_http_digest_challenges_total", route=route) == challenges + 2
    assert _sample(server.base_url, "livemigrate_http_requests_total", route=route, status="401") == refusals + 1
    assert _sample(server.base_url, "livemigrate_http_requests_total", route=route, status="200") == answered + 1
