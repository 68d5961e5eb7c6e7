"""The migration host: heartbeats, polls the source API for its jobs, runs the engine, reports progress."""
