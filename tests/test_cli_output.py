"""What the command line prints when it is not a terminal — a pipe, a file, a script's capture — and
its help: whole values, whole sentences."""

from __future__ import annotations

import os
import subprocess

import httpx

from tests.support import LIVEMIGRATE, LOOPBACK_TLS, SOURCE, OrgCredentials, ServerProcess


def _piped(*args: str) -> str:
    env = {key: value for key, value in os.environ.items() if key != "COLUMNS"}
    result = subprocess.run([LIVEMIGRATE, *args], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_a_command_description_in_the_help_reads_as_one_paragraph() -> None:
    """A docstring's line breaks are not the help's: the description of `migrate` flows on, rather than
    stopping after "kept)," and starting again on a line of its own."""
    shown = _piped("--help")
    [line] = [line for line in shown.splitlines() if "(a checkpoint is kept)," in line]
    assert "(a checkpoint is kept), until caught up" in line, shown


def test_every_option_of_a_migration_request_says_what_it_is() -> None:
    shown = " ".join(_piped("target", "live-migrations", "create", "--help").split())
    for option, said in (("--source-username", "The user the migration host reads the source as"),
                         ("--source-password", "That user's password"),
                         ("--source-ssl", "Connect to the source over TLS")):
        assert option in shown and said in " ".join(shown.replace("│", " ").split()), (option, shown)


def test_a_json_path_filter_picks_a_project_by_name_as_the_readme_reuses_one(server: ServerProcess,
                                                                              source_org: OrgCredentials) -> None:
    """What the README says to paste to reuse the walk's projects: `-o json-path` takes filters, as the
    Atlas CLI's does."""
    with httpx.Client(auth=source_org.auth, verify=LOOPBACK_TLS) as client:
        shop = client.post(f"{server.base_url}{SOURCE}/groups", json={"name": "shop", "orgId": source_org.org_id})
        client.post(f"{server.base_url}{SOURCE}/groups", json={"name": "other", "orgId": source_org.org_id})
    assert shop.status_code == 201
    env = {**os.environ, "LIVEMIGRATE_BASE_URL": server.base_url, "LIVEMIGRATE_PUBLIC_KEY": source_org.public_key,
           "LIVEMIGRATE_PRIVATE_KEY": source_org.private_key}
    picked = subprocess.run([LIVEMIGRATE, "source", "projects", "list", "--org", source_org.org_id,
                             "-o", 'json-path=$[?(@.name=="shop")].id'], env=env, capture_output=True, text=True,
                            timeout=60)
    assert (picked.returncode, picked.stdout.split()) == (0, [shop.json()["id"]]), picked.stderr
