"""The web console: server-rendered pages over the same services as the APIs (`routes.py`), signed in
with an API key pair (`sessions.py`)."""
