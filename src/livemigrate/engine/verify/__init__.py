"""The verify phase: both sides read into the ledger (`passes.py`), the changed documents read again
while replicating (`refresh.py`), evidence that does not come from the change stream (`evidence.py`:
counts; `divergence.py`: counts compared while replicating) and the cutover's verdict (`verdict.py`)."""
