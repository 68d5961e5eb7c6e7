"""Engine, sessions and schema migration.

SQLite serializes writers; rather than let concurrent request threads fail with "database is
locked", write transactions on SQLite take one process-wide lock, and every connection runs in
WAL mode with a busy timeout so readers never block behind a writer.

PostgreSQL is shared by replicas: every write transaction there ends with a NOTIFY naming this
process, so that the others hear of it (`notifications.py`); the listener of those also drops the
pooled connections when the database goes away, so that it is used again without a restart once it
is back.
"""

from __future__ import annotations

import select
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.orm import Session, sessionmaker

from livemigrate.store.models import Base

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# The newest revision in migrations/versions/ (a test holds it to Alembic's own head): a new revision
# changes it.
HEAD_REVISION = "0011"
WRITES_CHANNEL = "livemigrate_writes"


class Store:
    """A database: the engine, a session factory, and the write discipline its dialect needs."""

    def __init__(self, url: str) -> None:
        self.url = url
        parsed = make_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        if self.is_sqlite and parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        connect_args: dict[str, Any] = {"check_same_thread": False} if self.is_sqlite else {"connect_timeout": 5}
        # No `pool_pre_ping`: a ping before every checkout is a round trip more for every store call, which
        # `bench/migration_hosts.py` shows in the latency under load. A pooled connection the server ended
        # is told apart without one instead (`_ended_by_the_server`, at each checkout); a connection in
        # use meets an outage itself (its call fails, and SQLAlchemy drops the pool on a disconnect); the
        # idle ones are also dropped by the write listener, which hears of an outage first (`notifications.py`).
        self.engine: Engine = create_engine(url, connect_args=connect_args, pool_size=20, max_overflow=20)
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            event.listen(self.engine, "checkout", _refuse_ended_connection)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._write_lock = threading.Lock() if self.is_sqlite else None
        self.origin = uuid.uuid4().hex  # this process, as its NOTIFYs name it
        self._notify = None if self.is_sqlite else text(f"SELECT pg_notify('{WRITES_CHANNEL}', :origin)")
        self.generation = 0

    def forget_connections(self) -> None:
        """Drop the pooled connections (the database went away): later calls open new ones. Those in
        use are left to finish, or fail, with their requests."""
        self.engine.dispose(close=False)

    @property
    def safe_url(self) -> str:
        """The URL without its password: what logs and errors may show."""
        return make_url(self.url).render_as_string(hide_password=True)

    def note_write(self) -> None:
        """A write happened (here, or at another replica): cached reads may be out of date."""
        self.generation += 1

    @property
    def sessions(self) -> sessionmaker[Session]:
        """The session factory, for listeners of its events (`cloud_manager/inventory_changes.py`)."""
        return self._sessions

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._sessions() as session:
            yield session

    @contextmanager
    def write(self, *, quiet: bool = False) -> Iterator[Session]:
        """A transaction committed on success and rolled back on any error: no half-written record.

        Every write transaction, committed or not, advances `generation`, which is how in-process
        caches of hot reads (see `cache.py`) and waiting requests learn that what they hold may be out
        of date — at every replica, through a NOTIFY. A `quiet` write is one that nothing cached or
        waited on reads (a migration host's routine heartbeat): it tells no one. 200 hosts heartbeat
        20 times a second, and each told every replica to drop its caches of keys and link statuses.
        """
        with self._write_lock or nullcontext():
            try:
                with self._sessions() as session, session.begin():
                    yield session
                    if self._notify is not None and not quiet:
                        session.execute(self._notify, {"origin": self.origin})  # delivered at commit
            finally:
                if not quiet:
                    self.note_write()

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision. A store already there is recognised from its
        `alembic_version` row without loading Alembic (and Mako, and Pygments): a server's every start
        after the first, a tenth of a second of CPU each."""
        if self._at_head():
            return
        with self.engine.begin() as connection:
            if not self.is_sqlite:  # replicas starting together upgrade one after another, each in full
                connection.execute(text("SELECT pg_advisory_xact_lock(7716304)"))
            if inspect(connection).get_table_names():
                self._upgrade(connection)
            else:
                self._create_at_head(connection)

    def upgrade_with_revisions(self) -> None:
        """Every Alembic revision from where the store is, whatever it holds (`migrate` creates an empty
        store at once): what an older store goes through, and what the schema test replays."""
        with self.engine.begin() as connection:
            self._upgrade(connection)

    def _upgrade(self, connection: Connection) -> None:
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        config.attributes["connection_url"] = self.url
        config.attributes["connection"] = connection
        command.upgrade(config, "head")

    @staticmethod
    def _create_at_head(connection: Connection) -> None:
        """An empty database gets the newest schema at once, from the models, stamped with the head
        revision — Alembic's own advice for a new database: replaying every revision (SQLite's batch
        mode copies a table for each change) cost each new store a third of a second of CPU, and the
        two are the same schema (`tests/test_store_schema.py` compares them)."""
        Base.metadata.create_all(connection)
        connection.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
                                "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"))
        connection.execute(text("INSERT INTO alembic_version (version_num) VALUES (:head)"), {"head": HEAD_REVISION})

    def _at_head(self) -> bool:
        with self.engine.connect() as connection:
            if not inspect(connection).has_table("alembic_version"):
                return False
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [HEAD_REVISION]

    def dispose(self) -> None:
        self.engine.dispose()


def _refuse_ended_connection(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Before a pooled connection is handed out: one the server ended while it sat in the pool (its
    backend terminated — `pg_terminate_backend`, a restart, a failover, an idle timeout — or the network
    cut) is refused, and with it every connection pooled before it (they most likely went the same way);
    SQLAlchemy then opens a new one for this checkout. Nothing is sent: a connection idle in the pool has
    nothing to receive, so one the operating system says is readable, or closed, holds the server's
    farewell (FATAL 57P01 `terminating connection due to administrator command`) or its end of the stream.
    A connection refused wrongly (a notice received while idle) costs only a new connection."""
    if getattr(dbapi_connection, "closed", False) or getattr(dbapi_connection, "broken", False):
        raise InvalidatePoolError("the pooled connection is closed")
    try:
        readable, _, failed = select.select([dbapi_connection.fileno()], [], [dbapi_connection.fileno()], 0)
    except (OSError, ValueError) as error:  # no socket any more
        raise InvalidatePoolError(f"the pooled connection has no socket ({error})") from None
    if readable or failed:
        raise InvalidatePoolError("the server ended the pooled connection")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
