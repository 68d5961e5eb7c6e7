"""One job on a thread of its own, as the agent drives it: started, asked to cut over, stopped and
joined from the agent's threads, each request passed on to whatever runs the job at that moment.

Both kinds of job share this face (`runner.JobRunner`, which runs the engine; `shared_job.SharedJobRunner`,
a host's part in a migration several hosts share, which runs a `JobRunner` while it holds the capture).
A request made before the current runner was handed over reaches it when it is: a cutover asked for
while the job was between two attempts is not lost.
"""

from __future__ import annotations

import threading
from typing import Generic, Protocol, Self, TypeVar


class Steerable(Protocol):
    def stop(self) -> None: ...

    def request_cutover(self) -> None: ...


InnerT = TypeVar("InnerT", bound=Steerable)


class JobThread(Generic[InnerT]):
    """Subclasses write `_run`, and hand what runs the job now to `_hand_over` (None once it ended)."""

    def __init__(self, job_id: str, thread_name: str) -> None:
        self.job_id = job_id
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._cutover = threading.Event()
        self._inner: InnerT | None = None
        self._thread = threading.Thread(target=self._run, name=thread_name, daemon=True)

    def start(self) -> Self:
        self._thread.start()
        return self

    def request_cutover(self) -> None:
        self._cutover.set()
        with self._lock:
            if self._inner is not None:
                self._inner.request_cutover()

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            if self._inner is not None:
                self._inner.stop()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _hand_over(self, inner: InnerT | None) -> None:
        """What runs the job from now on; a cutover asked for already is passed on at once."""
        with self._lock:
            self._inner = inner
        if inner is not None and self._cutover.is_set():
            inner.request_cutover()

    def _current(self) -> InnerT | None:
        with self._lock:
            return self._inner

    def _run(self) -> None:
        raise NotImplementedError
