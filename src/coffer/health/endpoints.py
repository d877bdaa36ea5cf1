"""`/healthz`: the process answers. `/readyz`: the database answers and its schema is current."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import text

from coffer.errors import ServiceUnavailable, envelope
from coffer.http import get_database

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process is up")
async def healthz() -> dict[str, Any]:
    return envelope(status_code=200, message="ok", data={"status": "ok"})


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
    # Ready or not, nothing more: revisions and versions help only someone mapping the system.
    return envelope(status_code=200, message="ready", data={"status": "ready"})
