"""`/docs` works on a machine without internet: the page and everything it loads come from the server."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from tests.browser import visit
from tests.support import LOOPBACK_TLS, ServerProcess


def test_the_api_docs_load_nothing_from_outside_the_server(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.base_url, verify=LOOPBACK_TLS) as client:
        page = client.get("/docs")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "SwaggerUIBundle" in page.text
        assert not re.search(r"\b(?:https?:)?//", page.text), "the page names another host"
        assert '"validatorUrl": null' in page.text  # Swagger UI would fetch its badge from validator.swagger.io
        loaded = re.findall(r"""(?:src|href)=["']([^"']+)["']|url: ?["']([^"']+)["']""", page.text)
        urls = {first or second for first, second in loaded}
        assert {"/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css", "/openapi.json", "/docs/assets/favicon.png"} <= urls
        for url in urls:
            answer = client.get(url)
            assert answer.status_code == 200 and len(answer.content) > 100, url
        script = client.get("/docs/assets/swagger-ui-bundle.js").text
        assert "SwaggerUIBundle" in script


def test_the_api_docs_render_in_a_browser_with_every_other_host_refused(server: ServerProcess, tmp_path: Path) -> None:
    with visit(server.base_url) as seen:
        seen.page.goto(f"{server.base_url}/docs")
        seen.page.wait_for_selector(".opblock-summary-path", timeout=20_000)  # the operations, read from /openapi.json
        paths = seen.page.locator(".opblock-summary-path").all_inner_texts()
        seen.page.screenshot(path=str(tmp_path / "docs.png"), full_page=False)
        assert any("/liveExport/migrationLink" in path for path in paths), paths[:5]
        # Its "Try it out" cannot answer a digest challenge: the page says so and shows the curl equivalent.
        told = seen.page.locator(".information-container").inner_text()
        assert '"Try it out" cannot sign in here' in told and 'curl --digest -u "$TARGET_PUB:$TARGET_PRIV"' in told
        assert seen.refused == [] and seen.console_errors == [], (seen.refused, seen.console_errors)
