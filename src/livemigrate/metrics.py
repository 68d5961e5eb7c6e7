"""What `/metrics` exports, in Prometheus's text format (prometheus_client).

Two kinds of series. Counters of this process — requests and their latency (`http/request_metrics.py`),
inventory pushes (`cloud_manager/link.py`) — are counted as things happen. The state of migrations and migration hosts is the store's, shared by every
replica: it is read at each scrape (`StoreCollector`), so any replica answers with the same figures.
Per-migration series exist only for migrations still running, which keeps their number bounded;
`livemigrate_migrations` counts every migration by status.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from livemigrate.atlas.migration_views import events_applied, retries_of
from livemigrate.statuses import FINISHED, MigrationStatus
from livemigrate.store.database import Store
from livemigrate.store.models import LiveMigration, MigrationHost, utcnow

_MIGRATION_LABELS = ["migration_id", "group_id"]


class StoreCollector(Collector):
    """Migrations and migration hosts as the store holds them, read at each scrape."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._store.read() as session:
            by_status = dict(session.execute(select(LiveMigration.status, func.count())
                                             .group_by(LiveMigration.status)).tuples().all())
            running = list(session.scalars(select(LiveMigration).where(
                LiveMigration.status.not_in([status.value for status in FINISHED]))))
            hosts = list(session.execute(select(MigrationHost.project_id, MigrationHost.hostname,
                                                MigrationHost.last_heartbeat_at)).tuples())
        counts = GaugeMetricFamily("livemigrate_migrations", "Migrations, by status.", labels=["status"])
        for status in MigrationStatus:
            counts.add_metric([status.value], by_status.get(status.value, 0))
        yield counts
        yield from _running(running)
        yield _heartbeat_ages(hosts, utcnow())


def _running(migrations: list[LiveMigration]) -> Iterator[GaugeMetricFamily]:
    lag = GaugeMetricFamily("livemigrate_migration_lag_seconds",
                            "Age of the last change applied to the destination (as the migration reports it).",
                            labels=_MIGRATION_LABELS)
    copied = GaugeMetricFamily("livemigrate_migration_documents_copied", "Documents copied by the initial copy.",
                               labels=_MIGRATION_LABELS)
    total = GaugeMetricFamily("livemigrate_migration_documents_total", "Documents the initial copy has to copy.",
                              labels=_MIGRATION_LABELS)
    applied = GaugeMetricFamily("livemigrate_migration_events_applied", "Changes replayed on the destination.",
                                labels=_MIGRATION_LABELS)
    ready = GaugeMetricFamily("livemigrate_migration_ready_for_cutover", "1 when the migration may be cut over.",
                              labels=_MIGRATION_LABELS)
    phase = GaugeMetricFamily("livemigrate_migration_phase", "1 for the phase the migration is in.",
                              labels=[*_MIGRATION_LABELS, "phase"])
    retries = GaugeMetricFamily("livemigrate_migration_retries",
                                "Round trips the migration host tried again after a fault that passed, by side "
                                "(source, destination), and runs it started again from their checkpoints (restarts).",
                                labels=[*_MIGRATION_LABELS, "side"])
    for migration in migrations:
        labels = [migration.id, migration.project_id]
        for side, count in retries_of(migration).items():
            retries.add_metric([*labels, side], count)
        if migration.lag_time_seconds is not None:
            lag.add_metric(labels, migration.lag_time_seconds)
        copied.add_metric(labels, migration.copied_documents)
        total.add_metric(labels, migration.total_documents)
        applied.add_metric(labels, events_applied(migration))
        ready.add_metric(labels, 1 if migration.ready_for_cutover else 0)
        phase.add_metric([*labels, migration.phase or "NONE"], 1)
    yield from (lag, copied, total, applied, ready, phase, retries)


def _heartbeat_ages(hosts: list[tuple[str, str, datetime]], now: datetime) -> GaugeMetricFamily:
    ages = GaugeMetricFamily("livemigrate_migration_host_heartbeat_age_seconds",
                             "Seconds since the migration host's last heartbeat.", labels=["group_id", "hostname"])
    for project_id, hostname, last_heartbeat in hosts:
        ages.add_metric([project_id, hostname], max(0.0, (now - last_heartbeat).total_seconds()))
    return ages


def exposition(store_registry: CollectorRegistry) -> bytes:
    """The process's metrics (including Python's and the process's own) and the store's, in one text."""
    return generate_latest(REGISTRY) + generate_latest(store_registry)


def store_registry(store: Store) -> CollectorRegistry:
    """A registry of its own for the store's collector: an application made twice in one process
    (tests, benchmarks) must not register it twice in the global one."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(store))
    return registry
