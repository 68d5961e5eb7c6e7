"""The Alembic revisions build exactly the schema the models describe: a model changed without its
revision (or the reverse) fails here, not on a user's upgraded store."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from livemigrate.store.database import HEAD_REVISION, MIGRATIONS_DIR, Store
from livemigrate.store.models import Base


def test_the_revisions_build_the_models_schema(tmp_path: Path) -> None:
    """And so a new store, which `migrate` creates from the models at once, is what an upgraded one is."""
    replayed = Store(f"sqlite:///{tmp_path / 'replayed.sqlite'}")
    replayed.upgrade_with_revisions()
    with replayed.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
        assert connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalars().all() == [HEAD_REVISION]
    created = Store(f"sqlite:///{tmp_path / 'created.sqlite'}")
    created.migrate()
    with created.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []


def test_the_head_revision_the_store_knows_is_alembics(tmp_path: Path) -> None:
    """`Store.migrate()` skips Alembic for a store at `HEAD_REVISION`: that must be the newest revision."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    assert ScriptDirectory.from_config(config).get_heads() == [HEAD_REVISION]
    store = Store(f"sqlite:///{tmp_path / 'store.sqlite'}")
    store.migrate()
    store.migrate()  # the second finds the store at the head, without Alembic
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalars().all() == [HEAD_REVISION]
