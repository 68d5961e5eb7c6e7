"""The name a migration host reports by default says which machine it is: never `localhost`, which is what
`getfqdn()` answers on machines whose hosts file maps their own name there (containers, many VMs)."""

from __future__ import annotations

import socket

import pytest

from livemigrate.agent.hostnames import this_host


def test_a_machine_whose_fully_qualified_name_is_localhost_is_named_by_its_own_name(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getfqdn", lambda: "localhost")
    monkeypatch.setattr(socket, "gethostname", lambda: "db-mover-1")
    assert this_host() == "db-mover-1"


def test_a_fully_qualified_name_is_preferred_and_a_machine_with_no_name_is_still_told_apart(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getfqdn", lambda: "db-mover-1.dc.example")
    monkeypatch.setattr(socket, "gethostname", lambda: "db-mover-1")
    assert this_host() == "db-mover-1.dc.example"
    monkeypatch.setattr(socket, "getfqdn", lambda: "localhost.localdomain")
    monkeypatch.setattr(socket, "gethostname", lambda: "localhost")
    assert this_host() == "livemigrate-migration-host"
