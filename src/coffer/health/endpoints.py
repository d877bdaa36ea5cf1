"""`/healthz`: the process answers. `/readyz`: the database answers and its schema is current;
in scaled mode it also says whether the broker answers. A broker outage is `degraded`, not
down: requests still succeed and their jobs wait in the outbox until it is back."""

from __future__ import annotations

import asyncio
from typing import Any

from celery import Celery
from fastapi import APIRouter, Request
from sqlalchemy import text

from coffer.errors import ServiceUnavailable, envelope
from coffer.http import get_database
from coffer.jobs.relay import Relay

router = APIRouter(tags=["health"])

BROKER_CHECK_TIMEOUT_SECONDS = 2.0


@router.get("/healthz", summary="Liveness: the process is up")
async def healthz() -> dict[str, Any]:
    return envelope(status_code=200, message="ok", data={"status": "ok"})


def _broker_answers(celery: Celery) -> bool:
    try:
        with celery.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=BROKER_CHECK_TIMEOUT_SECONDS)
    except Exception:
        return False
    return True


async def _broker_status(relay: Relay | None) -> str:
    if relay is None:
        return "not_configured"
    try:
        answers = await asyncio.wait_for(
            asyncio.to_thread(_broker_answers, relay.celery),
            timeout=2 * BROKER_CHECK_TIMEOUT_SECONDS,
        )
    except TimeoutError:
        answers = False
    return "ok" if answers else "degraded"


@router.get(
    "/readyz",
    summary="Readiness: the database is reachable and migrated to head",
    responses={503: {"description": "Database unreachable or migrations pending"}},
)
async def readyz(request: Request) -> dict[str, Any]:
    head: str = request.app.state.migration_head
    try:
        async with get_database(request).engine.connect() as connection:
            current = (
                await connection.execute(text("SELECT version_num FROM alembic_version"))
            ).scalar_one_or_none()
    except Exception as error:
        raise ServiceUnavailable("The database is not reachable") from error
    if current != head:
        raise ServiceUnavailable("Database migrations are not at head")
    # Ready or not, and whether jobs are delayed; no revisions or versions, which help only
    # someone mapping the system.
    broker = await _broker_status(getattr(request.app.state, "relay", None))
    return envelope(
        status_code=200,
        message="ready" if broker != "degraded" else "ready, jobs delayed: the broker is down",
        data={"status": "ready", "broker": broker},
    )
