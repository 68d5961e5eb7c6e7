"""Organizations, their API keys and projects: the same resources on both sides, kept apart by `side`."""
