"""Options every API command takes: where the API is and which key to use (flags or env vars)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from livemigrate.client.api import ApiClient

BASE_URL = typer.Option("http://127.0.0.1:8080", "--base-url", envvar="LIVEMIGRATE_BASE_URL",
                        help="Server root URL (env LIVEMIGRATE_BASE_URL).")
PUBLIC_KEY = typer.Option(..., "--public-key", envvar="LIVEMIGRATE_PUBLIC_KEY",
                          help="API key public part (env LIVEMIGRATE_PUBLIC_KEY).")
PRIVATE_KEY = typer.Option(..., "--private-key", envvar="LIVEMIGRATE_PRIVATE_KEY", show_default=False,
                           help="API key private part (env LIVEMIGRATE_PRIVATE_KEY).")


def client(base_url: str, public_key: str, private_key: str) -> ApiClient:
    # httpx only for the API commands: `migrate` and `agent`, registered beside them, start without it.
    from livemigrate.client.api import ApiClient

    return ApiClient(base_url, public_key, private_key)
