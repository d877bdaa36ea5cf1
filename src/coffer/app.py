"""The application factory: settings, logging, database, embedded worker, routes, errors."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from starlette.middleware.cors import CORSMiddleware

from coffer.api import API_PREFIX, api_router
from coffer.apikeys.ratelimit import ApiKeyRateLimiter
from coffer.auth.request_limits import RequestLimits
from coffer.db import Database
from coffer.edge.body_limit import BodyLimitMiddleware
from coffer.edge.docs import install_docs
from coffer.edge.headers import SecurityHeadersMiddleware
from coffer.edge.openapi import complete_openapi
from coffer.health.endpoints import router as health_router
from coffer.http import RequestContextMiddleware, install_error_handlers
from coffer.jobs.celery_app import make_celery
from coffer.jobs.relay import Relay
from coffer.jobs.runner import JobRunner
from coffer.kit.clock import set_offset
from coffer.kit.concurrency import ConcurrencyCap
from coffer.kit.heap import settle_heap
from coffer.kit.ratelimit import RateLimiter
from coffer.logging import configure_logging
from coffer.metrics.endpoints import MetricsMiddleware
from coffer.metrics.endpoints import router as metrics_router
from coffer.migrate import head_revision
from coffer.notifications.hub import CommitNudger, EventHub
from coffer.payments.providers.registry import close_providers, providers_for
from coffer.payments.sandbox import router as sandbox_router
from coffer.settings import Settings, WorkerMode, get_settings
from coffer.transfers.batch_endpoints import BATCH_PATH
from coffer.transfers.batcher import TransferBatcher
from coffer.web.router import install_web

SHUTDOWN_PUBLISH_SECONDS = 5
"""How long shutdown waits for a publish in flight (what it leaves, the sweeper publishes)."""
CORS_REQUEST_HEADERS = ["authorization", "content-type", "idempotency-key", "x-api-key", "prefer"]
CORS_RESPONSE_HEADERS = ["x-request-id", "retry-after", "idempotent-replayed", "preference-applied"]


def serve_app() -> FastAPI:
    """The app `coffer serve` runs in each API process: `create_app`, whose heap is settled
    once it has started (coffer.kit.heap; not for apps made in a test process)."""
    return create_app(settle_heap_once_started=True)


def create_app(
    settings: Settings | None = None, *, settle_heap_once_started: bool = False
) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level, json=settings.log_json)
    set_offset(timedelta(seconds=settings.clock_offset_seconds))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database = Database(settings.database_url, pool_size=settings.database_pool_size)
        app.state.database = database
        # Built now, so a provider that cannot work stops the start with a clear message.
        providers_for(database, settings)
        # Made here, inside the running loop; None when batching is off.
        batcher = (
            TransferBatcher(database, settings) if settings.transfer_accept_window_ms else None
        )
        app.state.transfer_batcher = batcher
        runner_task: asyncio.Task[None] | None = None
        relay: Relay | None = None
        if settings.broker_url is not None:
            # Scaled: Celery workers run the jobs; this process only publishes its outbox rows.
            relay = Relay(database, settings, make_celery(settings))
            database.jobs_committed_listeners.append(relay.wake)
        elif settings.worker_mode is WorkerMode.EMBEDDED:
            runner_task = asyncio.create_task(JobRunner(database, settings).run_forever())
        app.state.relay = relay
        nudger = CommitNudger(settings.redis_url)
        hub = EventHub(database, settings, nudger)
        nudger.install()
        await hub.start()
        app.state.event_hub = hub
        if settle_heap_once_started:
            settle_heap()
        try:
            yield
        finally:
            await hub.stop()
            await nudger.close()
            if batcher is not None:
                # Store what is waiting before the database goes away.
                await batcher.close()
            if relay is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(relay.idle(), timeout=SHUTDOWN_PUBLISH_SECONDS)
            if runner_task is not None:
                runner_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await runner_task
            await close_providers(database)
            await database.dispose()

    app = FastAPI(
        title="coffer",
        summary="Wallets and a double-entry payments ledger",
        version="0.1.0",
        lifespan=lifespan,
        # Served by coffer.edge.docs, from local assets, when the settings allow.
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    rate_limiter = RateLimiter(settings.redis_url, strategy=SlidingWindowCounterRateLimiter)
    app.state.api_key_rate_limiter = ApiKeyRateLimiter(settings, rate_limiter)
    app.state.request_limits = RequestLimits(settings, rate_limiter)
    app.state.transfer_waits = ConcurrencyCap(settings.max_transfer_waits_per_principal)
    app.state.migration_head = head_revision()
    _install_middleware(app, settings)
    install_error_handlers(app)
    app.include_router(health_router)
    app.include_router(metrics_router)
    app.include_router(api_router())
    app.include_router(sandbox_router)
    install_web(app)
    app.openapi = lambda: complete_openapi(app)  # type: ignore[method-assign]
    if settings.serves_docs:
        install_docs(app)
    return app


def _install_middleware(app: FastAPI, settings: Settings) -> None:
    """Added innermost first: security headers wrap everything (the request-id middleware's
    own 500 included), CORS answers preflights before the body cap, the body cap wraps the
    routes."""
    app.add_middleware(MetricsMiddleware)
    app.add_middleware(
        BodyLimitMiddleware,
        max_body_bytes=settings.max_body_bytes,
        per_path={f"{API_PREFIX}{BATCH_PATH}": settings.max_batch_body_bytes},
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=CORS_REQUEST_HEADERS,
            expose_headers=CORS_RESPONSE_HEADERS,
            max_age=600,
        )
    app.add_middleware(RequestContextMiddleware)
    app.add_middleware(
        SecurityHeadersMiddleware, api_prefix=API_PREFIX, behind_tls=settings.behind_tls
    )
