"""This host's leases on the parts of one shared migration, kept through the source API.

The source side keeps the leases (`cloud_manager/job_leases.py`); this keeps asking for the set this host
wants, every third of a lease's lifetime, and at once when it claims or releases one. A lease counts
as held only while it surely is: until a lease's lifetime after the ask that last granted it, less a
margin. A host cut off from the API thus stops using what it held before anyone else may take it.
"""

from __future__ import annotations

import logging
import threading
import time

import httpx
from pydantic import ValidationError

from livemigrate.client.agent_api import AgentApi
from livemigrate.client.errors import ApiCallError
from livemigrate.contracts import LeaseRequest

log = logging.getLogger("livemigrate.agent")

CAPTURE = "capture"  # the lease of the change capture and of everything after the copy

# Of a lease's lifetime, the part after its last renewal during which it is not used any more: the
# renewal's own round trip, and a clock that runs a little fast.
_MARGIN = 0.2
_LOOK_SECONDS = 0.25


class LeaseKeeper:
    def __init__(self, api: AgentApi, job_id: str, hostname: str) -> None:
        self._api = api  # this keeper's own client: it asks from its thread and from its callers'
        self._job_id = job_id
        self._hostname = hostname
        # Two locks, so that a copy batch asking `holds` never waits on an ask's round trip: asks take
        # turns under `_asking`; the sets and times below change only under `_state`, and briefly.
        self._asking = threading.Lock()
        self._state = threading.Lock()
        self._wanted: set[str] = set()
        self._held: set[str] = set()
        self._holders: dict[str, str] = {}
        self._sure_until = 0.0
        self._lease_seconds = 15.0  # until the first answer says
        self._next_ask = 0.0  # monotonic: when the wanted set is asked for again
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._keep, name=f"leases-{job_id}", daemon=True)
        self._thread.start()

    # --- what the copy and the runner ask (`engine.copy.shared.RangeLeases`) -----------------------

    def claim(self, name: str) -> bool:
        with self._asking:
            with self._state:
                self._wanted.add(name)
            self._ask()
            with self._state:
                if name not in self._held:
                    self._wanted.discard(name)  # another host's: asked for again only when claimed again
                return self._sure(name)

    def release(self, name: str) -> None:
        with self._asking:
            with self._state:
                if name not in self._wanted:
                    return
                self._wanted.discard(name)
            self._ask()

    def holds(self, name: str) -> bool:
        with self._state:
            return self._sure(name)

    def holders(self) -> dict[str, str]:
        """Every live lease of the job and its holder, as the last answer had them."""
        with self._state:
            return dict(self._holders)

    def close(self) -> None:
        """Release everything (another host takes it over at once) and stop renewing."""
        self._closed.set()
        with self._asking:
            with self._state:
                self._wanted.clear()
            self._ask()
        self._api.close()

    # --- renewing ------------------------------------------------------------------------------

    def _sure(self, name: str) -> bool:
        return name in self._held and time.monotonic() < self._sure_until

    def _keep(self) -> None:
        # Looks often, asks every third of a lease: the first answer may shorten the lifetime assumed.
        while not self._closed.wait(_LOOK_SECONDS):
            with self._asking:
                with self._state:
                    due = bool(self._wanted) and time.monotonic() >= self._next_ask
                if due and not self._closed.is_set():
                    self._ask()

    def _ask(self) -> None:
        """One ask for the wanted set; under `_asking`. A failed ask changes nothing: what was held
        stays held until it is no longer sure."""
        asked_at = time.monotonic()
        with self._state:
            self._next_ask = asked_at + self._lease_seconds / 3
            wanted = sorted(self._wanted)
        try:
            answer = self._api.hold_leases(self._job_id, LeaseRequest(hostname=self._hostname, hold=wanted))
        except (ApiCallError, httpx.HTTPError, ValidationError) as error:
            log.warning("job %s: the leases could not be renewed: %s", self._job_id, error)
            return
        holders = {lease.name: lease.holder for lease in answer.leases}
        held = {name for name, holder in holders.items() if holder == self._hostname}
        with self._state:
            for name in sorted((held ^ self._held) & {CAPTURE}):
                log.info("job %s: %s the change capture", self._job_id, "holds" if name in held else "no longer holds")
            self._lease_seconds = float(answer.leaseSeconds)
            self._holders = holders
            self._held = held
            self._sure_until = asked_at + self._lease_seconds * (1 - _MARGIN)
            self._next_ask = asked_at + self._lease_seconds / 3
