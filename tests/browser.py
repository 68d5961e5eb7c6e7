"""Headless Chromium for the tests that need a real browser: Debian's `chromium` package, driven from
Python by Playwright pointed at that executable (Playwright's own browser downloads are not used).
Where no Chromium is installed, those tests are skipped with one line saying how to install it."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, Request, Route, sync_playwright

INSTALL_HINT = ("no Chromium on this machine: the browser tests are skipped (install Debian's package: "
                "`apt-get install chromium`, or set LIVEMIGRATE_TEST_CHROMIUM to a Chromium executable)")


def chromium_path() -> str | None:
    return os.environ.get("LIVEMIGRATE_TEST_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class Visit:
    """What the browser did besides showing pages: console errors, and requests to other hosts (refused)."""

    page: Page
    console_errors: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)


@contextmanager
def browser() -> Iterator[Browser]:
    executable = chromium_path()
    if executable is None:
        pytest.skip(INSTALL_HINT)
    with sync_playwright() as playwright:
        # --no-sandbox: the tests may run as root (CI does), where Chromium's sandbox refuses to start.
        launched = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


def open_page(launched: Browser, base_url: str) -> Visit:
    """A page in a context of its own (its own cookies: one signed-in person), whose every request to
    another host than `base_url`'s is refused and recorded — what the page would do on a machine without
    internet, and proof that it asks for nothing outside."""
    allowed = urlsplit(base_url).netloc
    context = launched.new_context(ignore_https_errors=True, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    seen = Visit(page)

    def guard(route: Route, request: Request) -> None:
        if urlsplit(request.url).netloc == allowed or request.url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            seen.refused.append(request.url)
            route.abort("internetdisconnected")

    context.route("**/*", guard)
    page.on("console", lambda message: seen.console_errors.append(message.text)
            if message.type == "error" else None)
    page.on("pageerror", lambda error: seen.console_errors.append(str(error)))
    return seen


@contextmanager
def visit(base_url: str) -> Iterator[Visit]:
    with browser() as launched:
        seen = open_page(launched, base_url)
        try:
            yield seen
        finally:
            seen.page.context.close()
