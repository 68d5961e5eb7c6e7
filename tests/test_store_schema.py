"""The Alembic revisions build exactly the schema the models describe: a model changed without its
revision (or the reverse) fails here, not on a user's upgraded store."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from livemigrate.store.database import Store
from livemigrate.store.models import Base


def test_the_revisions_build_the_models_schema(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'store.sqlite'}")
    store.migrate()
    with store.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
