"""`/docs` works on a machine without internet: the page and everything it loads come from the server."""

from __future__ import annotations

import re

import httpx

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
        assert {"/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css", "/openapi.json"} <= urls
        for url in urls:
            answer = client.get(url)
            assert answer.status_code == 200 and len(answer.content) > 100, url
        script = client.get("/docs/assets/swagger-ui-bundle.js").text
        assert "SwaggerUIBundle" in script
