"""Names the whole server shares, defined once: the two sides it plays, where each one's API lives,
and the kinds of API key. (Statuses have `statuses.py`; error codes, `http/errors.py`.)"""

from __future__ import annotations

# The sides: every org belongs to one, and a key of one side is unknown on the other.
SOURCE = "source"  # the Cloud Manager role
TARGET = "target"  # the Atlas role
SIDES = (SOURCE, TARGET)

SOURCE_PREFIX = "/api/public/v1.0"  # Cloud Manager's public API
TARGET_PREFIX = "/api/atlas/v2"  # the Atlas Administration API

# What an API key is for.
PROGRAMMATIC_PURPOSE = "programmatic"  # an org's key, with org roles: the APIs
LINK_PURPOSE = "link"  # the key inside a link-token: the link channel only
AGENT_PURPOSE = "agent"  # a source project's agent key: its migration hosts' calls only
