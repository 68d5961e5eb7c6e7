"""Shared fixtures: one real server for the suite, fresh orgs for each test."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.nx import NxServer
from tests.support import OrgCredentials, ServerProcess

_names = itertools.count()


@dataclass(frozen=True)
class Suite:
    server: ServerProcess
    source_root: OrgCredentials
    target_root: OrgCredentials


@pytest.fixture(scope="session")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Suite]:
    server = ServerProcess(Path(tmp_path_factory.mktemp("server")), sync_seconds=5.0)
    source_root = server.admin_create_org("source", "suite source root", with_the_cli=True)
    target_root = server.admin_create_org("target", "suite target root", with_the_cli=True)
    server.start()
    yield Suite(server, source_root, target_root)
    server.stop()


@pytest.fixture
def server(suite: Suite) -> ServerProcess:
    return suite.server


@pytest.fixture
def source_org(suite: Suite) -> OrgCredentials:
    return suite.server.new_org(suite.source_root, "source", f"source {next(_names)}")


@pytest.fixture
def target_org(suite: Suite) -> OrgCredentials:
    return suite.server.new_org(suite.target_root, "target", f"target {next(_names)}")


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[NxServer, NxServer]]:
    """Two nx-27017 servers, a source and a target, for the engine's tests."""
    source, target = NxServer(tmp_path / "source").start(), NxServer(tmp_path / "target").start()
    yield source, target
    source.stop()
    target.stop()
