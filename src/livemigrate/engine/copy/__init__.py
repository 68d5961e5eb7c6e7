"""The copy phase: every planned collection's documents, in `_id` ranges checkpointed after each batch
(`ranges.py`), coordinated by `initial_copy.py`, in worker processes (`processes.py`) or shared among
migration hosts (`shared.py`)."""
