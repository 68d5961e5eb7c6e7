"""Persistence: SQLAlchemy models, sessions and Alembic migrations. No HTTP in here."""
