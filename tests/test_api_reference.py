"""docs/api.md stays true: every operation the server describes in /openapi.json is in it, and every
operation in it is served. The README and docs/ point nowhere outside the repository."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from tests.support import LOOPBACK_TLS, ServerProcess

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = (ROOT / "docs" / "api.md").read_text()
# Served outside the OpenAPI document itself.
NOT_IN_OPENAPI = {("GET", "/metrics"), ("GET", "/openapi.json")}


def _shape(path: str) -> str:
    """Paths compared without their parameters' names: `{org_id}` and `{orgId}` are one place."""
    return re.sub(r"\{[^}]+\}", "{}", path)


def test_every_operation_is_in_the_api_reference_and_every_reference_is_served(server: ServerProcess) -> None:
    document = httpx.get(f"{server.base_url}/openapi.json", verify=LOOPBACK_TLS).json()
    served = {(method.upper(), _shape(path)) for path, operations in document["paths"].items()
              for method in operations}
    documented = {(method, _shape(path)) for method, path in
                  re.findall(r"`(GET|POST|PUT|PATCH|DELETE) (/[^`\s]*)`", REFERENCE)}
    assert sorted(served - documented) == []  # an endpoint added without its line in docs/api.md
    assert sorted(documented - served - NOT_IN_OPENAPI) == []  # a line for an endpoint that is gone


def test_the_readme_and_docs_point_nowhere_outside_the_repository() -> None:
    texts = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    assert [str(path) for path in texts if "../shared" in path.read_text()] == []
    assert "docs/api.md" in (ROOT / "README.md").read_text()
