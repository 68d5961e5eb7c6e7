"""The name a migration host reports by default: the machine's, as a person would look it up.

`socket.getfqdn()` answers `localhost` on machines whose hosts file maps their name there (containers,
many VMs): a migration host listed as `localhost` tells a person nothing of which machine it is. Then
the machine's own name (`gethostname`) is taken, and only when that too says nothing, a name that at
least says what it is.
"""

from __future__ import annotations

import socket

_SAYS_NOTHING = frozenset({"localhost", "localhost.localdomain", "localhost6", "localhost6.localdomain6", ""})


def this_host() -> str:
    for name in (socket.getfqdn(), socket.gethostname()):
        if name.lower() not in _SAYS_NOTHING:
            return name
    return "livemigrate-migration-host"
