"""The capture phase: the source's change streams (`streams.py`: one deployment-wide, or one per
collection), read from the start point all through the copy into a spool on disk (`spool.py`)."""
