"""Leases on the parts of a shared migration: which of its migration hosts copies which range, and
which one runs the change capture and everything after the copy.

Kept by the source side, which its migration hosts already call (heartbeats, jobs, progress): one
hop, and the side that knows which hosts are alive. A host asks for the whole set it wants to hold,
every third of the lease's lifetime: what it holds is renewed, what has run out or was never taken
is given to it, what another host holds is not, and what it no longer asks for is released. A host
that stops asking — killed, cut off — loses everything it held `migration_lease_seconds` after its
last renewal; the others take it over at their next ask. Each take is one conditional UPDATE (or
the INSERT of the row), atomic on SQLite and on PostgreSQL: two hosts can never both hold a part.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, insert, not_, or_, select, update
from sqlalchemy.exc import IntegrityError

from livemigrate.store.database import Store
from livemigrate.store.models import JobLease, utcnow


@dataclass(frozen=True)
class LeaseView:
    name: str
    holder: str
    expires_at: datetime


def hold(store: Store, project_id: str, job_id: str, hostname: str, wanted: Sequence[str],
         ttl_seconds: float) -> list[LeaseView]:
    """Renew or take each of `wanted` for `hostname`, release what it holds and no longer wants; every
    live lease of the job after that, whoever holds it (the caller's are those it holds now)."""
    now = utcnow()
    until = now + timedelta(seconds=ttl_seconds)
    names = list(dict.fromkeys(wanted))
    # Not store writes: nothing cached reads leases, and nobody waits on them. One transaction per
    # lease: another host's insert of the same one fails only that one.
    with store.engine.begin() as connection:
        released = update(JobLease).where(JobLease.job_id == job_id, JobLease.holder == hostname,
                                          JobLease.expires_at >= now)
        if names:
            released = released.where(not_(JobLease.name.in_(names)))
        connection.execute(released.values(expires_at=now - timedelta(seconds=1)))
    for name in names:
        try:
            with store.engine.begin() as connection:
                taken = connection.execute(
                    update(JobLease).where(JobLease.job_id == job_id, JobLease.name == name,
                                           or_(JobLease.holder == hostname, JobLease.expires_at < now))
                    .values(holder=hostname, expires_at=until, project_id=project_id)).rowcount
                if taken == 0 and connection.execute(select(JobLease.name).where(
                        JobLease.job_id == job_id, JobLease.name == name)).first() is None:
                    connection.execute(insert(JobLease).values(job_id=job_id, name=name, project_id=project_id,
                                                               holder=hostname, expires_at=until))
        except IntegrityError:
            pass  # another host inserted it first: it holds it
    with store.engine.connect() as connection:
        rows = connection.execute(select(JobLease.name, JobLease.holder, JobLease.expires_at).where(
            JobLease.job_id == job_id, JobLease.expires_at >= now).order_by(JobLease.name)).all()
    return [LeaseView(str(name), str(holder), expires) for name, holder, expires in rows]


def forget_finished(store: Store, project_id: str, running_job_ids: Sequence[str]) -> int:
    """The leases of the project's jobs that no longer run, once they have run out: nobody will ask for
    them again. Only run-out ones: a job missing from one list for a moment keeps what its hosts hold
    (deleting a live capture lease would let a second host take it while the first still replays).
    Returns how many went."""
    with store.engine.begin() as connection:
        return int(connection.execute(delete(JobLease).where(and_(
            JobLease.project_id == project_id, JobLease.expires_at < utcnow(),
            not_(JobLease.job_id.in_(list(running_job_ids)))))).rowcount)

