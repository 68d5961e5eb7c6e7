"""The ASGI application: both APIs, the shared conventions, and the source side's background loops
(link sync, host monitor)."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from livemigrate import __version__, metrics
from livemigrate.atlas import migration_routes as target_migration_routes
from livemigrate.atlas import routes as target_routes
from livemigrate.cloud_manager import agent_routes as source_agent_routes
from livemigrate.cloud_manager import inventory_routes as source_inventory_routes
from livemigrate.cloud_manager import routes as source_routes
from livemigrate.cloud_manager.inventory_changes import announce_inventory_changes
from livemigrate.cloud_manager.job_relay import JobRelay
from livemigrate.cloud_manager.link import LinkService
from livemigrate.cloud_manager.link_channels import LinkChannels
from livemigrate.cloud_manager.monitor import HostMonitor
from livemigrate.cloud_manager.sync import LinkSyncer
from livemigrate.console import routes as console_routes
from livemigrate.console.sessions import ConsoleSessions
from livemigrate.context import AppContext
from livemigrate.crypto import SecretBox
from livemigrate.directory.key_lookup import KeyLookup
from livemigrate.directory.routes import directory_router
from livemigrate.http import api_docs, exception_handlers, openapi
from livemigrate.http.auth import Authenticator
from livemigrate.http.middleware import RequestContextMiddleware
from livemigrate.http.nonces import NonceBook
from livemigrate.http.request_metrics import RequestMetricsMiddleware
from livemigrate.http.responses import respond
from livemigrate.settings import Settings, load_secret_key
from livemigrate.store.database import Store
from livemigrate.store.leases import Lease, release_quietly, replica_name
from livemigrate.store.nonce_counts import StoreNonceCounts
from livemigrate.vocabulary import SOURCE, SOURCE_PREFIX, TARGET, TARGET_PREFIX

log = logging.getLogger("livemigrate")


# Shown at the top of `/docs`. Swagger UI cannot answer a digest challenge (its schemes are basic, bearer,
# API key and OAuth), so its "Try it out" cannot sign in: the page says so and gives the curl equivalent.
API_DESCRIPTION = """Push live migration: a Cloud Manager-role source API (`/api/public/v1.0`) and an \
Atlas-role target API (`/api/atlas/v2`).

**"Try it out" cannot sign in here.** The operations of both APIs need HTTP Digest authentication \
with an API key, which this page's browser client cannot do: its calls answer 401. Call the API with \
`curl --digest` (or the `livemigrate` command line) instead, for example

```
curl --digest -u "$TARGET_PUB:$TARGET_PRIV" \\
  -H 'Accept: application/vnd.atlas.2023-01-01+json' \\
  "$LIVEMIGRATE_BASE_URL/api/atlas/v2/orgs/$TARGET_ORG/liveMigrations/availableProjects?pretty=true"
```

(the names `make serve` prints at its first start).
"""


def create_app(settings: Settings, store: Store | None = None, *, on_started: Callable[[], None] | None = None,
               on_stopping: Callable[[], None] | None = None) -> FastAPI:
    """The application; `on_started` runs at startup (the server may not listen yet: callers must
    retry) and `on_stopping` at shutdown — the in-process agent of `livemigrate serve` hangs there."""
    store = store or Store(settings.database_url)
    secret = load_secret_key(settings)
    secret_box = SecretBox(secret)
    authenticator = Authenticator(KeyLookup(store, settings.read_cache_seconds),
                                  NonceBook(secret, settings.digest_nonce_seconds,
                                            None if store.is_sqlite else StoreNonceCounts(store)))
    channels = LinkChannels(store, secret_box, settings.link_push_timeout_seconds, settings.read_cache_seconds)
    job_relay = JobRelay(channels)
    link_service = LinkService(store, secret_box, settings, channels, job_relay)
    # What every route shares, reached through `context_of(request)` and nothing else.
    context = AppContext(
        settings=settings,
        store=store,
        authenticator=authenticator,
        secret_box=secret_box,
        link_service=link_service,
        job_relay=job_relay,
        console_sessions=ConsoleSessions(store, authenticator, timedelta(hours=settings.console_session_hours)),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Replicas share one store: each hears the others' writes, and the background loops run at the
        # replica holding their lease (any replica, on the embedded SQLite store: there is one).
        listener = None
        if not store.is_sqlite:
            from livemigrate.store.notifications import WriteListener  # psycopg: imported where it is used

            listener = WriteListener(store).start()
        replica = replica_name()
        sync_lease = Lease(store, "link-sync", replica, ttl_seconds=1.5 * settings.link_sync_seconds)
        monitor_lease = Lease(store, "host-monitor", replica, ttl_seconds=1.5 * settings.host_probe_seconds)
        syncer = LinkSyncer(link_service, settings.link_sync_seconds, sync_lease)
        stop_announcing = announce_inventory_changes(store, syncer.inventory_changed)
        link_service.on_pushed = syncer.pushed
        monitor = HostMonitor(store, context.secret_box, settings.host_probe_seconds, monitor_lease)
        syncer.start()
        monitor.start()
        # What is built by now (modules, routes, settings, the store's engine) lives as long as the
        # process: out of the collector's reach, a full collection looks only at what requests made.
        # Those collections paused every request of a replica (gc.callbacks timings under
        # `bench/migration_hosts.py`, docs/benchmarks.md).
        gc.collect()
        gc.freeze()
        if on_started is not None:
            on_started()
        try:
            yield
        finally:
            if on_stopping is not None:
                await run_in_threadpool(on_stopping)
            await monitor.stop()
            stop_announcing()
            await syncer.stop()
            for lease in (sync_lease, monitor_lease):
                await run_in_threadpool(release_quietly, lease)
            if listener is not None:
                await run_in_threadpool(listener.stop)
            await link_service.close()

    app = FastAPI(
        title="livemigrate",
        version=__version__,
        description=API_DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served by `http/api_docs.py`, without a CDN
        redoc_url=None,
    )
    app.state.context = context
    exception_handlers.install(app)
    app.add_middleware(RequestContextMiddleware, max_body_bytes=settings.max_body_bytes)
    app.include_router(directory_router(SOURCE, SOURCE_PREFIX))
    app.include_router(source_routes.router)
    app.include_router(source_inventory_routes.router)
    app.include_router(source_agent_routes.router)
    app.include_router(directory_router(TARGET, TARGET_PREFIX))
    app.include_router(target_routes.router)
    app.include_router(target_migration_routes.router)
    app.openapi = openapi.describe(app)  # type: ignore[method-assign]
    api_docs.install(app)
    console_routes.install(app)  # adds the console's headers middleware
    app.add_middleware(RequestMetricsMiddleware)  # added last: the outermost, it sees every answer

    store_metrics = metrics.store_registry(store)

    @app.get("/metrics", summary="Prometheus metrics, without authentication", tags=["operations"],
             response_class=PlainTextResponse)
    def metrics_text() -> PlainTextResponse:  # sync: the store's figures are read on a worker thread
        return PlainTextResponse(metrics.exposition(store_metrics), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", summary="Liveness, without authentication", tags=["operations"])
    async def healthz(request: Request) -> Response:
        return respond(request, {"status": "OK", "version": __version__})

    return app
