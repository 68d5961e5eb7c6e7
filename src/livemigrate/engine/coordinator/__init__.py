"""The coordinator: one migration, phase by phase (`migration.py`), the change loop until cutover and
its drain (`replay.py`), collections created after the start (`late_collections.py`), and the progress
events its listeners get (`progress.py`)."""
