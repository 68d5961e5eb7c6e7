"""The web console: server-rendered pages over the same services as the APIs (`routes.py`,
`migration_pages.py`, in a person's words by `views.py`), signed in with an API key pair (`sessions.py`,
`signed_in.py`), under a Content-Security-Policy (`headers.py`), with notices only the server wrote
(`notices.py`)."""
