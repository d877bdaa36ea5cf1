"""`/metrics` in the Prometheus text format, correct with several API processes.

With more than one process (`coffer serve --workers N` sets PROMETHEUS_MULTIPROC_DIR for its
children when it is not set), each process writes its samples to files there and a scrape of
any process aggregates them all. The outbox gauges are read from the database at scrape time,
so they are the same whichever process answers.
"""

from __future__ import annotations

import os
import time

from fastapi import APIRouter, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from coffer.http import get_database
from coffer.jobs.repository import outbox_counts

MULTIPROCESS_DIRECTORY = "PROMETHEUS_MULTIPROC_DIR"

router = APIRouter(tags=["health"])

REQUESTS = Counter("coffer_http_requests", "HTTP requests answered", ["method", "route", "status"])
LATENCY = Histogram(
    "coffer_http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


class MetricsMiddleware:
    """Counts each request under its route template (`/wallets/{wallet_number}`), never its
    raw path, so label values stay few and carry no identifiers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_counting(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_counting)
        finally:
            # The matched route's template (nested routers' prefixes are not in it).
            template = getattr(scope.get("route"), "path", "unmatched")
            method = str(scope.get("method", ""))
            REQUESTS.labels(method, template, str(status)).inc()
            LATENCY.labels(method, template).observe(time.perf_counter() - started)


def _process_samples() -> bytes:
    if MULTIPROCESS_DIRECTORY in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    async with get_database(request).transaction() as session:
        counts = await outbox_counts(session)
    outbox = [
        "# HELP coffer_outbox_jobs Outbox rows by job and status (pending, sent, dead).",
        "# TYPE coffer_outbox_jobs gauge",
        *(
            f'coffer_outbox_jobs{{job="{_label(name)}",status="{_label(status)}"}} {count}'
            for name, status, count in counts
        ),
    ]
    body = _process_samples() + ("\n".join(outbox) + "\n").encode()
    return Response(body, media_type=CONTENT_TYPE_LATEST)
